"""Scripts through the generated stubs on real servers (SQLite and PostgreSQL): create,
read, update, versions, content, etags and request_id idempotency."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from shared.stubs import library_pb2
from tests.service.assignments_support import DEADLINE, POST, PRE, rejected
from tests.service.scripts_support import (
    assign,
    create,
    get,
    unique_name,
    update,
    update_call,
    versions,
)


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


async def test_create_fills_defaults_and_derived_fields(library) -> None:
    content = "#!/bin/sh\necho 'grüße'\n"
    made = await create(library, "Stop Containers", content, description="stops", category="docker")

    assert made.id and made.etag
    assert made.name == "Stop Containers"
    assert made.content == content
    assert made.digest == _digest(content)
    assert made.default_timeout_seconds == 300
    assert made.default_run_on == library_pb2.RUN_ON_SUCCESS
    assert made.version_count == 1
    assert made.usage_count == 0 and not made.HasField("last_used_time")
    assert made.create_time == made.update_time
    assert made.file_path.endswith("/scripts/library/stop-containers.sh")
    assert not made.is_template


async def test_get_by_id_and_by_name_return_the_same_script(library) -> None:
    made = await create(
        library, default_timeout_seconds=60, default_run_on=library_pb2.RUN_ON_ALWAYS
    )

    by_id = (await get(library, made.id)).script
    by_name = (
        await library.stub.GetScript(library_pb2.GetScriptRequest(name=made.name), timeout=DEADLINE)
    ).script

    assert by_id == by_name == made
    assert by_id.default_timeout_seconds == 60
    assert by_id.default_run_on == library_pb2.RUN_ON_ALWAYS


async def test_parameters_come_from_content_and_explicit_declarations(library) -> None:
    content = (
        "#!/bin/sh\n"
        'curl -u "${USER_NAME}:${PASSWORD}" "${URL:-https://example.org}" '
        '"$HOOKSHELF_RUN_ID" "${HOOKSHELF_REPOSITORY_ID}" "${HOME}"\n'
    )
    made = await create(
        library,
        content=content,
        parameters=[
            library_pb2.Parameter(
                name="PASSWORD",
                type=library_pb2.PARAMETER_TYPE_SECRET,
                description="the account's password",
            ),
            library_pb2.Parameter(name="EXTRA", description="declared only here"),
        ],
    )

    params = {p.name: p for p in made.parameters}
    assert list(params) == ["USER_NAME", "PASSWORD", "URL", "EXTRA"]
    assert params["USER_NAME"].required and not params["USER_NAME"].has_default
    assert params["PASSWORD"].type == library_pb2.PARAMETER_TYPE_SECRET
    assert params["PASSWORD"].description == "the account's password"
    assert params["URL"].has_default and params["URL"].default_value == "https://example.org"
    assert not params["URL"].required
    assert params["EXTRA"].required and params["EXTRA"].type == library_pb2.PARAMETER_TYPE_TEXT

    # New content re-derives them and keeps the explicit declarations.
    changed = await update(library, made.id, ["content"], content='echo "${PASSWORD}" ${NEW:-1}')
    params = {p.name: p for p in changed.parameters}
    assert list(params) == ["PASSWORD", "NEW", "EXTRA"]
    assert params["PASSWORD"].type == library_pb2.PARAMETER_TYPE_SECRET


async def test_update_changes_masked_fields_only_and_makes_a_version(library) -> None:
    made = await create(library, description="before", category="db")

    changed = await update(
        library,
        made.id,
        ["description", "content", "default_timeout_seconds"],
        description="after",
        content="echo two\n",
        default_timeout_seconds=900,
        category="ignored: not in the mask",
        author="alice",
    )

    assert changed.description == "after"
    assert changed.category == "db"
    assert changed.default_timeout_seconds == 900
    assert changed.content == "echo two\n"
    assert changed.digest == _digest("echo two\n")
    assert changed.etag != made.etag
    assert changed.version_count == 2
    assert changed.update_time.ToDatetime() >= made.update_time.ToDatetime()
    assert (await get(library, made.id)).script == changed

    listed = await versions(library, made.id)
    assert [(v.number, v.digest, v.author) for v in listed] == [
        (2, _digest("echo two\n"), "alice"),
        (1, made.digest, "tests"),
    ]
    assert listed[0].size_bytes == len(b"echo two\n")


async def test_identical_content_makes_no_version_and_keeps_the_etag(library) -> None:
    made = await create(library)

    same = await update(
        library,
        made.id,
        ["content", "description"],
        content=made.content,
        description=made.description,
    )

    assert same.version_count == 1
    assert same.etag == made.etag
    assert len(await versions(library, made.id)) == 1


async def test_rename_keeps_the_id_and_frees_the_old_name(library) -> None:
    made = await create(library, "old name")

    renamed = await update(library, made.id, ["name"], name="  new name  ")

    assert renamed.id == made.id and renamed.name == "new name"
    assert renamed.etag != made.etag
    again = await create(library, "old name")
    assert again.id != made.id


async def test_a_masked_unspecified_run_on_resets_it_to_success(library) -> None:
    made = await create(library, default_run_on=library_pb2.RUN_ON_FAILURE)

    reset = await update(library, made.id, ["default_run_on"])

    assert reset.default_run_on == library_pb2.RUN_ON_SUCCESS


async def test_every_version_stays_readable_by_digest_even_after_delete(library) -> None:
    made = await create(library, content="echo one\n")
    await update(library, made.id, ["content"], content="echo two\n")

    await library.stub.DeleteScript(library_pb2.DeleteScriptRequest(id=made.id), timeout=DEADLINE)

    for text in ("echo one\n", "echo two\n"):
        found = await library.stub.GetScriptContent(
            library_pb2.GetScriptContentRequest(digest=_digest(text)), timeout=DEADLINE
        )
        assert (found.digest, found.content, found.size_bytes) == (
            _digest(text),
            text,
            len(text.encode()),
        )


async def test_two_scripts_with_the_same_content_share_it(library) -> None:
    a = await create(library, content="echo same\n")
    b = await create(library, content="echo same\n")

    assert a.digest == b.digest
    await library.stub.DeleteScript(library_pb2.DeleteScriptRequest(id=a.id), timeout=DEADLINE)
    assert (await get(library, b.id)).script.content == "echo same\n"


async def test_a_stale_etag_is_aborted_and_changes_nothing(library) -> None:
    made = await create(library)
    fresh = await update(library, made.id, ["description"], description="one", etag=made.etag)

    found = await rejected(
        update_call(library, made.id, ["description"], description="two", etag=made.etag)
    )
    assert found.code == grpc.StatusCode.ABORTED
    assert found.reason == "ABORTED"
    found = await rejected(
        library.stub.DeleteScript(
            library_pb2.DeleteScriptRequest(id=made.id, etag=made.etag), timeout=DEADLINE
        )
    )
    assert found.code == grpc.StatusCode.ABORTED

    assert (await get(library, made.id)).script == fresh
    await library.stub.DeleteScript(
        library_pb2.DeleteScriptRequest(id=made.id, etag=fresh.etag), timeout=DEADLINE
    )


async def test_the_same_request_id_returns_the_first_script(library) -> None:
    first = await create(library, "first", request_id="req-1")

    again = await create(library, "a different body", "echo other", request_id="req-1")

    assert again == first
    listed = await library.stub.ListScripts(library_pb2.ListScriptsRequest(), timeout=DEADLINE)
    assert [s.name for s in listed.scripts] == ["first"]
    other = await create(library, "second", request_id="req-2")
    assert other.id != first.id


async def test_get_shows_assignments_usage_and_recent_executions(library) -> None:
    made = await create(library)
    await assign(library, made.id, "repo-a", PRE)
    await assign(library, made.id, "repo-b", POST)

    def execution(execution_id: str, minute: int, trigger: int) -> library_pb2.Execution:
        start = Timestamp()
        start.FromDatetime(datetime(2026, 1, 1, 12, minute, tzinfo=UTC))
        return library_pb2.Execution(
            execution_id=execution_id,
            script_id=made.id,
            script_name=made.name,
            digest=made.digest,
            status=library_pb2.EXECUTION_STATUS_SUCCEEDED,
            start_time=start,
            trigger=trigger,
        )

    await library.stub.RecordExecutions(
        library_pb2.RecordExecutionsRequest(
            executions=[
                execution("e1", 1, library_pb2.EXECUTION_TRIGGER_BACKUP),
                execution("e2", 2, library_pb2.EXECUTION_TRIGGER_BACKUP),
                execution("e3", 3, library_pb2.EXECUTION_TRIGGER_TEST),
            ]
        ),
        timeout=DEADLINE,
    )

    found = await get(library, made.id, recent_executions_limit=2)

    assert {(a.repository_id, a.hook_type, a.script_name) for a in found.assignments} == {
        ("repo-a", PRE, made.name),
        ("repo-b", POST, made.name),
    }
    assert [e.execution_id for e in found.recent_executions] == ["e3", "e2"]
    assert found.script.usage_count == 2  # the test run is history, not use
    assert found.script.last_used_time.ToDatetime(tzinfo=UTC) == datetime(
        2026, 1, 1, 12, 2, tzinfo=UTC
    )
    listed = await library.stub.ListScripts(library_pb2.ListScriptsRequest(), timeout=DEADLINE)
    assert listed.scripts[0].usage_count == 2


async def test_list_leaves_content_out_but_gives_the_digest(library) -> None:
    made = await create(library, unique_name())

    listed = await library.stub.ListScripts(library_pb2.ListScriptsRequest(), timeout=DEADLINE)

    assert listed.scripts[0].digest == made.digest
    assert listed.scripts[0].content == ""


async def outcome(call) -> str:
    """A call's status code name, "OK" when it succeeded."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code().name
    return "OK"


async def test_concurrent_writes_neither_fail_nor_lose_versions(library) -> None:
    made = await create(library, content="echo 0")

    updates = [update(library, made.id, ["content"], content=f"echo {n}") for n in range(1, 9)]
    same_name = [create(library, "contested") for _ in range(4)]
    same_request = [create(library, f"req-{n}", request_id="once") for n in range(4)]
    results = await asyncio.gather(*(outcome(c) for c in (*updates, *same_name)))
    retried = await asyncio.gather(*same_request)

    assert results[:8] == ["OK"] * 8
    assert sorted(results[8:]) == ["ALREADY_EXISTS"] * 3 + ["OK"]
    assert len({script.id for script in retried}) == 1
    assert [v.number for v in await versions(library, made.id)] == list(range(9, 0, -1))


async def test_of_updates_racing_with_the_same_etag_exactly_one_wins(library) -> None:
    """On SQLite the driver used to open a transaction only at the first write, so the
    etag was checked outside it: all eight updates passed and seven were lost."""
    for _ in range(3):
        made = await create(library, content="echo 0")

        results = await asyncio.gather(
            *(
                outcome(
                    update_call(library, made.id, ["content"], etag=made.etag, content=f"echo {n}")
                )
                for n in range(1, 9)
            )
        )
        assert sorted(results) == ["ABORTED"] * 7 + ["OK"]
        assert [v.number for v in await versions(library, made.id)] == [2, 1]
