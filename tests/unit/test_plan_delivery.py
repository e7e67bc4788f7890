"""Secret values in a plan: decrypted only for a caller that receives secrets, over a
secure channel; masked for everyone else."""

from __future__ import annotations

import pytest

from library_service.domain.plan_delivery import PlanAudience, SecretsNeedSecureChannel, deliver
from library_service.domain.plans import PlanStep
from library_service.domain.secrets import MASK


def step(values: dict[str, str], secret: list[str]) -> PlanStep:
    return PlanStep(
        assignment_id="a1",
        script_id="s1",
        script_name="dump",
        digest="d",
        timeout_seconds=30,
        run_on=1,
        on_error=1,
        execution_order=0,
        parameter_values=values,
        secret_parameter_names=secret,
    )


SECRET = step({"HOST": "db", "PASSWORD": "hunter2"}, ["PASSWORD"])
PLAIN = step({"HOST": "db"}, [])


def test_the_executor_on_a_secure_channel_gets_the_values() -> None:
    (got,) = deliver([SECRET], PlanAudience(receives_secrets=True, secure_channel=True))
    assert got.parameter_values == {"HOST": "db", "PASSWORD": "hunter2"}


@pytest.mark.parametrize("secure", [True, False])
def test_anyone_else_gets_them_masked_over_any_channel(secure: bool) -> None:
    (got,) = deliver([SECRET], PlanAudience(receives_secrets=False, secure_channel=secure))
    assert got.parameter_values == {"HOST": "db", "PASSWORD": MASK}
    assert got.secret_parameter_names == ["PASSWORD"]


def test_secrets_for_the_executor_over_an_open_network_are_refused_saying_why() -> None:
    with pytest.raises(SecretsNeedSecureChannel, match="TLS, a unix socket or loopback") as e:
        deliver([PLAIN, SECRET], PlanAudience(receives_secrets=True, secure_channel=False))
    assert e.value.metadata == {"assignment_id": "a1", "parameters": "PASSWORD"}
    assert "hunter2" not in e.value.message


def test_a_plan_without_secrets_goes_anywhere() -> None:
    audience = PlanAudience(receives_secrets=True, secure_channel=False)
    assert deliver([PLAIN], audience) == [PLAIN]
