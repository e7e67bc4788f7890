"""Library benchmarks (`make bench`). Not a test: it prints figures, and the targets.

1. Throughput of GetScript and ListScripts (page_size 100) with 16 concurrent clients,
   as a ratio to a bare grpc.aio server answering the same bytes (servers.py echo),
   measured in the same run, on SQLite and on PostgreSQL. Target: ratio >= 0.5.
   Measured twice: as deployed (the read cache on; nothing writes during the run, so
   calls after the first are served from it) and with the cache off (every call runs
   its query), so that both what users get and the query path's cost are on record.
2. ListScripts with a free-text query over 100,000 scripts on PostgreSQL (rows bulk-
   inserted with COPY into a throw-away database), one client, p50 and p99 latency.
   Target: p99 <= 25 ms. The read cache is off here: the same five queries repeat, and
   this measures the query, not the cache.

Each server runs in its own process (the machine has two cores: one for the server, one
for the load), clients send pre-serialized requests and take raw bytes back so that
client-side protobuf work does not blur the comparison. Only 127.0.0.1 is used.

    python bench/library/bench_library.py [--duration 5] [--scripts 100000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncpg
import grpc

from library_service.store import migrate
from shared.stubs import library_pb2, library_pb2_grpc

SERVERS = Path(__file__).resolve().parent / "servers.py"
SERVICE = "/hookshelf.library.v1.ScriptLibraryService"
ADMIN_DSN = os.environ.get(
    "HOOKSHELF_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
CLIENTS = 16
PAGE = 100
RATIO_TARGET = 0.5
P99_TARGET_MS = 25.0

ACTIONS = ["stop", "start", "dump", "notify", "pause", "resume", "check", "snapshot"]
APPS = [
    "nextcloud", "mariadb", "postgres", "gitea", "immich", "paperless",
    "vaultwarden", "jellyfin", "homeassistant", "traefik", "mastodon", "grafana",
]  # fmt: skip
CATEGORIES = ["docker", "database", "notify", "system"]


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def script_content(action: str, app: str, i: int) -> str:
    return (
        "#!/bin/sh\n"
        f"# {action} {app} around the backup (bench script {i})\n"
        "set -eu\n"
        f'CONTAINERS="${{CONTAINERS:-{app} {app}-db {app}-redis}}"\n'
        f'for c in $CONTAINERS; do docker {action} "$c"; done\n'
        f'echo "{action} done for $CONTAINERS"\n'
    )


# --- processes --------------------------------------------------------------------------


@dataclass
class Server:
    process: asyncio.subprocess.Process
    address: str

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@asynccontextmanager
async def server_process(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Server]:
    log_fd, name = tempfile.mkstemp(prefix="hookshelf-bench-", suffix=".log")
    log_path = Path(name)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SERVERS),
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_fd,
        )
    finally:
        os.close(log_fd)  # the child has its own copy
    server = None
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 300)
        if not line.startswith(b"ready "):
            await process.wait()
            raise RuntimeError(f"{args[0]} server failed to start:\n{log_path.read_text()[-3000:]}")
        server = Server(process, line.split()[1].decode())
        yield server
    finally:
        if server is not None:
            await server.stop()
        elif process.returncode is None:
            process.kill()
            await process.wait()
        log_path.unlink(missing_ok=True)


def library_env(data_dir: Path, database_url: str, *, read_cache: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSHELF_")}
    env.update(
        HOOKSHELF_DATA_DIR=str(data_dir),
        HOOKSHELF_DATABASE_URL=database_url,
        HOOKSHELF_LIBRARY_LISTEN=f"127.0.0.1:{free_port()}",
        HOOKSHELF_LOG_LEVEL="WARNING",
        HOOKSHELF_LOG_FORMAT="json",
    )
    if not read_cache:
        env["HOOKSHELF_READ_CACHE_BYTES"] = "0"
    return env


@asynccontextmanager
async def throwaway_postgres() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; yields its SQLAlchemy URL."""
    name = f"hs_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(ADMIN_DSN, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# --- load -------------------------------------------------------------------------------


async def throughput(
    address: str, method: str, request: bytes, duration: float, warmup: float
) -> float:
    """Calls per second that CLIENTS concurrent clients (a channel each) complete."""
    channels = [grpc.aio.insecure_channel(address) for _ in range(CLIENTS)]
    calls = [channel.unary_unary(method) for channel in channels]  # bytes in, bytes out
    state = {"measuring": False, "stop": False, "done": 0}

    async def client(call: grpc.aio.UnaryUnaryMultiCallable) -> None:
        while not state["stop"]:
            await call(request, timeout=30)
            if state["measuring"]:
                state["done"] += 1

    try:
        workers = [asyncio.create_task(client(call)) for call in calls]
        await asyncio.sleep(warmup)
        state["measuring"] = True
        started = time.perf_counter()
        await asyncio.sleep(duration)
        state["measuring"] = False
        elapsed = time.perf_counter() - started
        state["stop"] = True
        await asyncio.gather(*workers)
        return state["done"] / elapsed
    finally:
        for channel in channels:
            await channel.close()


async def populate(address: str, count: int) -> list[str]:
    """Create count scripts through the API; return their ids."""
    ids = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
        for i in range(count):
            action, app = ACTIONS[i % len(ACTIONS)], APPS[i % len(APPS)]
            response = await stub.CreateScript(
                library_pb2.CreateScriptRequest(
                    script=library_pb2.Script(
                        name=f"{action}-{app}-{i:04d}",
                        description=f"{action.title()} {app} around the nightly backup",
                        category=CATEGORIES[i % len(CATEGORIES)],
                        content=script_content(action, app, i),
                    ),
                    author="bench",
                ),
                timeout=30,
            )
            ids.append(response.script.id)
    return ids


async def raw_call(address: str, method: str, request: bytes) -> bytes:
    async with grpc.aio.insecure_channel(address) as channel:
        return await channel.unary_unary(method)(request, timeout=30)


async def bench_throughput(backend: str, database_url: str, duration: float) -> list[dict]:
    """GetScript and ListScripts: the library with its read cache on and off, then the echo
    baseline with the library's bytes."""
    results = []
    with tempfile.TemporaryDirectory(prefix="hookshelf-bench-") as tmp:
        data_dir, payloads = Path(tmp) / "data", Path(tmp) / "payloads"
        payloads.mkdir()
        requests: dict[str, bytes] = {}
        library_rps: dict[tuple[str, str], float] = {}
        for cache in ("on", "off"):
            env = library_env(data_dir, database_url, read_cache=cache == "on")
            async with server_process("library", env=env) as library:
                if not requests:
                    ids = await populate(library.address, 2 * PAGE)
                    requests["GetScript"] = library_pb2.GetScriptRequest(
                        id=ids[len(ids) // 2]
                    ).SerializeToString()
                    requests["ListScripts"] = library_pb2.ListScriptsRequest(
                        page_size=PAGE
                    ).SerializeToString()
                for name, request in requests.items():
                    method = f"{SERVICE}/{name}"
                    answer = await raw_call(library.address, method, request)
                    (payloads / f"{name}.bin").write_bytes(answer)
                    library_rps[(name, cache)] = await throughput(
                        library.address, method, request, duration, warmup=1.0
                    )
        async with server_process("echo", "0", str(payloads)) as echo:
            for name, request in requests.items():
                echo_rps = await throughput(
                    echo.address, f"/bench.Echo/{name}", request, duration, warmup=1.0
                )
                size = (payloads / f"{name}.bin").stat().st_size
                for cache in ("on", "off"):
                    results.append(
                        {
                            "backend": backend,
                            "rpc": name if name == "GetScript" else f"ListScripts({PAGE})",
                            "read_cache": cache,
                            "response_bytes": size,
                            "library_rps": library_rps[(name, cache)],
                            "echo_rps": echo_rps,
                            "ratio": library_rps[(name, cache)] / echo_rps,
                        }
                    )
    return results


# --- 100,000 scripts on PostgreSQL ---------------------------------------------------------


async def bulk_insert(database_url: str, count: int) -> None:
    """Rows straight into the tables with COPY: minutes of CreateScript become seconds."""
    from hashlib import sha256

    now = datetime.now(UTC)
    contents, scripts, versions = [], [], []
    for i in range(count):
        action, app = ACTIONS[i % len(ACTIONS)], APPS[(i // len(ACTIONS)) % len(APPS)]
        name = f"{action}-{app}-{i:06d}"
        content = script_content(action, app, i)
        digest = "sha256:" + sha256(content.encode()).hexdigest()
        script_id = str(uuid.uuid4())
        description = f"{action.title()} the {app} containers of host-{i % 997:03d}"
        contents.append((digest, content, len(content.encode()), now))
        scripts.append(
            (
                script_id, name, name, description, CATEGORIES[i % len(CATEGORIES)], digest,
                300, library_pb2.RUN_ON_SUCCESS, False, None, 0, "[]", uuid.uuid4().hex,
                None, now, now,
            )
        )  # fmt: skip
        versions.append((script_id, 1, digest, "bench", now))

    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await connection.copy_records_to_table(
            "script_contents",
            records=contents,
            columns=["digest", "content", "size_bytes", "created_at"],
        )
        await connection.copy_records_to_table(
            "scripts",
            records=scripts,
            columns=[
                "id", "name", "slug", "description", "category", "current_digest",
                "default_timeout_seconds", "default_run_on", "is_template", "template_name",
                "template_version", "parameters", "etag", "request_id", "created_at",
                "updated_at",
            ],
        )  # fmt: skip
        await connection.copy_records_to_table(
            "script_versions",
            records=versions,
            columns=["script_id", "number", "digest", "author", "created_at"],
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


# Queries a person types: a common word, a rarer one, a near-unique name, nothing found.
QUERIES = ["nextcloud", "Vaultwarden", "host-042", "dump-immich-0047", "no-such-script"]


async def bench_query_latency(count: int, rounds: int) -> dict:
    async with throwaway_postgres() as url:
        await migrate.upgrade(url)
        started = time.perf_counter()
        await bulk_insert(url, count)
        insert_seconds = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="hookshelf-bench-") as tmp:
            # Cache off: the five queries repeat, and what is measured is the query.
            env = library_env(Path(tmp) / "data", url, read_cache=False)
            # A production replica: the file mirror (100,000 files) is another replica's.
            async with (
                server_process("library", "--no-mirror", env=env) as library,
                grpc.aio.insecure_channel(library.address) as channel,
            ):
                stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
                per_query: dict[str, list[float]] = {q: [] for q in QUERIES}
                found: dict[str, int] = {}
                for round_ in range(rounds + 5):
                    for query in QUERIES:
                        request = library_pb2.ListScriptsRequest(query=query, page_size=PAGE)
                        t0 = time.perf_counter()
                        response = await stub.ListScripts(request, timeout=30)
                        elapsed = (time.perf_counter() - t0) * 1000
                        if round_ >= 5:  # the first rounds warm caches and connections
                            per_query[query].append(elapsed)
                        found[query] = len(response.scripts)
        sql_ms = await sql_latency(url, rounds)
    every = sorted(x for xs in per_query.values() for x in xs)
    return {
        "scripts": count,
        "insert_seconds": insert_seconds,
        "calls": len(every),
        "p50_ms": percentile(every, 50),
        "p99_ms": percentile(every, 99),
        "per_query": {
            q: {
                "p50_ms": percentile(sorted(xs), 50),
                "p99_ms": percentile(sorted(xs), 99),
                "page": found[q],
                "sql_p50_ms": sql_ms[q],
            }
            for q, xs in per_query.items()
        },
    }


async def sql_latency(url: str, rounds: int) -> dict[str, float]:
    """The page's SQL alone (what ListScripts asks PostgreSQL), p50 per query: how much of
    a call is the database and how much the service around it."""
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        # As the service does: plan for each pattern, never a generic plan.
        await connection.execute("SET plan_cache_mode = force_custom_plan")
        figures = {}
        for query in QUERIES:
            pattern = f"%{query}%"
            times = []
            for _ in range(max(rounds // 2, 5)):
                t0 = time.perf_counter()
                await connection.fetch(
                    "SELECT * FROM scripts WHERE name_lower LIKE lower($1) "
                    f"OR description_lower LIKE lower($1) ORDER BY name LIMIT {PAGE + 1}",
                    pattern,
                )
                times.append((time.perf_counter() - t0) * 1000)
            figures[query] = percentile(sorted(times), 50)
        return figures
    finally:
        await connection.close()


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[int(pct) - 1]


# --- report -----------------------------------------------------------------------------


def report(throughputs: list[dict], latency: dict | None) -> bool:
    """Prints the figures; True when the targets hold. The throughput target is judged on
    the service as deployed (read cache on); the cache-off rows show the query path."""
    ok = True
    print(f"\nThroughput, {CLIENTS} concurrent clients (target: ratio >= {RATIO_TARGET})")
    print(
        f"{'backend':<10} {'rpc':<17} {'cache':<6} {'bytes':>7} {'library/s':>10} "
        f"{'echo/s':>9} {'ratio':>6}"
    )
    for r in throughputs:
        judged = r["read_cache"] == "on"
        met = r["ratio"] >= RATIO_TARGET
        mark = ("ok" if met else "BELOW TARGET") if judged else "(every call queries)"
        ok &= met or not judged
        print(
            f"{r['backend']:<10} {r['rpc']:<17} {r['read_cache']:<6} {r['response_bytes']:>7} "
            f"{r['library_rps']:>10.0f} {r['echo_rps']:>9.0f} {r['ratio']:>6.2f}  {mark}"
        )
    if latency:
        mark = "ok" if latency["p99_ms"] <= P99_TARGET_MS else "ABOVE TARGET"
        ok &= latency["p99_ms"] <= P99_TARGET_MS
        print(
            f"\nListScripts(query, page_size={PAGE}) over {latency['scripts']:,} scripts on "
            f"PostgreSQL, one client, {latency['calls']} calls "
            f"(rows inserted in {latency['insert_seconds']:.1f}s)"
        )
        print(
            f"all queries: p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms "
            f"(target p99 <= {P99_TARGET_MS:.0f} ms)  {mark}"
        )
        for query, figures in latency["per_query"].items():
            print(
                f"  {query!r:<20} p50 {figures['p50_ms']:6.1f} ms  p99 {figures['p99_ms']:6.1f} ms"
                f"  ({figures['page']} on the first page; "
                f"the SQL alone: p50 {figures['sql_p50_ms']:.1f} ms)"
            )
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--scripts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=100, help="latency calls per query")
    parser.add_argument("--quick", action="store_true", help="short run, 10,000 scripts")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.scripts, args.rounds = 2.0, 10_000, 20

    print(f"Hookshelf library benchmark ({os.cpu_count()} cores, Python {sys.version.split()[0]})")
    throughputs = []
    with tempfile.TemporaryDirectory(prefix="hookshelf-bench-") as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'library.db'}"
        print("throughput on SQLite ...", flush=True)
        throughputs += await bench_throughput("sqlite", sqlite_url, args.duration)
    print("throughput on PostgreSQL ...", flush=True)
    async with throwaway_postgres() as url:
        throughputs += await bench_throughput("postgres", url, args.duration)
    print(f"query latency over {args.scripts:,} scripts on PostgreSQL ...", flush=True)
    latency = await bench_query_latency(args.scripts, args.rounds)

    ok = report(throughputs, latency)
    if args.json:
        args.json.write_text(json.dumps({"throughput": throughputs, "latency": latency}, indent=2))
    print("\nall targets met" if ok else "\nsome targets missed (see above)")
    # A benchmark reports; it does not fail the build over a slow machine.
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
