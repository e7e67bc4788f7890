"""ResolveHookPlan through the generated stubs against real servers."""

from __future__ import annotations

import sqlite3

from google.protobuf.field_mask_pb2 import FieldMask

from shared.settings import Settings
from shared.stubs import library_pb2
from tests.conftest import open_library
from tests.service.assignments_support import (
    DEADLINE,
    POST,
    PRE,
    expect_invalid,
    make_script,
)

# Below SQLite's 30 s busy timeout: a read that waited for the writer's lock fails, however
# long the machine takes to answer one that does not.
READ_DEADLINE = 20


async def _assign(library, script_id: str, **fields) -> library_pb2.Assignment:
    fields.setdefault("repository_id", "repo-1")
    fields.setdefault("hook_type", PRE)
    fields.setdefault("enabled", True)
    response = await library.stub.AssignScript(
        library_pb2.AssignScriptRequest(
            assignment=library_pb2.Assignment(script_id=script_id, **fields)
        ),
        timeout=DEADLINE,
    )
    return response.assignment


async def _plan(library, repository_id: str = "repo-1", hook_type: int = PRE):
    return await library.stub.ResolveHookPlan(
        library_pb2.ResolveHookPlanRequest(repository_id=repository_id, hook_type=hook_type),
        timeout=DEADLINE,
    )


async def test_plan_is_the_enabled_chain_in_order_with_ties_by_id(library) -> None:
    scripts = [await make_script(library, f"step-{i}") for i in range(5)]
    last = await _assign(library, scripts[0].id, execution_order=30)
    tie_a = await _assign(library, scripts[1].id, execution_order=10)
    tie_b = await _assign(library, scripts[2].id, execution_order=10)
    first = await _assign(library, scripts[3].id, execution_order=1)
    await _assign(library, scripts[4].id, execution_order=2, enabled=False)
    await _assign(library, scripts[4].id, hook_type=POST)  # another chain

    plan = await _plan(library)

    ties = sorted([tie_a.id, tie_b.id])
    assert [s.assignment_id for s in plan.steps] == [first.id, *ties, last.id]
    assert [s.execution_order for s in plan.steps] == [1, 10, 10, 30]
    assert plan.repository_id == "repo-1" and plan.hook_type == PRE
    # The same request gives the same plan, every time.
    again = await _plan(library)
    assert [s.assignment_id for s in again.steps] == [s.assignment_id for s in plan.steps]


async def test_steps_carry_digest_and_effective_settings(library) -> None:
    script = await make_script(
        library,
        "dump-db",
        content="#!/bin/sh\npg_dump ${DB:-app}\n",
        default_timeout_seconds=120,
        default_run_on=library_pb2.RUN_ON_WARNING,
    )
    pre = await _assign(library, script.id, hook_type=PRE)
    post = await _assign(library, script.id, hook_type=POST)

    (pre_step,) = (await _plan(library, hook_type=PRE)).steps
    (post_step,) = (await _plan(library, hook_type=POST)).steps

    assert pre_step.assignment_id == pre.id and post_step.assignment_id == post.id
    assert pre_step.script_id == script.id and pre_step.script_name == "dump-db"
    assert pre_step.digest == script.digest
    assert pre_step.timeout_seconds == 120
    assert pre_step.run_on == library_pb2.RUN_ON_WARNING
    assert pre_step.on_error == library_pb2.ON_ERROR_ABORT
    assert post_step.on_error == library_pb2.ON_ERROR_CONTINUE


async def test_overrides_win_and_cleared_overrides_fall_back(library) -> None:
    script = await make_script(library, default_timeout_seconds=120)
    made = await _assign(
        library,
        script.id,
        hook_type=POST,
        custom_timeout_seconds=7,
        custom_run_on=library_pb2.RUN_ON_ALWAYS,
        on_error=library_pb2.ON_ERROR_SKIP_BACKUP,
    )
    (step,) = (await _plan(library, hook_type=POST)).steps
    assert (step.timeout_seconds, step.run_on, step.on_error) == (
        7,
        library_pb2.RUN_ON_ALWAYS,
        library_pb2.ON_ERROR_SKIP_BACKUP,
    )

    await library.stub.UpdateAssignment(
        library_pb2.UpdateAssignmentRequest(
            assignment=library_pb2.Assignment(id=made.id),
            update_mask=FieldMask(paths=["custom_timeout_seconds", "custom_run_on", "on_error"]),
        ),
        timeout=DEADLINE,
    )
    (step,) = (await _plan(library, hook_type=POST)).steps
    assert (step.timeout_seconds, step.run_on, step.on_error) == (
        120,
        library_pb2.RUN_ON_SUCCESS,
        library_pb2.ON_ERROR_CONTINUE,
    )


async def test_parameter_values_overlay_script_defaults(library) -> None:
    script = await make_script(
        library,
        content="#!/bin/sh\necho ${HOST:-localhost} ${PORT:-5432} ${PASSWORD}\n",
        parameters=[
            library_pb2.Parameter(
                name="HOST",
                default_value="localhost",
                has_default=True,
                type=library_pb2.PARAMETER_TYPE_TEXT,
            ),
            library_pb2.Parameter(
                name="PORT",
                default_value="5432",
                has_default=True,
                type=library_pb2.PARAMETER_TYPE_TEXT,
            ),
            library_pb2.Parameter(
                name="PASSWORD", type=library_pb2.PARAMETER_TYPE_SECRET, required=True
            ),
        ],
    )
    await _assign(library, script.id, parameter_values={"PORT": "6543", "PASSWORD": "s3cret"})

    (step,) = (await _plan(library)).steps

    assert dict(step.parameter_values) == {
        "HOST": "localhost",
        "PORT": "6543",
        "PASSWORD": "s3cret",
    }
    assert list(step.secret_parameter_names) == ["PASSWORD"]


async def test_reorder_changes_the_plan(library) -> None:
    scripts = [await make_script(library) for _ in range(3)]
    a, b, c = [await _assign(library, s.id) for s in scripts]
    await library.stub.ReorderAssignments(
        library_pb2.ReorderAssignmentsRequest(
            repository_id="repo-1", hook_type=PRE, assignment_ids=[b.id, c.id, a.id]
        ),
        timeout=DEADLINE,
    )
    assert [s.assignment_id for s in (await _plan(library)).steps] == [b.id, c.id, a.id]


async def test_an_unknown_repository_has_an_empty_plan(library) -> None:
    plan = await _plan(library, repository_id="never-seen")
    assert list(plan.steps) == []
    assert plan.repository_id == "never-seen"


async def test_bad_plan_requests_name_the_field(library) -> None:
    for repository_id, hook_type, field in [
        ("", PRE, "repository_id"),
        ("x" * 256, PRE, "repository_id"),
        ("a\x01b", PRE, "repository_id"),
        ("repo-1", library_pb2.HOOK_TYPE_UNSPECIFIED, "hook_type"),
        ("repo-1", 12, "hook_type"),
    ]:
        await expect_invalid(
            library.stub.ResolveHookPlan(
                library_pb2.ResolveHookPlanRequest(
                    repository_id=repository_id, hook_type=hook_type
                ),
                timeout=DEADLINE,
            ),
            field,
        )


async def _plan_with_contents(library, max_bytes: int):
    return await library.stub.ResolveHookPlan(
        library_pb2.ResolveHookPlanRequest(
            repository_id="repo-1", hook_type=PRE, inline_content_max_bytes=max_bytes
        ),
        timeout=DEADLINE,
    )


async def test_a_plan_carries_contents_in_order_while_they_fit(library) -> None:
    bodies = [f"#!/bin/sh\necho step {i} {'x' * 100}\n" for i in range(3)]
    for i, body in enumerate(bodies):
        script = await make_script(library, f"inline-{i}", content=body)
        await _assign(library, script.id, execution_order=i)
    sizes = [len(body.encode()) for body in bodies]

    assert [s.content for s in (await _plan(library)).steps] == ["", "", ""]
    everything = await _plan_with_contents(library, sum(sizes))
    assert [s.content for s in everything.steps] == bodies
    # Room for the first two only: the third is fetched by digest as before.
    two = await _plan_with_contents(library, sizes[0] + sizes[1] + sizes[2] - 1)
    assert [s.content for s in two.steps] == [bodies[0], bodies[1], ""]
    assert [s.digest for s in two.steps] == [s.digest for s in everything.steps]


async def test_an_out_of_range_content_budget_is_invalid(library) -> None:
    for max_bytes in (-1, 3 * 1024 * 1024 + 1):
        await expect_invalid(_plan_with_contents(library, max_bytes), "inline_content_max_bytes")


async def test_on_sqlite_plans_and_history_are_read_while_a_writer_holds_the_lock(
    tmp_path,
) -> None:
    """The embedded default: ResolveHookPlan (two per BeginBackup) and ListExecutions are
    reads and take no write lock, so a long write (a big RecordExecutions batch, an
    import) does not hold them up. Before, they began IMMEDIATE and waited for it."""
    path = tmp_path / "library.db"
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{path}",
        library_listen="127.0.0.1:0",
        log_format="console",
        install_templates=False,
    )
    async with open_library(settings) as library:
        script = await make_script(library, "stop-containers")
        await _assign(library, script.id)
        writer = sqlite3.connect(path, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # another writer, holding the write lock
        try:
            plan = await library.stub.ResolveHookPlan(
                library_pb2.ResolveHookPlanRequest(repository_id="repo-1", hook_type=PRE),
                timeout=READ_DEADLINE,
            )
            assert [step.script_id for step in plan.steps] == [script.id]
            history = await library.stub.ListExecutions(
                library_pb2.ListExecutionsRequest(repository_id="repo-1"),
                timeout=READ_DEADLINE,
            )
            assert list(history.executions) == []
        finally:
            writer.execute("ROLLBACK")
            writer.close()
