"""A backup's two plans: from the library, or the kept ones while it is unreachable.

`PlanResolver.for_backup` asks the library for the pre and post plans of a repository,
caches and verifies all their content, and returns them with `Plans.keep` set: BeginBackup
writes those into the journal's ``kept_plans`` in the same transaction as the run
(journal/kept_plans.py), so each backup that reached the library refreshes them.

When the library cannot be reached (UNAVAILABLE, a deadline: the port's `Unavailable`),
a backup runs the kept plans instead, if they are younger than
``HOOKSHELF_EXECUTOR_PLAN_MAX_AGE_SECONDS`` (7 days by default; 0 turns this off) and
their content is all in the cache. Borgmatic keeps its hooks in local config and never
loses them to an outage; with kept plans, one library outage no longer stops every
backup of every host. The run says so (`Plans.source` CACHED, and when the library
resolved them) in its summary, its BackupRun and every execution record, and its stream
starts with a warning event. A plan that is too old, missing or incomplete is never run:
the backup is refused with UNAVAILABLE and a message that names the library.

Decisions:
- Both plans or neither: the pre and post plans are kept and used together, as the
  library resolved them at one moment.
- All content a kept plan names is on disk: the post plan's synced (as for every run), the
  pre plan's written (unsynced) the first time a digest is seen (`ContentCache.fill`
  with ``on_disk``).
- Only "unreachable" falls back. NOT_FOUND or INVALID_ARGUMENT from the library is an
  answer, not an outage: it is passed on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from executor_service.clock import Clock
from executor_service.journal import Journal, KeptPlan
from executor_service.library.content_cache import ContentCache, ContentUnavailable
from executor_service.library.port import LibraryPort
from shared.errors import Unavailable
from shared.hook_policy import MAX_INLINE_CONTENT_BYTES
from shared.stubs import library_pb2

log = structlog.get_logger("hookshelf.executor.plans")

CONTENT_FETCH_CONCURRENCY = 16
DEFAULT_PLAN_MAX_AGE_SECONDS = 7 * 86_400
# The warning event's reason: a stable string orchestrators can match.
PLAN_FROM_KEPT_COPY = "PLAN_FROM_KEPT_COPY"
_HOOK_TYPES = (library_pb2.HOOK_TYPE_PRE_BACKUP, library_pb2.HOOK_TYPE_POST_BACKUP)


@dataclass(frozen=True)
class Plans:
    """The two chains of a run, and where they came from."""

    pre: list[library_pb2.PlanStep]
    post: list[library_pb2.PlanStep]
    source: library_pb2.PlanSource.ValueType = library_pb2.PLAN_SOURCE_UNSPECIFIED
    resolved_at: float | None = None
    # Plans to keep with the run (just resolved from the library).
    keep: tuple[KeptPlan, ...] = ()
    # For CACHED plans: why, in a sentence (the warning event and the log).
    warning: str = ""


class PlanResolver:
    """Resolves a backup's plans, from the library or, while it is away, from the journal."""

    def __init__(
        self,
        *,
        library: LibraryPort,
        cache: ContentCache,
        journal: Journal,
        clock: Clock,
        max_age_seconds: int = DEFAULT_PLAN_MAX_AGE_SECONDS,
    ) -> None:
        self.library = library
        self.cache = cache
        self.journal = journal
        self.clock = clock
        self.max_age_seconds = max_age_seconds

    async def for_backup(self, repository_id: str) -> Plans:
        try:
            return await self._from_library(repository_id)
        except Unavailable as outage:
            return await self._kept(repository_id, outage)

    async def _from_library(self, repository_id: str) -> Plans:
        """Both chains from the library, their content cached and verified."""
        resolved_at = self.clock.now()
        # Both plans carry their content inline, up to the library's ceiling: a cold cache
        # then costs the plan's round trip instead of one GetScriptContent per script.
        pre, post = await asyncio.gather(  # two round trips at once
            *(
                self.library.resolve_plan(
                    repository_id, hook_type, inline_content_max_bytes=MAX_INLINE_CONTENT_BYTES
                )
                for hook_type in _HOOK_TYPES
            )
        )
        keeping = self.max_age_seconds > 0
        # Content the plans carry is cached from there; the rest is fetched one script
        # at a time. The plans keep digests only (they are stored in the journal).
        carried: dict[str, bytes] = {}
        for step in (*pre, *post):
            if step.content:
                carried[step.digest] = step.content.encode("utf-8")
                step.ClearField("content")
        # Only the post plan's content must survive a power cut (a post chain owed later
        # may have no library); the pre chain runs now, from what was just fetched, and a
        # kept pre plan needs its content on disk, not synced: a torn file fails
        # verification and the kept plan is then refused, never run wrong.
        owed_later = {step.digest for step in post}
        fetching = asyncio.Semaphore(CONTENT_FETCH_CONCURRENCY)

        async def ensure(digest: str) -> None:
            durable = digest in owed_later
            sent = carried.get(digest)
            if sent is not None and await self.cache.fill(
                digest, sent, durable=durable, on_disk=keeping
            ):
                return
            async with fetching:
                try:
                    await self.cache.ensure(digest, durable=durable)
                except ContentUnavailable as error:
                    # The step will fail when its turn comes (an event, not an RPC error).
                    log.warning("content.unavailable", digest=digest, error=error.message)

        # Concurrently: a new chain of many scripts costs a few round trips to the library
        # (and the post plan's cache writes share fsyncs), not one after the other.
        tasks = [
            asyncio.ensure_future(ensure(digest))
            for digest in sorted({step.digest for step in (*pre, *post)})
        ]
        try:
            await asyncio.gather(*tasks)
        except BaseException:  # the library is away (Unavailable), or we are cancelled
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        keep = (
            tuple(
                KeptPlan(repository_id, hook_type, steps, resolved_at)
                for hook_type, steps in zip(_HOOK_TYPES, (pre, post), strict=True)
            )
            if keeping
            else ()
        )
        return Plans(
            pre=pre,
            post=post,
            source=library_pb2.PLAN_SOURCE_LIBRARY,
            resolved_at=resolved_at,
            keep=keep,
        )

    async def _kept(self, repository_id: str, outage: Unavailable) -> Plans:
        """The kept plans, if they may run; otherwise Unavailable saying why not."""
        unreachable = f"the library is unreachable ({outage.message})"
        if self.max_age_seconds <= 0:
            raise Unavailable(
                f"{unreachable}; running kept plans is turned off "
                "(HOOKSHELF_EXECUTOR_PLAN_MAX_AGE_SECONDS=0), so the backup cannot start",
                metadata={"repository_id": repository_id},
            ) from None
        kept = await self.journal.kept_plans(repository_id)
        if any(hook_type not in kept for hook_type in _HOOK_TYPES):
            raise Unavailable(
                f"{unreachable}, and this executor keeps no plan for repository "
                f"{repository_id!r} (it keeps the plans of the last backup that reached the "
                "library): the backup cannot start until the library is back",
                metadata={"repository_id": repository_id},
            ) from None
        pre, post = (kept[hook_type] for hook_type in _HOOK_TYPES)
        resolved_at = min(pre.resolved_at, post.resolved_at)
        age = self.clock.now() - resolved_at
        if age > self.max_age_seconds:
            raise Unavailable(
                f"{unreachable}; the plans kept for repository {repository_id!r} were "
                f"resolved {_span(age)} ago, longer than HOOKSHELF_EXECUTOR_PLAN_MAX_AGE_SECONDS "
                f"({_span(self.max_age_seconds)}) allows: the backup cannot start until the "
                "library is back",
                metadata={"repository_id": repository_id},
            ) from None
        await self._check_content(repository_id, pre.steps, post.steps, unreachable)
        warning = (
            f"{unreachable}: running the plans kept from the library {_span(age)} ago "
            f"({len(pre.steps)} pre, {len(post.steps)} post)"
        )
        log.warning("plans.from_kept_copy", repository_id=repository_id, age_seconds=round(age))
        return Plans(
            pre=list(pre.steps),
            post=list(post.steps),
            source=library_pb2.PLAN_SOURCE_CACHED,
            resolved_at=resolved_at,
            warning=warning,
        )

    async def _check_content(
        self,
        repository_id: str,
        pre: Sequence[library_pb2.PlanStep],
        post: Sequence[library_pb2.PlanStep],
        unreachable: str,
    ) -> None:
        """Every digest of the kept plans verified from the cache (the post plan's synced,
        as for any run: its chain may be owed later); one missing: refused."""
        owed_later = {step.digest for step in post}
        for digest in sorted({step.digest for step in (*pre, *post)}):
            try:
                await self.cache.ensure(digest, durable=digest in owed_later)
            except (Unavailable, ContentUnavailable):
                raise Unavailable(
                    f"{unreachable}, and the content of {digest} in the plans kept for "
                    f"repository {repository_id!r} is no longer cached: the backup cannot "
                    "start until the library is back",
                    metadata={"repository_id": repository_id, "digest": digest},
                ) from None


def _span(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``40s``: an age a person reads at a glance."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"
