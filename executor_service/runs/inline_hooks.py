"""RunInlineHooks: legacy inline pre/post scripts with the semantics of a backup run.

PRE_BACKUP opens a run exactly as BeginBackup does — journal, lease, promise — but its
plans come from the request instead of the library: the pre script as one step
(on_error ABORT), the post script kept in the run's stored post plan (run_on
``post_run_on``, ALWAYS when unset, as legacy inline hooks ran; on_error CONTINUE). Both
contents go into the content cache by digest, so the post script survives a restart.
POST_BACKUP ends the run like EndBackup. Records carry trigger INLINE.

Either script may be empty (nothing to run on that side).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from executor_service.journal import KIND_INLINE
from executor_service.library.content_cache import ContentCache
from executor_service.runs.backup_runs import BackupRuns, BeginRequest, Started
from executor_service.runs.plans import Plans
from shared.errors import InvalidArgument, Violations
from shared.hook_policy import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_CONTENT_BYTES,
    check_enum,
    check_timeout,
)
from shared.stubs import library_pb2

PRE_NAME = "inline-pre"
POST_NAME = "inline-post"


@dataclass(frozen=True)
class InlineRequest:
    hook_type: int
    repository_id: str = ""
    job_id: str = ""
    repository_path: str = ""
    pre_script: str = ""
    post_script: str = ""
    pre_timeout_seconds: int = 0
    post_timeout_seconds: int = 0
    post_run_on: library_pb2.RunOn.ValueType = library_pb2.RUN_ON_UNSPECIFIED
    variables: Mapping[str, str] = field(default_factory=dict)
    lease_seconds: int = 0
    run_id: str = ""
    outcome: int = 0


class InlineHooks:
    def __init__(self, runs: BackupRuns, cache: ContentCache) -> None:
        self.runs = runs
        self.cache = cache

    async def start(self, request: InlineRequest) -> Started:
        check_enum("hook_type", request.hook_type, library_pb2.HookType.DESCRIPTOR)
        if request.hook_type == library_pb2.HOOK_TYPE_POST_BACKUP:
            return await self.runs.end(
                request.run_id, request.outcome, request.variables, kinds=(KIND_INLINE,)
            )
        begin = BeginRequest(
            repository_id=request.repository_id,
            job_id=request.job_id,
            repository_path=request.repository_path,
            variables=request.variables,
            lease_seconds=request.lease_seconds,
        )
        self._check(request, begin)
        plans = Plans(
            pre=self._plan(
                PRE_NAME,
                request.pre_script,
                request.pre_timeout_seconds,
                library_pb2.RUN_ON_ALWAYS,
                library_pb2.ON_ERROR_ABORT,
            ),
            post=self._plan(
                POST_NAME,
                request.post_script,
                request.post_timeout_seconds,
                request.post_run_on or library_pb2.RUN_ON_ALWAYS,
                library_pb2.ON_ERROR_CONTINUE,
            ),
        )
        return await self.runs.begin(
            begin,
            plans=plans,
            kind=KIND_INLINE,
            trigger=library_pb2.EXECUTION_TRIGGER_INLINE,
        )

    def _check(self, request: InlineRequest, begin: BeginRequest) -> None:
        """Every bad field at once, before any content is stored."""
        problems = Violations()
        try:
            self.runs.check_begin(begin)
        except InvalidArgument as error:
            problems.items.extend(error.violations)
        for name in ("pre_script", "post_script"):
            if len(getattr(request, name).encode()) > MAX_CONTENT_BYTES:
                problems.add(name, f"must be at most {MAX_CONTENT_BYTES} bytes")
        for name in ("pre_timeout_seconds", "post_timeout_seconds"):
            if getattr(request, name):
                try:
                    check_timeout(name, getattr(request, name))
                except InvalidArgument as error:
                    problems.items.extend(error.violations)
        try:
            check_enum(
                "post_run_on",
                request.post_run_on,
                library_pb2.RunOn.DESCRIPTOR,
                allow_unspecified=True,
            )
        except InvalidArgument as error:
            problems.items.extend(error.violations)
        problems.raise_if_any()

    def _plan(
        self,
        name: str,
        content: str,
        timeout: int,
        run_on: library_pb2.RunOn.ValueType,
        on_error: library_pb2.OnError.ValueType,
    ) -> list[library_pb2.PlanStep]:
        if not content.strip():
            return []
        return [
            library_pb2.PlanStep(
                script_name=name,
                digest=self.cache.put(content.encode("utf-8")),
                timeout_seconds=timeout or DEFAULT_TIMEOUT_SECONDS,
                run_on=run_on,
                on_error=on_error,
            )
        ]
