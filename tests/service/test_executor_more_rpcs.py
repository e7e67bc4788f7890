"""TestScript, RunInlineHooks and maintenance windows through the real services."""

from __future__ import annotations

import grpc
import pytest

from shared.error_details import details_of
from shared.stubs import executor_pb2, library_pb2
from tests.service.executor_support import (
    DEADLINE,
    SUCCESS,
    mark_script,
    summary_of,
    unique,
)

PRE, POST = library_pb2.HOOK_TYPE_PRE_BACKUP, library_pb2.HOOK_TYPE_POST_BACKUP


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"


async def _events(call) -> list[executor_pb2.HookEvent]:
    return [response.event async for response in call]


async def _code(call) -> tuple[grpc.StatusCode, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _events(call)
    return caught.value.code(), details_of(caught.value).field_violations


# --- TestScript ----------------------------------------------------------------------------


async def test_test_script_runs_a_library_script_as_a_post_hook_and_records_a_test(
    executor,
) -> None:
    script_id = await executor.script(
        unique("notify"),
        mark_script('echo "to ${URL}"\n'),
        parameters=[
            library_pb2.Parameter(name="URL", default_value="https://hc.example", has_default=True)
        ],
        default_run_on=library_pb2.RUN_ON_FAILURE,
    )
    events = await _events(
        executor.stub.TestScript(
            executor_pb2.TestScriptRequest(
                script_id=script_id,
                hook_type=POST,
                simulated_outcome=library_pb2.BACKUP_OUTCOME_FAILURE,
                variables=executor.variables(),
            ),
            timeout=DEADLINE,
        )
    )
    summary = summary_of(events)
    assert summary.succeeded_count == 1 and not summary.post_chain_ran
    assert executor.lines()[0].endswith(" failure")
    output = b"".join(e.output.data for e in events if e.HasField("output"))
    assert output == b"to https://hc.example\n"
    await executor.delivered()
    (record,) = await executor.executions(script_id=script_id)
    assert record.trigger == library_pb2.EXECUTION_TRIGGER_TEST
    assert record.backup_outcome == library_pb2.BACKUP_OUTCOME_FAILURE


async def test_test_script_inline_content_timeout_and_bad_requests(executor) -> None:
    events = await _events(
        executor.stub.TestScript(
            executor_pb2.TestScriptRequest(
                content="#!/bin/bash\necho start\nsleep 30\n", timeout_seconds=1
            ),
            timeout=DEADLINE,
        )
    )
    (finished,) = [e.step_finished for e in events if e.HasField("step_finished")]
    assert finished.status == library_pb2.EXECUTION_STATUS_TIMED_OUT
    assert summary_of(events).verdict == executor_pb2.VERDICT_ABORT

    code, fields = await _code(
        executor.stub.TestScript(executor_pb2.TestScriptRequest(), timeout=DEADLINE)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and set(fields) == {"script_id"}
    code, fields = await _code(
        executor.stub.TestScript(
            executor_pb2.TestScriptRequest(
                content="echo", hook_type=9, simulated_outcome=42, variables={"x": "1"}
            ),
            timeout=DEADLINE,
        )
    )
    assert set(fields) == {"hook_type", "simulated_outcome", "variables[x]"}
    code, _ = await _code(
        executor.stub.TestScript(
            executor_pb2.TestScriptRequest(script_id="00000000-0000-4000-8000-000000000000"),
            timeout=DEADLINE,
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    code, fields = await _code(
        executor.stub.TestScript(
            executor_pb2.TestScriptRequest(script_id="not an id"), timeout=DEADLINE
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and set(fields) == {"script_id"}


# --- RunInlineHooks --------------------------------------------------------------------------


async def test_inline_hooks_keep_the_promise(executor) -> None:
    repo = unique("repo")
    pre = '#!/bin/bash\necho "inline-pre $MODE" >> "$MARKS"\n'
    post = '#!/bin/bash\necho "inline-post $HOOKSHELF_BACKUP_STATUS" >> "$MARKS"\n'
    events = await _events(
        executor.stub.RunInlineHooks(
            executor_pb2.RunInlineHooksRequest(
                hook_type=PRE,
                repository_id=repo,
                pre_script=pre,
                post_script=post,
                variables=executor.variables(MODE="legacy"),
            ),
            timeout=DEADLINE,
        )
    )
    assert summary_of(events).verdict == executor_pb2.VERDICT_PROCEED
    run_id = events[0].run_id

    # A backup run's RPC does not end it the other way round, and vice versa.
    code, _ = await _code(
        executor.stub.RunInlineHooks(
            executor_pb2.RunInlineHooksRequest(hook_type=POST, run_id="missing", outcome=SUCCESS),
            timeout=DEADLINE,
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    events = await _events(
        executor.stub.RunInlineHooks(
            executor_pb2.RunInlineHooksRequest(
                hook_type=POST, run_id=run_id, outcome=library_pb2.BACKUP_OUTCOME_WARNING
            ),
            timeout=DEADLINE,
        )
    )
    assert summary_of(events).post_chain_ran
    assert executor.lines() == ["inline-pre legacy", "inline-post warning"]
    await executor.delivered()
    records = await executor.executions(run_id=run_id)
    assert {r.trigger for r in records} == {library_pb2.EXECUTION_TRIGGER_INLINE}

    # A failing inline pre script aborts, and the post script (ALWAYS) still runs.
    events = await _events(
        executor.stub.RunInlineHooks(
            executor_pb2.RunInlineHooksRequest(
                hook_type=PRE,
                repository_id=repo,
                pre_script="exit 1\n",
                post_script=post,
                variables=executor.variables(),
            ),
            timeout=DEADLINE,
        )
    )
    summary = summary_of(events)
    assert summary.verdict == executor_pb2.VERDICT_ABORT and summary.post_chain_ran
    assert executor.lines()[-1] == "inline-post aborted"


async def test_inline_hooks_bad_requests(executor) -> None:
    code, fields = await _code(
        executor.stub.RunInlineHooks(executor_pb2.RunInlineHooksRequest(), timeout=DEADLINE)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and set(fields) == {"hook_type"}
    code, fields = await _code(
        executor.stub.RunInlineHooks(
            executor_pb2.RunInlineHooksRequest(
                hook_type=PRE, pre_timeout_seconds=-1, post_run_on=17, lease_seconds=5
            ),
            timeout=DEADLINE,
        )
    )
    assert set(fields) == {"repository_id", "lease_seconds", "pre_timeout_seconds", "post_run_on"}
    # A backup run is not ended by RunInlineHooks.
    run_id = (await executor.begin(unique("repo")))[0].run_id
    code, _ = await _code(
        executor.stub.RunInlineHooks(
            executor_pb2.RunInlineHooksRequest(hook_type=POST, run_id=run_id, outcome=SUCCESS),
            timeout=DEADLINE,
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION


# --- Windows ---------------------------------------------------------------------------------


async def test_window_pre_scripts_for_the_first_holder_post_for_the_last(executor) -> None:
    # Window scripts get no orchestrator variables: they write to a fixed place.
    pre = await executor.script(unique("stop"), '#!/bin/bash\necho "window-pre"\n')
    post = await executor.script(
        unique("start"), '#!/bin/bash\necho "window-post $HOOKSHELF_BACKUP_STATUS"\n'
    )
    window = (
        await executor.library.stub.CreateMaintenanceWindow(
            library_pb2.CreateMaintenanceWindowRequest(
                window=library_pb2.MaintenanceWindow(
                    name=unique("nightly"),
                    pre_script_ids=[pre],
                    post_script_ids=[post],
                    cron_expression="0 3 * * *",
                    enabled=True,
                )
            ),
            timeout=DEADLINE,
        )
    ).window.id

    def enter(holder: str):
        return executor.stub.EnterWindow(
            executor_pb2.EnterWindowRequest(window_id=window, holder_id=holder, lease_seconds=60),
            timeout=DEADLINE,
        )

    def leave(holder: str, outcome: int = SUCCESS):
        return executor.stub.LeaveWindow(
            executor_pb2.LeaveWindowRequest(window_id=window, holder_id=holder, outcome=outcome),
            timeout=DEADLINE,
        )

    def ran(events) -> list[bytes]:
        return [e.output.data for e in events if e.HasField("output")]

    first = await _events(enter("job-a"))
    assert summary_of(first).verdict == executor_pb2.VERDICT_PROCEED
    assert ran(first) == [b"window-pre\n"]
    second = await _events(enter("job-b"))
    assert ran(second) == [] and "2 holder" in summary_of(second).message
    assert ran(await _events(leave("job-a"))) == []
    code, _ = await _code(leave("job-a"))  # already left
    assert code == grpc.StatusCode.NOT_FOUND
    last = await _events(leave("job-b", library_pb2.BACKUP_OUTCOME_FAILURE))
    assert ran(last) == [b"window-post failure\n"] and summary_of(last).post_chain_ran
    code, _ = await _code(leave("job-b"))
    assert code == grpc.StatusCode.NOT_FOUND

    # Holders that vanish: when the last lease runs out the post scripts run (ABORTED).
    reopened = await _events(enter("job-c"))
    run_id = reopened[0].run_id
    executor.clock.advance(61)
    run = await executor.wait_ended(run_id)
    assert run.outcome == library_pb2.BACKUP_OUTCOME_ABORTED and run.post_summary.post_chain_ran
    await executor.delivered()
    records = await executor.executions(run_id=run_id)
    assert {r.trigger for r in records} == {library_pb2.EXECUTION_TRIGGER_WINDOW}
    assert len(records) == 2

    # An expired holder is let go: the next one's leave closes the window.
    await _events(enter("job-d"))
    await _events(enter("job-e"))
    executor.clock.advance(30)
    await _events(enter("job-e"))  # renews job-e only
    executor.clock.advance(40)  # job-d's lease is over, job-e's is not
    closing = await _events(leave("job-e"))
    assert summary_of(closing).post_chain_ran

    code, fields = await _code(
        executor.stub.EnterWindow(
            executor_pb2.EnterWindowRequest(lease_seconds=1), timeout=DEADLINE
        )
    )
    assert set(fields) == {"window_id", "holder_id", "lease_seconds"}
    code, _ = await _code(
        executor.stub.EnterWindow(
            executor_pb2.EnterWindowRequest(
                window_id="00000000-0000-4000-8000-000000000000", holder_id="h"
            ),
            timeout=DEADLINE,
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    code, fields = await _code(
        executor.stub.EnterWindow(
            executor_pb2.EnterWindowRequest(window_id="not an id", holder_id="h"), timeout=DEADLINE
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and set(fields) == {"window_id"}
    code, fields = await _code(leave("job-f", outcome=99))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and set(fields) == {"outcome"}
