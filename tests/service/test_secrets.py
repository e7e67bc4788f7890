"""Secret parameter values through the generated stubs against real servers (SQLite and
PostgreSQL): encrypted rows, masked responses, the masked round trip, required values at
assignment and plan time, the key file across restarts, a wrong or rotated key."""

from __future__ import annotations

import base64
import json
import stat

import grpc
import pytest
from cryptography.fernet import Fernet
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import text

from library_service.app import start_library
from library_service.domain.secrets import MASK, SecretKeyError
from shared.settings import Settings
from shared.stubs import library_pb2
from tests.conftest import open_library
from tests.service.assignments_support import (
    DEADLINE,
    PRE,
    expect_invalid,
    make_script,
    rejected,
)

SECRET = "s3cr3t/p@ss word+x=y"
SECRET_TYPE = library_pb2.PARAMETER_TYPE_SECRET
CONTENT = '#!/bin/sh\nmysqldump -h "${HOST:-localhost}" -p"${PASSWORD}"\n'


async def _secret_script(library, content: str = CONTENT, **fields):
    return await make_script(
        library,
        content=content,
        parameters=[library_pb2.Parameter(name="PASSWORD", type=SECRET_TYPE)],
        **fields,
    )


async def _assign(library, script_id: str, values: dict[str, str], repository_id: str = "repo-1"):
    response = await library.stub.AssignScript(
        library_pb2.AssignScriptRequest(
            assignment=library_pb2.Assignment(
                repository_id=repository_id,
                script_id=script_id,
                hook_type=PRE,
                parameter_values=values,
            )
        ),
        timeout=DEADLINE,
    )
    return response.assignment


async def _update_values(library, assignment_id: str, values: dict[str, str]):
    response = await library.stub.UpdateAssignment(
        library_pb2.UpdateAssignmentRequest(
            assignment=library_pb2.Assignment(id=assignment_id, parameter_values=values),
            update_mask=FieldMask(paths=["parameter_values"]),
        ),
        timeout=DEADLINE,
    )
    return response.assignment


async def _plan(library, repository_id: str = "repo-1"):
    return await library.stub.ResolveHookPlan(
        library_pb2.ResolveHookPlanRequest(repository_id=repository_id, hook_type=PRE),
        timeout=DEADLINE,
    )


async def _stored_values(library, assignment_id: str) -> str:
    """The row's parameter_values exactly as the database holds them."""
    async with library.app.context.database.transaction() as session:
        raw = await session.scalar(
            text("SELECT parameter_values FROM assignments WHERE id = :id"), {"id": assignment_id}
        )
    return raw if isinstance(raw, str) else json.dumps(raw)


def _forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw)]


# --- at rest and in responses ---------------------------------------------------------------


async def test_a_secret_is_encrypted_in_the_row_and_masked_in_every_response(library) -> None:
    script = await _secret_script(library)
    made = await _assign(library, script.id, {"PASSWORD": SECRET, "HOST": "db.local"})
    assert dict(made.parameter_values) == {"PASSWORD": MASK, "HOST": "db.local"}

    stored = await _stored_values(library, made.id)
    assert SECRET not in stored
    assert json.loads(stored)["PASSWORD"].startswith("enc:v1:")
    assert json.loads(stored)["HOST"] == "db.local"
    # Nowhere in the database file either (SQLite: file and write-ahead log).
    for path in library.data_dir.parent.glob("library.db*"):
        assert all(form not in path.read_bytes() for form in _forms(SECRET)), path

    listed = await library.stub.ListAssignments(
        library_pb2.ListAssignmentsRequest(repository_id="repo-1"), timeout=DEADLINE
    )
    assert [dict(a.parameter_values) for a in listed.assignments] == [
        {"PASSWORD": MASK, "HOST": "db.local"}
    ]
    detail = await library.stub.GetScript(
        library_pb2.GetScriptRequest(id=script.id), timeout=DEADLINE
    )
    assert [dict(a.parameter_values) for a in detail.assignments] == [
        {"PASSWORD": MASK, "HOST": "db.local"}
    ]
    updated = await library.stub.UpdateAssignment(
        library_pb2.UpdateAssignmentRequest(
            assignment=library_pb2.Assignment(id=made.id, enabled=False),
            update_mask=FieldMask(paths=["enabled"]),
        ),
        timeout=DEADLINE,
    )
    assert dict(updated.assignment.parameter_values)["PASSWORD"] == MASK
    for message in (made, listed, detail, updated):
        assert all(form not in message.SerializeToString() for form in _forms(SECRET))


async def test_a_secret_parameter_cannot_declare_a_default(library) -> None:
    request = library_pb2.CreateScriptRequest(
        script=library_pb2.Script(
            name="secret-default",
            content=CONTENT,
            parameters=[
                library_pb2.Parameter(
                    name="PASSWORD", type=SECRET_TYPE, default_value=SECRET, has_default=True
                )
            ],
        )
    )
    await expect_invalid(
        library.stub.CreateScript(request, timeout=DEADLINE), "script.parameters[0].default_value"
    )
    listed = await library.stub.ListScripts(
        library_pb2.ListScriptsRequest(query="secret-default"), timeout=DEADLINE
    )
    assert list(listed.scripts) == []


async def test_a_parameter_made_secret_later_is_sealed_and_masked(library) -> None:
    script = await make_script(library, content=CONTENT)  # PASSWORD is plain text here
    made = await _assign(library, script.id, {"PASSWORD": SECRET})
    assert made.parameter_values["PASSWORD"] == SECRET
    current = await library.stub.GetScript(
        library_pb2.GetScriptRequest(id=script.id), timeout=DEADLINE
    )

    await library.stub.UpdateScript(
        library_pb2.UpdateScriptRequest(
            script=library_pb2.Script(
                id=script.id,
                etag=current.script.etag,
                parameters=[library_pb2.Parameter(name="PASSWORD", type=SECRET_TYPE)],
            ),
            update_mask=FieldMask(paths=["parameters"]),
        ),
        timeout=DEADLINE,
    )

    assert SECRET not in await _stored_values(library, made.id)
    shown = await library.stub.GetScript(
        library_pb2.GetScriptRequest(id=script.id), timeout=DEADLINE
    )
    assert [dict(a.parameter_values) for a in shown.assignments] == [{"PASSWORD": MASK}]
    listed = await library.stub.ListAssignments(
        library_pb2.ListAssignmentsRequest(repository_id="repo-1"), timeout=DEADLINE
    )
    assert listed.assignments[0].parameter_values["PASSWORD"] == MASK
    (step,) = (await _plan(library)).steps
    assert step.parameter_values["PASSWORD"] == SECRET
    assert list(step.secret_parameter_names) == ["PASSWORD"]
    deleted = await library.stub.DeleteScript(
        library_pb2.DeleteScriptRequest(id=script.id, force=True), timeout=DEADLINE
    )
    assert [dict(a.parameter_values) for a in deleted.removed_assignments] == [{"PASSWORD": MASK}]


async def test_the_plan_carries_the_secret_decrypted_and_named(library) -> None:
    script = await _secret_script(library)
    await _assign(library, script.id, {"PASSWORD": SECRET})
    (step,) = (await _plan(library)).steps
    assert dict(step.parameter_values) == {"PASSWORD": SECRET, "HOST": "localhost"}
    assert list(step.secret_parameter_names) == ["PASSWORD"]


# --- the masked round trip -------------------------------------------------------------------


async def test_sending_back_what_was_read_keeps_the_stored_secret(library) -> None:
    """borg-ui read the masked values and saved them back, replacing every secret by its
    mask. Here the mask means "keep"."""
    script = await _secret_script(library)
    made = await _assign(library, script.id, {"PASSWORD": SECRET, "HOST": "db.local"})
    before = await _stored_values(library, made.id)

    (read,) = (
        await library.stub.ListAssignments(
            library_pb2.ListAssignmentsRequest(repository_id="repo-1"), timeout=DEADLINE
        )
    ).assignments
    saved = await library.stub.UpdateAssignment(
        library_pb2.UpdateAssignmentRequest(
            assignment=read,
            update_mask=FieldMask(paths=["parameter_values", "enabled", "execution_order"]),
        ),
        timeout=DEADLINE,
    )
    assert dict(saved.assignment.parameter_values) == {"PASSWORD": MASK, "HOST": "db.local"}
    assert await _stored_values(library, made.id) == before
    (step,) = (await _plan(library)).steps
    assert step.parameter_values["PASSWORD"] == SECRET

    # A text value changes beside a kept secret; a new secret value replaces the old.
    await _update_values(library, made.id, {"PASSWORD": MASK, "HOST": "db2"})
    (step,) = (await _plan(library)).steps
    assert (step.parameter_values["PASSWORD"], step.parameter_values["HOST"]) == (SECRET, "db2")
    await _update_values(library, made.id, {"PASSWORD": "n3w-s3cret"})
    (step,) = (await _plan(library)).steps
    assert step.parameter_values["PASSWORD"] == "n3w-s3cret"


async def test_the_mask_with_no_stored_secret_is_invalid_argument(library) -> None:
    script = await _secret_script(library)
    found = await expect_invalid(
        library.stub.AssignScript(
            library_pb2.AssignScriptRequest(
                assignment=library_pb2.Assignment(
                    repository_id="repo-1",
                    script_id=script.id,
                    hook_type=PRE,
                    parameter_values={"PASSWORD": MASK},
                )
            ),
            timeout=DEADLINE,
        ),
        "assignment.parameter_values[PASSWORD]",
    )
    assert "mask" in found.field_violations["assignment.parameter_values[PASSWORD]"]


async def test_the_mask_is_plain_text_for_a_text_parameter(library) -> None:
    script = await _secret_script(library)
    made = await _assign(library, script.id, {"PASSWORD": SECRET, "HOST": MASK})
    assert made.parameter_values["HOST"] == MASK
    (step,) = (await _plan(library)).steps
    assert step.parameter_values["HOST"] == MASK
    assert list(step.secret_parameter_names) == ["PASSWORD"]


# --- required values -------------------------------------------------------------------------


async def test_a_missing_required_value_is_failed_precondition_at_assignment(library) -> None:
    script = await _secret_script(library)
    found = await rejected(_assign(library, script.id, {"HOST": "db"}))
    assert found.code == grpc.StatusCode.FAILED_PRECONDITION
    assert found.reason == "PARAMETER_VALUE_REQUIRED"
    assert found.metadata["parameters"] == "PASSWORD"
    assert found.metadata["script_id"] == script.id

    made = await _assign(library, script.id, {"PASSWORD": SECRET})
    found = await rejected(_update_values(library, made.id, {"HOST": "db"}))  # replaced whole
    assert found.code == grpc.StatusCode.FAILED_PRECONDITION
    assert (found.metadata["assignment_id"], found.metadata["parameters"]) == (made.id, "PASSWORD")
    (step,) = (await _plan(library)).steps  # unchanged by the refused update
    assert step.parameter_values["PASSWORD"] == SECRET


async def test_a_parameter_gained_after_assignment_fails_the_plan_naming_it(library) -> None:
    script = await _secret_script(library)
    made = await _assign(library, script.id, {"PASSWORD": SECRET})
    await library.stub.UpdateScript(
        library_pb2.UpdateScriptRequest(
            script=library_pb2.Script(id=script.id, content=CONTENT + 'echo "${TARGET_DIR}"\n'),
            update_mask=FieldMask(paths=["content"]),
        ),
        timeout=DEADLINE,
    )

    found = await rejected(_plan(library))
    assert found.code == grpc.StatusCode.FAILED_PRECONDITION
    assert found.reason == "PARAMETER_VALUE_REQUIRED"
    assert found.metadata["assignment_id"] == made.id
    assert found.metadata["parameters"] == "TARGET_DIR"
    assert made.id in found.message and "TARGET_DIR" in found.message
    assert SECRET not in found.message

    await _update_values(library, made.id, {"PASSWORD": MASK, "TARGET_DIR": "/srv"})
    (step,) = (await _plan(library)).steps
    assert (step.parameter_values["PASSWORD"], step.parameter_values["TARGET_DIR"]) == (
        SECRET,
        "/srv",
    )


async def test_every_step_missing_a_value_is_named_at_once(library) -> None:
    first = await _secret_script(library)
    second = await _secret_script(library)
    a = await _assign(library, first.id, {"PASSWORD": SECRET})
    b = await _assign(library, second.id, {"PASSWORD": SECRET})
    for script in (first, second):
        await library.stub.UpdateScript(
            library_pb2.UpdateScriptRequest(
                script=library_pb2.Script(id=script.id, content=CONTENT + "echo ${NEW}\n"),
                update_mask=FieldMask(paths=["content"]),
            ),
            timeout=DEADLINE,
        )
    found = await rejected(_plan(library))
    assert found.code == grpc.StatusCode.FAILED_PRECONDITION
    assert set(found.metadata["assignments"].split(";")) == {f"{a.id}:NEW", f"{b.id}:NEW"}


# --- the key ---------------------------------------------------------------------------------


async def test_the_key_file_is_0600_and_reused_across_restarts(library_settings: Settings) -> None:
    async with open_library(library_settings) as library:
        script = await _secret_script(library)
        await _assign(library, script.id, {"PASSWORD": SECRET})
    path = library_settings.data_dir / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_bytes()

    async with open_library(library_settings) as library:
        (step,) = (await _plan(library)).steps
        assert step.parameter_values["PASSWORD"] == SECRET
    assert path.read_bytes() == key


async def test_a_wrong_key_fails_the_plan_clearly_and_a_rotated_one_reads(
    library_settings: Settings,
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    async with open_library(library_settings.model_copy(update={"secret_key": old})) as library:
        script = await _secret_script(library)
        made = await _assign(library, script.id, {"PASSWORD": SECRET})

    wrong = library_settings.model_copy(update={"secret_key": new})
    async with open_library(wrong) as library:
        found = await rejected(_plan(library))
        assert found.code == grpc.StatusCode.FAILED_PRECONDITION  # not INTERNAL
        assert found.reason == "SECRET_UNDECRYPTABLE"
        assert found.metadata == {"assignment_id": made.id, "parameter": "PASSWORD"}
        assert "key" in found.message
        # Reading and masking need no key: the assignment still shows, masked.
        listed = await library.stub.ListAssignments(
            library_pb2.ListAssignmentsRequest(repository_id="repo-1"), timeout=DEADLINE
        )
        assert listed.assignments[0].parameter_values["PASSWORD"] == MASK

    rotated = library_settings.model_copy(update={"secret_key": f"{new},{old}"})
    async with open_library(rotated) as library:
        (step,) = (await _plan(library)).steps
        assert step.parameter_values["PASSWORD"] == SECRET

    # Giving the value again under the new key repairs the assignment.
    async with open_library(wrong) as library:
        await _update_values(library, made.id, {"PASSWORD": "again-s3cret"})
        (step,) = (await _plan(library)).steps
        assert step.parameter_values["PASSWORD"] == "again-s3cret"


async def test_an_unusable_key_stops_the_library_from_starting(
    library_settings: Settings,
) -> None:
    with pytest.raises(SecretKeyError):
        await start_library(library_settings.model_copy(update={"secret_key": "not-a-key"}))
