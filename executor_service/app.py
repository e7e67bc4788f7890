"""Assembling the executor: journal, cache, library, recorder, promises, server.

Start-up order matters: the journal is opened (and this state dir locked) first, hooks a
killed predecessor left running are ended (runner/leftovers.py), the promises it left are
honoured (`Promises.recover`), and only then does the server take requests. Shutdown (`ExecutorApp.stop`, SIGTERM): refuse new calls, no
new step starts, running steps get the grace to finish, then they are killed and
recorded; open runs stay in the journal for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from executor_service.api.servicer import HookExecutorServicer
from executor_service.chains.chain_runner import ChainRunner
from executor_service.chains.control import Lifecycle
from executor_service.clock import Clock
from executor_service.journal import Journal
from executor_service.library.content_cache import ContentCache
from executor_service.library.port import GrpcLibrary
from executor_service.library.recorder import MAX_BACKOFF, Recorder
from executor_service.runner.leftovers import end_leftovers
from executor_service.runner.privacy import make_undumpable
from executor_service.runner.subreaper import become_subreaper
from executor_service.runs.admission import Admission
from executor_service.runs.backup_runs import BackupRuns
from executor_service.runs.inline_hooks import InlineHooks
from executor_service.runs.plans import PlanResolver
from executor_service.runs.promises import LEASE_CHECK_INTERVAL, Promises
from executor_service.runs.retention import PRUNE_INTERVAL, JournalRetention
from executor_service.runs.script_tests import ScriptTests
from executor_service.runs.windows import Windows
from executor_service.tasks import TaskKeeper
from shared.client.tls import ClientTls
from shared.credentials import executor_client_token, load_credentials
from shared.grpc_server import RunningServer, start_server
from shared.hook_policy import MAX_CONTENT_BYTES
from shared.request_budget import RequestBudget, RequestLimits
from shared.request_decoding import add_service
from shared.settings import Settings
from shared.stubs import executor_pb2
from shared.tls_server import ServerTls

log = structlog.get_logger("hookshelf.executor")

SERVICE = executor_pb2.DESCRIPTOR.services_by_name["HookExecutorService"]
SERVICE_NAME = SERVICE.full_name
# Requests carry at most a script's content, except RunInlineHooks: a pre and a post one.
REQUEST_LIMITS = RequestLimits(by_method={"RunInlineHooks": 3 * MAX_CONTENT_BYTES})
# After the grace, killed steps need their kill grace (SIGTERM → SIGKILL) and a moment to
# be recorded before the server gives up on their streams.
KILL_ALLOWANCE = 8.0
FINAL_DELIVERY_SECONDS = 2.0


@dataclass
class ExecutorOptions:
    """Knobs that are not settings: tests and benchmarks turn them."""

    clock: Clock = field(default_factory=Clock)
    lease_check_interval: float = LEASE_CHECK_INTERVAL
    prune_interval: float = PRUNE_INTERVAL
    recorder_max_backoff: float = MAX_BACKOFF


@dataclass
class ExecutorApp:
    """A running executor."""

    settings: Settings
    running: RunningServer
    journal: Journal
    library: GrpcLibrary
    recorder: Recorder
    promises: Promises
    runs: BackupRuns
    lifecycle: Lifecycle
    tasks: TaskKeeper
    clock: Clock
    watcher: asyncio.Task[None]
    retention: JournalRetention
    pruner: asyncio.Task[None]
    _stopped: bool = False

    @property
    def address(self) -> str:
        return self.running.address

    async def stop(self, grace: float | None = None) -> None:
        """Drain (see the module doc) and close. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        log.info("executor.draining", grace_seconds=grace, running_tasks=self.tasks.running)
        self.lifecycle.begin_drain()
        server_stopped = asyncio.create_task(self.running.stop(grace + KILL_ALLOWANCE))
        if not await self.tasks.wait(grace):
            log.warning("executor.killing_running_steps", chains=self.lifecycle.live)
            self.lifecycle.kill_all()
            await self.tasks.wait(KILL_ALLOWANCE)
        await server_stopped
        for background in (self.watcher, self.pruner):
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
        await self.tasks.cancel_all()
        await self.recorder.drained(FINAL_DELIVERY_SECONDS)
        await self.recorder.stop()
        await self.library.close()
        await self.journal.close()
        log.info("executor.stopped")


async def start_executor(settings: Settings, options: ExecutorOptions | None = None) -> ExecutorApp:
    """Open the journal, honour what it holds, then serve on settings.executor_listen."""
    options = options or ExecutorOptions()
    # First: identities and certificates that cannot be used stop the start before the
    # journal is touched. The executor serves with the server-side TLS settings and
    # reaches the library with the client-side ones (README, Configuration).
    credentials = load_credentials(settings)
    library_token = executor_client_token(settings)
    server_tls = ServerTls.from_settings(settings)
    library_tls = ClientTls(
        ca_file=settings.tls_ca_file,
        cert_file=settings.tls_client_cert_file,
        key_file=settings.tls_client_key_file,
        server_name=settings.tls_server_name,
    )
    library_tls.check()
    become_subreaper()
    # Hooks run as this user: not dumpable, they cannot read its environment or memory.
    make_undumpable()
    state_dir = Path(settings.executor_state_dir).resolve()
    journal = await Journal.open(state_dir, journal_key=settings.executor_journal_key)
    if not settings.executor_journal_key:
        log.warning(
            "journal.secrets_not_sealed",
            why="HOOKSHELF_EXECUTOR_JOURNAL_KEY is not set: secret parameter values of owed "
            "post plans are kept readable in the journal, so hooks could read them",
        )
    try:
        executor_id = await journal.executor_id()
        library = GrpcLibrary(settings.library_target, auth_token=library_token, tls=library_tls)
        recorder = Recorder(journal, library, max_backoff=options.recorder_max_backoff)
        cache = ContentCache(state_dir, library.script_content)
        lifecycle, tasks = Lifecycle(), TaskKeeper()
        chains = ChainRunner(
            journal=journal,
            cache=cache,
            clock=options.clock,
            work_root=state_dir / "work",
            executor_id=executor_id,
            on_recorded=recorder.wake,
            on_chain_ended=recorder.flush,
        )
        promises = Promises(
            journal=journal,
            chains=chains,
            clock=options.clock,
            lifecycle=lifecycle,
            tasks=tasks,
            on_recorded=recorder.wake,
        )
        plans = PlanResolver(
            library=library,
            cache=cache,
            journal=journal,
            clock=options.clock,
            max_age_seconds=settings.executor_plan_max_age_seconds,
        )
        runs = BackupRuns(
            journal=journal,
            plans=plans,
            chains=chains,
            promises=promises,
            clock=options.clock,
            lifecycle=lifecycle,
            tasks=tasks,
            admission=Admission(settings.executor_max_concurrent_runs),
            retention_seconds=settings.executor_journal_retention_seconds,
        )
        tests = ScriptTests(
            library=library,
            cache=cache,
            chains=chains,
            clock=options.clock,
            lifecycle=lifecycle,
            tasks=tasks,
            admission=runs.admission,
        )
        windows = Windows(
            journal=journal, library=library, cache=cache, runs=runs, clock=options.clock
        )
        servicer = HookExecutorServicer(runs, tests, InlineHooks(runs, cache), windows)
        await end_leftovers(state_dir / "work")
        # A chain uses two at a time (the step running, the next one made ready): made
        # now, the first chain after a start makes none on its way.
        chains.workspaces.fill(2)
        await promises.recover()
        _prepare_socket_dir(settings.executor_listen)
        running = await start_server(
            listen=settings.executor_listen,
            register=lambda server: add_service(
                server, servicer, SERVICE, RequestBudget(), REQUEST_LIMITS
            ),
            service_names=[SERVICE_NAME],
            health_listen=settings.executor_health_listen,
            credentials=credentials,
            tls=server_tls,
        )
    except BaseException:
        await journal.close()
        raise
    recorder.start()
    watcher = asyncio.create_task(
        promises.watch_leases(options.lease_check_interval), name="lease watcher"
    )
    retention = JournalRetention(
        journal, options.clock, retention_seconds=settings.executor_journal_retention_seconds
    )
    pruner = asyncio.create_task(retention.watch(options.prune_interval), name="journal pruner")
    log.info(
        "executor.started",
        address=running.address,
        executor_id=executor_id,
        state_dir=str(state_dir),
    )
    return ExecutorApp(
        settings=settings,
        running=running,
        journal=journal,
        library=library,
        recorder=recorder,
        promises=promises,
        runs=runs,
        lifecycle=lifecycle,
        tasks=tasks,
        clock=options.clock,
        watcher=watcher,
        retention=retention,
        pruner=pruner,
    )


def _prepare_socket_dir(listen: str) -> None:
    """A unix socket's directory must exist before the bind."""
    if listen.startswith("unix:"):
        path = Path(listen.removeprefix("unix:").removeprefix("//"))
        path.parent.mkdir(parents=True, exist_ok=True)
