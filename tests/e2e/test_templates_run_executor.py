"""Templates the way users run them: installed at library start-up, instantiated,
assigned to a repository, and run by the real executor around backups (its environment,
its HOOKSHELF_* variables, its records). docker goes to a stand-in on PATH; the
health-check pings go to a local HTTP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor_service.runner.environment import BASE_PATH
from shared.settings import Settings
from shared.stubs import executor_pb2, library_pb2
from tests.conftest import LibraryHandle
from tests.e2e.templates_run_support import StandIn
from tests.e2e.test_templates_run_healthcheck import PingServer, server  # noqa: F401 - fixture
from tests.service.executor_support import (
    DEADLINE,
    POST,
    PRE,
    ExecutorHandle,
    summary_of,
)

SUCCEEDED = library_pb2.EXECUTION_STATUS_SUCCEEDED


@pytest.fixture
def library_settings(library_settings: Settings) -> Settings:
    return library_settings.model_copy(update={"install_templates": True})


async def instantiate(library: LibraryHandle, template: str, name: str, **values: str) -> str:
    response = await library.stub.InstantiateTemplate(
        library_pb2.InstantiateTemplateRequest(
            template_name=template, script_name=name, parameter_values=values
        ),
        timeout=DEADLINE,
    )
    return response.script.id


async def test_a_backup_wrapped_by_templates(
    executor: ExecutorHandle,
    server: PingServer,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    library = executor.library
    docker = StandIn(tmp_path / "bin", "docker")
    ping = await instantiate(library, "healthcheck-ping", "ping-nightly", PING_URL=server.url)
    stop = await instantiate(library, "docker-stop", "stop-app", CONTAINERS="app db")
    start = await instantiate(library, "docker-start", "start-app", CONTAINERS="app db")
    await executor.assign("repo-1", ping, PRE, 1)
    await executor.assign("repo-1", stop, PRE, 2)
    await executor.assign("repo-1", start, POST, 1)
    await executor.assign("repo-1", ping, POST, 2)
    variables = executor.variables(PATH=f"{tmp_path / 'bin'}:{BASE_PATH}")

    for outcome, last_ping in (
        (library_pb2.BACKUP_OUTCOME_SUCCESS, "/ping/abc-123"),
        (library_pb2.BACKUP_OUTCOME_FAILURE, "/ping/abc-123/fail"),
    ):
        server.pings.clear()
        docker.log.unlink(missing_ok=True)
        events = await executor.begin("repo-1", variables=variables)
        assert summary_of(events).verdict == executor_pb2.VERDICT_PROCEED
        # docker-start runs after every outcome (run_on ALWAYS, from the template).
        ended = summary_of(await executor.end(events[0].run_id, outcome))
        assert (ended.succeeded_count, ended.failed_count) == (2, 0)
        assert docker.calls() == [
            ["stop", "-t", "30", "app"],
            ["stop", "-t", "30", "db"],
            ["start", "db"],
            ["start", "app"],
        ]
        assert [path.split("?")[0] for _, path, _ in server.pings] == [
            "/ping/abc-123/start",
            last_ping,
        ]

    await executor.delivered()
    records = await executor.executions(repository_id="repo-1")
    assert len(records) == 8
    assert {r.status for r in records} == {SUCCEEDED}
