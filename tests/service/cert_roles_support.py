"""Helpers for the role tests over mutual TLS (no tests here): a CA, the client
certificates each caller presents, the HOOKSHELF_CERT_ROLES that maps them, and real
TLS servers and channels.

Who presents what (docs/decisions.md "Roles"):

- ``admin``: CN=admin-cli, mapped by its common name;
- ``executor``: a SPIFFE id as a URI subject alternative name, mapped by it (its common
  name is a pod's, which maps to nothing);
- ``reader``: CN=dashboard;
- ``unmapped``: from the same CA, so the handshake succeeds, but neither its common name
  nor its SPIFFE id is in HOOKSHELF_CERT_ROLES;
- ``ambiguous``: CN=dashboard (reader) and the executor's SPIFFE id: two roles.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from library_service.app import start_library
from shared.client.tls import ClientTls
from shared.settings import Settings
from shared.stubs import library_pb2_grpc
from tests.conftest import LibraryHandle
from tests.service.roles_support import Call, call_empty
from tests.tls_certs import Pki, make_pki

EXECUTOR_SPIFFE = "spiffe://hookshelf.test/ns/backup/sa/executor"
CERT_ROLES = f"admin=CN=admin-cli,executor={EXECUTOR_SPIFFE},reader=CN=dashboard"
# Callers whose certificate gives no role: UNAUTHENTICATED on every RPC.
NO_ROLE = ("unmapped", "ambiguous")


@dataclass
class CertPki:
    """The CA and server pair (``pki``) and each caller's certificate and key files."""

    pki: Pki
    clients: dict[str, tuple[Path, Path]]

    def client_tls(self, caller: str) -> ClientTls:
        cert, key = self.clients[caller]
        return ClientTls(ca_file=str(self.pki.ca_file), cert_file=str(cert), key_file=str(key))

    def channel(self, address: str, caller: str) -> grpc.aio.Channel:
        """A mutual TLS channel to ``address`` presenting ``caller``'s certificate, made
        as the project's clients make theirs."""
        return self.client_tls(caller).channel(address)

    def server_settings(self) -> dict[str, str]:
        """A server's TLS settings: mutual, with this CA, and HOOKSHELF_CERT_ROLES."""
        return {
            "tls_cert_file": str(self.pki.server_cert),
            "tls_key_file": str(self.pki.server_key),
            "tls_client_ca_file": str(self.pki.ca_file),
            "cert_roles": CERT_ROLES,
        }

    def executor_client_settings(self) -> dict[str, str]:
        """What an executor process needs to reach the library with the executor's
        certificate (and no token)."""
        cert, key = self.clients["executor"]
        return {
            "tls_ca_file": str(self.pki.ca_file),
            "tls_client_cert_file": str(cert),
            "tls_client_key_file": str(key),
        }


def make_cert_pki(directory: Path) -> CertPki:
    pki = make_pki(directory)
    issue = pki.ca.issue
    issued = {
        "admin": issue("admin-cli", server=False),
        "executor": issue("backup-executor-7f9c", server=False, sans=(EXECUTOR_SPIFFE,)),
        "reader": issue("dashboard", server=False),
        "unmapped": issue(
            "stranger", server=False, sans=("spiffe://hookshelf.test/ns/backup/sa/other",)
        ),
        "ambiguous": issue("dashboard", server=False, sans=(EXECUTOR_SPIFFE,)),
    }
    return CertPki(pki, {name: one.write(directory, name) for name, one in issued.items()})


def tls_library_settings(tmp_path: Path, certs: CertPki, **more: object) -> Settings:
    """A library on 127.0.0.1:0 with mutual TLS and HOOKSHELF_CERT_ROLES (SQLite: the
    transport does not depend on the database)."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'library.db'}",
        "library_listen": "127.0.0.1:0",
        "log_format": "console",
        "install_templates": False,
        **certs.server_settings(),
    }
    return Settings(**{**values, **more})  # type: ignore[arg-type]


@asynccontextmanager
async def open_tls_library(settings: Settings, certs: CertPki) -> AsyncIterator[LibraryHandle]:
    """A real library with these settings; the handle's channel presents the admin's
    certificate, over loopback (the server's certificate names 127.0.0.1, even when the
    library listens on every address)."""
    app = await start_library(settings)
    channel = certs.channel(f"127.0.0.1:{app.address.rsplit(':', 1)[1]}", "admin")
    try:
        yield LibraryHandle(app, channel, library_pb2_grpc.ScriptLibraryServiceStub(channel))
    finally:
        await channel.close()
        await app.stop(0)


@asynccontextmanager
async def certificate_callers(
    address: str, certs: CertPki, callers: tuple[str, ...]
) -> AsyncIterator[dict[str, Call]]:
    """A matrix caller for each of ``callers``: its own channel presenting its
    certificate, and no authorization header."""
    channels = {caller: certs.channel(address, caller) for caller in callers}

    def caller_on(channel: grpc.aio.Channel) -> Call:
        return lambda method: call_empty(channel, method, "none")

    try:
        yield {caller: caller_on(channel) for caller, channel in channels.items()}
    finally:
        for channel in channels.values():
            await channel.close()
