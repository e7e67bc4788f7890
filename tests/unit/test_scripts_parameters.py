"""Parameter parsing and merging (domain.parameters), without gRPC."""

from __future__ import annotations

import pytest

from library_service.domain.parameters import (
    SECRET,
    TEXT,
    ParameterSpec,
    Reference,
    check_specs,
    derive,
    explicit_of,
    parse_references,
    rederive,
    secret_names,
)
from shared.errors import InvalidArgument


def test_plain_and_defaulted_references_in_order_of_first_use() -> None:
    content = 'echo "${B:-two words}" ${A} ${B} ${C:-}'

    assert parse_references(content) == [
        Reference("B", True, "two words"),
        Reference("A", False, ""),
        Reference("C", True, ""),
    ]


def test_a_later_default_fills_in_and_the_first_default_wins() -> None:
    assert parse_references("${A} ${A:-x} ${A:-y}") == [Reference("A", True, "x")]


def test_nested_defaults_are_kept_as_written_and_declare_the_inner_name() -> None:
    assert parse_references("${A:-${B:-b}/sub}") == [
        Reference("A", True, "${B:-b}/sub"),
        Reference("B", True, "b"),
    ]


@pytest.mark.parametrize(
    "content",
    [
        "$PLAIN",
        "${lower}",
        "${9STARTS_WITH_DIGIT}",
        "${A-no colon}",
        "${A:=assign}",
        "${#A}",
        "${A%suffix}",
        r"\${ESCAPED}",
        "${UNTERMINATED:-oops",
        "${HOOKSHELF_RUN_ID} ${HOOKSHELF_OUTPUT:-x}",
        "${PATH} ${HOME} ${LANG} ${PWD} ${RANDOM}",
    ],
)
def test_other_expansions_and_system_variables_declare_nothing(content: str) -> None:
    assert parse_references(content) == []


def test_derive_merges_explicit_declarations() -> None:
    stored = derive(
        "${USER} ${PASSWORD} ${PORT:-5432}",
        [
            ParameterSpec("PASSWORD", SECRET, "db password"),
            ParameterSpec("PORT", TEXT, "", "6543", True),
            ParameterSpec("ONLY_EXPLICIT", TEXT, "not in the content"),
        ],
    )

    assert [
        (p["name"], p["type"], p["default_value"], p["has_default"], p["required"]) for p in stored
    ] == [
        ("USER", TEXT, "", False, True),
        ("PASSWORD", SECRET, "", False, True),
        ("PORT", TEXT, "6543", True, False),
        ("ONLY_EXPLICIT", TEXT, "", False, True),
    ]
    assert secret_names(stored) == {"PASSWORD"}


def test_rederive_keeps_declarations_but_follows_the_content() -> None:
    stored = derive(
        "${A:-1} ${B}", [ParameterSpec("A", SECRET), ParameterSpec("B", TEXT, "", "x", True)]
    )

    again = rederive("${A:-2} ${C}", stored)

    assert [(p["name"], p["type"], p["default_value"]) for p in again] == [
        ("A", SECRET, "2"),  # the content's new default: the declaration gave none
        ("C", TEXT, ""),
        ("B", TEXT, "x"),  # declared with a default: stays, though the content dropped it
    ]
    assert explicit_of(again) == [
        ParameterSpec("A", SECRET),
        ParameterSpec("B", TEXT, "", "x", True),
    ]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (ParameterSpec(""), "p[0].name"),
        (ParameterSpec("lower"), "p[0].name"),
        (ParameterSpec("HAS-DASH"), "p[0].name"),
        (ParameterSpec("HOOKSHELF_X"), "p[0].name"),
        (ParameterSpec("A" * 256), "p[0].name"),
        (ParameterSpec("A", type=9), "p[0].type"),
        (ParameterSpec("A", description="\x00"), "p[0].description"),
        (ParameterSpec("A", default_value="x" * 70_000, has_default=True), "p[0].default_value"),
    ],
)
def test_bad_declarations_name_their_field(spec: ParameterSpec, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_specs("p", [spec])
    assert [v.field for v in caught.value.violations] == [field]


def test_every_bad_declaration_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_specs("p", [ParameterSpec("A"), ParameterSpec("A"), ParameterSpec("b", type=9)])
    assert [v.field for v in caught.value.violations] == ["p[1].name", "p[2].name", "p[2].type"]


def test_unspecified_type_is_text_and_a_default_without_has_default_is_dropped() -> None:
    assert check_specs("p", [ParameterSpec("A", 0, "", "ignored", False)]) == [
        ParameterSpec("A", TEXT, "", "", False)
    ]
