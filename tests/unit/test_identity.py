"""Who is calling: tokens per role, certificates mapped by HOOKSHELF_CERT_ROLES (on
auth-context dicts as gRPC gives them), the channel, and the start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.cert_roles import CertRule, parse_cert_roles
from shared.credentials import (
    Credentials,
    CredentialsError,
    executor_client_token,
    load_credentials,
)
from shared.errors import Unauthenticated
from shared.identity import identify, identify_caller, is_secure_channel
from shared.roles import ADMIN, EXECUTOR, READER
from shared.settings import Settings

NO_TLS: dict[str, list[bytes]] = {}
SPIFFE = "spiffe://cluster/ns/backup/sa/executor"


def tls(common_name: str = "", *sans: str) -> dict[str, list[bytes]]:
    """An auth context as grpc.aio's context.auth_context() gives it for a TLS peer."""
    context = {"transport_security_type": [b"ssl"]}
    if common_name:
        context["x509_common_name"] = [common_name.encode()]
    if sans:
        context["x509_subject_alternative_name"] = [s.encode() for s in sans]
    return context


def credentials(**settings: str) -> Credentials:
    return load_credentials(Settings(**settings))  # type: ignore[arg-type]


THREE = {"auth_token": "adm", "executor_token": "exe", "reader_token": "rea"}


# --- tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize("token, role", [("adm", ADMIN), ("exe", EXECUTOR), ("rea", READER)])
def test_each_token_gives_its_role(token: str, role: str) -> None:
    assert (
        identify(credentials(**THREE), authorization=f"Bearer {token}", auth_context=NO_TLS) == role
    )


@pytest.mark.parametrize(
    "header", [None, "Bearer nope", "adm", "bearer adm", "Bearer adm ", "Bearer é", b"Bearer \xff"]
)
def test_a_missing_or_wrong_or_unreadable_token_is_unauthenticated(
    header: str | bytes | None,
) -> None:
    with pytest.raises(Unauthenticated):
        identify(credentials(**THREE), authorization=header, auth_context=NO_TLS)


def test_nothing_configured_means_everyone_is_admin() -> None:
    assert identify(credentials(), authorization=None, auth_context=NO_TLS) == ADMIN
    assert identify(credentials(), authorization="Bearer x", auth_context=NO_TLS) == ADMIN


def test_a_token_is_read_from_its_file_without_the_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "executor").write_text("from-file\n")
    found = credentials(auth_token="adm", executor_token_file=str(tmp_path / "executor"))
    assert found.tokens == {"adm": ADMIN, "from-file": EXECUTOR}


@pytest.mark.parametrize(
    "settings, says",
    [
        ({"auth_token": "same", "executor_token": "same"}, "must differ"),
        ({"auth_token": "é"}, "printable ASCII"),
        ({"cert_roles": "boss=CN=x"}, "names no role"),
        ({"cert_roles": "reader"}, "not role=identity"),
        ({"cert_roles": f"reader={SPIFFE},executor={SPIFFE}"}, "both reader and executor"),
    ],
)
def test_unusable_identities_stop_the_start(settings: dict[str, str], says: str) -> None:
    with pytest.raises(CredentialsError, match=says):
        credentials(**settings)


@pytest.mark.parametrize(
    "settings, says",
    [
        ({"reader_token": "a", "reader_token_file": "/etc/hostname"}, "both set"),
        ({"auth_token_file": "/nonexistent/token"}, "cannot read"),
        ({"auth_token_file": "EMPTY"}, "empty"),
    ],
)
def test_unusable_token_files_stop_the_start(
    tmp_path: Path, settings: dict[str, str], says: str
) -> None:
    """Token files are read by the settings, like every secret setting's file form."""
    (tmp_path / "empty").write_text("\n")
    given = {k: str(tmp_path / "empty") if v == "EMPTY" else v for k, v in settings.items()}
    with pytest.raises(ValidationError, match=says):
        credentials(**given)


def test_the_executor_sends_its_own_token_else_the_admin_token() -> None:
    assert executor_client_token(Settings(auth_token="adm", executor_token="exe")) == "exe"
    assert executor_client_token(Settings(auth_token="adm")) == "adm"
    assert executor_client_token(Settings()) == ""
    # With a client certificate and no token of its own, the certificate identifies it.
    with_cert = Settings(auth_token="adm", tls_client_cert_file="/etc/x/tls.crt")
    assert executor_client_token(with_cert) == ""


# --- certificates -----------------------------------------------------------------------


def test_the_cert_roles_syntax() -> None:
    assert parse_cert_roles(f" executor={SPIFFE}, reader=CN=dashboard ,reader=grafana.lan,") == (
        CertRule(EXECUTOR, san=SPIFFE),
        CertRule(READER, common_name="dashboard"),
        CertRule(READER, san="grafana.lan"),
    )


CERTS = {"cert_roles": f"executor={SPIFFE},reader=CN=dashboard,admin=ops.example.org"}


@pytest.mark.parametrize(
    "context, role",
    [
        (tls("whatever", SPIFFE), EXECUTOR),
        (tls("dashboard"), READER),
        (tls("", "other.lan", "ops.example.org"), ADMIN),
    ],
)
def test_a_mapped_client_certificate_gives_its_role(context: dict, role: str) -> None:
    assert identify(credentials(**CERTS), authorization=None, auth_context=context) == role


@pytest.mark.parametrize(
    "context, says",
    [
        (tls("stranger", "stranger.lan"), "maps to no role"),
        (tls("dashboard", SPIFFE), "several roles"),
        (NO_TLS, "missing bearer token"),
        # Certificate names without TLS are not a certificate.
        ({"x509_common_name": [b"dashboard"]}, "missing bearer token"),
    ],
)
def test_an_unmapped_ambiguous_or_absent_certificate_is_unauthenticated(
    context: dict, says: str
) -> None:
    with pytest.raises(Unauthenticated, match=says):
        identify(credentials(**CERTS), authorization=None, auth_context=context)


def test_a_token_decides_over_a_certificate() -> None:
    both = credentials(**CERTS, reader_token="rea")
    assert identify(both, authorization="Bearer rea", auth_context=tls("", SPIFFE)) == READER
    with pytest.raises(Unauthenticated):
        identify(both, authorization="Bearer wrong", auth_context=tls("", SPIFFE))


# --- the channel ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "peer, context, secure",
    [
        ("unix:", NO_TLS, True),
        ("unix:/run/hookshelf/library.sock", NO_TLS, True),
        ("ipv4:127.0.0.1:53422", NO_TLS, True),
        ("ipv6:[::1]:53422", NO_TLS, True),
        ("ipv4:10.0.0.7:53422", NO_TLS, False),
        ("ipv6:[fd00::7]:53422", NO_TLS, False),
        ("ipv4:10.0.0.7:53422", tls("x"), True),
    ],
)
def test_tls_unix_sockets_and_loopback_are_secure_channels(
    peer: str, context: dict, secure: bool
) -> None:
    assert is_secure_channel(peer, context) is secure


def test_who_receives_secrets() -> None:
    split = credentials(**THREE)
    caller = identify_caller(split, authorization="Bearer exe", peer="unix:", auth_context=NO_TLS)
    assert caller.receives_secrets
    caller = identify_caller(split, authorization="Bearer adm", peer="unix:", auth_context=NO_TLS)
    assert not caller.receives_secrets
    one_token = credentials(auth_token="adm")
    caller = identify_caller(
        one_token, authorization="Bearer adm", peer="ipv4:10.1.2.3:4", auth_context=NO_TLS
    )
    assert caller.receives_secrets and not caller.secure_channel
