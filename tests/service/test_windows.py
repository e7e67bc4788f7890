"""Maintenance window CRUD through the generated stubs against real servers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
from croniter import croniter
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from shared.stubs import library_pb2
from tests.service.assignments_support import (
    DEADLINE,
    expect_invalid,
    make_script,
    rejected,
)


async def _create(library, **fields) -> library_pb2.MaintenanceWindow:
    fields.setdefault("name", f"window-{uuid.uuid4().hex[:6]}")
    fields.setdefault("cron_expression", "0 3 * * *")
    fields.setdefault("enabled", True)
    response = await library.stub.CreateMaintenanceWindow(
        library_pb2.CreateMaintenanceWindowRequest(window=library_pb2.MaintenanceWindow(**fields)),
        timeout=DEADLINE,
    )
    return response.window


def _update(window: library_pb2.MaintenanceWindow, *paths: str):
    return library_pb2.UpdateMaintenanceWindowRequest(
        window=window, update_mask=FieldMask(paths=list(paths))
    )


async def test_create_get_list_update_delete(library) -> None:
    stop = await make_script(library, "stop-nextcloud")
    start = await make_script(library, "start-nextcloud")
    before = datetime.now(UTC)

    made = await _create(
        library,
        name="nightly",
        description="Nextcloud off for the dump",
        pre_script_ids=[stop.id],
        post_script_ids=[start.id],
        cron_expression="*/15 * * * *",
    )

    uuid.UUID(made.id)
    assert made.name == "nightly" and made.description == "Nextcloud off for the dump"
    assert list(made.pre_script_ids) == [stop.id]
    assert list(made.post_script_ids) == [start.id]
    assert made.enabled and made.etag
    assert not made.HasField("last_run_time")
    # Computed from "now" on the server: the next match after some moment of the call.
    after = datetime.now(UTC)
    assert made.next_run_time.ToDatetime(tzinfo=UTC) in {
        croniter("*/15 * * * *", before).get_next(datetime),
        croniter("*/15 * * * *", after).get_next(datetime),
    }

    got = await library.stub.GetMaintenanceWindow(
        library_pb2.GetMaintenanceWindowRequest(id=made.id), timeout=DEADLINE
    )
    assert got.window.id == made.id and got.window.etag == made.etag

    ran_at = Timestamp(seconds=1_700_000_000)
    updated = (
        await library.stub.UpdateMaintenanceWindow(
            _update(
                library_pb2.MaintenanceWindow(
                    id=made.id,
                    etag=made.etag,
                    name="nightly-2",
                    pre_script_ids=[stop.id, stop.id],
                    cron_expression="0 4 * * *",
                    last_run_time=ran_at,
                    description="ignored: not in the mask",
                ),
                "name",
                "pre_script_ids",
                "cron_expression",
                "last_run_time",
            ),
            timeout=DEADLINE,
        )
    ).window
    assert updated.name == "nightly-2"
    assert list(updated.pre_script_ids) == [stop.id, stop.id]
    assert list(updated.post_script_ids) == [start.id]
    assert updated.description == "Nextcloud off for the dump"
    assert updated.cron_expression == "0 4 * * *"
    assert updated.last_run_time == ran_at
    assert updated.next_run_time.ToDatetime().hour == 4
    assert updated.etag != made.etag

    await library.stub.DeleteMaintenanceWindow(
        library_pb2.DeleteMaintenanceWindowRequest(id=made.id), timeout=DEADLINE
    )
    found = await rejected(
        library.stub.GetMaintenanceWindow(
            library_pb2.GetMaintenanceWindowRequest(id=made.id), timeout=DEADLINE
        )
    )
    assert found.code == grpc.StatusCode.NOT_FOUND
    found = await rejected(
        library.stub.DeleteMaintenanceWindow(
            library_pb2.DeleteMaintenanceWindowRequest(id=made.id), timeout=DEADLINE
        )
    )
    assert found.code == grpc.StatusCode.NOT_FOUND


async def test_disabled_windows_have_no_next_run(library) -> None:
    made = await _create(library, enabled=False)
    assert not made.HasField("next_run_time")
    before = datetime.now(UTC)
    enabled = (
        await library.stub.UpdateMaintenanceWindow(
            _update(library_pb2.MaintenanceWindow(id=made.id, enabled=True), "enabled"),
            timeout=DEADLINE,
        )
    ).window
    assert enabled.HasField("next_run_time")
    assert enabled.next_run_time.ToDatetime(tzinfo=UTC) > before  # however long the call took


async def test_last_run_time_in_the_mask_but_unset_is_cleared(library) -> None:
    made = await _create(library)
    with_run = await library.stub.UpdateMaintenanceWindow(
        _update(
            library_pb2.MaintenanceWindow(id=made.id, last_run_time=Timestamp(seconds=10)),
            "last_run_time",
        ),
        timeout=DEADLINE,
    )
    assert with_run.window.HasField("last_run_time")
    cleared = await library.stub.UpdateMaintenanceWindow(
        _update(library_pb2.MaintenanceWindow(id=made.id), "last_run_time"), timeout=DEADLINE
    )
    assert not cleared.window.HasField("last_run_time")


async def test_a_stale_etag_is_aborted_and_changes_nothing(library) -> None:
    made = await _create(library, description="v1")
    await library.stub.UpdateMaintenanceWindow(
        _update(
            library_pb2.MaintenanceWindow(id=made.id, etag=made.etag, description="v2"),
            "description",
        ),
        timeout=DEADLINE,
    )
    found = await rejected(
        library.stub.UpdateMaintenanceWindow(
            _update(
                library_pb2.MaintenanceWindow(id=made.id, etag=made.etag, description="v3"),
                "description",
            ),
            timeout=DEADLINE,
        )
    )
    assert found.code == grpc.StatusCode.ABORTED
    got = await library.stub.GetMaintenanceWindow(
        library_pb2.GetMaintenanceWindowRequest(id=made.id), timeout=DEADLINE
    )
    assert got.window.description == "v2"


async def test_names_are_unique(library) -> None:
    await _create(library, name="weekly")
    other = await _create(library, name="daily")
    found = await rejected(
        library.stub.CreateMaintenanceWindow(
            library_pb2.CreateMaintenanceWindowRequest(
                window=library_pb2.MaintenanceWindow(name="weekly", cron_expression="* * * * *")
            ),
            timeout=DEADLINE,
        )
    )
    assert found.code == grpc.StatusCode.ALREADY_EXISTS
    found = await rejected(
        library.stub.UpdateMaintenanceWindow(
            _update(library_pb2.MaintenanceWindow(id=other.id, name="weekly"), "name"),
            timeout=DEADLINE,
        )
    )
    assert found.code == grpc.StatusCode.ALREADY_EXISTS
    # Renaming to its own name is no conflict.
    await library.stub.UpdateMaintenanceWindow(
        _update(library_pb2.MaintenanceWindow(id=other.id, name="daily"), "name"),
        timeout=DEADLINE,
    )


async def test_bad_windows_name_the_field_and_store_nothing(library) -> None:
    script = await make_script(library)
    cases = [
        ({"name": ""}, "window.name"),
        ({"name": "n" * 256}, "window.name"),
        ({"name": "bad\nname"}, "window.name"),
        ({"description": "nul\x00"}, "window.description"),
        ({"cron_expression": ""}, "window.cron_expression"),
        ({"cron_expression": "* * * *"}, "window.cron_expression"),
        ({"cron_expression": "0 0 * * * *"}, "window.cron_expression"),
        ({"cron_expression": "99 * * * *"}, "window.cron_expression"),
        ({"cron_expression": "not a cron at all"}, "window.cron_expression"),
        ({"cron_expression": "0 0 31 2 *"}, "window.cron_expression"),
        ({"pre_script_ids": [script.id, "nope"]}, "window.pre_script_ids[1]"),
        ({"post_script_ids": [""]}, "window.post_script_ids[0]"),
    ]
    for fields, field in cases:
        fields.setdefault("name", "w")
        fields.setdefault("cron_expression", "0 3 * * *")
        await expect_invalid(
            library.stub.CreateMaintenanceWindow(
                library_pb2.CreateMaintenanceWindowRequest(
                    window=library_pb2.MaintenanceWindow(**fields)
                ),
                timeout=DEADLINE,
            ),
            field,
        )
    missing = str(uuid.uuid4())
    for key in ("pre_script_ids", "post_script_ids"):
        found = await rejected(
            library.stub.CreateMaintenanceWindow(
                library_pb2.CreateMaintenanceWindowRequest(
                    window=library_pb2.MaintenanceWindow(
                        name="w", cron_expression="0 3 * * *", **{key: [script.id, missing]}
                    )
                ),
                timeout=DEADLINE,
            )
        )
        assert found.code == grpc.StatusCode.NOT_FOUND
        assert missing in found.message and key in found.message
    listed = await library.stub.ListMaintenanceWindows(
        library_pb2.ListMaintenanceWindowsRequest(), timeout=DEADLINE
    )
    assert list(listed.windows) == []


async def test_bad_updates_name_the_field_and_change_nothing(library) -> None:
    made = await _create(library, cron_expression="0 3 * * *")
    w = library_pb2.MaintenanceWindow
    cases = [
        (_update(w(id=made.id, name="x")), "update_mask"),
        (_update(w(id=made.id), "etag"), "update_mask"),
        (_update(w(id=made.id), "next_run_time"), "update_mask"),
        (_update(w(id="", name="x"), "name"), "window.id"),
        (_update(w(id="zzz", name="x"), "name"), "window.id"),
        (_update(w(id=made.id, name=""), "name"), "window.name"),
        (
            _update(w(id=made.id, cron_expression="* *"), "cron_expression"),
            "window.cron_expression",
        ),
        (
            _update(w(id=made.id, post_script_ids=["no"]), "post_script_ids"),
            "window.post_script_ids[0]",
        ),
        (
            _update(
                w(id=made.id, last_run_time=Timestamp(seconds=-62_135_596_801)), "last_run_time"
            ),
            "window.last_run_time",
        ),
    ]
    for request, field in cases:
        await expect_invalid(library.stub.UpdateMaintenanceWindow(request, timeout=DEADLINE), field)
    found = await rejected(
        library.stub.UpdateMaintenanceWindow(
            _update(w(id=str(uuid.uuid4()), name="x"), "name"), timeout=DEADLINE
        )
    )
    assert found.code == grpc.StatusCode.NOT_FOUND
    got = await library.stub.GetMaintenanceWindow(
        library_pb2.GetMaintenanceWindowRequest(id=made.id), timeout=DEADLINE
    )
    assert (got.window.etag, got.window.cron_expression) == (made.etag, "0 3 * * *")
    for bad in ("", "not-an-id"):
        await expect_invalid(
            library.stub.GetMaintenanceWindow(
                library_pb2.GetMaintenanceWindowRequest(id=bad), timeout=DEADLINE
            ),
            "id",
        )
        await expect_invalid(
            library.stub.DeleteMaintenanceWindow(
                library_pb2.DeleteMaintenanceWindowRequest(id=bad), timeout=DEADLINE
            ),
            "id",
        )


async def test_list_is_ordered_by_name_and_paginated(library) -> None:
    names = ["echo", "alpha", "delta", "charlie", "bravo"]
    for name in names:
        await _create(library, name=name)
    seen, token = [], ""
    while True:
        response = await library.stub.ListMaintenanceWindows(
            library_pb2.ListMaintenanceWindowsRequest(page_size=2, page_token=token),
            timeout=DEADLINE,
        )
        assert len(response.windows) <= 2
        seen += [w.name for w in response.windows]
        token = response.next_page_token
        if not token:
            break
    assert seen == sorted(names)
    for request, field in [
        (library_pb2.ListMaintenanceWindowsRequest(page_token="???"), "page_token"),
        (library_pb2.ListMaintenanceWindowsRequest(page_size=-2), "page_size"),
    ]:
        await expect_invalid(library.stub.ListMaintenanceWindows(request, timeout=DEADLINE), field)
