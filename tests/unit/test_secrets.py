"""Secret values: the cipher, the key (setting or key file), masking and sealing, and
decryption in plans. No server here (tests/service/test_secrets.py has the RPCs)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from library_service.domain import plans, secrets
from library_service.domain.secrets import MASK, SecretCipher, SecretKeyError, SecretUndecryptable
from library_service.store import models
from shared.errors import FailedPrecondition
from shared.settings import Settings
from shared.stubs import library_pb2 as pb

SECRET = "hunter2-correct-horse"


def _cipher(*keys: bytes) -> SecretCipher:
    return SecretCipher(list(keys) or [Fernet.generate_key()])


def _settings(tmp_path: Path, **more) -> Settings:
    return Settings(data_dir=tmp_path / "data", **more)


# --- the cipher ----------------------------------------------------------------------------


def test_the_stored_form_is_prefixed_and_never_holds_the_value() -> None:
    cipher = _cipher()
    stored = cipher.encrypt(SECRET)
    assert stored.startswith("enc:v1:")
    assert SECRET not in stored
    assert cipher.encrypt(SECRET) != stored  # a fresh IV each time: equal secrets don't show
    assert cipher.decrypt(stored) == SECRET
    assert cipher.decrypt(cipher.encrypt("")) == ""
    assert cipher.decrypt(cipher.encrypt("ünïcødé ✓")) == "ünïcødé ✓"


def test_a_wrong_key_is_a_failed_precondition_naming_where_not_what() -> None:
    stored = _cipher().encrypt(SECRET)
    with pytest.raises(SecretUndecryptable) as caught:
        _cipher().decrypt(stored, assignment_id="a-1", name="PASSWORD")
    error = caught.value
    assert isinstance(error, FailedPrecondition)
    assert error.reason == "SECRET_UNDECRYPTABLE"
    assert error.metadata == {"assignment_id": "a-1", "parameter": "PASSWORD"}
    assert "PASSWORD" in error.message and "a-1" in error.message
    assert stored not in error.message and SECRET not in error.message


@pytest.mark.parametrize(
    "garbage", ["enc:v1:", "enc:v1:not-a-token", "enc:v1:ü", "enc:v1:" + "A" * 80]
)
def test_a_damaged_token_is_undecryptable_too(garbage: str) -> None:
    with pytest.raises(SecretUndecryptable):
        _cipher().decrypt(garbage)


def test_rotation_the_first_key_encrypts_every_key_decrypts(tmp_path: Path) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    stored_with_old = _cipher(old).encrypt(SECRET)
    rotated = secrets.load_cipher(_settings(tmp_path, secret_key=f"{new.decode()}, {old.decode()}"))
    assert rotated.decrypt(stored_with_old) == SECRET
    assert _cipher(new).decrypt(rotated.encrypt(SECRET)) == SECRET
    assert rotated.fingerprint == secrets.fingerprint(new)


@pytest.mark.parametrize("bad", ["not-a-key", "c2hvcnQ=", Fernet.generate_key().decode() + ",x"])
def test_an_unusable_secret_key_setting_stops_the_start_without_echoing_it(
    tmp_path: Path, bad: str
) -> None:
    with pytest.raises(SecretKeyError) as caught:
        secrets.load_cipher(_settings(tmp_path, secret_key=bad))
    assert "HOOKSHELF_SECRET_KEY" in str(caught.value)
    assert bad not in str(caught.value)


def test_the_setting_wins_and_no_key_file_is_made(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    cipher = secrets.load_cipher(_settings(tmp_path, secret_key=key.decode()))
    assert cipher.fingerprint == secrets.fingerprint(key)
    assert not (tmp_path / "data" / "secret.key").exists()


# --- the key file ---------------------------------------------------------------------------


def test_the_key_file_is_made_once_with_mode_0600_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        first = secrets.load_cipher(_settings(tmp_path))
    finally:
        os.umask(previous)
    path = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_bytes()
    Fernet(key.strip())  # a real key
    assert first.fingerprint == secrets.fingerprint(key.strip())
    # Reused, not replaced: what the first cipher stored, the second reads.
    stored = first.encrypt(SECRET)
    again = secrets.load_cipher(_settings(tmp_path))
    assert path.read_bytes() == key
    assert again.decrypt(stored) == SECRET
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temp left behind


def test_an_existing_key_file_is_never_overwritten(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    path = tmp_path / "data" / "secret.key"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"# made by the operator\n\n" + key + b"\n")
    path.chmod(0o600)
    cipher = secrets.load_cipher(_settings(tmp_path))
    assert cipher.fingerprint == secrets.fingerprint(key)
    assert path.read_bytes().endswith(key + b"\n")


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.data_dir.mkdir(parents=True)
    barrier = threading.Barrier(8)
    found: list[str] = []

    def start() -> None:
        barrier.wait()
        found.append(secrets.load_cipher(settings).fingerprint)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and len(set(found)) == 1


def test_a_damaged_key_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    path.parent.mkdir(parents=True)
    path.write_text("this is not a key\n")
    path.chmod(0o600)
    with pytest.raises(SecretKeyError, match="secret.key"):
        secrets.load_cipher(_settings(tmp_path))
    path.write_text("")
    with pytest.raises(SecretKeyError, match="no key"):
        secrets.load_cipher(_settings(tmp_path))


def test_a_key_file_others_can_read_is_reported(tmp_path: Path) -> None:
    secrets.load_cipher(_settings(tmp_path))
    path = tmp_path / "data" / "secret.key"
    path.chmod(0o644)
    with capture_logs() as logs:
        secrets.load_cipher(_settings(tmp_path))
    events = {entry["event"] for entry in logs}
    assert "secrets.key_file_readable_by_others" in events
    # The key itself is never logged.
    key = path.read_text().strip()
    assert all(key not in repr(entry) for entry in logs)


# --- masking and sealing -------------------------------------------------------------------


def test_masked_hides_secret_and_encrypted_values_only() -> None:
    cipher = _cipher()
    stored = {"HOST": "db", "PASSWORD": cipher.encrypt(SECRET), "OLD": cipher.encrypt("x")}
    # OLD is no longer declared SECRET, but it was stored encrypted: still hidden.
    assert secrets.masked(stored, {"PASSWORD", "TOKEN"}) == {
        "HOST": "db",
        "PASSWORD": MASK,
        "OLD": MASK,
    }


def test_seal_encrypts_secrets_and_the_mask_keeps_the_stored_one() -> None:
    cipher = _cipher()
    before = {"PASSWORD": cipher.encrypt(SECRET), "HOST": "db"}
    values, unkeepable = secrets.seal(
        {"PASSWORD": MASK, "HOST": "db2", "TOKEN": "t0k3n-value"},
        before,
        {"PASSWORD", "TOKEN"},
        cipher,
    )
    assert unkeepable == []
    assert values["PASSWORD"] == before["PASSWORD"]  # kept as it was, not re-encrypted
    assert values["HOST"] == "db2"
    assert (
        secrets.is_encrypted(values["TOKEN"]) and cipher.decrypt(values["TOKEN"]) == "t0k3n-value"
    )


def test_seal_the_mask_with_nothing_stored_is_reported() -> None:
    values, unkeepable = secrets.seal({"PASSWORD": MASK}, {}, {"PASSWORD"}, _cipher())
    assert unkeepable == ["PASSWORD"] and values == {}


def test_seal_the_mask_is_plain_text_for_a_text_parameter() -> None:
    values, unkeepable = secrets.seal({"HOST": MASK}, {"HOST": "db"}, set(), _cipher())
    assert values == {"HOST": MASK} and unkeepable == []


def test_seal_a_clear_value_of_a_parameter_that_became_secret_is_encrypted_when_kept() -> None:
    cipher = _cipher()
    values, _ = secrets.seal({"PASSWORD": MASK}, {"PASSWORD": SECRET}, {"PASSWORD"}, cipher)
    assert secrets.is_encrypted(values["PASSWORD"])
    assert cipher.decrypt(values["PASSWORD"]) == SECRET


def test_seal_a_text_value_that_looks_encrypted_is_encrypted_not_trusted() -> None:
    cipher = _cipher()
    values, _ = secrets.seal({"NOTE": "enc:v1:abc"}, {}, set(), cipher)
    assert cipher.decrypt(values["NOTE"]) == "enc:v1:abc"


def test_seal_refuses_to_store_a_secret_without_a_key() -> None:
    with pytest.raises(RuntimeError):
        secrets.seal({"PASSWORD": SECRET}, {}, {"PASSWORD"}, None)
    # Nothing secret: no key needed (maintenance scripts assign without one).
    assert secrets.seal({"HOST": "db"}, {}, {"PASSWORD"}, None) == ({"HOST": "db"}, [])


# --- plans ---------------------------------------------------------------------------------


def _script(parameters: list[dict]) -> models.Script:
    return models.Script(
        id="s-1",
        name="dump",
        current_digest="sha256:" + "0" * 64,
        default_timeout_seconds=300,
        default_run_on=pb.RUN_ON_SUCCESS,
        parameters=parameters,
    )


def _assignment(values: dict[str, str]) -> models.Assignment:
    return models.Assignment(
        id="a-1",
        repository_id="repo",
        script_id="s-1",
        hook_type=pb.HOOK_TYPE_PRE_BACKUP,
        execution_order=0,
        enabled=True,
        parameter_values=values,
    )


SECRET_PARAMETER = {"name": "PASSWORD", "type": pb.PARAMETER_TYPE_SECRET, "has_default": False}


def test_a_plan_step_carries_secrets_decrypted_and_named() -> None:
    cipher = _cipher()
    script = _script([SECRET_PARAMETER])
    row = _assignment({"PASSWORD": cipher.encrypt(SECRET), "WAS_SECRET": cipher.encrypt("old!")})
    step = plans.plan_step(script, row, cipher)
    assert step.parameter_values == {"PASSWORD": SECRET, "WAS_SECRET": "old!"}
    # WAS_SECRET is no longer declared, but stored encrypted: still redacted.
    assert step.secret_parameter_names == ["PASSWORD", "WAS_SECRET"]


def test_a_plan_step_with_a_foreign_key_is_undecryptable() -> None:
    row = _assignment({"PASSWORD": _cipher().encrypt(SECRET)})
    with pytest.raises(SecretUndecryptable, match="PASSWORD"):
        plans.plan_step(_script([SECRET_PARAMETER]), row, _cipher())
