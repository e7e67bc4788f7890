"""Who may do what: the three roles and the one table of which role may call which RPC.

- ``admin``: everything, on both services.
- ``executor``: the backup side. On the library, exactly what an executor asks for
  (``executor_service/library/port.py``): plans, content, a script, a window, recording.
  On the executor service, every RPC: the orchestrator next to an executor holds this
  role to run backups. It cannot do more than the executor it drives already can (a
  hook or ``RunInlineHooks`` runs anything as the executor, which holds this role).
- ``reader``: every read on both services, never a write, never a secret value (its
  plans come back masked: ``receives_secrets``).

Health and reflection stay open to anyone, so probes and grpcurl need no identity. A
method missing from the table is allowed to admin only: ``tests/unit/test_roles.py``
fails for an RPC without a rule, so a new one gets a deliberate entry.

Pure data and functions, no grpc: the interceptor asks ``allowed`` for every call.
"""

from __future__ import annotations

ADMIN = "admin"
EXECUTOR = "executor"
READER = "reader"
ROLES = (ADMIN, EXECUTOR, READER)

# Probes and schema discovery work without any identity.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

_LIBRARY = "/hookshelf.library.v1.ScriptLibraryService/"
_EXECUTOR = "/hookshelf.executor.v1.HookExecutorService/"

_ADMIN_ONLY: frozenset[str] = frozenset()
_READ = frozenset({READER})
_EXECUTOR_AND_READ = frozenset({EXECUTOR, READER})
_BACKUP_SIDE = frozenset({EXECUTOR})

# Method → the roles besides admin that may call it (admin may call every method).
RULES: dict[str, frozenset[str]] = {
    # Library: scripts and versions.
    _LIBRARY + "CreateScript": _ADMIN_ONLY,
    _LIBRARY + "GetScript": _EXECUTOR_AND_READ,
    _LIBRARY + "ListScripts": _READ,
    _LIBRARY + "UpdateScript": _ADMIN_ONLY,
    _LIBRARY + "DeleteScript": _ADMIN_ONLY,
    _LIBRARY + "ListScriptVersions": _READ,
    _LIBRARY + "GetScriptContent": _EXECUTOR_AND_READ,
    # Library: assignments and plans. A reader's plan has its secrets masked.
    _LIBRARY + "AssignScript": _ADMIN_ONLY,
    _LIBRARY + "ListAssignments": _READ,
    _LIBRARY + "UpdateAssignment": _ADMIN_ONLY,
    _LIBRARY + "UnassignScript": _ADMIN_ONLY,
    _LIBRARY + "ReorderAssignments": _ADMIN_ONLY,
    _LIBRARY + "ResolveHookPlan": _EXECUTOR_AND_READ,
    # Library: history. Only executors write it.
    _LIBRARY + "RecordExecutions": _BACKUP_SIDE,
    _LIBRARY + "ListExecutions": _READ,
    # Library: templates (instantiating one creates a script).
    _LIBRARY + "ListTemplates": _READ,
    _LIBRARY + "InstantiateTemplate": _ADMIN_ONLY,
    # Library: maintenance windows.
    _LIBRARY + "CreateMaintenanceWindow": _ADMIN_ONLY,
    _LIBRARY + "GetMaintenanceWindow": _EXECUTOR_AND_READ,
    _LIBRARY + "ListMaintenanceWindows": _READ,
    _LIBRARY + "UpdateMaintenanceWindow": _ADMIN_ONLY,
    _LIBRARY + "DeleteMaintenanceWindow": _ADMIN_ONLY,
    # Executor: everything runs hooks, except looking at a run.
    _EXECUTOR + "BeginBackup": _BACKUP_SIDE,
    _EXECUTOR + "EndBackup": _BACKUP_SIDE,
    _EXECUTOR + "RenewBackup": _BACKUP_SIDE,
    _EXECUTOR + "GetBackupRun": _EXECUTOR_AND_READ,
    _EXECUTOR + "TestScript": _BACKUP_SIDE,
    _EXECUTOR + "RunInlineHooks": _BACKUP_SIDE,
    _EXECUTOR + "EnterWindow": _BACKUP_SIDE,
    _EXECUTOR + "LeaveWindow": _BACKUP_SIDE,
}


def is_open(method: str) -> bool:
    """Does this method answer without any identity (health, reflection)?"""
    return method.startswith(OPEN_PREFIXES)


def allowed(role: str, method: str) -> bool:
    """May a caller holding ``role`` call ``method`` (``/package.Service/Method``)?"""
    if is_open(method) or role == ADMIN:
        return True
    return role in RULES.get(method, _ADMIN_ONLY)


def receives_secrets(role: str, *, executor_identity_configured: bool) -> bool:
    """Does a plan for this role carry decrypted secret values (else they are masked)?

    The executor role does. So does admin while no executor identity (token or
    certificate) is configured: the executor can then only be calling with the admin
    token, or on an open server as everyone does, exactly as before roles existed.
    """
    if role == EXECUTOR:
        return True
    return role == ADMIN and not executor_identity_configured
