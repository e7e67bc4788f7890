"""AssignScript, ListAssignments, UpdateAssignment, UnassignScript, ReorderAssignments
through the generated stubs against real servers (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from shared.stubs import library_pb2
from tests.service.assignments_support import (
    DEADLINE,
    POST,
    PRE,
    expect_invalid,
    make_script,
    rejected,
)


def _assignment(script_id: str, repository_id: str = "repo-1", **fields) -> library_pb2.Assignment:
    fields.setdefault("hook_type", PRE)
    fields.setdefault("enabled", True)
    return library_pb2.Assignment(repository_id=repository_id, script_id=script_id, **fields)


async def _assign(library, script_id: str, **fields) -> library_pb2.Assignment:
    response = await library.stub.AssignScript(
        library_pb2.AssignScriptRequest(assignment=_assignment(script_id, **fields)),
        timeout=DEADLINE,
    )
    return response.assignment


async def test_assign_returns_the_assignment_with_its_settings(library) -> None:
    script = await make_script(library, "stop-containers")

    made = await _assign(
        library,
        script.id,
        hook_type=POST,
        execution_order=5,
        custom_timeout_seconds=60,
        custom_run_on=library_pb2.RUN_ON_ALWAYS,
        on_error=library_pb2.ON_ERROR_ABORT,
        parameter_values={"CONTAINER": "nextcloud"},
    )

    uuid.UUID(made.id)
    assert made.repository_id == "repo-1"
    assert made.script_id == script.id
    assert made.script_name == "stop-containers"
    assert made.hook_type == POST
    assert made.execution_order == 5
    assert made.enabled is True
    assert made.custom_timeout_seconds == 60
    assert made.custom_run_on == library_pb2.RUN_ON_ALWAYS
    assert made.on_error == library_pb2.ON_ERROR_ABORT
    assert dict(made.parameter_values) == {"CONTAINER": "nextcloud"}
    assert made.HasField("create_time") and made.HasField("update_time")


async def test_unset_overrides_stay_unset(library) -> None:
    script = await make_script(library)
    made = await _assign(library, script.id)
    assert not made.HasField("custom_timeout_seconds")
    assert not made.HasField("custom_run_on")
    assert not made.HasField("on_error")


async def test_an_assignment_sent_without_enabled_is_enabled_and_planned(library) -> None:
    script = await make_script(library)
    made = (
        await library.stub.AssignScript(
            library_pb2.AssignScriptRequest(
                assignment=library_pb2.Assignment(
                    repository_id="repo-enabled", script_id=script.id, hook_type=PRE
                )
            ),
            timeout=DEADLINE,
        )
    ).assignment
    assert made.enabled is True

    plan = await library.stub.ResolveHookPlan(
        library_pb2.ResolveHookPlanRequest(repository_id="repo-enabled", hook_type=PRE),
        timeout=DEADLINE,
    )
    assert [step.assignment_id for step in plan.steps] == [made.id]


async def test_order_zero_appends_after_the_chains_last_step(library) -> None:
    first, second, third = [await make_script(library) for _ in range(3)]
    a = await _assign(library, first.id)
    b = await _assign(library, second.id, execution_order=35)
    c = await _assign(library, third.id)
    assert (a.execution_order, b.execution_order, c.execution_order) == (0, 35, 45)
    # Another chain (post) of the same repository starts from 0 again.
    d = await _assign(library, first.id, hook_type=POST)
    assert d.execution_order == 0


async def test_the_same_triple_twice_is_already_exists(library) -> None:
    script = await make_script(library)
    await _assign(library, script.id)

    found = await rejected(
        library.stub.AssignScript(
            library_pb2.AssignScriptRequest(assignment=_assignment(script.id)), timeout=DEADLINE
        )
    )
    assert found.code == grpc.StatusCode.ALREADY_EXISTS
    # Another hook type or repository is a different assignment.
    await _assign(library, script.id, hook_type=POST)
    await _assign(library, script.id, repository_id="repo-2")


async def test_an_unknown_script_is_not_found_naming_it(library) -> None:
    missing = str(uuid.uuid4())
    found = await rejected(
        library.stub.AssignScript(
            library_pb2.AssignScriptRequest(assignment=_assignment(missing)), timeout=DEADLINE
        )
    )
    assert found.code == grpc.StatusCode.NOT_FOUND
    assert missing in found.message
    assert found.metadata.get("script_id") == missing


async def test_bad_assignments_are_invalid_argument_naming_the_field(library) -> None:
    script = await make_script(library)
    cases = [
        ({"repository_id": ""}, "assignment.repository_id"),
        ({"repository_id": "r" * 256}, "assignment.repository_id"),
        ({"repository_id": "repo\n1"}, "assignment.repository_id"),
        ({"hook_type": library_pb2.HOOK_TYPE_UNSPECIFIED}, "assignment.hook_type"),
        ({"hook_type": 99}, "assignment.hook_type"),
        ({"script_id": ""}, "assignment.script_id"),
        ({"script_id": "not-an-id"}, "assignment.script_id"),
        ({"execution_order": -1}, "assignment.execution_order"),
        ({"execution_order": 1_000_001}, "assignment.execution_order"),
        ({"custom_timeout_seconds": 0}, "assignment.custom_timeout_seconds"),
        ({"custom_timeout_seconds": -5}, "assignment.custom_timeout_seconds"),
        ({"custom_timeout_seconds": 86_401}, "assignment.custom_timeout_seconds"),
        ({"custom_run_on": 42}, "assignment.custom_run_on"),
        ({"on_error": 42}, "assignment.on_error"),
        ({"parameter_values": {"lower": "x"}}, "assignment.parameter_values[lower]"),
        ({"parameter_values": {"1ST": "x"}}, "assignment.parameter_values[1ST]"),
        ({"parameter_values": {"A-B": "x"}}, "assignment.parameter_values[A-B]"),
        (
            {"parameter_values": {"HOOKSHELF_RUN": "x"}},
            "assignment.parameter_values[HOOKSHELF_RUN]",
        ),
        ({"parameter_values": {"OK": "nul\x00byte"}}, "assignment.parameter_values[OK]"),
    ]
    for fields, field in cases:
        fields.setdefault("script_id", script.id)
        message = _assignment(repository_id=fields.pop("repository_id", "repo-1"), **fields)
        await expect_invalid(
            library.stub.AssignScript(
                library_pb2.AssignScriptRequest(assignment=message), timeout=DEADLINE
            ),
            field,
        )
    # Nothing was stored by any of them.
    listed = await library.stub.ListAssignments(
        library_pb2.ListAssignmentsRequest(), timeout=DEADLINE
    )
    assert list(listed.assignments) == []


async def test_all_bad_fields_are_reported_at_once(library) -> None:
    found = await expect_invalid(
        library.stub.AssignScript(
            library_pb2.AssignScriptRequest(assignment=library_pb2.Assignment()),
            timeout=DEADLINE,
        ),
        "assignment.repository_id",
    )
    assert {"assignment.hook_type", "assignment.script_id"} <= set(found.field_violations)


async def test_a_required_parameter_needs_a_value(library) -> None:
    script = await make_script(
        library,
        content="#!/bin/sh\necho ${TARGET}\n",
        parameters=[library_pb2.Parameter(name="TARGET", required=True)],
    )
    # A well-formed request the script's declared parameters refuse: FAILED_PRECONDITION
    # (issue 5: "missing required values -> FAILED_PRECONDITION at assignment").
    found = await rejected(
        library.stub.AssignScript(
            library_pb2.AssignScriptRequest(assignment=_assignment(script.id)), timeout=DEADLINE
        )
    )
    assert found.code == grpc.StatusCode.FAILED_PRECONDITION, found
    assert found.reason == "PARAMETER_VALUE_REQUIRED"
    assert found.metadata["parameters"] == "TARGET"
    assert "TARGET" in found.message
    made = await _assign(library, script.id, parameter_values={"TARGET": "db"})
    assert dict(made.parameter_values) == {"TARGET": "db"}


async def test_list_filters_and_orders_by_chain(library) -> None:
    one, two, three = [await make_script(library, f"s{i}") for i in range(3)]
    late = await _assign(library, one.id, execution_order=20)
    early = await _assign(library, two.id, execution_order=10)
    tie = await _assign(library, three.id, execution_order=10)
    post = await _assign(library, one.id, hook_type=POST)
    other = await _assign(library, one.id, repository_id="repo-2")

    async def ids(**filters) -> list[str]:
        response = await library.stub.ListAssignments(
            library_pb2.ListAssignmentsRequest(**filters), timeout=DEADLINE
        )
        return [a.id for a in response.assignments]

    chain = await ids(repository_id="repo-1", hook_type=PRE)
    assert chain == [*sorted([early.id, tie.id]), late.id]
    assert await ids(script_id=one.id) == [late.id, post.id, other.id]
    assert await ids(repository_id="repo-2") == [other.id]
    assert await ids(script_id=str(uuid.uuid4())) == []
    assert len(await ids()) == 5


async def test_list_pages_through_everything_once(library) -> None:
    scripts = [await make_script(library) for _ in range(5)]
    made = [await _assign(library, s.id, execution_order=7) for s in scripts]
    seen, token = [], ""
    while True:
        response = await library.stub.ListAssignments(
            library_pb2.ListAssignmentsRequest(page_size=2, page_token=token), timeout=DEADLINE
        )
        assert len(response.assignments) <= 2
        seen += [a.id for a in response.assignments]
        token = response.next_page_token
        if not token:
            break
    assert seen == sorted(a.id for a in made)


async def test_list_rejects_bad_filters_and_tokens(library) -> None:
    for request, field in [
        (library_pb2.ListAssignmentsRequest(page_token="garbage!"), "page_token"),
        (library_pb2.ListAssignmentsRequest(page_size=-1), "page_size"),
        (library_pb2.ListAssignmentsRequest(hook_type=7), "hook_type"),
        (library_pb2.ListAssignmentsRequest(script_id="nope"), "script_id"),
        (library_pb2.ListAssignmentsRequest(repository_id="a\tb"), "repository_id"),
    ]:
        await expect_invalid(library.stub.ListAssignments(request, timeout=DEADLINE), field)


async def test_a_token_from_other_filters_is_rejected(library) -> None:
    scripts = [await make_script(library) for _ in range(3)]
    for s in scripts:
        await _assign(library, s.id)
    first = await library.stub.ListAssignments(
        library_pb2.ListAssignmentsRequest(page_size=1, repository_id="repo-1"),
        timeout=DEADLINE,
    )
    await expect_invalid(
        library.stub.ListAssignments(
            library_pb2.ListAssignmentsRequest(
                page_size=1, repository_id="repo-2", page_token=first.next_page_token
            ),
            timeout=DEADLINE,
        ),
        "page_token",
    )


def _update(assignment: library_pb2.Assignment, *paths: str) -> library_pb2.UpdateAssignmentRequest:
    return library_pb2.UpdateAssignmentRequest(
        assignment=assignment, update_mask=FieldMask(paths=list(paths))
    )


async def test_update_changes_only_the_masked_fields(library) -> None:
    script = await make_script(library)
    made = await _assign(library, script.id, execution_order=3, parameter_values={"A": "1"})

    response = await library.stub.UpdateAssignment(
        _update(
            library_pb2.Assignment(
                id=made.id,
                execution_order=50,
                enabled=False,
                custom_timeout_seconds=99,
                parameter_values={"B": "2"},
            ),
            "execution_order",
            "custom_timeout_seconds",
        ),
        timeout=DEADLINE,
    )
    updated = response.assignment
    assert updated.execution_order == 50
    assert updated.custom_timeout_seconds == 99
    assert updated.enabled is True  # not in the mask
    assert dict(updated.parameter_values) == {"A": "1"}  # not in the mask

    response = await library.stub.UpdateAssignment(
        _update(
            library_pb2.Assignment(id=made.id, parameter_values={"B": "2"}, enabled=False),
            "parameter_values",
            "enabled",
        ),
        timeout=DEADLINE,
    )
    assert dict(response.assignment.parameter_values) == {"B": "2"}  # replaced whole
    assert response.assignment.enabled is False


async def test_update_clears_overrides_named_in_the_mask_but_unset(library) -> None:
    script = await make_script(library)
    made = await _assign(
        library,
        script.id,
        custom_timeout_seconds=60,
        custom_run_on=library_pb2.RUN_ON_FAILURE,
        on_error=library_pb2.ON_ERROR_SKIP_BACKUP,
    )
    response = await library.stub.UpdateAssignment(
        _update(library_pb2.Assignment(id=made.id), "custom_timeout_seconds", "on_error"),
        timeout=DEADLINE,
    )
    cleared = response.assignment
    assert not cleared.HasField("custom_timeout_seconds")
    assert not cleared.HasField("on_error")
    assert cleared.custom_run_on == library_pb2.RUN_ON_FAILURE  # not in the mask: kept

    response = await library.stub.UpdateAssignment(
        _update(library_pb2.Assignment(id=made.id), "custom_run_on"), timeout=DEADLINE
    )
    assert not response.assignment.HasField("custom_run_on")
    listed = await library.stub.ListAssignments(
        library_pb2.ListAssignmentsRequest(script_id=script.id), timeout=DEADLINE
    )
    assert not listed.assignments[0].HasField("custom_run_on")


async def test_bad_updates_are_rejected_and_change_nothing(library) -> None:
    script = await make_script(library)
    made = await _assign(library, script.id, execution_order=1)
    cases = [
        (_update(library_pb2.Assignment(id=made.id)), "update_mask"),
        (_update(library_pb2.Assignment(id=made.id), "script_id"), "update_mask"),
        (_update(library_pb2.Assignment(id=made.id), "enabled", "bogus"), "update_mask"),
        (_update(library_pb2.Assignment(id="", enabled=True), "enabled"), "assignment.id"),
        (_update(library_pb2.Assignment(id="x", enabled=True), "enabled"), "assignment.id"),
        (
            _update(library_pb2.Assignment(id=made.id, execution_order=-3), "execution_order"),
            "assignment.execution_order",
        ),
        (
            _update(
                library_pb2.Assignment(id=made.id, custom_timeout_seconds=0),
                "custom_timeout_seconds",
            ),
            "assignment.custom_timeout_seconds",
        ),
        (
            _update(library_pb2.Assignment(id=made.id, custom_run_on=9), "custom_run_on"),
            "assignment.custom_run_on",
        ),
        (
            _update(library_pb2.Assignment(id=made.id, on_error=9), "on_error"),
            "assignment.on_error",
        ),
        (
            _update(
                library_pb2.Assignment(id=made.id, parameter_values={"x": "1"}), "parameter_values"
            ),
            "assignment.parameter_values[x]",
        ),
    ]
    for request, field in cases:
        await expect_invalid(library.stub.UpdateAssignment(request, timeout=DEADLINE), field)

    found = await rejected(
        library.stub.UpdateAssignment(
            _update(library_pb2.Assignment(id=str(uuid.uuid4()), enabled=True), "enabled"),
            timeout=DEADLINE,
        )
    )
    assert found.code == grpc.StatusCode.NOT_FOUND
    listed = await library.stub.ListAssignments(
        library_pb2.ListAssignmentsRequest(), timeout=DEADLINE
    )
    assert listed.assignments[0].execution_order == 1


async def test_unassign_removes_one_assignment(library) -> None:
    script = await make_script(library)
    made = await _assign(library, script.id)
    kept = await _assign(library, script.id, hook_type=POST)

    await library.stub.UnassignScript(
        library_pb2.UnassignScriptRequest(id=made.id), timeout=DEADLINE
    )

    listed = await library.stub.ListAssignments(
        library_pb2.ListAssignmentsRequest(), timeout=DEADLINE
    )
    assert [a.id for a in listed.assignments] == [kept.id]
    found = await rejected(
        library.stub.UnassignScript(library_pb2.UnassignScriptRequest(id=made.id), timeout=DEADLINE)
    )
    assert found.code == grpc.StatusCode.NOT_FOUND
    for bad in ("", "not-a-uuid"):
        await expect_invalid(
            library.stub.UnassignScript(
                library_pb2.UnassignScriptRequest(id=bad), timeout=DEADLINE
            ),
            "id",
        )


async def _reorder(library, ids: list[str], repository_id: str = "repo-1", hook_type: int = PRE):
    return library.stub.ReorderAssignments(
        library_pb2.ReorderAssignmentsRequest(
            repository_id=repository_id, hook_type=hook_type, assignment_ids=ids
        ),
        timeout=DEADLINE,
    )


async def test_reorder_puts_the_chain_in_the_given_order(library) -> None:
    scripts = [await make_script(library) for _ in range(3)]
    a, b, c = [await _assign(library, s.id) for s in scripts]

    response = await await_(await _reorder(library, [c.id, a.id, b.id]))

    assert [(x.id, x.execution_order) for x in response.assignments] == [
        (c.id, 0),
        (a.id, 10),
        (b.id, 20),
    ]
    listed = await library.stub.ListAssignments(
        library_pb2.ListAssignmentsRequest(repository_id="repo-1", hook_type=PRE),
        timeout=DEADLINE,
    )
    assert [x.id for x in listed.assignments] == [c.id, a.id, b.id]


async def await_(call):
    return await call


async def test_reorder_needs_exactly_the_chain(library) -> None:
    scripts = [await make_script(library) for _ in range(3)]
    a, b = [await _assign(library, s.id) for s in scripts[:2]]
    elsewhere = await _assign(library, scripts[2].id, repository_id="repo-2")
    post = await _assign(library, scripts[2].id, hook_type=POST)
    cases = [
        ([a.id], "assignment_ids"),  # missing one
        ([a.id, b.id, elsewhere.id], "assignment_ids"),  # foreign repository
        ([a.id, b.id, post.id], "assignment_ids"),  # foreign hook type
        ([a.id, b.id, str(uuid.uuid4())], "assignment_ids"),  # unknown
        ([a.id, a.id, b.id], "assignment_ids[1]"),  # duplicate
        ([a.id, "bogus"], "assignment_ids[1]"),
    ]
    for ids, field in cases:
        await expect_invalid(await _reorder(library, ids), field)
    await expect_invalid(await _reorder(library, [a.id, b.id], repository_id=""), "repository_id")
    await expect_invalid(await _reorder(library, [a.id, b.id], hook_type=0), "hook_type")
    # Nothing moved.
    listed = await library.stub.ListAssignments(
        library_pb2.ListAssignmentsRequest(repository_id="repo-1", hook_type=PRE),
        timeout=DEADLINE,
    )
    assert [(x.id, x.execution_order) for x in listed.assignments] == [(a.id, 0), (b.id, 10)]


async def test_reorder_of_an_empty_chain_is_empty(library) -> None:
    response = await await_(await _reorder(library, [], repository_id="nobody"))
    assert list(response.assignments) == []
