"""The HookExecutorService servicer: thin. Each RPC unpacks its request, calls one domain
operation and relays the events (or packs the answer). Domain errors become statuses in
the interceptor; a failing hook is an event, never an RPC error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from executor_service.chains.events import relay
from executor_service.chains.records import timestamp
from executor_service.runs.backup_runs import BackupRuns, BeginRequest
from executor_service.runs.inline_hooks import InlineHooks, InlineRequest
from executor_service.runs.script_tests import ScriptTests, TestRequest
from executor_service.runs.windows import Windows
from shared.stubs import executor_pb2, executor_pb2_grpc

pb = executor_pb2


class HookExecutorServicer(executor_pb2_grpc.HookExecutorServiceServicer):
    def __init__(
        self, runs: BackupRuns, tests: ScriptTests, inline: InlineHooks, windows: Windows
    ) -> None:
        self.runs = runs
        self.tests = tests
        self.inline = inline
        self.windows = windows

    async def BeginBackup(
        self, request: pb.BeginBackupRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.BeginBackupResponse]:
        started = await self.runs.begin(
            BeginRequest(
                repository_id=request.repository_id,
                job_id=request.job_id,
                repository_path=request.repository_path,
                variables=dict(request.variables),
                lease_seconds=request.lease_seconds,
            )
        )
        async for event in relay(started.stream, started.client_gone):
            yield pb.BeginBackupResponse(event=event)

    async def EndBackup(
        self, request: pb.EndBackupRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.EndBackupResponse]:
        started = await self.runs.end(request.run_id, request.outcome, dict(request.variables))
        async for event in relay(started.stream, started.client_gone):
            yield pb.EndBackupResponse(event=event)

    async def RenewBackup(
        self, request: pb.RenewBackupRequest, context: grpc.aio.ServicerContext
    ) -> pb.RenewBackupResponse:
        expires = await self.runs.renew(request.run_id, request.lease_seconds)
        return pb.RenewBackupResponse(lease_expire_time=timestamp(expires))

    async def GetBackupRun(
        self, request: pb.GetBackupRunRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBackupRunResponse:
        return pb.GetBackupRunResponse(run=await self.runs.get(request.run_id))

    async def TestScript(
        self, request: pb.TestScriptRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TestScriptResponse]:
        started = await self.tests.start(
            TestRequest(
                script_id=request.script_id,
                content=request.content,
                hook_type=request.hook_type,
                simulated_outcome=request.simulated_outcome,
                variables=dict(request.variables),
                parameter_values=dict(request.parameter_values),
                timeout_seconds=request.timeout_seconds,
                repository_id=request.repository_id,
            )
        )
        async for event in relay(started.stream, started.client_gone):
            yield pb.TestScriptResponse(event=event)

    async def RunInlineHooks(
        self, request: pb.RunInlineHooksRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunInlineHooksResponse]:
        started = await self.inline.start(
            InlineRequest(
                hook_type=request.hook_type,
                repository_id=request.repository_id,
                job_id=request.job_id,
                repository_path=request.repository_path,
                pre_script=request.pre_script,
                post_script=request.post_script,
                pre_timeout_seconds=request.pre_timeout_seconds,
                post_timeout_seconds=request.post_timeout_seconds,
                post_run_on=request.post_run_on,
                variables=dict(request.variables),
                lease_seconds=request.lease_seconds,
                run_id=request.run_id,
                outcome=request.outcome,
            )
        )
        async for event in relay(started.stream, started.client_gone):
            yield pb.RunInlineHooksResponse(event=event)

    async def EnterWindow(
        self, request: pb.EnterWindowRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.EnterWindowResponse]:
        started = await self.windows.enter(
            request.window_id, request.holder_id, request.lease_seconds
        )
        async for event in relay(started.stream, started.client_gone):
            yield pb.EnterWindowResponse(event=event)

    async def LeaveWindow(
        self, request: pb.LeaveWindowRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.LeaveWindowResponse]:
        started = await self.windows.leave(request.window_id, request.holder_id, request.outcome)
        async for event in relay(started.stream, started.client_gone):
            yield pb.LeaveWindowResponse(event=event)
