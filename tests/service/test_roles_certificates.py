"""Who may do what when the caller is named by a client certificate over mutual TLS,
against a real library and a real executor serving TLS on 127.0.0.1: every RPC of both
services called with each role's certificate and no token, and with certificates from
the right CA that map to no role or to two (docs/decisions.md "Roles"). The expected
code of each cell is the token matrix's (roles_support.MAY_CALL, check_every_cell).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from ipaddress import ip_address
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from shared.client.tls import ClientTls
from shared.roles import ROLES
from tests.conftest import LibraryHandle
from tests.service.cert_roles_support import (
    NO_ROLE,
    CertPki,
    certificate_callers,
    make_cert_pki,
    open_tls_library,
    tls_library_settings,
)
from tests.service.executor_support import ExecutorHandle, open_executor
from tests.service.roles_support import (
    EXECUTOR,
    LIBRARY,
    TOKEN_SETTINGS,
    call_empty,
    check_every_cell,
)

CALLERS = (*ROLES, *NO_ROLE)


@pytest.fixture
def certs(tmp_path: Path) -> CertPki:
    return make_cert_pki(tmp_path / "pki")


@pytest.fixture
async def tls_library(tmp_path: Path, certs: CertPki) -> AsyncIterator[LibraryHandle]:
    # Tokens configured too: a deployment may use both, and a call without a header is
    # then named by its certificate alone.
    settings = tls_library_settings(tmp_path, certs, **TOKEN_SETTINGS)
    async with open_tls_library(settings, certs) as handle:
        yield handle


@pytest.fixture
async def tls_executor(
    tls_library: LibraryHandle, certs: CertPki, tmp_path: Path, short_socket_dir: Path
) -> AsyncIterator[ExecutorHandle]:
    """An executor serving mutual TLS on 127.0.0.1 with certificate roles only (no token),
    reaching the library with the executor's certificate."""
    handle = await open_executor(
        tls_library,
        tmp_path,
        short_socket_dir,
        executor_listen="127.0.0.1:0",
        **certs.server_settings(),
        **certs.executor_client_settings(),
    )
    try:
        yield handle
    finally:
        await handle.channel.close()
        await handle.app.stop(0)


async def test_every_library_rpc_as_every_certificate(
    tls_library: LibraryHandle, certs: CertPki
) -> None:
    async with certificate_callers(tls_library.address, certs, CALLERS) as callers:
        await check_every_cell(LIBRARY, callers, no_role=NO_ROLE)


async def test_every_executor_rpc_as_every_certificate(
    tls_executor: ExecutorHandle, certs: CertPki
) -> None:
    assert tls_executor.app.address.startswith("127.0.0.1:")
    async with certificate_callers(tls_executor.app.address, certs, CALLERS) as callers:
        await check_every_cell(EXECUTOR, callers, no_role=NO_ROLE)


async def test_a_certificate_without_a_role_is_told_why(
    tls_library: LibraryHandle, certs: CertPki
) -> None:
    method = LIBRARY.methods_by_name["ListScripts"]
    messages = {}
    for caller in NO_ROLE:
        async with certs.channel(tls_library.address, caller) as channel:
            found = await call_empty(channel, method, "none")
        assert found is not None and found.code == grpc.StatusCode.UNAUTHENTICATED
        messages[caller] = found.message
    assert "CN=stranger" in messages["unmapped"]
    assert "maps to no role" in messages["unmapped"]
    assert "matches several roles (executor, reader)" in messages["ambiguous"]


async def test_a_token_decides_alone_even_beside_a_good_certificate(
    tls_library: LibraryHandle, certs: CertPki
) -> None:
    """The documented rule, on the matrix's terms: with a header, the certificate does
    not count, whichever way it would have gone."""
    write = LIBRARY.methods_by_name["CreateScript"]
    read = LIBRARY.methods_by_name["ListScripts"]
    async with certs.channel(tls_library.address, "admin") as channel:
        wrong = await call_empty(channel, write, "wrong")
        as_reader = await call_empty(channel, write, "reader")
    async with certs.channel(tls_library.address, "unmapped") as channel:
        as_reader_again = await call_empty(channel, read, "reader")
    assert wrong is not None and wrong.code == grpc.StatusCode.UNAUTHENTICATED
    assert "wrong bearer token" in wrong.message
    assert as_reader is not None and as_reader.code == grpc.StatusCode.PERMISSION_DENIED
    assert as_reader.metadata["role"] == "reader"
    assert as_reader_again is None


SANS = {
    "dash.example.com": x509.DNSName("dash.example.com"),
    "ops@example.com": x509.RFC822Name("ops@example.com"),
    "10.1.2.3": x509.IPAddress(ip_address("10.1.2.3")),
    "2001:db8::1": x509.IPAddress(ip_address("2001:db8::1")),
}


async def test_each_kind_of_subject_alternative_name_maps_as_written(
    tmp_path: Path, certs: CertPki
) -> None:
    """A DNS name, an e-mail address and IP addresses, written in HOOKSHELF_CERT_ROLES as
    they are usually written, match as gRPC reports them (docs/decisions.md "Roles")."""
    cert_roles = ",".join(f"reader={written}" for written in SANS)
    settings = tls_library_settings(tmp_path, certs, cert_roles=cert_roles)
    list_scripts = LIBRARY.methods_by_name["ListScripts"]
    create_script = LIBRARY.methods_by_name["CreateScript"]
    found = {}
    async with open_tls_library(settings, certs) as library:
        for written, san in SANS.items():
            issued = certs.pki.ca.issue("no-role-by-name", server=False, sans=(san,))
            cert, key = issued.write(tmp_path / "sans", "client")
            tls = ClientTls(str(certs.pki.ca_file), str(cert), str(key))
            async with tls.channel(library.address) as channel:
                read = await call_empty(channel, list_scripts, "none")
                write = await call_empty(channel, create_script, "none")
            found[written] = (read, write.code if write else grpc.StatusCode.OK)
    assert found == {written: (None, grpc.StatusCode.PERMISSION_DENIED) for written in SANS}
