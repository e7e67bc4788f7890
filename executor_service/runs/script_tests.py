"""TestScript: one script, run as production would run it, for a simulated hook and outcome.

The same chain machinery as a backup run (verified cache, environment from scratch,
timeout and process-tree kill, output streaming, recording), for a single step with no
run behind it: no lease, no promise. The record's trigger is TEST (history, not usage).

Decisions:
- A library script runs its *current* version; its declared parameter defaults apply
  under the request's values, and its SECRET parameters are redacted from the output.
- The step always runs whatever the simulated outcome (a test of a FAILURE-only post
  hook must be able to run it); the outcome only sets HOOKSHELF_BACKUP_STATUS. The
  summary's verdict for a pre hook is what production's default policy would say.
- The client cancelling the stream kills the step (CANCELLED, recorded).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from executor_service.chains.chain_runner import (
    PRE,
    ChainContext,
    ChainRunner,
    ChainStep,
)
from executor_service.chains.control import ChainControl, Lifecycle, StopReason
from executor_service.chains.events import EventStream
from executor_service.chains.summaries import summary
from executor_service.chains.variables import check_variables
from executor_service.clock import Clock, iso_utc
from executor_service.library.content_cache import ContentCache
from executor_service.library.port import LibraryPort
from executor_service.runs.admission import Admission, Slot
from executor_service.runs.backup_runs import Started
from executor_service.tasks import TaskKeeper
from shared.errors import InvalidArgument, Violations
from shared.hook_policy import (
    DEFAULT_ON_ERROR,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_CONTENT_BYTES,
    MAX_ID_LENGTH,
    check_enum,
    check_timeout,
)
from shared.stubs import executor_pb2, library_pb2

log = structlog.get_logger("hookshelf.executor.tests")


@dataclass(frozen=True)
class TestRequest:
    script_id: str = ""
    content: str = ""
    hook_type: library_pb2.HookType.ValueType = library_pb2.HOOK_TYPE_UNSPECIFIED
    simulated_outcome: library_pb2.BackupOutcome.ValueType = library_pb2.BACKUP_OUTCOME_UNSPECIFIED
    variables: Mapping[str, str] = field(default_factory=dict)
    parameter_values: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int = 0
    repository_id: str = ""


def check_content(field_name: str, content: str) -> bytes:
    data = content.encode("utf-8")
    if not data.strip():
        raise InvalidArgument(field_name, "is required and must not be blank")
    if len(data) > MAX_CONTENT_BYTES:
        raise InvalidArgument(field_name, f"must be at most {MAX_CONTENT_BYTES} bytes")
    return data


class ScriptTests:
    def __init__(
        self,
        *,
        library: LibraryPort,
        cache: ContentCache,
        chains: ChainRunner,
        clock: Clock,
        lifecycle: Lifecycle,
        tasks: TaskKeeper,
        admission: Admission,
    ) -> None:
        self.library = library
        self.cache = cache
        self.chains = chains
        self.clock = clock
        self.lifecycle = lifecycle
        self.tasks = tasks
        self.admission = admission

    def _check(
        self, request: TestRequest
    ) -> tuple[library_pb2.HookType.ValueType, library_pb2.BackupOutcome.ValueType]:
        problems = Violations()
        hook_type = request.hook_type or PRE
        outcome = request.simulated_outcome or library_pb2.BACKUP_OUTCOME_SUCCESS
        checks = [
            lambda: check_enum("hook_type", hook_type, library_pb2.HookType.DESCRIPTOR),
            lambda: check_enum("simulated_outcome", outcome, library_pb2.BackupOutcome.DESCRIPTOR),
            lambda: check_variables("variables", request.variables),
            lambda: check_variables("parameter_values", request.parameter_values),
        ]
        if request.timeout_seconds:
            checks.append(lambda: check_timeout("timeout_seconds", request.timeout_seconds))
        if request.content:
            checks.append(lambda: check_content("content", request.content))
        elif not request.script_id:
            problems.add("script_id", "a script_id or inline content is required")
        for check in checks:
            try:
                check()
            except InvalidArgument as error:
                problems.items.extend(error.violations)
        if len(request.repository_id) > MAX_ID_LENGTH:
            problems.add("repository_id", f"must be at most {MAX_ID_LENGTH} characters")
        problems.raise_if_any()
        return hook_type, outcome

    async def _step(self, request: TestRequest, hook_type: int) -> ChainStep:
        """The step to run: the library script's current version, or the inline content."""
        if request.content:
            digest = self.cache.put(request.content.encode("utf-8"))
            return ChainStep(
                index=0,
                script_id="",
                script_name="inline-test",
                digest=digest,
                timeout_seconds=request.timeout_seconds or DEFAULT_TIMEOUT_SECONDS,
                run_on=library_pb2.RUN_ON_ALWAYS,
                on_error=DEFAULT_ON_ERROR[hook_type],
                parameter_values=dict(request.parameter_values),
            )
        try:
            script = await self.library.get_script(request.script_id)
        except InvalidArgument as error:
            # The library judged its own field (``id``); to this caller it is script_id.
            raise InvalidArgument("script_id", error.violations[0].description) from None
        digest = self.cache.put(script.content.encode("utf-8"))
        values = {p.name: p.default_value for p in script.parameters if p.has_default}
        values.update(request.parameter_values)
        secrets = tuple(
            p.name
            for p in script.parameters
            if p.type == library_pb2.PARAMETER_TYPE_SECRET and p.name in values
        )
        return ChainStep(
            index=0,
            script_id=script.id,
            script_name=script.name,
            digest=digest,
            timeout_seconds=(
                request.timeout_seconds or script.default_timeout_seconds or DEFAULT_TIMEOUT_SECONDS
            ),
            run_on=library_pb2.RUN_ON_ALWAYS,
            on_error=DEFAULT_ON_ERROR[hook_type],
            parameter_values=values,
            secret_names=secrets,
        )

    async def start(self, request: TestRequest) -> Started:
        hook_type, outcome = self._check(request)
        slot = self.admission.admit()
        try:
            step = await self._step(request, hook_type)
        except BaseException:
            slot.release()
            raise
        ctx = ChainContext(
            run_id=f"test-{uuid.uuid4()}",
            repository_id=request.repository_id,
            hook_type=hook_type,
            trigger=library_pb2.EXECUTION_TRIGGER_TEST,
            backup_date=iso_utc(self.clock.now()),
            outcome=outcome if hook_type != PRE else library_pb2.BACKUP_OUTCOME_UNSPECIFIED,
            variables=dict(request.variables),
        )
        stream = EventStream(ctx.run_id)
        control = self.lifecycle.control()
        self.tasks.spawn(self._drive(ctx, step, stream, control, slot), name=ctx.run_id)
        return Started(stream, client_gone=lambda: control.stop(StopReason.CLIENT))

    async def _drive(
        self,
        ctx: ChainContext,
        step: ChainStep,
        stream: EventStream,
        control: ChainControl,
        slot: Slot,
    ) -> None:
        error: BaseException | None = None
        try:
            result = await self.chains.run(ctx, [step], stream, control)
            await stream.emit(
                summary=summary(
                    [result],
                    verdict=(
                        result.verdict if ctx.hook_type == PRE else executor_pb2.VERDICT_UNSPECIFIED
                    ),
                    outcome=ctx.outcome,
                    post_chain_ran=False,
                    run_state=executor_pb2.RUN_STATE_UNSPECIFIED,
                    message="test run (recorded as a test)",
                )
            )
        except Exception as failure:  # reported on the stream, logged
            log.exception("test.failed", run_id=ctx.run_id)
            error = failure
        finally:
            control.release()
            slot.release()
            await stream.close(error)
