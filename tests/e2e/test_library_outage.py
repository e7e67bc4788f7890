"""Backups while the library is down: real library and executor processes, the library
SIGKILLed before a backup, `hookshelf backup` as an operator runs it.

- with a kept plan (an earlier backup reached the library): the backup runs the kept
  hooks, says so in one warning line, and its records reach the library once it is back,
  each exactly once, marked CACHED with the time the plan was resolved;
- without a kept plan, and with one older than HOOKSHELF_EXECUTOR_PLAN_MAX_AGE_SECONDS:
  the backup is refused before anything runs, in one line that says the library is
  unreachable (not "cannot reach the executor").
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.client import LibraryClient
from shared.stubs import library_pb2 as pb
from tests.e2e.cli_support import Stack, one_error_line, running_stack, start_service
from tests.patience import PATIENCE, eventually_sync

MARK = '#!/bin/sh\necho "{name}" >> "${{MARKER}}"\n'


@pytest.fixture
def stack() -> Iterator[Stack]:
    with running_stack(executor=True) as running:
        yield running


def _hooked_repository(stack: Stack) -> tuple[str, Path]:
    """A repository with one pre and one post hook that each append their name to a
    marker file; returns (id, marker file)."""
    repository = f"repo-{uuid.uuid4().hex[:8]}"
    marker = stack.data / f"{repository}.marker"

    async def make() -> None:
        async with LibraryClient(stack.env["HOOKSHELF_LIBRARY_TARGET"]) as library:
            for name, hook_type in (
                ("pre", pb.HOOK_TYPE_PRE_BACKUP),
                ("post", pb.HOOK_TYPE_POST_BACKUP),
            ):
                made = await library.create_script(
                    pb.CreateScriptRequest(
                        script=pb.Script(
                            name=f"{repository}-{name}", content=MARK.format(name=name)
                        )
                    )
                )
                await library.assign_script(
                    pb.AssignScriptRequest(
                        assignment=pb.Assignment(
                            repository_id=repository,
                            script_id=made.script.id,
                            hook_type=hook_type,
                            enabled=True,
                            parameter_values={"MARKER": str(marker)},
                        )
                    )
                )

    asyncio.run(make())
    return repository, marker


def _marks(marker: Path) -> list[str]:
    return marker.read_text().split() if marker.exists() else []


def _kill_library(stack: Stack) -> None:
    library = stack.services[0]
    assert library.name == "library_service"
    library.process.kill()
    library.process.wait(timeout=PATIENCE)


def _restart_library(stack: Stack) -> None:
    """The library again, on the same data and port (stopped with the stack)."""
    stack.services.append(
        start_service(
            "library_service",
            stack.env,
            stack.data / "library-again.log",
            stack.env["HOOKSHELF_LIBRARY_TARGET"],
        )
    )


def _json_events(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def _executions(stack: Stack, repository: str) -> list[pb.Execution]:
    async def listed() -> list[pb.Execution]:
        async with LibraryClient(stack.env["HOOKSHELF_LIBRARY_TARGET"]) as library:
            page = await library.list_executions(
                pb.ListExecutionsRequest(repository_id=repository, page_size=100)
            )
            return list(page.executions)

    return asyncio.run(listed())


def test_a_backup_runs_the_kept_plans_while_the_library_is_down_and_is_recorded_once(
    stack: Stack,
) -> None:
    repository, marker = _hooked_repository(stack)
    first = stack.cli("backup", "-r", repository, "--", "true")
    assert first.returncode == 0, first.stderr + stack.logs()
    assert "warning" not in first.stderr
    resolved_before = time.time()

    _kill_library(stack)
    second = stack.cli("backup", "-r", repository, "--", "true")

    assert second.returncode == 0, second.stderr + stack.logs()
    assert _marks(marker) == ["pre", "post", "pre", "post"]
    warnings = [line for line in second.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, second.stderr
    assert warnings[0].startswith("hookshelf: warning: the library is unreachable (library at ")
    assert "running the plans kept from the library" in warnings[0]

    # What an orchestrator sees on the streams: a warning first, summaries that say CACHED.
    begun = _json_events(stack.cli("run", "--hook", "pre", "-r", repository, "--json"))
    assert begun[0]["warning"]["reason"] == "PLAN_FROM_KEPT_COPY"
    assert begun[-1]["summary"]["plan_source"] == "PLAN_SOURCE_CACHED"
    assert "plan_resolve_time" in begun[-1]["summary"]
    run_id = begun[-1]["run_id"]
    ended = _json_events(
        stack.cli("run", "--hook", "post", "-r", repository, "--run", run_id, "--json")
    )
    assert ended[-1]["summary"]["plan_source"] == "PLAN_SOURCE_CACHED"

    _restart_library(stack)
    records = eventually_sync(
        lambda: (found := _executions(stack, repository)) and len(found) >= 6 and found,
        "the six records of the three runs in the library",
    )
    assert len(records) == 6, records
    assert len({record.execution_id for record in records}) == 6
    by_source: dict[int, list[pb.Execution]] = {}
    for record in records:
        by_source.setdefault(record.plan_source, []).append(record)
    assert sorted(by_source) == [pb.PLAN_SOURCE_LIBRARY, pb.PLAN_SOURCE_CACHED]
    library_runs, cached_runs = by_source[pb.PLAN_SOURCE_LIBRARY], by_source[pb.PLAN_SOURCE_CACHED]
    assert sorted(r.script_name.rsplit("-", 1)[1] for r in cached_runs) == [
        "post",
        "post",
        "pre",
        "pre",
    ]
    # The kept plan is the one the first backup resolved: same moment as its records'.
    (resolved,) = {r.plan_resolve_time.ToNanoseconds() for r in library_runs + cached_runs}
    assert resolved / 1e9 <= resolved_before
    assert all(r.status == pb.EXECUTION_STATUS_SUCCEEDED for r in records)


def test_without_a_kept_plan_the_backup_is_refused_naming_the_library(stack: Stack) -> None:
    repository, marker = _hooked_repository(stack)
    ran = stack.data / f"{repository}.ran"
    _kill_library(stack)

    result = stack.cli("backup", "-r", repository, "--", "touch", str(ran))

    assert result.returncode == 69
    line = one_error_line(result)
    target = stack.env["HOOKSHELF_LIBRARY_TARGET"]
    assert line.startswith(
        f"hookshelf: unavailable: the library is unreachable (library at {target}"
    )
    assert f"keeps no plan for repository '{repository}'" in line
    assert "cannot reach the executor" not in line
    assert not ran.exists() and _marks(marker) == []


def test_a_kept_plan_older_than_the_maximum_age_is_not_run() -> None:
    with running_stack(executor=True, HOOKSHELF_EXECUTOR_PLAN_MAX_AGE_SECONDS="1") as stack:
        repository, marker = _hooked_repository(stack)
        assert stack.cli("backup", "-r", repository, "--", "true").returncode == 0
        kept_at = time.monotonic()
        # The kept plan ages past the second the executor allows (waiting longer only
        # makes it older: the test cannot be early).
        time.sleep(max(0.0, 1.5 - (time.monotonic() - kept_at)))
        _kill_library(stack)

        result = stack.cli("backup", "-r", repository, "--", "true")

        assert result.returncode == 69
        line = one_error_line(result)
        assert line.startswith("hookshelf: unavailable: the library is unreachable (library at ")
        assert "longer than HOOKSHELF_EXECUTOR_PLAN_MAX_AGE_SECONDS (1s) allows" in line
        assert _marks(marker) == ["pre", "post"]
