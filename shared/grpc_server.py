"""Building and running a Hookshelf gRPC server: one recipe for both services.

Reflection (grpcurl), grpc.health.v1 on the API port and optionally on a port of its own
(Kubernetes probes), the interceptor, and a SIGTERM/SIGINT drain within a grace.
TLS (shared/tls_server.py) applies to a TCP API port only: a unix socket's boundary is
its file permissions, and the health port stays plaintext because Kubernetes' gRPC
probes cannot speak TLS (docs/decisions.md, Transport security).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shared.credentials import OPEN, Credentials
from shared.grpc_interceptor import HookshelfInterceptor
from shared.message_limits import MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES
from shared.reflection import enable_reflection
from shared.tls_server import ServerTls

log = structlog.get_logger("hookshelf.server")

# so_reuseport=0: a port someone else holds fails loudly instead of being shared.
SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
    ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
]


class AddressInUse(RuntimeError):
    """The listen address could not be bound."""


@dataclass
class RunningServer:
    """A started server, the address it really bound, and its health servicer."""

    server: grpc.aio.Server
    address: str
    health: health.aio.HealthServicer
    service_names: Sequence[str]
    health_server: grpc.aio.Server | None = None
    health_address: str = ""
    _stopping: bool = field(default=False, repr=False)

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish within grace, then cancel them."""
        if self._stopping:
            return
        self._stopping = True
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)


def _bind(
    server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None = None
) -> str:
    """Bind address (with TLS when given credentials) and return what it became (port 0 →
    the real port)."""
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as error:
        raise AddressInUse(f"cannot listen on {address}: {error}") from error
    if address.startswith("unix:"):
        return address
    if port == 0:
        raise AddressInUse(f"cannot listen on {address}")
    host = address.rsplit(":", 1)[0]
    return f"{host}:{port}"


async def start_server(
    *,
    listen: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    health_listen: str = "",
    credentials: Credentials = OPEN,
    tls: ServerTls | None = None,
) -> RunningServer:
    """Create (inside the running loop), register services, bind and start."""
    server = grpc.aio.server(
        interceptors=[HookshelfInterceptor(credentials)], options=SERVER_OPTIONS
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    transport_credentials = None
    if tls is not None and not listen.startswith("unix:"):
        transport_credentials = tls.credentials()
    address = _bind(server, listen, transport_credentials)
    await server.start()
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    running = RunningServer(server, address, health_servicer, service_names)
    if health_listen:
        health_server = grpc.aio.server(options=SERVER_OPTIONS)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        running.health_address = _bind(health_server, health_listen)
        await health_server.start()
        running.health_server = health_server
    transport = (
        "plaintext" if transport_credentials is None else "mtls" if tls and tls.mutual else "tls"
    )
    log.info(
        "server.started",
        address=address,
        health_address=running.health_address,
        transport=transport,
    )
    return running


async def serve_until_signal(
    running: RunningServer,
    grace: float,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain within grace and run on_shutdown."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("server.draining", grace_seconds=grace)
    await running.stop(grace)
    if on_shutdown is not None:
        await on_shutdown()
    log.info("server.stopped")


def exit_leaving_no_stuck_threads(status: int = 0) -> None:
    """End the process even when a worker thread is stuck after the drain.

    A call cut at the grace can leave a database driver thread blocked (SQLite's busy
    wait, a dead network peer); the interpreter would wait for it past any grace. Its
    transaction never committed, so nothing acknowledged is lost by exiting now.
    """
    stuck = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and t.is_alive() and not t.daemon
    ]
    if not stuck:
        return
    log.warning("server.exit_with_stuck_threads", threads=stuck)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
