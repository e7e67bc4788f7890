"""The method-to-roles table: every RPC of both services has a rule, and the rules say
what docs/decisions.md promises each role."""

from __future__ import annotations

import pytest

from shared import roles
from shared.roles import ADMIN, EXECUTOR, READER
from shared.stubs import executor_pb2, library_pb2
from tests.service.roles_support import MAY_CALL

SERVICES = [
    library_pb2.DESCRIPTOR.services_by_name["ScriptLibraryService"],
    executor_pb2.DESCRIPTOR.services_by_name["HookExecutorService"],
]
EVERY_RPC = sorted(f"/{s.full_name}/{m.name}" for s in SERVICES for m in s.methods)
LIBRARY = "/hookshelf.library.v1.ScriptLibraryService/"
EXECUTOR_SERVICE = "/hookshelf.executor.v1.HookExecutorService/"

# What executor_service/library/port.py calls on the library.
EXECUTOR_NEEDS = {
    "ResolveHookPlan",
    "GetScriptContent",
    "GetScript",
    "GetMaintenanceWindow",
    "RecordExecutions",
}


def test_every_rpc_of_both_services_has_a_rule_and_no_rule_is_for_nothing() -> None:
    assert sorted(roles.RULES) == EVERY_RPC


@pytest.mark.parametrize("method", EVERY_RPC)
def test_admin_may_call_every_rpc(method: str) -> None:
    assert roles.allowed(ADMIN, method)


def test_the_executor_role_calls_on_the_library_exactly_what_an_executor_needs() -> None:
    allowed = {m.removeprefix(LIBRARY) for m in EVERY_RPC if m.startswith(LIBRARY)}
    allowed = {name for name in allowed if roles.allowed(EXECUTOR, LIBRARY + name)}
    assert allowed == EXECUTOR_NEEDS


def test_the_executor_role_may_call_every_rpc_of_the_executor_service() -> None:
    for method in EVERY_RPC:
        if method.startswith(EXECUTOR_SERVICE):
            assert roles.allowed(EXECUTOR, method), method


def test_a_reader_calls_reads_only() -> None:
    allowed = {m.rsplit("/", 1)[1] for m in EVERY_RPC if roles.allowed(READER, m)}
    assert allowed == MAY_CALL["reader"]
    assert all(name.startswith(("Get", "List", "Resolve")) for name in allowed)


@pytest.mark.parametrize("role", [*roles.ROLES, "nobody"])
def test_health_and_reflection_are_open_to_any_role(role: str) -> None:
    assert roles.allowed(role, "/grpc.health.v1.Health/Check")
    assert roles.allowed(role, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")


def test_an_unknown_method_is_for_admin_only() -> None:
    assert roles.allowed(ADMIN, LIBRARY + "SomethingNew")
    assert not roles.allowed(READER, LIBRARY + "SomethingNew")
    assert not roles.allowed(EXECUTOR, LIBRARY + "SomethingNew")


def test_secrets_go_to_the_executor_and_to_admin_only_while_no_executor_is_configured() -> None:
    assert roles.receives_secrets(EXECUTOR, executor_identity_configured=True)
    assert not roles.receives_secrets(ADMIN, executor_identity_configured=True)
    assert roles.receives_secrets(ADMIN, executor_identity_configured=False)
    assert not roles.receives_secrets(READER, executor_identity_configured=False)
