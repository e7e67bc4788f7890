"""ListTemplates and InstantiateTemplate through a real library server (templates
installed at its start), on SQLite and PostgreSQL: what a client sees, bad input answered
with the code and the field at fault, and nothing changed by it."""

from __future__ import annotations

import hashlib

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from library_service.templates import catalog
from shared.error_details import details_of
from shared.settings import Settings
from shared.stubs import library_pb2
from tests.conftest import LibraryHandle

DEADLINE = 30
SHIPPED = {t.name: t for t in catalog.shipped()}


@pytest.fixture
def library_settings(library_settings: Settings) -> Settings:
    """The shared library fixture, with its templates installed at start-up."""
    return library_settings.model_copy(update={"install_templates": True})


async def list_templates(library: LibraryHandle) -> list[library_pb2.Template]:
    response = await library.stub.ListTemplates(
        library_pb2.ListTemplatesRequest(), timeout=DEADLINE
    )
    return list(response.templates)


async def instantiate(library: LibraryHandle, **fields: object) -> library_pb2.Script:
    response = await library.stub.InstantiateTemplate(
        library_pb2.InstantiateTemplateRequest(**fields),
        timeout=DEADLINE,  # type: ignore[arg-type]
    )
    return response.script


async def script_names(library: LibraryHandle) -> list[str]:
    response = await library.stub.ListScripts(
        library_pb2.ListScriptsRequest(page_size=1000), timeout=DEADLINE
    )
    return [s.name for s in response.scripts]


def parameters_of(message: library_pb2.Template | library_pb2.Script) -> dict[str, tuple]:  # type: ignore[type-arg]
    return {
        p.name: (p.type, p.has_default, p.default_value, p.required) for p in message.parameters
    }


async def test_list_templates_shows_every_installed_template(library: LibraryHandle) -> None:
    templates = await list_templates(library)
    assert [t.name for t in templates] == sorted(SHIPPED)
    for template in templates:
        spec = SHIPPED[template.name]
        assert template.content == spec.content
        assert template.digest == "sha256:" + hashlib.sha256(template.content.encode()).hexdigest()
        assert (template.template_version, template.category, template.description) == (
            spec.template_version,
            spec.category,
            spec.description,
        )
        assert template.suggested_hook_type == spec.hook_type
        assert {p.name: p.description for p in template.parameters} == {
            p.name: p.description for p in spec.parameters
        }
        script = (
            await library.stub.GetScript(
                library_pb2.GetScriptRequest(id=template.script_id), timeout=DEADLINE
            )
        ).script
        assert (script.is_template, script.template_name, script.digest) == (
            True,
            template.name,
            template.digest,
        )
    by_name = {t.name: t for t in templates}
    assert by_name["docker-stop"].suggested_hook_type == library_pb2.HOOK_TYPE_PRE_BACKUP
    assert by_name["docker-start"].suggested_hook_type == library_pb2.HOOK_TYPE_POST_BACKUP
    assert by_name["healthcheck-ping"].suggested_hook_type == library_pb2.HOOK_TYPE_UNSPECIFIED
    assert parameters_of(by_name["mysql-dump"])["MYSQL_PASSWORD"] == (
        library_pb2.PARAMETER_TYPE_SECRET,
        True,
        "",
        False,
    )
    assert parameters_of(by_name["docker-stop"])["CONTAINERS"] == (
        library_pb2.PARAMETER_TYPE_TEXT,
        False,
        "",
        True,
    )
    templates_only = await library.stub.ListScripts(
        library_pb2.ListScriptsRequest(templates_only=True, page_size=100), timeout=DEADLINE
    )
    assert sorted(s.template_name for s in templates_only.scripts) == sorted(SHIPPED)


async def test_an_instance_takes_the_given_values_as_its_defaults(library: LibraryHandle) -> None:
    template = next(t for t in await list_templates(library) if t.name == "docker-stop")
    script = await instantiate(
        library,
        template_name="docker-stop",
        script_name="stop-nextcloud",
        parameter_values={"CONTAINERS": "nextcloud-app nextcloud-db", "STOP_TIMEOUT": "10"},
    )
    assert (script.name, script.is_template, script.template_name, script.template_version) == (
        "stop-nextcloud",
        False,
        "docker-stop",
        template.template_version,
    )
    assert (script.content, script.digest) == (template.content, template.digest)
    assert (script.description, script.category) == (template.description, template.category)
    assert script.default_run_on == library_pb2.RUN_ON_SUCCESS
    assert parameters_of(script) == {
        "CONTAINERS": (library_pb2.PARAMETER_TYPE_TEXT, True, "nextcloud-app nextcloud-db", False),
        "STOP_TIMEOUT": (library_pb2.PARAMETER_TYPE_TEXT, True, "10", False),
        "DOCKER": (library_pb2.PARAMETER_TYPE_TEXT, True, "docker", False),
    }

    # The defaults are what a plan gives the executor when the assignment says nothing.
    await library.stub.AssignScript(
        library_pb2.AssignScriptRequest(
            assignment=library_pb2.Assignment(
                repository_id="repo-1",
                script_id=script.id,
                hook_type=library_pb2.HOOK_TYPE_PRE_BACKUP,
                enabled=True,
                parameter_values={"STOP_TIMEOUT": "20"},
            )
        ),
        timeout=DEADLINE,
    )
    plan = await library.stub.ResolveHookPlan(
        library_pb2.ResolveHookPlanRequest(
            repository_id="repo-1", hook_type=library_pb2.HOOK_TYPE_PRE_BACKUP
        ),
        timeout=DEADLINE,
    )
    [step] = plan.steps
    assert (step.digest, dict(step.parameter_values)) == (
        template.digest,
        {"CONTAINERS": "nextcloud-app nextcloud-db", "STOP_TIMEOUT": "20", "DOCKER": "docker"},
    )


async def test_a_repeated_request_id_returns_the_first_instance(library: LibraryHandle) -> None:
    request = {
        "template_name": "healthcheck-ping",
        "script_name": "ping-nightly",
        "parameter_values": {"PING_URL": "https://hc-ping.com/abc"},
        "request_id": "req-1",
        "description": "Nightly ping",
    }
    first = await instantiate(library, **request)
    second = await instantiate(library, **request)
    assert first.id == second.id and first.description == "Nightly ping"
    assert (await script_names(library)).count("ping-nightly") == 1


async def assert_refused(
    library: LibraryHandle, code: grpc.StatusCode, fields: set[str] | None = None, **request: object
) -> None:
    before = await script_names(library)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await instantiate(library, **request)
    details = details_of(failure.value)
    assert details.code == code, details
    assert details.domain == "hookshelf.dev" and details.reason == code.name
    if fields is not None:
        assert set(details.field_violations) == fields, details
    assert await script_names(library) == before  # bad input changes nothing


async def test_an_unknown_template_is_not_found(library: LibraryHandle) -> None:
    await assert_refused(
        library, grpc.StatusCode.NOT_FOUND, template_name="no-such-template", script_name="x"
    )


async def test_undeclared_parameters_are_named(library: LibraryHandle) -> None:
    await assert_refused(
        library,
        grpc.StatusCode.INVALID_ARGUMENT,
        {"parameter_values[NOPE]", "parameter_values[lower]"},
        template_name="docker-stop",
        script_name="x",
        parameter_values={"CONTAINERS": "app", "NOPE": "1", "lower": "2"},
    )


async def test_a_secret_cannot_become_a_default(library: LibraryHandle) -> None:
    await assert_refused(
        library,
        grpc.StatusCode.INVALID_ARGUMENT,
        {"parameter_values[MYSQL_PASSWORD]"},
        template_name="mysql-dump",
        script_name="x",
        parameter_values={"MYSQL_PASSWORD": "hunter2"},
    )


@pytest.mark.parametrize(
    ("request_fields", "fields"),
    [
        ({"template_name": "docker-stop", "script_name": ""}, {"script_name"}),
        ({"template_name": "docker-stop", "script_name": "a\nb"}, {"script_name"}),
        ({"template_name": "docker-stop", "script_name": "x" * 256}, {"script_name"}),
        ({"template_name": "", "script_name": ""}, {"template_name", "script_name"}),
        (
            {"template_name": "docker-stop", "script_name": "x", "description": "d" * 5000},
            {"description"},
        ),
        (
            {
                "template_name": "docker-stop",
                "script_name": "x",
                "parameter_values": {"CONTAINERS": "a\x00b"},
            },
            {"parameter_values[CONTAINERS]"},
        ),
    ],
)
async def test_bad_fields_are_invalid_arguments(
    library: LibraryHandle, request_fields: dict[str, object], fields: set[str]
) -> None:
    await assert_refused(library, grpc.StatusCode.INVALID_ARGUMENT, fields, **request_fields)


async def test_a_taken_script_name_already_exists(library: LibraryHandle) -> None:
    await instantiate(
        library,
        template_name="docker-stop",
        script_name="mine",
        parameter_values={"CONTAINERS": "a"},
    )
    await assert_refused(
        library, grpc.StatusCode.ALREADY_EXISTS, template_name="docker-start", script_name="mine"
    )


async def test_a_template_cannot_be_changed_or_deleted_through_the_api(
    library: LibraryHandle,
) -> None:
    """Start-up reinstalls templates, so an edit would silently vanish: refused, and the
    template is unchanged."""
    template = (await list_templates(library))[0]
    before = await library.stub.GetScript(
        library_pb2.GetScriptRequest(id=template.script_id), timeout=DEADLINE
    )

    for call in (
        library.stub.UpdateScript(
            library_pb2.UpdateScriptRequest(
                script=library_pb2.Script(id=template.script_id, content="#!/bin/sh\nexit 0\n"),
                update_mask=FieldMask(paths=["content"]),
            ),
            timeout=DEADLINE,
        ),
        library.stub.DeleteScript(
            library_pb2.DeleteScriptRequest(id=template.script_id, force=True), timeout=DEADLINE
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        found = details_of(caught.value)
        assert found.code == grpc.StatusCode.FAILED_PRECONDITION
        assert found.reason == "TEMPLATE_READ_ONLY"

    after = await library.stub.GetScript(
        library_pb2.GetScriptRequest(id=template.script_id), timeout=DEADLINE
    )
    assert after.script == before.script
