"""Which secret values a plan may carry, for whom and over what (DESIGN Stage 2 "Trust").

Decrypted secret values leave the library only to a caller that receives secrets (the
executor role: ``shared/roles.py`` ``receives_secrets``), and only over a channel
nobody else can read: TLS, a unix socket or loopback. Any other caller gets the plan with
every secret value masked, as ``hookshelf plan`` shows it; a caller that would receive
secrets over another channel gets FAILED_PRECONDITION saying why, never the values. A
plan without secret values is the same for everyone, over any channel.

The servicer tells who is asking as a plain ``PlanAudience``; no grpc here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from library_service.domain.plans import PlanStep, resolve_plan
from library_service.domain.secrets import MASK, SecretCipher
from shared.errors import FailedPrecondition


@dataclass(frozen=True)
class PlanAudience:
    """Who a plan is for, as far as its secrets are concerned."""

    receives_secrets: bool
    # TLS, a unix socket or loopback.
    secure_channel: bool


class SecretsNeedSecureChannel(FailedPrecondition):
    reason = "SECRETS_NEED_SECURE_CHANNEL"


def _masked(step: PlanStep) -> PlanStep:
    values = {
        name: MASK if name in step.secret_parameter_names else value
        for name, value in step.parameter_values.items()
    }
    return dataclasses.replace(step, parameter_values=values)


def deliver(steps: list[PlanStep], audience: PlanAudience) -> list[PlanStep]:
    """The steps as ``audience`` may have them; SecretsNeedSecureChannel when they hold
    secret values for a caller on a channel others could read."""
    if not audience.receives_secrets:
        return [_masked(step) for step in steps]
    holding = [step for step in steps if step.secret_parameter_names]
    if holding and not audience.secure_channel:
        first = holding[0]
        raise SecretsNeedSecureChannel(
            "the plan holds secret values, which the library sends only over TLS, a unix "
            "socket or loopback; this call came over none of these (connect the executor "
            "to the library over TLS, or run it on the same host)",
            metadata={
                "assignment_id": first.assignment_id,
                "parameters": ",".join(first.secret_parameter_names),
            },
        )
    return steps


async def resolve_plan_for(
    audience: PlanAudience,
    session: AsyncSession,
    repository_id: str,
    hook_type: int,
    cipher: SecretCipher | None = None,
    inline_content_max_bytes: int = 0,
) -> list[PlanStep]:
    """``plans.resolve_plan``, delivered to ``audience``. The plan is resolved (and its
    secrets decrypted) for every caller, so a plan the executor could not run fails the
    same way for whoever looks at it."""
    steps = await resolve_plan(session, repository_id, hook_type, cipher, inline_content_max_bytes)
    return deliver(steps, audience)
