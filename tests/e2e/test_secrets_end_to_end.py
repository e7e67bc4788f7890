"""A secret's whole trip: given on an assignment, encrypted in the library, decrypted into
the plan, injected into a hook that prints it (raw, base64, URL-encoded, to stdout and
stderr), and then nowhere a person could read it: not in the BeginBackup / EndBackup
event streams, not in the recorded executions (ListExecutions), not in GetBackupRun,
not in the log of either service (captured at DEBUG, third-party loggers included).

A real library (SQLite and PostgreSQL) and a real executor on a unix socket, in process.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from executor_service.runner.environment import BASE_PATH
from shared.logging_setup import configure_logging
from shared.settings import Settings
from shared.stubs import executor_pb2, library_pb2
from tests.service.executor_support import (
    DEADLINE,
    POST,
    PRE,
    ExecutorHandle,
    summary_of,
)

SUCCESS = library_pb2.BACKUP_OUTCOME_SUCCESS
SECRET_TYPE = library_pb2.PARAMETER_TYPE_SECRET
# Characters that base64 and URL encoding both change, and no JSON escape touches.
SECRET = "Tr0ub4dor/&3 p@ss+word=?"
PG_SECRET = "pg-Pa55/w0rd&more"

LEAKY = """#!/bin/bash
set -euo pipefail
echo "raw: ${API_TOKEN}"
printf 'b64: %s\\n' "$(printf %s "${API_TOKEN}" | base64 -w0)"
printf 'b64url: %s\\n' "$(printf %s "${API_TOKEN}" | base64 -w0 | tr '+/' '-_')"
printf 'basic-auth: %s\\n' "$(printf 'user:%s' "${API_TOKEN}" | base64 -w0)"
python3 -c 'import os, urllib.parse as u; t = os.environ["API_TOKEN"]; \
print("url:", u.quote(t, safe="")); print("form:", u.quote_plus(t))'
echo "on stderr: ${API_TOKEN}" >&2
"""

# Stands in for pg_dump (there is no point dumping for real here): chatty about the
# password the template hands it in PGPASSWORD, on stderr, as a careless tool would be.
LEAKY_PG_DUMP = """#!/bin/bash
echo "pg_dump: connecting with password ${PGPASSWORD}" >&2
echo "pg_dump: auth $(printf '%s' "${PGPASSWORD}" | base64 -w0)" >&2
echo "-- fake dump of $*"
"""


def forms(secret: str) -> dict[str, bytes]:
    """Every spelling of ``secret`` the hooks above print."""
    raw = secret.encode()
    return {
        "raw": raw,
        "base64": base64.b64encode(raw),
        "base64url": base64.urlsafe_b64encode(raw),
        "basic-auth": base64.b64encode(b"user:" + raw),
        "url": urllib.parse.quote(secret, safe="").encode(),
        "form": urllib.parse.quote_plus(secret).encode(),
    }


def leaks(data: bytes | str, secret: str = SECRET) -> list[str]:
    """The forms of ``secret`` found in ``data``."""
    blob = data.encode() if isinstance(data, str) else data
    return [name for name, form in forms(secret).items() if form in blob]


@pytest.fixture
def library_settings(library_settings: Settings) -> Settings:
    return library_settings.model_copy(update={"install_templates": True})


@pytest.fixture(autouse=True)
def service_logs() -> Iterator[io.StringIO]:
    """Both services' log as they write it (JSON lines), at DEBUG so third-party loggers
    (SQLAlchemy, aiosqlite, asyncio, grpc) speak too. Set up before the services start."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("DEBUG", "json")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.reset_defaults()


async def _secret_hook(executor: ExecutorHandle, name: str, repository_id: str) -> str:
    script_id = await executor.script(
        name, LEAKY, parameters=[library_pb2.Parameter(name="API_TOKEN", type=SECRET_TYPE)]
    )
    for hook_type in (PRE, POST):
        await executor.assign(
            repository_id, script_id, hook_type, parameter_values={"API_TOKEN": SECRET}
        )
    return script_id


def _output(events: list[executor_pb2.HookEvent]) -> bytes:
    return b"".join(e.output.data for e in events if e.WhichOneof("event") == "output")


async def test_a_secret_printed_by_a_hook_reaches_no_stream_record_or_log(
    executor: ExecutorHandle, service_logs: io.StringIO
) -> None:
    await _secret_hook(executor, "leaky", "repo-secret")

    begun = await executor.begin("repo-secret")
    summary = summary_of(begun)
    assert summary.verdict == executor_pb2.VERDICT_PROCEED, summary
    run_id = begun[0].run_id
    ended = await executor.end(run_id, SUCCESS)
    assert summary_of(ended).succeeded_count == 1
    run = await executor.get_run(run_id)
    await executor.delivered()
    records = await executor.executions(repository_id="repo-secret")

    # The hooks did print it, in every form, and the executor replaced each.
    for events in (begun, ended):
        printed = _output(events)
        assert b"raw: ***" in printed and b"on stderr: ***" in printed, printed
        assert printed.count(b"***") >= 7, printed
    # Nowhere: streams (every field of every event), the run, the records, the logs.
    assert [leaks(e.SerializeToString()) for e in begun + ended] == [[]] * len(begun + ended)
    assert leaks(run.SerializeToString()) == []
    assert len(records) == 2
    for record in records:
        assert b"***" in record.stdout.head and b"***" in record.stderr.head
        assert leaks(record.SerializeToString()) == [], record
    logged = service_logs.getvalue()
    assert "library.started" in logged and "run.begun" in logged  # the capture works
    assert leaks(logged) == []


async def test_a_template_run_redacts_its_secret_parameter(
    executor: ExecutorHandle, service_logs: io.StringIO, tmp_path: Path
) -> None:
    library = executor.library
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pg_dump = bin_dir / "pg_dump"
    pg_dump.write_text(LEAKY_PG_DUMP)
    pg_dump.chmod(0o755)
    made = await library.stub.InstantiateTemplate(
        library_pb2.InstantiateTemplateRequest(template_name="postgres-dump", script_name="pg"),
        timeout=DEADLINE,
    )
    password = next(p for p in made.script.parameters if p.name == "POSTGRES_PASSWORD")
    assert password.type == SECRET_TYPE
    dump_file = tmp_path / "dumps" / "app.dump"
    await executor.assign(
        "repo-pg",
        made.script.id,
        PRE,
        parameter_values={
            "POSTGRES_DATABASE": "app",
            "POSTGRES_PASSWORD": PG_SECRET,
            "DUMP_FILE": str(dump_file),
            "PG_DUMP_COMMAND": str(pg_dump),
        },
    )

    begun = await executor.begin(
        "repo-pg", variables=executor.variables(PATH=f"{bin_dir}:{BASE_PATH}")
    )
    assert summary_of(begun).verdict == executor_pb2.VERDICT_PROCEED, begun[-1]
    await executor.end(begun[0].run_id, SUCCESS)
    await executor.delivered()

    assert dump_file.read_text().startswith("-- fake dump of")
    assert b"connecting with password ***" in _output(begun)
    assert [leaks(e.SerializeToString(), PG_SECRET) for e in begun] == [[]] * len(begun)
    (record,) = await executor.executions(repository_id="repo-pg")
    assert record.status == library_pb2.EXECUTION_STATUS_SUCCEEDED, record
    assert leaks(record.SerializeToString(), PG_SECRET) == []
    assert leaks(service_logs.getvalue(), PG_SECRET) == []


async def test_a_secret_copied_into_an_output_variable_is_not_returned_in_clear(
    executor: ExecutorHandle, service_logs: io.StringIO
) -> None:
    """A hook that hands a secret on to later steps ($HOOKSHELF_OUTPUT) makes it a
    variable of the run; the summary the client reads must not show it."""
    script_id = await executor.script(
        "hand-on",
        '#!/bin/bash\necho "COPY=${API_TOKEN}" >> "$HOOKSHELF_OUTPUT"\n',
        parameters=[library_pb2.Parameter(name="API_TOKEN", type=SECRET_TYPE)],
    )
    await executor.assign("repo-out", script_id, PRE, parameter_values={"API_TOKEN": SECRET})
    # The next step must still receive the real value: it reports only a hash match.
    expected = hashlib.sha256(SECRET.encode()).hexdigest()
    checker_id = await executor.script(
        "check-copy",
        "#!/bin/bash\n"
        f'[ "$(printf %s "$COPY" | sha256sum | cut -d" " -f1)" = {expected} ] '
        '&& echo SAME=yes >> "$HOOKSHELF_OUTPUT"\n',
    )
    await executor.assign("repo-out", checker_id, PRE)
    begun = await executor.begin("repo-out")
    summary = summary_of(begun)
    assert summary.variables["COPY"] == "***"
    assert summary.variables["SAME"] == "yes"
    await executor.end(begun[0].run_id, SUCCESS)
    run = await executor.get_run(begun[0].run_id)
    assert [leaks(e.SerializeToString()) for e in begun] == [[]] * len(begun)
    assert leaks(run.SerializeToString()) == []
    assert leaks(service_logs.getvalue()) == []


def test_the_hooks_print_what_the_assertions_look_for() -> None:
    """The leak detector itself: each form is what the hook prints (checked with the
    same tools outside the executor)."""
    import subprocess

    result = subprocess.run(
        ["/bin/bash", "-c", LEAKY],
        env={"PATH": BASE_PATH, "API_TOKEN": SECRET, "LANG": os.environ.get("LANG", "C")},
        capture_output=True,
        check=True,
    )
    assert sorted(leaks(result.stdout + result.stderr)) == sorted(forms(SECRET))
