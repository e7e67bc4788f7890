"""The two servers the library benchmark compares, each run as its own process so that the
load generator does not share their event loop or core:

    python bench/library/servers.py library [--no-mirror]   # HOOKSHELF_* from the env
    python bench/library/servers.py echo PORT PAYLOAD_DIR

`echo` is the baseline: a bare grpc.aio server with no interceptor, database or domain
code, answering each method with canned bytes — the serialized response the library gave
for the same request — so both servers put the same bytes on the wire.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import grpc

ECHO_SERVICE = "bench.Echo"


async def serve_library(mirror: bool) -> None:
    from library_service.app import start_library
    from shared.grpc_server import serve_until_signal
    from shared.logging_setup import configure_logging
    from shared.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = await start_library(settings, mirror_enabled=mirror)
    print(f"ready {app.address}", flush=True)
    await serve_until_signal(app.running, settings.shutdown_grace_seconds, app.close)


async def serve_echo(port: int, payloads: Path) -> None:
    canned = {path.stem: path.read_bytes() for path in payloads.glob("*.bin")}

    def answer(body: bytes):  # a grpc behaviour answering with body
        async def behaviour(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return body

        return behaviour

    handler = grpc.method_handlers_generic_handler(
        ECHO_SERVICE,
        {name: grpc.unary_unary_rpc_method_handler(answer(body)) for name, body in canned.items()},
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"ready 127.0.0.1:{bound}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="which", required=True)
    library = sub.add_parser("library")
    library.add_argument("--no-mirror", action="store_true")
    echo = sub.add_parser("echo")
    echo.add_argument("port", type=int)
    echo.add_argument("payloads", type=Path)
    args = parser.parse_args()
    if args.which == "library":
        asyncio.run(serve_library(mirror=not args.no_mirror))
    else:
        asyncio.run(serve_echo(args.port, args.payloads))


if __name__ == "__main__":
    sys.exit(main())
