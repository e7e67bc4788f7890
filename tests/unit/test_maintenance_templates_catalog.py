"""The shipped templates and the catalog that reads them: every file has a valid header
that agrees with its content (the parameters the library parses out of the content are
exactly the declared ones, with the same defaults), the shell rules hold, and shellcheck
finds nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from library_service.domain.parameters import parse_references
from library_service.templates import catalog
from library_service.templates.catalog import TemplateFormatError, parse_template
from shared import hook_policy
from shared.stubs import library_pb2

TEMPLATES = catalog.load_catalog()
EXPECTED = {
    "docker-stop", "docker-start", "nextcloud-maintenance-on", "nextcloud-maintenance-off",
    "mysql-dump", "postgres-dump", "sqlite-dump", "healthcheck-ping",
    "wait-for-tcp-port", "systemd-unit-stop", "systemd-unit-start", "skip-unless-mounted",
}  # fmt: skip


def test_the_package_ships_the_expected_templates() -> None:
    assert {t.name for t in TEMPLATES} == EXPECTED
    assert catalog.shipped() == TEMPLATES
    assert catalog.find("docker-stop") is not None and catalog.find("nope") is None


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_each_template_declares_what_its_content_uses(template: catalog.TemplateSpec) -> None:
    parsed = {r.name: (r.has_default, r.default_value) for r in parse_references(template.content)}
    declared = {p.name: (p.has_default, p.default_value) for p in template.parameters}
    assert parsed == declared
    assert template.description and template.category and template.template_version >= 1
    for parameter in template.parameters:
        assert parameter.description, parameter.name


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_each_template_follows_the_shell_rules(template: catalog.TemplateSpec) -> None:
    lines = template.content.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    # Required parameters fail with a message that names them, not "unbound variable".
    for parameter in template.parameters:
        if parameter.required:
            assert f': "${{{parameter.name}:?{parameter.name} is required' in template.content
    path = catalog.TEMPLATES_DIR / f"{template.name}.sh"
    assert path.stat().st_mode & 0o755 == 0o755


def test_the_templates_pass_shellcheck() -> None:
    # Unquoted expansions (SC2086), word splitting and the like are what it finds.
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is required: apt-get install shellcheck", pytrace=False)
    files = sorted(str(p) for p in catalog.TEMPLATES_DIR.glob("*.sh"))
    result = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=style", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_hook_types_and_run_on_come_from_the_header() -> None:
    by_name = {t.name: t for t in TEMPLATES}
    assert by_name["docker-stop"].hook_type == library_pb2.HOOK_TYPE_PRE_BACKUP
    assert by_name["docker-start"].hook_type == library_pb2.HOOK_TYPE_POST_BACKUP
    assert by_name["docker-start"].run_on == library_pb2.RUN_ON_ALWAYS
    assert by_name["docker-stop"].run_on == library_pb2.RUN_ON_SUCCESS
    assert by_name["healthcheck-ping"].hook_type == library_pb2.HOOK_TYPE_UNSPECIFIED
    assert by_name["postgres-dump"].timeout_seconds == 3600
    assert by_name["docker-stop"].timeout_seconds == hook_policy.DEFAULT_TIMEOUT_SECONDS
    assert by_name["mysql-dump"].parameter("MYSQL_PASSWORD").secret  # type: ignore[union-attr]
    assert by_name["mysql-dump"].parameter("MYSQL_PASSWORD").type == (  # type: ignore[union-attr]
        library_pb2.PARAMETER_TYPE_SECRET
    )


HEADER = """#!/usr/bin/env bash
# Does a thing,
# in two lines.
#
# template_version: 2
# category: demo
# hook_type: post_backup
# run_on: failure
# timeout_seconds: 60
#
# Parameters:
#   REQUIRED          Must be given.
#   PLAIN=value       Has a default,
#                     described on two lines.
#   SPACED="a b  c"   A quoted default.
#   EMPTY=            An empty default.
#   TOKEN= [secret]   A secret.
#   BARE=x
#
# Notes for people, ignored.
set -euo pipefail
"""


def test_the_header_format() -> None:
    spec = parse_template("demo", HEADER)
    assert spec.description == "Does a thing, in two lines."
    assert (spec.category, spec.template_version, spec.timeout_seconds) == ("demo", 2, 60)
    assert (spec.hook_type, spec.run_on) == (
        library_pb2.HOOK_TYPE_POST_BACKUP,
        library_pb2.RUN_ON_FAILURE,
    )
    assert [(p.name, p.has_default, p.default_value, p.secret) for p in spec.parameters] == [
        ("REQUIRED", False, "", False),
        ("PLAIN", True, "value", False),
        ("SPACED", True, "a b  c", False),
        ("EMPTY", True, "", False),
        ("TOKEN", True, "", True),
        ("BARE", True, "x", False),
    ]
    assert spec.parameter("PLAIN").description == "Has a default, described on two lines."  # type: ignore[union-attr]
    assert spec.digest.startswith("sha256:") and len(spec.digest) == 71


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("# template_version: 2\n", ""), "no template_version"),
        (("template_version: 2", "template_version: two"), "positive integer"),
        (("template_version: 2", "template_version: 0"), "positive integer"),
        (("# category: demo\n", ""), "no category"),
        (("hook_type: post_backup", "hook_type: during"), "hook_type must be one of"),
        (("run_on: failure", "run_on: sometimes"), "run_on must be one of"),
        (("timeout_seconds: 60", "timeout_seconds: 0"), "timeout_seconds must be"),
        (("#   BARE=x", "#   PLAIN=x"), "declared twice"),
        (("#   BARE=x", "#   HOOKSHELF_X=x"), "reserved"),
        (("# Does a thing,\n# in two lines.\n", ""), "no description"),
    ],
)
def test_a_bad_header_says_what_is_wrong(change: tuple[str, str], problem: str) -> None:
    with pytest.raises(TemplateFormatError, match=re.escape(problem)):
        parse_template("demo", HEADER.replace(*change))


def test_a_template_name_is_a_safe_file_stem() -> None:
    with pytest.raises(TemplateFormatError, match="lowercase"):
        parse_template("Bad Name", HEADER)


def test_every_file_of_a_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "b-two.sh").write_text(HEADER)
    (tmp_path / "a-one.sh").write_text(HEADER.replace("template_version: 2", "template_version: 7"))
    (tmp_path / "notes.txt").write_text("not a template")
    assert [(t.name, t.template_version) for t in catalog.load_catalog(tmp_path)] == [
        ("a-one", 7),
        ("b-two", 2),
    ]
