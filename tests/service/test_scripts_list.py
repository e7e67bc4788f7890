"""ListScripts and ListScriptVersions: order, pages, and the query, category and
templates filters (SQLite and PostgreSQL)."""

from __future__ import annotations

from library_service.domain import scripts
from shared.stubs import library_pb2
from tests.service.assignments_support import DEADLINE
from tests.service.scripts_support import (
    all_scripts,
    create,
    update,
)


async def _names(library, **filters) -> list[str]:
    return [s.name for s in await all_scripts(library, **filters)]


async def test_paging_visits_every_script_once_in_name_order(library) -> None:
    names = [f"script-{index:02d}" for index in range(11)]
    for name in reversed(names):
        await create(library, name)

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await library.stub.ListScripts(
            library_pb2.ListScriptsRequest(page_size=3, page_token=token), timeout=DEADLINE
        )
        assert len(page.scripts) <= 3
        seen.extend(s.name for s in page.scripts)
        pages += 1
        token = page.next_page_token
        if not token:
            break

    assert seen == names
    assert pages == 4


async def test_an_exactly_full_last_page_has_no_next_token(library) -> None:
    for index in range(4):
        await create(library, f"s{index}")

    first = await library.stub.ListScripts(
        library_pb2.ListScriptsRequest(page_size=2), timeout=DEADLINE
    )
    second = await library.stub.ListScripts(
        library_pb2.ListScriptsRequest(page_size=2, page_token=first.next_page_token),
        timeout=DEADLINE,
    )

    assert [s.name for s in second.scripts] == ["s2", "s3"]
    assert second.next_page_token == ""


async def test_a_script_created_between_pages_does_not_shift_them(library) -> None:
    for name in ("b", "d", "f"):
        await create(library, name)
    first = await library.stub.ListScripts(
        library_pb2.ListScriptsRequest(page_size=2), timeout=DEADLINE
    )
    await create(library, "a")  # sorts before everything already served

    rest = await library.stub.ListScripts(
        library_pb2.ListScriptsRequest(page_size=2, page_token=first.next_page_token),
        timeout=DEADLINE,
    )

    assert [s.name for s in first.scripts] == ["b", "d"]
    assert [s.name for s in rest.scripts] == ["f"]


async def test_query_matches_name_or_description_ignoring_case(library) -> None:
    await create(library, "Docker stop", description="stops containers")
    await create(library, "pg dump", description="Dumps PostgreSQL via DOCKER exec")
    await create(library, "notify", description="health check")

    assert await _names(library, query="docker") == ["Docker stop", "pg dump"]
    assert await _names(library, query="DUMPS") == ["pg dump"]
    assert await _names(library, query="  health ") == ["notify"]
    assert await _names(library, query="nothing like it") == []


async def test_query_wildcards_match_themselves(library) -> None:
    await create(library, "100% done")
    await create(library, "1000 done")
    await create(library, "snake_case")
    await create(library, "snakeXcase")
    await create(library, "back\\slash")

    assert await _names(library, query="100%") == ["100% done"]
    assert await _names(library, query="e_c") == ["snake_case"]
    assert await _names(library, query="k\\s") == ["back\\slash"]


async def test_category_and_query_combine_across_pages(library) -> None:
    for index in range(5):
        await create(library, f"db-{index}", category="database")
        await create(library, f"dk-{index}", category="docker")

    assert await _names(library, category="docker", page_size=2) == [
        f"dk-{index}" for index in range(5)
    ]
    assert await _names(library, category="database", query="db-3") == ["db-3"]
    assert await _names(library, category="none") == []


async def test_templates_only_lists_templates(library) -> None:
    await create(library, "mine")
    await scripts.create_script(
        library.app.context,
        scripts.ScriptFields(name="docker-stop", content="docker stop ${CONTAINERS}\n"),
        author="template",
        origin=scripts.TemplateOrigin(
            is_template=True, template_name="docker-stop", template_version=1
        ),
    )

    listed = await all_scripts(library, templates_only=True)

    assert [s.name for s in listed] == ["docker-stop"]
    assert listed[0].is_template and listed[0].template_version == 1
    assert await _names(library) == ["docker-stop", "mine"]


async def test_versions_page_newest_first(library) -> None:
    made = await create(library, content="v1")
    for number in range(2, 6):
        await update(library, made.id, ["content"], content=f"v{number}")

    numbers: list[int] = []
    token = ""
    while True:
        page = await library.stub.ListScriptVersions(
            library_pb2.ListScriptVersionsRequest(script_id=made.id, page_size=2, page_token=token),
            timeout=DEADLINE,
        )
        numbers.extend(v.number for v in page.versions)
        token = page.next_page_token
        if not token:
            break

    assert numbers == [5, 4, 3, 2, 1]
