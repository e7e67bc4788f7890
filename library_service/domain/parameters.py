"""Script parameters: the values a script takes from its environment.

A script declares a parameter by referring to it in its content as ``${NAME}`` (required:
an assignment must give a value) or ``${NAME:-default}`` (optional). A request may also
declare parameters explicitly, to make one a SECRET, describe it, give or change its
default, or declare one the content does not spell in those two forms.

Decisions (for the docs):
- Only those two forms declare. ``$NAME``, ``${NAME-x}``, ``${NAME:=x}``, ``${#NAME}`` and
  the like are left alone (declare such parameters explicitly): they are too often local
  shell variables. Lower-case names never match ``[A-Z_][A-Z0-9_]*``.
- ``HOOKSHELF_*`` references are the executor's system variables, and the variables the
  executor or bash itself always set (PATH, HOME, LANG, PWD, ...) are not parameters
  either. Declaring a ``HOOKSHELF_*`` parameter explicitly is INVALID_ARGUMENT.
- A ``${`` preceded by a backslash is escaped text, not a reference.
- A name used several times has a default when any use gives one (the first such default
  wins). Defaults are kept as written: ``${A:-${B}}`` gives A the default ``${B}`` and
  declares B as well.
- Order: first appearance in the content, then explicit-only parameters in request order.

Stored form (``scripts.parameters`` JSON), one dict per parameter: ``name``, ``type``
(ParameterType number), ``default_value``, ``has_default``, ``required``,
``description``, plus ``explicit`` / ``explicit_default`` recording what the request
declared, so a later content change re-derives the list without losing declarations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from library_service.domain.validation import MAX_DESCRIPTION_LENGTH, check_text
from shared.errors import Violations
from shared.hook_policy import check_enum
from shared.stubs import library_pb2

PARAMETER_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
RESERVED_PREFIX = "HOOKSHELF_"
MAX_PARAMETER_NAME_LENGTH = 255
MAX_DEFAULT_LENGTH = 65_536
TEXT = library_pb2.PARAMETER_TYPE_TEXT
SECRET = library_pb2.PARAMETER_TYPE_SECRET

# Set for every step by the executor (DESIGN §2) or by bash itself: never parameters.
SYSTEM_VARIABLES = frozenset(
    {
        "PATH", "HOME", "LANG", "PWD", "OLDPWD", "IFS", "RANDOM", "SECONDS", "LINENO",
        "HOSTNAME", "HOSTTYPE", "OSTYPE", "MACHTYPE", "UID", "EUID", "PPID", "SHLVL",
        "BASHPID", "FUNCNAME", "GROUPS", "PIPESTATUS", "EPOCHSECONDS", "EPOCHREALTIME",
        "SRANDOM", "REPLY", "OPTARG", "OPTIND",
    }
)  # fmt: skip
_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(\}|:-)")


@dataclass(frozen=True)
class ParameterSpec:
    """A parameter as a request declares it explicitly."""

    name: str
    type: int = TEXT
    description: str = ""
    default_value: str = ""
    has_default: bool = False


@dataclass(frozen=True)
class Reference:
    """A parameter as the content declares it."""

    name: str
    has_default: bool
    default_value: str


def _default_end(content: str, start: int) -> int | None:
    """Index of the ``}`` closing a default that starts at ``start``, counting nested
    ``${...}``; None when the expansion is never closed."""
    depth = 0
    index = start
    while index < len(content):
        char = content[index]
        if char == "\\":
            index += 2
            continue
        if content.startswith("${", index):
            depth += 1
            index += 2
            continue
        if char == "}":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    return None


def _is_parameter_name(name: str) -> bool:
    return not name.startswith(RESERVED_PREFIX) and name not in SYSTEM_VARIABLES


def parse_references(content: str) -> list[Reference]:
    """The parameters ``content`` declares, in order of first appearance."""
    found: dict[str, Reference] = {}
    for match in _REFERENCE.finditer(content):
        if match.start() > 0 and content[match.start() - 1] == "\\":
            continue
        name, operator = match.group(1), match.group(2)
        if not _is_parameter_name(name):
            continue
        if operator == "}":
            reference = Reference(name, False, "")
        else:
            end = _default_end(content, match.end())
            if end is None:  # unterminated: bash would reject it, so it declares nothing
                continue
            reference = Reference(name, True, content[match.end() : end])
        known = found.get(name)
        # The first use keeps its place; a later default fills in a missing one.
        if known is None or (reference.has_default and not known.has_default):
            found[name] = reference
    return list(found.values())


def check_specs(field: str, specs: Sequence[ParameterSpec]) -> list[ParameterSpec]:
    """Validates explicit declarations; ``field`` is the repeated field's path
    (``script.parameters``) and each problem names its element (``...[2].name``)."""
    problems = Violations()
    seen: set[str] = set()
    checked: list[ParameterSpec] = []
    for index, spec in enumerate(specs):
        path = f"{field}[{index}]"
        name = spec.name
        if not name:
            problems.add(f"{path}.name", "is required")
        elif len(name) > MAX_PARAMETER_NAME_LENGTH or not PARAMETER_NAME.match(name):
            problems.add(f"{path}.name", "must match [A-Z_][A-Z0-9_]* (at most 255 characters)")
        elif name.startswith(RESERVED_PREFIX):
            problems.add(f"{path}.name", f"the {RESERVED_PREFIX} prefix is reserved")
        elif name in seen:
            problems.add(f"{path}.name", f"declares {name} a second time")
        seen.add(name)
        problems.check(
            check_enum,
            f"{path}.type",
            spec.type,
            library_pb2.ParameterType.DESCRIPTOR,
            allow_unspecified=True,
        )
        problems.check(check_text, f"{path}.description", spec.description, MAX_DESCRIPTION_LENGTH)
        problems.check(check_text, f"{path}.default_value", spec.default_value, MAX_DEFAULT_LENGTH)
        if spec.type == SECRET and spec.has_default and spec.default_value:
            # Declarations are stored and returned in the clear: a secret's value belongs
            # on the assignment, where it is encrypted and masked.
            problems.add(
                f"{path}.default_value",
                "a SECRET parameter cannot declare a default; give its value on the assignment",
            )
        checked.append(
            ParameterSpec(
                name=name,
                type=spec.type or TEXT,
                description=spec.description,
                default_value=spec.default_value if spec.has_default else "",
                has_default=spec.has_default,
            )
        )
    problems.raise_if_any()
    return checked


def derive(content: str, explicit: Iterable[ParameterSpec]) -> list[dict[str, Any]]:
    """The stored parameter list: the content's references merged with the explicit
    declarations (which set type and description, and override the default when they
    give one)."""
    declared = {spec.name: spec for spec in explicit}
    stored: list[dict[str, Any]] = []

    def entry(name: str, has_default: bool, default: str, spec: ParameterSpec | None) -> None:
        if spec is not None and spec.has_default:
            has_default, default = True, spec.default_value
        stored.append(
            {
                "name": name,
                "type": spec.type if spec else TEXT,
                "default_value": default if has_default else "",
                "has_default": has_default,
                "required": not has_default,
                "description": spec.description if spec else "",
                "explicit": spec is not None,
                "explicit_default": bool(spec and spec.has_default),
            }
        )

    references = parse_references(content)
    for reference in references:
        entry(
            reference.name,
            reference.has_default,
            reference.default_value,
            declared.pop(reference.name, None),
        )
    for spec in declared.values():
        entry(spec.name, False, "", spec)
    return stored


def explicit_of(stored: Iterable[dict[str, Any]]) -> list[ParameterSpec]:
    """The explicit declarations a stored list was derived with."""
    return [
        ParameterSpec(
            name=item["name"],
            type=item.get("type", TEXT),
            description=item.get("description", ""),
            default_value=item.get("default_value", "") if item.get("explicit_default") else "",
            has_default=bool(item.get("explicit_default")),
        )
        for item in stored
        if item.get("explicit")
    ]


def rederive(content: str, stored: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored list for new content, keeping the explicit declarations."""
    return derive(content, explicit_of(stored))


def secret_names(stored: Iterable[dict[str, Any]]) -> set[str]:
    """Names of the SECRET parameters of a stored list (whose values must be masked)."""
    return {item["name"] for item in stored if item.get("type") == SECRET}
