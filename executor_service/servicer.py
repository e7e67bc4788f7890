"""The HookExecutorService servicer: thin. Each RPC unpacks its request, calls one domain
operation and relays the events (or packs the answer). Domain errors become statuses in
the interceptor; a failing hook is an event, never an RPC error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from executor_service.events import relay
from executor_service.records import timestamp
from executor_service.runs import BackupRuns, BeginRequest
from shared.stubs import executor_pb2, executor_pb2_grpc

pb = executor_pb2


class HookExecutorServicer(executor_pb2_grpc.HookExecutorServiceServicer):
    def __init__(self, runs: BackupRuns) -> None:
        self.runs = runs

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
