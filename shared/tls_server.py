"""A service's TLS: settings checked at start, credentials that follow rotated files.

gRPC asks the fetcher of dynamic server credentials for a new configuration before each
new handshake; ours answers from a stat of the files, so a certificate rewritten in
place is served from the next connection on, without a restart, while connections
already open (and the calls on them) keep the certificate they were made with.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import grpc
import structlog

from shared.settings import Settings
from shared.tls_files import (
    Signature,
    TlsConfigError,
    check_certificates,
    check_pair,
    read_pem,
    signature,
)

log = structlog.get_logger("hookshelf.tls")

CERT = "HOOKSHELF_TLS_CERT_FILE"
KEY = "HOOKSHELF_TLS_KEY_FILE"
CLIENT_CA = "HOOKSHELF_TLS_CLIENT_CA_FILE"


@dataclass
class ServerTls:
    """The files a TLS listener serves; a client CA makes client certificates required."""

    cert_file: str
    key_file: str
    client_ca_file: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _loaded: Signature = field(default=(), repr=False)
    _refused: Signature = field(default=(), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerTls | None:
        """None when no certificate is configured; TlsConfigError for a partial or
        unreadable configuration, so the service refuses to start."""
        cert, key, client_ca = (
            settings.tls_cert_file,
            settings.tls_key_file,
            settings.tls_client_ca_file,
        )
        if cert and not key:
            raise TlsConfigError(f"{CERT} is set but {KEY} is not: a certificate needs its key")
        if key and not cert:
            raise TlsConfigError(f"{KEY} is set but {CERT} is not: a key needs its certificate")
        if client_ca and not cert:
            raise TlsConfigError(
                f"{CLIENT_CA} is set but {CERT} is not: client certificates need TLS"
            )
        if not cert:
            return None
        tls = cls(cert, key, client_ca)
        tls._load()  # every file readable and the pair matching, or no start
        return tls

    @property
    def mutual(self) -> bool:
        return bool(self.client_ca_file)

    @property
    def _paths(self) -> list[str]:
        return [p for p in (self.cert_file, self.key_file, self.client_ca_file) if p]

    def _load(self) -> tuple[grpc.ServerCertificateConfiguration, Signature]:
        # The signature is taken first: a write racing the read shows up as a change next
        # time, and the files are read again.
        seen = signature(self._paths)
        cert = read_pem(self.cert_file, CERT)
        key = read_pem(self.key_file, KEY)
        check_pair(cert, key, cert_setting=CERT, key_setting=KEY, key_path=self.key_file)
        client_ca = None
        if self.client_ca_file:
            client_ca = read_pem(self.client_ca_file, CLIENT_CA)
            check_certificates(client_ca, self.client_ca_file, CLIENT_CA)
        config = grpc.ssl_server_certificate_configuration([(key, cert)], client_ca)
        return config, seen

    def credentials(self) -> grpc.ServerCredentials:
        config, self._loaded = self._load()
        return grpc.dynamic_ssl_server_credentials(
            config,
            self._fetch,  # type: ignore[arg-type]  # grpc documents None as "no change"; its stubs omit it
            require_client_authentication=self.mutual,
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before each new handshake: a new configuration when the files
        changed and can be used, else None (keep serving the current one)."""
        try:
            with self._lock:
                now = signature(self._paths)
                if now in (self._loaded, self._refused):
                    return None
                try:
                    config, seen = self._load()
                except TlsConfigError as error:
                    # Half way through a rotation (the new certificate, the old key): the
                    # next handshake looks again; one warning per state of the files.
                    self._refused = now
                    log.warning("tls.reload_refused", error=str(error))
                    return None
                self._loaded = seen
                log.info("tls.reloaded", cert_file=self.cert_file)
                return config
        except Exception:  # never fail a handshake over a reload
            log.exception("tls.reload_failed")
            return None
