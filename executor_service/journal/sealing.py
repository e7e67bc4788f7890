"""Secret parameter values sealed in the journal, so a hook cannot read them there.

A post plan is kept in the journal from BeginBackup on (the post chain must run even if
the library is away), and it carries decrypted secret values. Hooks run as the executor's
user and can read the journal file; with ``HOOKSHELF_EXECUTOR_JOURNAL_KEY`` set (a Fernet
key, given in the executor's environment, which hooks cannot read because the executor is
not dumpable: runner/privacy.py) the values named in ``secret_parameter_names`` are
written sealed with it and unsealed when a run is read back. Without the key they are
written as they are, as before, and the executor says so at start.

A sealed value is ``NUL + "sealed:" + Fernet token``: a parameter value can never hold a
NUL (the library refuses it), so nothing else looks like one.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken

from shared.stubs import library_pb2

SEALED_PREFIX = "\x00sealed:"


class JournalKeyMissing(RuntimeError):
    """The journal holds values sealed with a key the executor was not given, or the
    key it was given is not a Fernet key."""


class Sealer:
    """Seals and unseals the secret values of plans; a no-op without a key."""

    def __init__(self, key: str = "") -> None:
        try:
            self._fernet = Fernet(key.encode()) if key else None
        except ValueError:
            raise JournalKeyMissing(
                "HOOKSHELF_EXECUTOR_JOURNAL_KEY is not a Fernet key (32 url-safe "
                "base64-encoded bytes, as `hookshelf`'s docs show how to make)"
            ) from None

    @property
    def seals(self) -> bool:
        return self._fernet is not None

    def seal_plan(self, steps: Sequence[library_pb2.PlanStep]) -> list[library_pb2.PlanStep]:
        if self._fernet is None:
            return list(steps)
        sealed = []
        for step in steps:
            if any(name in step.parameter_values for name in step.secret_parameter_names):
                copy = library_pb2.PlanStep()
                copy.CopyFrom(step)
                for name in step.secret_parameter_names:
                    if name in copy.parameter_values:
                        token = self._fernet.encrypt(copy.parameter_values[name].encode())
                        copy.parameter_values[name] = SEALED_PREFIX + token.decode()
                step = copy
            sealed.append(step)
        return sealed

    def unseal_plan(self, steps: list[library_pb2.PlanStep]) -> list[library_pb2.PlanStep]:
        """The plan with its sealed values opened again (in place)."""
        for step in steps:
            for name, value in step.parameter_values.items():
                if value.startswith(SEALED_PREFIX):
                    step.parameter_values[name] = self._open(value[len(SEALED_PREFIX) :])
        return steps

    def _open(self, token: str) -> str:
        if self._fernet is None:
            raise JournalKeyMissing(
                "the journal holds secret values sealed with HOOKSHELF_EXECUTOR_JOURNAL_KEY, "
                "and this executor was started without it: start it with the same key"
            )
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise JournalKeyMissing(
                "the journal holds secret values sealed with another "
                "HOOKSHELF_EXECUTOR_JOURNAL_KEY: start the executor with the key it was "
                "written with"
            ) from None
