"""Reading certificate files, for servers and clients alike.

Certificates are rotated in place (cert-manager rewrites a Secret's files, Kubernetes
swaps a symlink), so both sides watch the files' stat signature and re-read them when it
moves. A rotation is not atomic across the certificate and its key: a pair that does not
match yet, or a file half written, is refused here and the caller keeps what it had.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

Signature = tuple[tuple[int, int, int, int], ...]


class TlsConfigError(ValueError):
    """TLS settings or files that cannot be used; the message is one line for an operator."""


def signature(paths: Sequence[str]) -> Signature:
    """What changes when any of the files is rewritten or swapped (stat follows symlinks)."""
    stats = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            stats.append((-1, -1, -1, -1))
            continue
        stats.append((info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns))
    return tuple(stats)


def read_pem(path: str, setting: str) -> bytes:
    """The file's bytes, or a TlsConfigError naming the setting that points at it."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise TlsConfigError(f"cannot read {setting} {path}: {error.strerror}") from None
    if b"-----BEGIN " not in data:
        raise TlsConfigError(f"{setting} {path} holds no PEM data")
    return data


def check_certificates(pem: bytes, path: str, setting: str) -> None:
    """PEM that parses as one or more certificates."""
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise TlsConfigError(f"{setting} {path} is not a PEM certificate") from None


def check_pair(
    cert_pem: bytes, key_pem: bytes, *, cert_setting: str, key_setting: str, key_path: str
) -> None:
    """The key is unencrypted and belongs to the chain's first certificate."""
    try:
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        raise TlsConfigError(f"{cert_setting} is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise TlsConfigError(
            f"{key_setting} {key_path} is not an unencrypted PEM private key"
        ) from None
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, raw) != leaf.public_key().public_bytes(
        encoding, raw
    ):
        raise TlsConfigError(f"{key_setting} is not the key of {cert_setting}")
