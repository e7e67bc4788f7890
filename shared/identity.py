"""Who is calling, from what a call carries: a bearer token or a client certificate.

A presented ``authorization`` header decides alone: it must be ``Bearer <token>`` for a
configured token, else the call is UNAUTHENTICATED even with a good certificate (a
wrong token is a mistake worth reporting). Without the header, a TLS client certificate
that exactly one rule of HOOKSHELF_CERT_ROLES matches gives its role. An open server
(nothing configured) takes every caller as admin.

Plain values in, no grpc: the interceptor reads the header, ``context.peer()`` and
``context.auth_context()`` and passes them here.
"""

from __future__ import annotations

import hmac

from shared.caller import Caller
from shared.cert_roles import SECURITY_TYPE_KEY, TLS, AuthContext, peer_certificate, roles_of
from shared.credentials import Credentials
from shared.errors import Unauthenticated
from shared.roles import ADMIN, receives_secrets

AUTHORIZATION_KEY = "authorization"
_BEARER = b"Bearer "
# Peers nobody else can listen to: a unix socket, the loopback interface.
_LOCAL_PEERS = ("unix:", "ipv4:127.", "ipv6:[::1]", "ipv6:[::ffff:127.")


def _as_bytes(value: str | bytes) -> bytes:
    # A header that is not ASCII (a client bug or a probe) is compared as bytes: it
    # simply matches no token and the call is UNAUTHENTICATED.
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def _role_of_token(credentials: Credentials, authorization: str | bytes) -> str:
    presented = _as_bytes(authorization)
    found = ""
    # Every token is compared, in constant time each, so timing tells nothing.
    for token, role in credentials.tokens.items():
        if hmac.compare_digest(presented, _BEARER + token.encode("ascii")):
            found = role
    if not found:
        raise Unauthenticated(f"wrong bearer token in '{AUTHORIZATION_KEY}'")
    return found


def identify(
    credentials: Credentials, *, authorization: str | bytes | None, auth_context: AuthContext
) -> str:
    """The caller's role; Unauthenticated saying what is missing or wrong."""
    if credentials.open:
        return ADMIN
    if authorization is not None:
        return _role_of_token(credentials, authorization)
    peer = peer_certificate(auth_context)
    roles = roles_of(credentials.cert_rules, peer)
    if len(roles) == 1:
        return roles.pop()
    if roles:
        raise Unauthenticated(
            f"the client certificate ({peer.describe()}) matches several roles "
            f"({', '.join(sorted(roles))}) in HOOKSHELF_CERT_ROLES"
        )
    if peer.presented and credentials.cert_rules:
        raise Unauthenticated(
            f"the client certificate ({peer.describe()}) maps to no role in "
            "HOOKSHELF_CERT_ROLES, and no bearer token was sent"
        )
    raise Unauthenticated(f"missing bearer token in '{AUTHORIZATION_KEY}'")


def is_secure_channel(peer: str, auth_context: AuthContext) -> bool:
    """TLS, a unix socket or loopback: ``peer`` as ``context.peer()`` gives it."""
    if TLS in (auth_context.get(SECURITY_TYPE_KEY) or ()):
        return True
    return peer.startswith(_LOCAL_PEERS)


def identify_caller(
    credentials: Credentials,
    *,
    authorization: str | bytes | None,
    peer: str,
    auth_context: AuthContext,
) -> Caller:
    """The whole caller: role, channel, and whether its plans carry secrets."""
    role = identify(credentials, authorization=authorization, auth_context=auth_context)
    return Caller(
        role=role,
        secure_channel=is_secure_channel(peer, auth_context),
        receives_secrets=receives_secrets(
            role, executor_identity_configured=credentials.executor_identity_configured
        ),
    )
