"""The step environment is built from scratch, in layers, with validated names."""

from __future__ import annotations

import pytest

from executor_service.runner.environment import (
    BASE_PATH,
    build_environment,
    check_variable_name,
)
from shared.errors import InvalidArgument


def test_base_layers_and_precedence() -> None:
    env = build_environment(
        system={"HOOKSHELF_RUN_ID": "run-1"},
        variables={"LANG": "de_DE.UTF-8", "SHARED": "variable", "ONLY_VAR": "v"},
        parameters={"SHARED": "parameter", "ONLY_PARAM": "p"},
    )
    assert env == {
        "PATH": BASE_PATH,
        "LANG": "de_DE.UTF-8",  # variables may override the base
        "SHARED": "parameter",  # parameters win over variables
        "ONLY_VAR": "v",
        "ONLY_PARAM": "p",
        "HOOKSHELF_RUN_ID": "run-1",
    }


def test_server_environment_is_not_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_ONLY_TOKEN", "leak")
    env = build_environment(system={}, variables={}, parameters={})
    assert env == {"PATH": BASE_PATH, "LANG": "C.UTF-8"}


@pytest.mark.parametrize("name", ["FOO", "_FOO", "A1_B2", "_"])
def test_valid_names(name: str) -> None:
    check_variable_name("variables", name)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("foo", "not a valid name"),
        ("1FOO", "not a valid name"),
        ("FOO-BAR", "not a valid name"),
        ("", "not a valid name"),
        ("FOO\n", "not a valid name"),
        ("HOOKSHELF_RUN_ID", "reserved"),
        ("A" * 256, "at most"),
    ],
)
def test_invalid_names(name: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_variable_name("variables[x]", name)
    assert caught.value.violations[0].field == "variables[x]"
    assert why in caught.value.violations[0].description


def test_variables_cannot_set_system_names() -> None:
    with pytest.raises(InvalidArgument) as caught:
        build_environment(system={}, variables={"HOOKSHELF_RUN_ID": "forged"}, parameters={})
    assert caught.value.violations[0].field == "variables[HOOKSHELF_RUN_ID]"


def test_parameters_are_checked_too() -> None:
    with pytest.raises(InvalidArgument) as caught:
        build_environment(system={}, variables={}, parameters={"bad name": "x"})
    assert caught.value.violations[0].field == "parameters[bad name]"


def test_nul_in_value_rejected() -> None:
    with pytest.raises(InvalidArgument, match="NUL"):
        build_environment(system={}, variables={"FOO": "a\x00b"}, parameters={})


def test_system_variables_must_be_in_the_namespace() -> None:
    with pytest.raises(ValueError, match="HOOKSHELF_"):
        build_environment(system={"RUN_ID": "x"}, variables={}, parameters={})
