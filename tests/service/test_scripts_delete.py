"""DeleteScript: refused while the script is in use, ``force``, and the history that
outlives the script (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from shared.stubs import library_pb2
from tests.service.assignments_support import DEADLINE, POST, PRE, rejected
from tests.service.scripts_support import (
    assign,
    create,
    get,
)


def _delete(library, script_id: str, **fields):
    return library.stub.DeleteScript(
        library_pb2.DeleteScriptRequest(id=script_id, **fields), timeout=DEADLINE
    )


async def _assignments_of(library, script_id: str) -> list[library_pb2.Assignment]:
    response = await library.stub.ListAssignments(
        library_pb2.ListAssignmentsRequest(script_id=script_id), timeout=DEADLINE
    )
    return list(response.assignments)


async def test_delete_removes_the_script(library) -> None:
    made = await create(library)

    response = await _delete(library, made.id)

    assert list(response.removed_assignments) == []
    found = await rejected(get(library, made.id))
    assert found.code == grpc.StatusCode.NOT_FOUND
    found = await rejected(_delete(library, made.id))
    assert found.code == grpc.StatusCode.NOT_FOUND


async def test_delete_while_assigned_is_refused_and_says_where(library) -> None:
    made = await create(library, "stop containers")
    await assign(library, made.id, "repo-a", PRE)
    await assign(library, made.id, "repo-b", POST)

    found = await rejected(_delete(library, made.id))

    assert found.code == grpc.StatusCode.FAILED_PRECONDITION
    assert found.reason == "SCRIPT_IN_USE"
    assert "repository 'repo-a' (PRE_BACKUP)" in found.message
    assert "repository 'repo-b' (POST_BACKUP)" in found.message
    assert found.metadata["script_id"] == made.id
    assert found.metadata["assignment_count"] == "2"
    where = {
        (a["repository_id"], a["hook_type"]) for a in json.loads(found.metadata["assignments"])
    }
    assert where == {("repo-a", "PRE_BACKUP"), ("repo-b", "POST_BACKUP")}
    assert (await get(library, made.id)).script.etag == made.etag  # untouched
    assert len(await _assignments_of(library, made.id)) == 2


async def test_force_removes_the_assignments_and_returns_them(library) -> None:
    made = await create(library)
    kept = await create(library)
    first = await assign(library, made.id, "repo-a", PRE)
    second = await assign(library, made.id, "repo-a", POST)
    other = await assign(library, kept.id, "repo-a", PRE)

    response = await _delete(library, made.id, force=True)

    assert {a.id for a in response.removed_assignments} == {first.id, second.id}
    assert {a.script_name for a in response.removed_assignments} == {made.name}
    assert await _assignments_of(library, made.id) == []
    assert [a.id for a in await _assignments_of(library, kept.id)] == [other.id]


async def test_delete_while_in_a_maintenance_window_is_refused_unless_forced(library) -> None:
    made = await create(library)
    window = (
        await library.stub.CreateMaintenanceWindow(
            library_pb2.CreateMaintenanceWindowRequest(
                window=library_pb2.MaintenanceWindow(
                    name="nightly",
                    cron_expression="0 3 * * *",
                    pre_script_ids=[made.id],
                    post_script_ids=[made.id],
                )
            ),
            timeout=DEADLINE,
        )
    ).window

    found = await rejected(_delete(library, made.id))
    assert found.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "maintenance window 'nightly'" in found.message

    await _delete(library, made.id, force=True)
    after = (
        await library.stub.GetMaintenanceWindow(
            library_pb2.GetMaintenanceWindowRequest(id=window.id), timeout=DEADLINE
        )
    ).window
    assert list(after.pre_script_ids) == [] and list(after.post_script_ids) == []
    assert after.etag != window.etag


async def test_history_survives_the_script(library) -> None:
    made = await create(library)
    start = Timestamp()
    start.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    await library.stub.RecordExecutions(
        library_pb2.RecordExecutionsRequest(
            executions=[
                library_pb2.Execution(
                    execution_id="run-1",
                    script_id=made.id,
                    script_name=made.name,
                    digest=made.digest,
                    status=library_pb2.EXECUTION_STATUS_SUCCEEDED,
                    start_time=start,
                    trigger=library_pb2.EXECUTION_TRIGGER_BACKUP,
                )
            ]
        ),
        timeout=DEADLINE,
    )

    await _delete(library, made.id)

    history = await library.stub.ListExecutions(
        library_pb2.ListExecutionsRequest(script_id=made.id), timeout=DEADLINE
    )
    assert [(e.execution_id, e.script_name, e.digest) for e in history.executions] == [
        ("run-1", made.name, made.digest)
    ]
    content = await library.stub.GetScriptContent(
        library_pb2.GetScriptContentRequest(digest=made.digest), timeout=DEADLINE
    )
    assert content.content == made.content
