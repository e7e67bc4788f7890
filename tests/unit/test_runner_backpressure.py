"""A slow consumer slows the child; the executor's memory stays flat."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
import pytest

from executor_service.runner.environment import build_environment
from executor_service.runner.output import CHUNK_LIMIT, OutputChunk
from executor_service.runner.step import StepSpec, run_step
from executor_service.runner.subreaper import become_subreaper
from shared.stubs import library_pb2

VOLUME = 200_000_000


@pytest.fixture(autouse=True)
def subreaper() -> None:
    become_subreaper()


async def test_slow_emit_keeps_memory_bounded(tmp_path: Path) -> None:
    me = psutil.Process()
    baseline = me.memory_info().rss
    peak = baseline
    received = 0
    chunks = 0

    async def slow_emit(chunk: OutputChunk) -> None:
        nonlocal peak, received, chunks
        received += len(chunk.data)
        chunks += 1
        if chunks % 50 == 0:
            peak = max(peak, me.memory_info().rss)
        await asyncio.sleep(0.0005)  # a consumer slower than the producer

    spec = StepSpec(
        execution_id="exec-big",
        script_name="big",
        content=f"head -c {VOLUME} /dev/zero".encode(),
        digest="sha256:" + "0" * 64,
        timeout_seconds=120,
        environment=build_environment(system={}, variables={}, parameters={}),
    )
    result = await run_step(spec, slow_emit, work_root=tmp_path / "work")
    assert result.status == library_pb2.EXECUTION_STATUS_SUCCEEDED
    assert received == result.stdout.total_bytes == VOLUME
    assert chunks <= VOLUME // CHUNK_LIMIT + 2
    assert len(result.stdout.head) + len(result.stdout.tail) == 2 * 64 * 1024
    assert peak - baseline < 50 * 1024 * 1024
