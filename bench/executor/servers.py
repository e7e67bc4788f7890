"""The baseline for benchmark (b): a bare grpc.aio server, no interceptor and no domain
code, streaming N bytes as 64 KiB messages — what the executor's output stream is
compared with.

    python bench/executor/servers.py stream unix:/path/to.sock
"""

from __future__ import annotations

import argparse
import asyncio

import grpc

CHUNK = 64 * 1024


async def serve_stream(address: str) -> None:
    payload = b"\0" * CHUNK

    async def stream(request: bytes, context: grpc.aio.ServicerContext):
        remaining = int(request.decode())
        while remaining > 0:
            size = min(CHUNK, remaining)
            yield payload if size == CHUNK else payload[:size]
            remaining -= size

    handler = grpc.method_handlers_generic_handler(
        "bench.Stream",
        {"Bytes": grpc.unary_stream_rpc_method_handler(stream)},
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(address)
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["stream"])
    parser.add_argument("address")
    args = parser.parse_args()
    asyncio.run(serve_stream(args.address))


if __name__ == "__main__":
    main()
