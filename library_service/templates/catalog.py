"""The built-in templates shipped with the package: the `*.sh` files of this directory,
read through the comment block at their top.

Header format (the first comment block, after the shebang):

    # One paragraph of description (may span lines).
    #
    # template_version: 3          required, a positive integer; bump on every change
    # category: docker             required
    # hook_type: pre_backup        required: pre_backup, post_backup or any
    # run_on: always               optional (post hooks): success, warning, failure, always
    # timeout_seconds: 3600        optional, 1-86400 (default 300)
    #
    # Parameters:
    #   NAME                 Description. No "=": required (no default).
    #   NAME=default         Description, continued on lines indented deeper.
    #   NAME="a b"           A default with spaces is quoted.
    #   NAME= [secret]       An empty default; [secret] makes it a SECRET parameter.

The content must use each parameter as ``${NAME}`` / ``${NAME:-default}`` with the same
defaults (tests/unit/test_maintenance_templates_catalog.py holds every shipped file to it).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from shared.hook_policy import DEFAULT_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS
from shared.stubs import library_pb2

TEMPLATES_DIR = Path(__file__).resolve().parent
TEMPLATE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")

HOOK_TYPES = {
    "pre_backup": library_pb2.HOOK_TYPE_PRE_BACKUP,
    "post_backup": library_pb2.HOOK_TYPE_POST_BACKUP,
    "any": library_pb2.HOOK_TYPE_UNSPECIFIED,
}
RUN_ONS = {
    "success": library_pb2.RUN_ON_SUCCESS,
    "warning": library_pb2.RUN_ON_WARNING,
    "failure": library_pb2.RUN_ON_FAILURE,
    "always": library_pb2.RUN_ON_ALWAYS,
}

_KEY = re.compile(r"^# ([a-z_]+): *(.*)$")
_PARAMETER = re.compile(
    r"^#   (?P<name>[A-Z_][A-Z0-9_]*)"
    r'(?:=(?:"(?P<quoted>[^"]*)"|(?P<plain>\S*)))?'
    r"(?P<secret>\s+\[secret\])?"
    r"(?:\s+(?P<description>\S.*))?$"
)
_CONTINUATION = re.compile(r"^#\s{4,}(?P<text>\S.*)$")


class TemplateFormatError(ValueError):
    """A template file whose header does not follow the format above."""


@dataclass(frozen=True)
class TemplateParameter:
    name: str
    description: str
    default_value: str = ""
    has_default: bool = False
    secret: bool = False

    @property
    def required(self) -> bool:
        return not self.has_default

    @property
    def type(self) -> int:
        return library_pb2.PARAMETER_TYPE_SECRET if self.secret else library_pb2.PARAMETER_TYPE_TEXT


@dataclass(frozen=True)
class TemplateSpec:
    """A template as the package ships it."""

    name: str
    description: str
    category: str
    template_version: int
    hook_type: int
    run_on: int
    timeout_seconds: int
    parameters: tuple[TemplateParameter, ...]
    content: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.content.encode("utf-8")).hexdigest()

    def parameter(self, name: str) -> TemplateParameter | None:
        return next((p for p in self.parameters if p.name == name), None)


def _header(lines: list[str]) -> list[str]:
    start = 1 if lines and lines[0].startswith("#!") else 0
    header = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        header.append(line.rstrip())
    return header


def parse_template(name: str, content: str) -> TemplateSpec:
    """Read a template's header. Raises TemplateFormatError saying what is wrong."""
    if not TEMPLATE_NAME.match(name):
        raise TemplateFormatError(f"{name}: a template name is lowercase [a-z0-9-]")
    description: list[str] = []
    keys: dict[str, str] = {}
    parameters: list[dict[str, object]] = []
    section = "description"
    for line in _header(content.splitlines()):
        if line == "#":
            section = "keys" if section in ("description", "parameters") else section
            continue
        if section == "description":
            description.append(line.removeprefix("#").strip())
        elif line == "# Parameters:":
            section = "parameters"
        elif section == "parameters" and (match := _PARAMETER.match(line)):
            default = match["quoted"] if match["quoted"] is not None else match["plain"]
            parameters.append(
                {
                    "name": match["name"],
                    "description": match["description"] or "",
                    "default_value": default or "",
                    "has_default": default is not None,
                    "secret": bool(match["secret"]),
                }
            )
        elif section == "parameters" and parameters and (match := _CONTINUATION.match(line)):
            text = str(parameters[-1]["description"])
            parameters[-1]["description"] = f"{text} {match['text']}".strip()
        elif section == "keys" and (match := _KEY.match(line)):
            keys[match[1]] = match[2].strip()
        # Anything else (notes after the parameters) is for people only.
    return _spec(name, content, " ".join(description), keys, parameters)


def _spec(
    name: str,
    content: str,
    description: str,
    keys: dict[str, str],
    parameters: list[dict[str, object]],
) -> TemplateSpec:
    def fail(problem: str) -> TemplateFormatError:
        return TemplateFormatError(f"{name}: {problem}")

    if not description:
        raise fail("the header starts with no description")
    for key in ("template_version", "category", "hook_type"):
        if not keys.get(key):
            raise fail(f"the header has no {key}")
    version = keys["template_version"]
    if not version.isdigit() or int(version) < 1:
        raise fail(f"template_version must be a positive integer, not {version!r}")
    if keys["hook_type"] not in HOOK_TYPES:
        raise fail(f"hook_type must be one of {', '.join(HOOK_TYPES)}")
    run_on = keys.get("run_on", "success")
    if run_on not in RUN_ONS:
        raise fail(f"run_on must be one of {', '.join(RUN_ONS)}")
    timeout = keys.get("timeout_seconds", str(DEFAULT_TIMEOUT_SECONDS))
    if not timeout.isdigit() or not 1 <= int(timeout) <= MAX_TIMEOUT_SECONDS:
        raise fail(f"timeout_seconds must be 1-{MAX_TIMEOUT_SECONDS}")
    names = [str(p["name"]) for p in parameters]
    if len(set(names)) != len(names):
        raise fail("a parameter is declared twice")
    if any(n.startswith("HOOKSHELF_") for n in names):
        raise fail("the HOOKSHELF_ prefix is reserved for the executor's variables")
    return TemplateSpec(
        name=name,
        description=description,
        category=keys["category"],
        template_version=int(version),
        hook_type=HOOK_TYPES[keys["hook_type"]],
        run_on=RUN_ONS[run_on],
        timeout_seconds=int(timeout),
        parameters=tuple(TemplateParameter(**p) for p in parameters),  # type: ignore[arg-type]  # p is a parsed dict; TemplateParameter checks its keys
        content=content,
    )


def load_file(path: Path) -> TemplateSpec:
    return parse_template(path.stem, path.read_text(encoding="utf-8"))


def load_catalog(directory: Path = TEMPLATES_DIR) -> tuple[TemplateSpec, ...]:
    """Every template of a directory, ordered by name, read now."""
    return tuple(load_file(path) for path in sorted(directory.glob("*.sh")))


@cache
def shipped() -> tuple[TemplateSpec, ...]:
    """The package's templates, read once per process (they do not change under it)."""
    return load_catalog(TEMPLATES_DIR)


def find(name: str) -> TemplateSpec | None:
    """A shipped template by name."""
    return next((t for t in shipped() if t.name == name), None)
