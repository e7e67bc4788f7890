"""The plan rules without gRPC or a database: which post hooks run for which outcome,
and how a step's effective settings are resolved."""

from __future__ import annotations

import itertools

import pytest

from library_service.domain import plans
from library_service.domain.assignments import ParameterValueRequired
from library_service.store import models
from shared import hook_policy
from shared.stubs import library_pb2 as pb

RUN_ONS = [pb.RUN_ON_SUCCESS, pb.RUN_ON_WARNING, pb.RUN_ON_FAILURE, pb.RUN_ON_ALWAYS]
OUTCOMES = [
    pb.BACKUP_OUTCOME_SUCCESS,
    pb.BACKUP_OUTCOME_WARNING,
    pb.BACKUP_OUTCOME_FAILURE,
    pb.BACKUP_OUTCOME_CANCELLED,
    pb.BACKUP_OUTCOME_ABORTED,
    pb.BACKUP_OUTCOME_SKIPPED,
]
S, W, F, C, A, K = OUTCOMES
# DESIGN §2, spelled out cell by cell: run_on -> the outcomes it runs for.
EXPECTED = {
    pb.RUN_ON_SUCCESS: {S},
    pb.RUN_ON_WARNING: {W},
    pb.RUN_ON_FAILURE: {F, C, A},
    pb.RUN_ON_ALWAYS: {S, W, F, C, A, K},
}


@pytest.mark.parametrize(("run_on", "outcome"), list(itertools.product(RUN_ONS, OUTCOMES)))
def test_run_on_matches_every_cell_of_the_table(run_on: int, outcome: int) -> None:
    assert hook_policy.run_on_matches(run_on, outcome) is (outcome in EXPECTED[run_on])


def test_every_enum_value_is_covered_by_the_table() -> None:
    assert set(RUN_ONS) == set(pb.RunOn.values()) - {pb.RUN_ON_UNSPECIFIED}
    assert set(OUTCOMES) == set(pb.BackupOutcome.values()) - {pb.BACKUP_OUTCOME_UNSPECIFIED}


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_unspecified_run_on_is_the_default_success(outcome: int) -> None:
    assert hook_policy.run_on_matches(pb.RUN_ON_UNSPECIFIED, outcome) is (outcome == S)


def test_skipped_matches_always_only() -> None:
    assert [r for r in RUN_ONS if hook_policy.run_on_matches(r, K)] == [pb.RUN_ON_ALWAYS]


@pytest.mark.parametrize(
    ("run_on", "outcome"),
    [
        (pb.RUN_ON_SUCCESS, pb.BACKUP_OUTCOME_UNSPECIFIED),
        (pb.RUN_ON_ALWAYS, pb.BACKUP_OUTCOME_UNSPECIFIED),
        (pb.RUN_ON_SUCCESS, 99),
        (99, pb.BACKUP_OUTCOME_SUCCESS),
    ],
)
def test_unknown_values_are_a_programming_error(run_on: int, outcome: int) -> None:
    with pytest.raises(ValueError):
        hook_policy.run_on_matches(run_on, outcome)


def _script(**overrides) -> models.Script:
    fields = {
        "id": "s-1",
        "name": "dump",
        "current_digest": "sha256:" + "0" * 64,
        "default_timeout_seconds": 300,
        "default_run_on": pb.RUN_ON_SUCCESS,
        "parameters": [],
    }
    fields.update(overrides)
    return models.Script(**fields)


def _assignment(**overrides) -> models.Assignment:
    fields = {
        "id": "a-1",
        "repository_id": "repo",
        "script_id": "s-1",
        "hook_type": pb.HOOK_TYPE_POST_BACKUP,
        "execution_order": 10,
        "enabled": True,
        "custom_timeout_seconds": None,
        "custom_run_on": None,
        "on_error": None,
        "parameter_values": {},
    }
    fields.update(overrides)
    return models.Assignment(**fields)


def test_effective_settings_fall_back_to_the_script_then_the_hook_type() -> None:
    script = _script(default_timeout_seconds=120, default_run_on=pb.RUN_ON_ALWAYS)
    pre = _assignment(hook_type=pb.HOOK_TYPE_PRE_BACKUP)
    post = _assignment(hook_type=pb.HOOK_TYPE_POST_BACKUP)
    assert plans.effective_timeout(script, post) == 120
    assert plans.effective_run_on(script, post) == pb.RUN_ON_ALWAYS
    assert plans.effective_on_error(pre.hook_type, pre) == pb.ON_ERROR_ABORT
    assert plans.effective_on_error(post.hook_type, post) == pb.ON_ERROR_CONTINUE
    # A script without a default run_on runs on SUCCESS.
    assert plans.effective_run_on(_script(default_run_on=0), post) == pb.RUN_ON_SUCCESS


def test_assignment_overrides_win() -> None:
    script = _script(default_timeout_seconds=120, default_run_on=pb.RUN_ON_ALWAYS)
    row = _assignment(
        hook_type=pb.HOOK_TYPE_PRE_BACKUP,
        custom_timeout_seconds=5,
        custom_run_on=pb.RUN_ON_FAILURE,
        on_error=pb.ON_ERROR_SKIP_BACKUP,
    )
    step = plans.plan_step(script, row)
    assert (step.timeout_seconds, step.run_on, step.on_error) == (
        5,
        pb.RUN_ON_FAILURE,
        pb.ON_ERROR_SKIP_BACKUP,
    )


def test_parameter_values_overlay_defaults_and_name_the_secrets() -> None:
    script = _script(
        parameters=[
            {
                "name": "HOST",
                "type": pb.PARAMETER_TYPE_TEXT,
                "default_value": "localhost",
                "has_default": True,
            },
            {
                "name": "PORT",
                "type": pb.PARAMETER_TYPE_TEXT,
                "default_value": "5432",
                "has_default": True,
            },
            {
                "name": "PASSWORD",
                "type": pb.PARAMETER_TYPE_SECRET,
                "default_value": "",
                "has_default": False,
            },
            {
                "name": "TOKEN",
                "type": pb.PARAMETER_TYPE_SECRET,
                "default_value": "",
                "has_default": False,
            },
        ]
    )
    row = _assignment(parameter_values={"PORT": "6543", "PASSWORD": "hunter2", "EXTRA": "1"})

    values = plans.resolve_parameter_values(script, row)

    assert values == {"HOST": "localhost", "PORT": "6543", "PASSWORD": "hunter2", "EXTRA": "1"}
    # TOKEN has no value, so there is nothing of it to redact.
    assert plans.secret_parameter_names(script, values) == ["PASSWORD"]
    # A required parameter without a value makes the plan FAILED_PRECONDITION (issue 5).
    with pytest.raises(ParameterValueRequired, match="TOKEN"):
        plans.plan_step(script, row)
    row.parameter_values = {**row.parameter_values, "TOKEN": "t0ken"}
    assert plans.plan_step(script, row).secret_parameter_names == ["PASSWORD", "TOKEN"]
