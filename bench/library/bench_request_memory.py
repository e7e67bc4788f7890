"""The library's memory under hostile concurrency (issue 11 §4): 32 clients each send an
8 MB CreateScript at once (refused as too big, as before, but what does holding them
cost?) while a well-formed ListScripts is made; then 32 requests just under the 4 MiB
request limit, which gRPC reads in full and the library must refuse itself.

Target: the library's peak RSS stays under 400 MB, and the well-formed call is served.
The peak is the kernel's high-water mark (VmHWM) of the library process, read after each
round; each round starts a fresh library, so rounds do not inherit each other's peak.
Printed beside it, as the baseline, a bare grpc.aio server (no interceptor, no database,
a deserializer that only takes the length) receiving the same requests in the same run,
and the load average, since a busy machine slows the rounds (not the memory).

    .venv/bin/python bench/library/bench_request_memory.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from shared.stubs import library_pb2, library_pb2_grpc

CLIENTS = 32
TARGET_MB = 400
CREATE = "/hookshelf.library.v1.ScriptLibraryService/CreateScript"
BARE_SERVER = textwrap.dedent(
    """
    import asyncio, sys, grpc
    async def main():
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 16 << 20)])
        async def answer(request, context):
            return b""
        handler = grpc.unary_unary_rpc_method_handler(
            answer, request_deserializer=len, response_serializer=lambda r: r
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "hookshelf.library.v1.ScriptLibraryService", {"CreateScript": handler}),))
        server.add_insecure_port(sys.argv[1])
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()
    asyncio.run(main())
    """
)


def free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


async def wait_ready(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 60)


def start_library(address: str, data_dir: str) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        HOOKSHELF_DATA_DIR=data_dir,
        HOOKSHELF_LIBRARY_LISTEN=address,
        HOOKSHELF_INSTALL_TEMPLATES="false",
        HOOKSHELF_LOG_LEVEL="WARNING",
    )
    return subprocess.Popen([sys.executable, "-m", "library_service"], cwd=REPO, env=env)


def start_bare(address: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", BARE_SERVER, address], stdout=subprocess.PIPE)


async def hostile_round(address: str, content_bytes: int, with_good_call: bool) -> dict:
    payload = library_pb2.CreateScriptRequest(
        script=library_pb2.Script(name="big", content="x" * content_bytes)
    ).SerializeToString()
    options = [("grpc.max_send_message_length", 64 << 20)]
    channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(CLIENTS)]

    async def hostile(channel: grpc.aio.Channel) -> str:
        try:
            await channel.unary_unary(CREATE)(payload, timeout=120)
            return "OK"
        except grpc.aio.AioRpcError as error:
            return error.code().name

    async def well_formed() -> float | str:
        async with grpc.aio.insecure_channel(address) as channel:
            started = time.monotonic()
            try:
                await library_pb2_grpc.ScriptLibraryServiceStub(channel).ListScripts(
                    library_pb2.ListScriptsRequest(), timeout=120
                )
            except grpc.aio.AioRpcError as error:
                return error.code().name
            return time.monotonic() - started

    calls = [hostile(c) for c in channels] + ([well_formed()] if with_good_call else [])
    results = await asyncio.gather(*calls)
    for channel in channels:
        await channel.close()
    return {
        "codes": sorted(set(results[:CLIENTS])),
        "good": results[CLIENTS] if with_good_call else None,
    }


async def one_pair(content_bytes: int) -> tuple[float, float, dict]:
    """The library and the bare server, each fresh, each hit once; their peaks."""
    with tempfile.TemporaryDirectory() as data_dir:
        address = free_address()
        library = start_library(address, data_dir)
        try:
            await wait_ready(address)
            result = await hostile_round(address, content_bytes, with_good_call=True)
            library_peak = peak_mb(library.pid)
        finally:
            library.terminate()
            library.wait()
    address = free_address()
    bare = start_bare(address)
    try:
        await wait_ready(address)
        await hostile_round(address, content_bytes, with_good_call=False)
        bare_peak = peak_mb(bare.pid)
    finally:
        bare.terminate()
        bare.wait()
    return library_peak, bare_peak, result


async def main(rounds: int) -> None:
    print(f"load average at start: {os.getloadavg()}")
    for label, content_bytes in (("8 MB", 8 * 1000 * 1000), ("just under 4 MiB", 4_194_000)):
        peaks = []
        for index in range(rounds):
            library_peak, bare_peak, result = await one_pair(content_bytes)
            peaks.append(library_peak)
            good = result["good"]
            good_text = f"{good:.2f} s" if isinstance(good, float) else f"FAILED {good}"
            print(
                f"{label:>17} round {index + 1}: library peak {library_peak:6.0f} MB, "
                f"bare grpc.aio peak {bare_peak:6.0f} MB, ratio {library_peak / bare_peak:4.2f}; "
                f"hostile answered {result['codes']}; well-formed ListScripts {good_text}; "
                f"load {os.getloadavg()[0]:.2f}"
            )
        median = statistics.median(peaks)
        verdict = "met" if median < TARGET_MB else "NOT met"
        print(
            f"{label:>17}: median library peak {median:.0f} MB "
            f"(spread {min(peaks):.0f}-{max(peaks):.0f}), target < {TARGET_MB} MB: {verdict}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args().rounds))
