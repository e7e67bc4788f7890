"""The executor's local journal: what it promised, kept on disk before it acts.

SQLite at ``<HOOKSHELF_EXECUTOR_STATE_DIR>/journal.db`` (WAL; ``synchronous=FULL`` for
what the promise rests on: such a commit is on disk when it returns, because the journal
*is* the promise; see `connection.Connection._transact` and
`steps.Steps.commit_step_result` for what is not). Six tables:

- ``meta`` (meta.py): small facts about this executor by key; today only
  ``executor_id``, the executor's stable id, made on first use.
- ``runs`` (runs.py): one row per backup run (or inline-hooks run, or open maintenance
  window), written before any child process of the run starts. ``pre_started`` is set
  (and synced) before the first pre hook starts; from then on the post chain is owed. The
  post plan is resolved and stored at BeginBackup, so the post chain can run while the
  library is away. A partial unique index keeps one open run per repository.
- ``steps`` (steps.py): one row per step *attempt*, written when it starts (not synced)
  and completed when it ends: committed at once, synced in the background, and nothing
  tells of the result before it is synced (syncing.py). ``done`` marks an attempt whose
  result counts; an attempt cut short by a crash or a shutdown is not done, so a resumed
  post chain runs that step again and never runs a finished one twice.
- ``outbox`` (outbox.py): the execution records for the library, written in the same
  transaction as the step result and delivered later (library/recorder.py), idempotent by
  execution id.
- ``window_holders`` (windows.py): the holders of an open maintenance window (a run of
  kind 'window') and their leases; the run's lease is the latest of them.
- ``kept_plans`` (kept_plans.py): the last plans the library resolved per repository and
  hook type, kept with the run that resolved them, for backups while the library is
  unreachable.

Retention (retention.py) deletes ended runs whose records are delivered once they are
older than a setting, and gives the space back; space.py keeps room for the post chains
of open runs (new runs are refused first, a reserve file is spent last).

The layout has a version (``PRAGMA user_version``, `SCHEMA_VERSION`); opening a journal
brings an older one up to it in one transaction before anything else runs, and refuses one
written by a newer executor (`JournalTooNew`): see schema.py.

One process owns a state dir (connection.py): an exclusive ``flock`` on ``executor.lock``
makes a second executor on the same dir fail loudly (`StateDirInUse`) instead of running
the same promises twice. The state dir is 0700 and the journal 0600: stored post plans
carry parameter values.

`Journal` is the one object callers hold; each part above adds its methods to it, over
one connection used by one thread of its own (connection.py).
"""

from __future__ import annotations

from executor_service.journal.connection import StateDirInUse
from executor_service.journal.kept_plans import KeptPlan, KeptPlans
from executor_service.journal.meta import Meta
from executor_service.journal.outbox import Outbox
from executor_service.journal.retention import Retention
from executor_service.journal.rows import (
    KIND_BACKUP,
    KIND_INLINE,
    KIND_WINDOW,
    OPEN_STATES,
    RUN_STATE,
    RunRecord,
    StepRow,
)
from executor_service.journal.runs import Runs
from executor_service.journal.schema import SCHEMA_VERSION, JournalTooNew
from executor_service.journal.sealing import JournalKeyMissing
from executor_service.journal.steps import Steps
from executor_service.journal.syncing import WalSync
from executor_service.journal.windows import WindowHolders

__all__ = [
    "KIND_BACKUP",
    "KIND_INLINE",
    "KIND_WINDOW",
    "OPEN_STATES",
    "RUN_STATE",
    "SCHEMA_VERSION",
    "Journal",
    "JournalKeyMissing",
    "JournalTooNew",
    "KeptPlan",
    "RunRecord",
    "StateDirInUse",
    "StepRow",
    "WalSync",
]


class Journal(Meta, Runs, KeptPlans, WindowHolders, Steps, Outbox, Retention):
    """Async access to the journal: `Journal.open` a state dir, use it, `close` it.

    Open: `Journal.open` (connection.py). Tables: `executor_id` (meta); `create_run`,
    `get_run`, `update_run`, `extend_lease`, `open_run_for`, `open_runs`,
    `expired_runs` (runs); `holders`, `set_holder`, `remove_holders` (window holders);
    `step_started`, `step_finished`, `commit_step_result`, `steps_of`, `done_steps`,
    `unfinished_steps` (steps); `pending_records`, `count_pending`, `mark_delivered`,
    `mark_rejected` (outbox); `kept_plans` (kept plans); `prune_ended_runs`,
    `give_back_space` (retention); `synced` (syncing); `space` (room in the state dir).
    """
