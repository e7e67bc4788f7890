"""A client's TLS: which CA it trusts, which certificate it presents, and its channel.

TLS is on for TCP targets when a CA file or a client certificate is configured; without
a CA file the system's roots are trusted. A ``unix:`` target stays plaintext: a local
socket's boundary is its file permissions (docs/decisions.md, Transport security).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from shared.message_limits import MAX_RESPONSE_BYTES
from shared.tls_files import TlsConfigError, check_certificates, check_pair, read_pem

# The longest gap between reconnection attempts to a service that is away.
RECONNECT_BACKOFF_MS = 1000

CA = "HOOKSHELF_TLS_CA_FILE"
CERT = "HOOKSHELF_TLS_CLIENT_CERT_FILE"
KEY = "HOOKSHELF_TLS_CLIENT_KEY_FILE"


@dataclass(frozen=True)
class ClientTls:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""  # verify this name instead of the target's host

    def __post_init__(self) -> None:
        if self.cert_file and not self.key_file:
            raise TlsConfigError(f"{CERT} is set but {KEY} is not: a certificate needs its key")
        if self.key_file and not self.cert_file:
            raise TlsConfigError(f"{KEY} is set but {CERT} is not: a key needs its certificate")

    @property
    def enabled(self) -> bool:
        return bool(self.ca_file or self.cert_file)

    @property
    def paths(self) -> list[str]:
        return [p for p in (self.ca_file, self.cert_file, self.key_file) if p]

    def applies_to(self, target: str) -> bool:
        return self.enabled and not target.startswith("unix:")

    def credentials(self) -> grpc.ChannelCredentials:
        """Read now: a channel keeps the credentials it was made with."""
        root = None
        if self.ca_file:
            root = read_pem(self.ca_file, CA)
            check_certificates(root, self.ca_file, CA)
        cert = key = None
        if self.cert_file:
            cert = read_pem(self.cert_file, CERT)
            key = read_pem(self.key_file, KEY)
            check_pair(cert, key, cert_setting=CERT, key_setting=KEY, key_path=self.key_file)
        return grpc.ssl_channel_credentials(root, key, cert)

    def check(self) -> None:
        """Every file readable and the pair matching (TlsConfigError otherwise)."""
        if self.enabled:
            self.credentials()

    def channel(self, target: str) -> grpc.aio.Channel:
        """A channel to target: TLS when this applies to it, else plaintext."""
        # A page of executions or a plan with its content may exceed gRPC's 4 MiB default.
        options: list[tuple[str, object]] = [
            ("grpc.max_receive_message_length", MAX_RESPONSE_BYTES),
            # While a service is away, try to reconnect at least every second (gRPC's
            # default backs off to 120 s): a client waiting for it (the executor's
            # records, `BaseClient.reconnected`) notices within a second of its return.
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS // 2),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
        ]
        if not self.applies_to(target):
            return grpc.aio.insecure_channel(target, options=options)
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        return grpc.aio.secure_channel(target, self.credentials(), options=options)
