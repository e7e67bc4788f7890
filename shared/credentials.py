"""The identities a server accepts, read once at start-up from the settings.

One bearer token per role: ``HOOKSHELF_AUTH_TOKEN`` is the admin token (its meaning
before roles: it may do everything), ``HOOKSHELF_EXECUTOR_TOKEN`` and
``HOOKSHELF_READER_TOKEN`` add the other two roles. Each may be given as ``<NAME>_FILE``
instead (read by the settings, like every secret setting: shared/settings.py); a token
that cannot travel in a header, or one token for two roles, stops the start. Client
certificates map to roles through ``HOOKSHELF_CERT_ROLES`` (shared/cert_roles.py).

No token and no certificate rule at all: the server is open and every caller is admin,
as before roles existed (the embedded set-up and the demo).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.cert_roles import CertRolesError, CertRule, parse_cert_roles
from shared.roles import ADMIN, EXECUTOR, READER
from shared.settings import Settings

# Role → the settings field holding its token (and `<field>_file` its file).
TOKEN_FIELDS = {ADMIN: "auth_token", EXECUTOR: "executor_token", READER: "reader_token"}


class CredentialsError(Exception):
    """The configured identities cannot be used: the service must not start."""


def _env(field: str) -> str:
    return f"HOOKSHELF_{field.upper()}"


def token_of(settings: Settings, role: str) -> str:
    """The configured token of ``role`` (the settings read a ``_FILE`` form already:
    shared/settings.py); empty: none."""
    field = TOKEN_FIELDS[role]
    value: str = getattr(settings, field)
    # What a gRPC client can send in an ASCII header, so a token that can never match
    # is a start-up error rather than a silent lock-out.
    if value and not (value.isascii() and value.isprintable()):
        raise CredentialsError(f"{_env(field)}: a token must be printable ASCII")
    return value


def executor_client_token(settings: Settings) -> str:
    """The token the executor sends to the library: its own role's token when set; else
    none when it presents a client certificate (the certificate says who it is, and a
    token would decide alone: the admin token would get it plans with masked secrets);
    else the admin token (one token for everything, as before roles)."""
    if own := token_of(settings, EXECUTOR):
        return own
    if settings.tls_client_cert_file:
        return ""
    return token_of(settings, ADMIN)


@dataclass(frozen=True)
class Credentials:
    """Who a server accepts: ``tokens`` (token → role) and certificate rules."""

    tokens: dict[str, str]
    cert_rules: tuple[CertRule, ...] = ()

    @property
    def open(self) -> bool:
        """Nothing configured: every caller is admin."""
        return not self.tokens and not self.cert_rules

    @property
    def executor_identity_configured(self) -> bool:
        """Can an executor be told apart from an admin (roles.receives_secrets)?"""
        roles = {*self.tokens.values(), *(rule.role for rule in self.cert_rules)}
        return EXECUTOR in roles


OPEN = Credentials(tokens={})


def load_credentials(settings: Settings) -> Credentials:
    """The server's credentials from the settings; CredentialsError saying what is wrong."""
    tokens: dict[str, str] = {}
    for role in TOKEN_FIELDS:
        token = token_of(settings, role)
        if not token:
            continue
        if token in tokens:
            raise CredentialsError(f"the {tokens[token]} and {role} tokens must differ")
        tokens[token] = role
    try:
        rules = parse_cert_roles(settings.cert_roles)
    except CertRolesError as error:
        raise CredentialsError(str(error)) from None
    return Credentials(tokens=tokens, cert_rules=rules)
