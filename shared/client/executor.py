"""Typed async client for hookshelf.executor.v1.HookExecutorService.

Streams come back as ``HookStream``: iterate it for the ``HookEvent``s; afterwards
``stream.summary`` holds the summary and ``stream.run_id`` the run. When a backup stream
is lost after the run is known (executor restart, network, stream deadline), the stream
reattaches through ``GetBackupRun`` and still ends with exactly one summary event, taken
from the run's record (``stream.reattached`` is then true; the lost output is in the
library's history).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc

from shared.client.channel import DEFAULT_TIMEOUT, BaseClient
from shared.client.errors import HookshelfCallError
from shared.client.tls import ClientTls
from shared.error_details import ErrorDetails
from shared.stubs import executor_pb2 as pb
from shared.stubs import executor_pb2_grpc, library_pb2

# A hook chain may run for hours; the stream deadline only bounds one attachment, a
# backup stream that hits it reattaches.
DEFAULT_STREAM_TIMEOUT = 3600.0
DEFAULT_LEASE_SECONDS = 600  # the executor's default when none is asked for
# Codes that mean "the stream is gone", not "the request was refused".
_LOST = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}
_PRE_DONE = {pb.RUN_STATE_AWAITING_END, pb.RUN_STATE_ENDED}


def summary_from_run(run: pb.BackupRun, *, pre: bool) -> pb.HookEvent:
    """The summary event of a chain as the run's record holds it."""
    kept = run.pre_summary if pre else run.post_summary
    summary = pb.SummaryEvent()
    if (pre and run.HasField("pre_summary")) or (not pre and run.HasField("post_summary")):
        summary.CopyFrom(kept)
    else:
        summary.verdict, summary.outcome = run.verdict, run.outcome
        summary.post_chain_ran = run.state == pb.RUN_STATE_ENDED
        summary.message = (
            f"from the run's record: verdict {pb.Verdict.Name(run.verdict)}, "
            f"outcome {library_pb2.BackupOutcome.Name(run.outcome)}"
        )
    summary.run_state = run.state
    return pb.HookEvent(run_id=run.run_id, summary=summary)


class HookStream:
    """The events of one chain; reattaches through ``recover`` when the stream is lost."""

    def __init__(
        self,
        client: ExecutorClient,
        method: str,
        request: Any,
        *,
        recover: Callable[[str], AsyncIterator[pb.HookEvent]] | None = None,
        run_id: str = "",
    ) -> None:
        self._client = client
        self._method = method
        self._request = request
        self._recover = recover
        self.run_id = run_id
        self.summary: pb.SummaryEvent | None = None
        self.reattached = False

    def __aiter__(self) -> AsyncIterator[pb.HookEvent]:
        return self._events()

    def _seen(self, event: pb.HookEvent) -> pb.HookEvent:
        self.run_id = self.run_id or event.run_id
        if event.HasField("summary"):
            self.summary = event.summary
        return event

    async def _events(self) -> AsyncIterator[pb.HookEvent]:
        client = self._client
        call = getattr(client.stub, self._method)(
            self._request, timeout=client.stream_timeout, metadata=client.metadata()
        )
        try:
            async for response in call:
                yield self._seen(response.event)
        except grpc.RpcError as error:
            if not (self.run_id and self._recover and error.code() in _LOST):
                raise client.error(error, self._method) from None
        finally:
            call.cancel()  # no-op when done; stops the server side when we were cancelled
        if self.summary is not None:
            return
        if not (self.run_id and self._recover):
            details = ErrorDetails(
                code=grpc.StatusCode.UNKNOWN, message=f"{self._method} ended without a summary"
            )
            raise HookshelfCallError(
                details, service=client.service, target=client.target, method=self._method
            )
        self.reattached = True
        async for event in self._recover(self.run_id):
            yield self._seen(event)


class LeaseKeeper:
    """Renews a run's lease every lease/3 until stopped.

    A failed renewal is retried at the next tick (two more before the lease runs out);
    NOT_FOUND / FAILED_PRECONDITION mean the run is gone (its lease expired and the
    executor ended it): ``lost`` is set and renewing stops.
    """

    def __init__(
        self,
        client: ExecutorClient,
        lease_seconds: int = 0,
        *,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self.lease_seconds = lease_seconds
        self.interval = (lease_seconds or DEFAULT_LEASE_SECONDS) / 3
        self._on_problem = on_problem or (lambda message: None)
        self._task: asyncio.Task[None] | None = None
        self.lost: HookshelfCallError | None = None
        self.renewals = 0

    def start(self, run_id: str) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._renew(run_id), name=f"lease-{run_id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # never swallows a cancellation of our own

    async def _renew(self, run_id: str) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._client.renew_backup(run_id, self.lease_seconds)
                self.renewals += 1
            except HookshelfCallError as error:
                if error.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                    self.lost = error
                    self._on_problem(f"the run's lease is lost: {error}")
                    return
                self._on_problem(f"lease renewal failed, will retry: {error}")


class ExecutorClient(BaseClient):
    """Client of the executor sidecar (usually ``unix:/path/executor.sock``)."""

    service = "executor"
    stub_class = executor_pb2_grpc.HookExecutorServiceStub

    def __init__(
        self,
        target: str,
        *,
        auth_token: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
        poll_interval: float = 1.0,
        reattach_timeout: float = 120.0,
        tls: ClientTls | None = None,
    ) -> None:
        super().__init__(target, auth_token=auth_token, timeout=timeout, tls=tls)
        self.stream_timeout = stream_timeout
        self.poll_interval = poll_interval
        self.reattach_timeout = reattach_timeout

    # Backup runs.
    def begin_backup(
        self,
        *,
        repository_id: str,
        job_id: str = "",
        variables: Mapping[str, str] | None = None,
        lease_seconds: int = 0,
        repository_path: str = "",
    ) -> HookStream:
        """Open a run and stream its pre chain; the summary's verdict says what to do."""
        request = pb.BeginBackupRequest(
            repository_id=repository_id,
            job_id=job_id,
            variables=dict(variables or {}),
            lease_seconds=lease_seconds,
            repository_path=repository_path,
        )
        return HookStream(self, "BeginBackup", request, recover=self._recover_pre)

    def end_backup(
        self,
        run_id: str,
        outcome: library_pb2.BackupOutcome.ValueType,
        variables: Mapping[str, str] | None = None,
    ) -> HookStream:
        """Report the outcome and stream the post chain (its recorded summary if it ran)."""
        request = pb.EndBackupRequest(
            run_id=run_id, outcome=outcome, variables=dict(variables or {})
        )
        return HookStream(
            self,
            "EndBackup",
            request,
            recover=lambda rid: self._recover_post(request),
            run_id=run_id,
        )

    async def renew_backup(self, run_id: str, lease_seconds: int = 0) -> pb.RenewBackupResponse:
        request = pb.RenewBackupRequest(run_id=run_id, lease_seconds=lease_seconds)
        return await self.unary("RenewBackup", request, idempotent=True)

    async def get_backup_run(self, run_id: str) -> pb.BackupRun:
        response = await self.unary(
            "GetBackupRun", pb.GetBackupRunRequest(run_id=run_id), idempotent=True
        )
        return response.run

    def keep_alive(
        self, lease_seconds: int = 0, *, on_problem: Callable[[str], None] | None = None
    ) -> LeaseKeeper:
        """A lease keeper; ``start(run_id)`` it once the run is known, ``stop()`` it after."""
        return LeaseKeeper(self, lease_seconds, on_problem=on_problem)

    # Other streams (no reattachment: they are not backup runs of the client's).
    def test_script(self, request: pb.TestScriptRequest) -> HookStream:
        return HookStream(self, "TestScript", request)

    def run_inline_hooks(self, request: pb.RunInlineHooksRequest) -> HookStream:
        pre = request.hook_type == library_pb2.HOOK_TYPE_PRE_BACKUP
        recover = self._recover_pre if pre else (lambda rid: self._recover_post(None, rid))
        return HookStream(self, "RunInlineHooks", request, recover=recover, run_id=request.run_id)

    def enter_window(self, request: pb.EnterWindowRequest) -> HookStream:
        return HookStream(self, "EnterWindow", request)

    def leave_window(self, request: pb.LeaveWindowRequest) -> HookStream:
        return HookStream(self, "LeaveWindow", request)

    # Reattaching.
    async def wait_for_run(self, run_id: str, done: Callable[[pb.BackupRun], bool]) -> pb.BackupRun:
        """Poll GetBackupRun until done(run); UNAVAILABLE tolerated up to reattach_timeout."""
        unreachable_since: float | None = None
        while True:
            try:
                run = await self.get_backup_run(run_id)
                unreachable_since = None
                if done(run):
                    return run
            except HookshelfCallError as error:
                if error.code != grpc.StatusCode.UNAVAILABLE:
                    raise
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > self.reattach_timeout:
                    raise
            await asyncio.sleep(self.poll_interval)

    async def _recover_pre(self, run_id: str) -> AsyncIterator[pb.HookEvent]:
        run = await self.wait_for_run(run_id, lambda r: r.state in _PRE_DONE)
        yield summary_from_run(run, pre=True)

    async def _recover_post(
        self, request: pb.EndBackupRequest | None, run_id: str = ""
    ) -> AsyncIterator[pb.HookEvent]:
        run_id = run_id or (request.run_id if request else "")
        run = await self.wait_for_run(
            run_id, lambda r: r.state in (pb.RUN_STATE_AWAITING_END, pb.RUN_STATE_ENDED)
        )
        if run.state == pb.RUN_STATE_AWAITING_END and request is not None:
            # Our EndBackup never arrived: send it again, once.
            async for event in HookStream(self, "EndBackup", request, run_id=run_id):
                yield event
            return
        if run.state != pb.RUN_STATE_ENDED:
            run = await self.wait_for_run(run_id, lambda r: r.state == pb.RUN_STATE_ENDED)
        yield summary_from_run(run, pre=False)
