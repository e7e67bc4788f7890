"""What both clients share: a lazily opened aio channel, metadata, deadlines, retries."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any, Self

import grpc

from shared.client.errors import HookshelfCallError
from shared.message_limits import MAX_RESPONSE_BYTES

DEFAULT_TIMEOUT = 10.0
# A page of executions or a plan with its content may exceed gRPC's 4 MiB default.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", MAX_RESPONSE_BYTES)]
# UNAVAILABLE is retried for idempotent unary calls only: 4 attempts, ~3 s in all.
RETRY_ATTEMPTS = 4
RETRY_BASE_DELAY = 0.2
RETRY_MAX_DELAY = 2.0


class BaseClient:
    """A channel to one service (``host:port`` or ``unix:path``) and the call plumbing."""

    service = "service"
    stub_class: Any = None

    def __init__(
        self, target: str, *, auth_token: str = "", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.target = target
        self.auth_token = auth_token
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    @property
    def stub(self) -> Any:
        """The generated stub; the channel opens on first use, so inside the running loop."""
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            self._stub = self.stub_class(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel, self._stub = None, None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        pairs = [("x-request-id", uuid.uuid4().hex)]
        if self.auth_token:
            pairs.append(("authorization", f"Bearer {self.auth_token}"))
        return tuple(pairs)

    def error(self, error: grpc.RpcError, method: str) -> HookshelfCallError:
        return HookshelfCallError.from_rpc_error(
            error, service=self.service, target=self.target, method=method
        )

    async def unary(
        self, method: str, request: Any, *, idempotent: bool, timeout: float | None = None
    ) -> Any:
        """One unary call with a deadline; UNAVAILABLE retried with backoff if idempotent."""
        call = getattr(self.stub, method)
        attempts = RETRY_ATTEMPTS if idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                return await call(
                    request, timeout=timeout or self.timeout, metadata=self.metadata()
                )
            except grpc.RpcError as error:
                retry = error.code() == grpc.StatusCode.UNAVAILABLE and attempt < attempts
                if not retry:
                    raise self.error(error, method) from None
            delay = min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2 ** (attempt - 1))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")
