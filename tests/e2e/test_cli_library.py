"""The `hookshelf` CLI as a subprocess against a real library process (SQLite).

What a user checks: the command exits 0 and prints what they asked for; `--json` parses
and carries the fields; a bad call is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli_support import (
    HOOKSHELF,
    Stack,
    clean_env,
    free_port,
    one_error_line,
    running_stack,
)

FIRST = '#!/bin/sh\necho "dumping ${DB_NAME:-app}"\n'
SECOND = '#!/bin/sh\necho "dumping ${DB_NAME:-app}"\necho done\n'


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(executor=False) as running:
        yield running


def write(stack: Stack, name: str, content: str) -> Path:
    path = stack.data / name
    path.write_text(content)
    return path


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_script_lifecycle_create_list_show_versions_diff(stack: Stack) -> None:
    source = write(stack, "dump.sh", FIRST)
    assert "created dump-db" in ok(
        stack.cli("scripts", "create", "dump-db", "--file", str(source), "--category", "database")
    )

    listed = json.loads(ok(stack.cli("scripts", "list", "--json")))
    mine = next(s for s in listed if s["name"] == "dump-db")
    assert mine["category"] == "database" and mine["version_count"] == 1
    assert "dump-db" in ok(stack.cli("scripts", "list", "--query", "dump"))

    shown = json.loads(ok(stack.cli("scripts", "show", "dump-db", "--json")))
    assert shown["script"]["content"] == FIRST
    assert [p["name"] for p in shown["script"]["parameters"]] == ["DB_NAME"]
    human = ok(stack.cli("scripts", "show", "dump-db"))
    assert "DB_NAME" in human and 'echo "dumping' in human

    ok(stack.cli("scripts", "update", "dump-db", "--file", str(write(stack, "v2.sh", SECOND))))
    versions = json.loads(ok(stack.cli("scripts", "versions", "dump-db", "--json")))
    assert [v["number"] for v in versions] == [2, 1]
    new, old = versions[0]["digest"], versions[1]["digest"]

    diff = ok(stack.cli("scripts", "diff", old, new))
    assert f"--- {old}" in diff and f"+++ {new}" in diff and "+echo done" in diff
    assert ok(stack.cli("scripts", "diff", "1", "2", "--script", "dump-db")) == diff


def test_edit_opens_the_editor_and_saves_a_new_version(stack: Stack) -> None:
    ok(stack.cli("scripts", "create", "edit-me", "--file", str(write(stack, "e.sh", FIRST))))
    editor = write(stack, "editor.sh", "#!/bin/sh\necho 'echo edited' >> \"$1\"\n")
    editor.chmod(0o755)

    assert "saved edit-me version 2" in ok(
        stack.cli("scripts", "edit", "edit-me", EDITOR=str(editor))
    )
    shown = json.loads(ok(stack.cli("scripts", "show", "edit-me", "--json")))
    assert shown["script"]["content"] == FIRST + "echo edited\n"

    unchanged = ok(stack.cli("scripts", "edit", "edit-me", EDITOR="true"))
    assert "nothing saved" in unchanged
    assert json.loads(ok(stack.cli("scripts", "versions", "edit-me", "--json")))[0]["number"] == 2


def test_assign_plan_reorder_unassign_delete(stack: Stack) -> None:
    for name in ("stop-app", "dump-app", "start-app"):
        ok(stack.cli("scripts", "create", name, "--file", str(write(stack, f"{name}.sh", FIRST))))
    ok(stack.cli("assign", "stop-app", "-r", "repo-a", "--hook", "pre", "--order", "1"))
    ok(
        stack.cli(
            "assign",
            "dump-app",
            "-r",
            "repo-a",
            "--hook",
            "pre",
            "--order",
            "2",
            "--param",
            "DB_NAME=shop",
            "--on-error",
            "continue",
        )
    )
    ok(stack.cli("assign", "start-app", "-r", "repo-a", "--hook", "post", "--run-on", "always"))

    plan = json.loads(ok(stack.cli("plan", "-r", "repo-a", "--hook", "pre", "--json")))
    assert [s["script_name"] for s in plan["steps"]] == ["stop-app", "dump-app"]
    assert plan["steps"][1]["parameter_values"] == {"DB_NAME": "shop"}
    assert plan["steps"][1]["on_error"] == "ON_ERROR_CONTINUE"
    post = json.loads(ok(stack.cli("plan", "-r", "repo-a", "--hook", "post", "--json")))
    assert post["steps"][0]["run_on"] == "RUN_ON_ALWAYS"
    assert "stop-app" in ok(stack.cli("plan", "-r", "repo-a", "--hook", "pre"))

    ok(stack.cli("reorder", "-r", "repo-a", "--hook", "pre", "dump-app", "stop-app"))
    plan = json.loads(ok(stack.cli("plan", "-r", "repo-a", "--hook", "pre", "--json")))
    assert [s["script_name"] for s in plan["steps"]] == ["dump-app", "stop-app"]

    refused = stack.cli("scripts", "delete", "stop-app")
    assert refused.returncode == 1
    assert "repo-a" in one_error_line(refused)

    ok(stack.cli("unassign", "stop-app", "-r", "repo-a", "--hook", "pre"))
    listed = json.loads(ok(stack.cli("assignments", "-r", "repo-a", "--json")))
    assert sorted(a["script_name"] for a in listed) == ["dump-app", "start-app"]

    ok(stack.cli("scripts", "delete", "dump-app", "--force"))
    ok(stack.cli("scripts", "delete", "stop-app"))
    names = [s["name"] for s in json.loads(ok(stack.cli("scripts", "list", "--json")))]
    assert "dump-app" not in names and "stop-app" not in names


def test_windows_crud(stack: Stack) -> None:
    ok(stack.cli("scripts", "create", "win-pre", "--file", str(write(stack, "w.sh", FIRST))))
    ok(stack.cli("windows", "create", "nightly", "--cron", "0 2 * * *", "--pre", "win-pre"))
    [window] = [
        w for w in json.loads(ok(stack.cli("windows", "list", "--json"))) if w["name"] == "nightly"
    ]
    assert window["enabled"] is True and window["next_run_time"]
    assert len(window["pre_script_ids"]) == 1

    ok(stack.cli("windows", "update", "nightly", "--cron", "30 3 * * *", "--disabled"))
    shown = json.loads(ok(stack.cli("windows", "show", "nightly", "--json")))
    assert shown["cron_expression"] == "30 3 * * *" and shown["enabled"] is False

    bad = stack.cli("windows", "create", "broken", "--cron", "not a cron")
    assert "cron" in one_error_line(bad)

    ok(stack.cli("windows", "delete", "nightly"))
    assert "nightly" not in ok(stack.cli("windows", "list"))


def test_history_json_parses_and_filters(stack: Stack) -> None:
    assert json.loads(ok(stack.cli("history", "--json", "--repository", "nowhere"))) == []
    feed = json.loads(ok(stack.cli("history", "--json", "--since", "1d", "--status", "failed")))
    assert isinstance(feed, list)
    bad_since = stack.cli("history", "--since", "yesterday-ish")
    assert bad_since.returncode == 2 and "Traceback" not in bad_since.stderr


def test_bad_calls_are_one_line_and_non_zero(stack: Stack) -> None:
    missing = stack.cli("scripts", "show", "no-such-script")
    assert missing.returncode == 1
    assert "no-such-script" in one_error_line(missing)

    bad_repository = stack.cli("plan", "-r", "x" * 300, "--hook", "pre")
    assert bad_repository.returncode == 1
    assert "repository" in one_error_line(bad_repository)

    duplicate = write(stack, "dup.sh", FIRST)
    ok(stack.cli("scripts", "create", "dup", "--file", str(duplicate)))
    assert "dup" in one_error_line(stack.cli("scripts", "create", "dup", "--file", str(duplicate)))

    no_file = stack.cli("scripts", "create", "x", "--file", str(stack.data / "absent.sh"))
    assert "absent.sh" in one_error_line(no_file)


def test_a_missing_library_is_one_clear_line() -> None:
    target = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = subprocess.run(
        [str(HOOKSHELF), "scripts", "list"],
        env=clean_env(HOOKSHELF_LIBRARY_TARGET=target),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 69
    assert one_error_line(result) == (
        f"hookshelf: cannot reach the library at {target}: is it running?"
    )
    # Bounded retries (~3 s), not a hang nor a wait for the 10 s deadline on every attempt;
    # the rest is room for a busy machine starting Python.
    assert time.monotonic() - started < 30

    flag = subprocess.run(
        [str(HOOKSHELF), "--library", target, "history"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert target in one_error_line(flag)


def test_templates_list_and_instantiate(stack: Stack) -> None:
    templates = json.loads(ok(stack.cli("templates", "list", "--json")))
    by_name = {t["name"]: t for t in templates}
    assert "docker-stop" in by_name and by_name["docker-stop"]["content"]
    assert "docker-stop" in ok(stack.cli("templates", "list"))

    params = by_name["docker-stop"]["parameters"]
    values = [f"--param={p['name']}=web db" for p in params if p["required"]][:1]
    made = json.loads(
        ok(stack.cli("templates", "instantiate", "docker-stop", "stop-web", *values, "--json"))
    )
    assert made["name"] == "stop-web" and made["template_name"] == "docker-stop"
    listed = [s["name"] for s in json.loads(ok(stack.cli("scripts", "list", "--json")))]
    assert "stop-web" in listed

    unknown = stack.cli("templates", "instantiate", "no-such-template", "x")
    assert "no-such-template" in one_error_line(unknown)
