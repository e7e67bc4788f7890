"""Real certificate authorities and certificates for the TLS tests (no tests here).

EC P-256 keys (fast to make); server certificates name localhost and 127.0.0.1, client
certificates carry clientAuth. Files are written as cert-manager writes a Secret:
`<name>.crt`, `<name>.key`, `ca.crt`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """`<name>.crt` and `<name>.key` in directory (rewritten in place if present)."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{name}.crt", directory / f"{name}.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        return cert, key


class Authority:
    """A self-signed CA that issues server and client certificates."""

    def __init__(self, name: str = "Hookshelf Test CA") -> None:
        self.key = _key()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.pem)
        return path

    def issue(
        self,
        common_name: str,
        *,
        server: bool = True,
        expired: bool = False,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        sans: tuple[str | x509.GeneralName, ...] = (),
    ) -> Issued:
        """A certificate for ``common_name``; a server one also names ``hosts``, and
        either kind carries ``sans`` as subject alternative names (a string is a URI,
        such as a SPIFFE id; any other kind is given as an ``x509.GeneralName``)."""
        key = _key()
        not_after = NOW - DAY / 2 if expired else NOW + 10 * DAY
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(san) if isinstance(san, str) else san for san in sans
        ]
        if server:
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            usage = ExtendedKeyUsageOID.SERVER_AUTH
        else:
            usage = ExtendedKeyUsageOID.CLIENT_AUTH
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return Issued(builder.sign(self.key, hashes.SHA256()), key)


@dataclass
class Pki:
    """The files of one deployment: the CA, the server's pair, a client's pair."""

    ca: Authority
    ca_file: Path
    server: Issued
    server_cert: Path
    server_key: Path
    client: Issued
    client_cert: Path
    client_key: Path


def make_pki(directory: Path) -> Pki:
    ca = Authority()
    server, client = ca.issue("library.test"), ca.issue("executor", server=False)
    server_cert, server_key = server.write(directory, "server")
    client_cert, client_key = client.write(directory, "client")
    return Pki(
        ca,
        ca.write(directory / "ca.crt"),
        server,
        server_cert,
        server_key,
        client,
        client_cert,
        client_key,
    )
