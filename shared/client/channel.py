"""What both clients share: a lazily opened aio channel, metadata, deadlines, retries.

With TLS, a channel keeps the credentials it was made with, so the client looks at its
certificate files (a stat, at most every TLS_CHECK_SECONDS) before a call and, when they
changed, makes a new channel for the calls that follow. The old one is not closed then:
calls and streams in flight on it finish there; it is closed with the client.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any, Self

import grpc
import structlog

from shared.client.errors import HookshelfCallError
from shared.client.tls import ClientTls
from shared.tls_files import TlsConfigError, signature

log = structlog.get_logger("hookshelf.client")

DEFAULT_TIMEOUT = 10.0
# UNAVAILABLE is retried for idempotent unary calls only: 4 attempts, ~3 s in all.
RETRY_ATTEMPTS = 4
RETRY_BASE_DELAY = 0.2
RETRY_MAX_DELAY = 2.0
# Rotated client certificates are noticed within this long; a stat costs microseconds.
TLS_CHECK_SECONDS = 5.0


class BaseClient:
    """A channel to one service (``host:port`` or ``unix:path``) and the call plumbing."""

    service = "service"
    stub_class: Any = None

    def __init__(
        self,
        target: str,
        *,
        auth_token: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        tls: ClientTls | None = None,
        tls_check_seconds: float = TLS_CHECK_SECONDS,
    ) -> None:
        self.target = target
        self.auth_token = auth_token
        self.timeout = timeout
        self.tls = tls or ClientTls()
        self.tls_check_seconds = tls_check_seconds
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None
        self._retired: list[grpc.aio.Channel] = []
        self._files: tuple[object, ...] = ()
        self._next_check = 0.0

    @property
    def stub(self) -> Any:
        """The generated stub; the channel opens on first use, so inside the running loop."""
        if self._stub is None:
            self._open()
        elif self._tls_files_changed():
            try:
                self._open()
            except TlsConfigError as error:
                # Half way through a rotation, say: keep the channel we have, look again.
                self._files = ()
                log.warning("client.tls_reload_refused", target=self.target, error=str(error))
        return self._stub

    def _open(self) -> None:
        files = signature(self.tls.paths) if self.tls.applies_to(self.target) else ()
        channel = self.tls.channel(self.target)
        if self._channel is not None:
            self._retired.append(self._channel)
            log.info("client.tls_reloaded", target=self.target)
        self._channel, self._stub = channel, self.stub_class(channel)
        self._files = files

    def _tls_files_changed(self) -> bool:
        if not self.tls.applies_to(self.target):
            return False
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self.tls_check_seconds
        return signature(self.tls.paths) != self._files

    async def reconnected(self) -> None:
        """Return once the channel is connected (READY) again after having lost its
        connection; meanwhile keep it trying to connect. A channel that is READY when
        called waits for the next loss and return, not for nothing: a service that
        answers UNAVAILABLE itself (its database is away) is not "back"."""
        self.stub  # noqa: B018  # opens the channel (or the rotated one) if need be
        channel = self._channel
        assert channel is not None
        state = channel.get_state(try_to_connect=True)
        while True:
            await channel.wait_for_state_change(state)
            now = channel.get_state(try_to_connect=True)
            if now == grpc.ChannelConnectivity.READY and state != grpc.ChannelConnectivity.READY:
                return
            state = now

    async def close(self) -> None:
        channels = [*self._retired, *([self._channel] if self._channel is not None else [])]
        self._channel, self._stub, self._retired = None, None, []
        for channel in channels:
            await channel.close()

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
