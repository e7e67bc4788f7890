"""Answers to repeated reads, served again only while the database is unchanged.

Listing and showing scripts is what UIs, the CLI and orchestrators do most, over and over,
between rare writes. Building such an answer costs a query and a protobuf message per
row; serving a kept one costs a dictionary lookup. The cache is exact, not "fresh
enough": each answer is tagged with the change stamp (store/change_stamp.py) observed
*before* its query ran, and is served only while the stamp observed *after* the new
call arrived is the same — so no commit, by any writer anywhere, happened between the
answer's snapshot and now. A write therefore costs the next reads a miss, never a stale
answer. Errors are not kept.

Keys are the method and the request's deterministic bytes; memory is bounded by the
answers' serialized sizes (HOOKSHELF_READ_CACHE_BYTES, 0 turns it off), least recently
used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message
from prometheus_client import Counter

from library_service.store.change_stamp import ChangeStamp

M = TypeVar("M", bound=Message)

READS = Counter(
    "hookshelf_library_read_cache_total",
    "Cacheable reads by result: hit, miss, or bypass (the change stamp was unavailable)",
    ["result"],
)


@dataclass(frozen=True)
class _Entry:
    stamp: str
    answer: Message
    size: int


class ReadCache:
    def __init__(self, stamp: ChangeStamp, max_bytes: int) -> None:
        self._stamp = stamp
        self._max_bytes = max_bytes
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    async def read(self, method: str, request: Message, load: Callable[[], Awaitable[M]]) -> M:
        """The answer to request, kept or freshly loaded. The answer is shared: callers
        must not modify it."""
        if self._max_bytes <= 0:
            return await load()
        stamp = await self._stamp.current()
        if stamp is None:
            READS.labels("bypass").inc()
            return await load()
        key = method.encode() + b"\0" + request.SerializeToString(deterministic=True)
        entry = self._entries.get(key)
        if entry is not None and entry.stamp == stamp:
            self._entries.move_to_end(key)
            READS.labels("hit").inc()
            return entry.answer  # type: ignore[return-value]  # one cache for every answer type; the caller's key decides it
        READS.labels("miss").inc()
        answer = await load()
        # Tagged with the stamp from before the query: if anything committed meanwhile,
        # the next call sees a newer stamp and reads again.
        self._keep(key, _Entry(stamp, answer, answer.ByteSize()))
        return answer

    def _keep(self, key: bytes, entry: _Entry) -> None:
        if entry.size > self._max_bytes // 4:
            return  # one huge answer must not flush everything else
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._entries[key] = entry
        self._bytes += entry.size
        while self._bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0
        await self._stamp.close()
