"""Client certificates to roles: the syntax of ``HOOKSHELF_CERT_ROLES`` and the matching.

The setting is a comma-separated list of ``role=identity`` entries::

    executor=spiffe://cluster/ns/backup/sa/executor,reader=CN=dashboard

An identity written ``CN=<name>`` matches the certificate's subject common name; anything
else matches one of its subject alternative names exactly (a DNS name, a URI such as a
SPIFFE id, an e-mail address or an IP address, as gRPC reports them). Several entries may
give one role; one identity given to two roles is a start-up error.

The peer certificate is read from gRPC's auth context (``x509_common_name``,
``x509_subject_alternative_name``), passed in as a plain mapping so no grpc is needed here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shared.roles import ROLES

SETTING = "HOOKSHELF_CERT_ROLES"
_CN = "CN="
# Only a TLS peer's certificate names anyone.
SECURITY_TYPE_KEY = "transport_security_type"
TLS = b"ssl"
COMMON_NAME_KEY = "x509_common_name"
SAN_KEY = "x509_subject_alternative_name"

AuthContext = Mapping[str, Iterable[bytes]]


class CertRolesError(ValueError):
    """HOOKSHELF_CERT_ROLES cannot be read: the service must not start."""


@dataclass(frozen=True)
class CertRule:
    """One entry: certificates naming ``common_name`` (or with ``san``) hold ``role``."""

    role: str
    common_name: str = ""
    san: str = ""

    def matches(self, peer: PeerCertificate) -> bool:
        if self.common_name:
            return self.common_name in peer.common_names
        return self.san in peer.sans

    def __str__(self) -> str:
        return (
            f"{self.role}={_CN}{self.common_name}"
            if self.common_name
            else f"{self.role}={self.san}"
        )


@dataclass(frozen=True)
class PeerCertificate:
    """The names a client certificate carries (empty for a peer without TLS)."""

    common_names: frozenset[str]
    sans: frozenset[str]

    @property
    def presented(self) -> bool:
        return bool(self.common_names or self.sans)

    def describe(self) -> str:
        """How error messages name the certificate."""
        names = [f"{_CN}{name}" for name in sorted(self.common_names)] + sorted(self.sans)
        return ", ".join(names) or "no names"


def _texts(values: Iterable[bytes]) -> frozenset[str]:
    return frozenset(
        v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values
    )


def peer_certificate(auth_context: AuthContext) -> PeerCertificate:
    """The client certificate's names from a gRPC auth context; none unless over TLS."""
    if TLS not in (auth_context.get(SECURITY_TYPE_KEY) or ()):
        return PeerCertificate(frozenset(), frozenset())
    return PeerCertificate(
        common_names=_texts(auth_context.get(COMMON_NAME_KEY) or ()),
        sans=_texts(auth_context.get(SAN_KEY) or ()),
    )


def parse_cert_roles(text: str) -> tuple[CertRule, ...]:
    """The rules of a HOOKSHELF_CERT_ROLES value; CertRolesError saying what is wrong."""
    rules: list[CertRule] = []
    seen: dict[tuple[str, str], str] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue  # a trailing comma, or an empty setting
        role, sep, identity = (part.strip() for part in entry.partition("="))
        if not sep or not identity:
            raise CertRolesError(f"{SETTING}: {entry!r} is not role=identity")
        if role not in ROLES:
            raise CertRolesError(f"{SETTING}: {entry!r} names no role (one of {', '.join(ROLES)})")
        if identity.upper().startswith(_CN):
            name = identity[len(_CN) :].strip()
            if not name:
                raise CertRolesError(f"{SETTING}: {entry!r} has an empty common name")
            rule, key = CertRule(role, common_name=name), ("cn", name)
        else:
            rule, key = CertRule(role, san=identity), ("san", identity)
        if seen.get(key, role) != role:
            raise CertRolesError(f"{SETTING}: {identity!r} is given to both {seen[key]} and {role}")
        seen[key] = role
        rules.append(rule)
    return tuple(rules)


def roles_of(rules: Sequence[CertRule], peer: PeerCertificate) -> set[str]:
    """Every role a rule gives this certificate (more than one is the caller's problem)."""
    return {rule.role for rule in rules if rule.matches(peer)}
