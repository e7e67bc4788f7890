"""Secret settings given as files (HOOKSHELF_<NAME>_FILE), read from the environment the
way a service reads it: Kubernetes Secrets, Vault agents and Docker secrets mount a file
and name it, so the secret never sits in the process environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from library_service.domain import secrets
from shared.settings import Settings, load_settings, secret_from_file, settings_error

URL = "postgresql+asyncpg://hookshelf:p%40ss@db:5432/hookshelf"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HOOKSHELF_"):
            monkeypatch.delenv(name)


def secret_file(tmp_path: Path, text: str, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refusal(**env: str) -> str:
    """The one-line reason load_settings() refuses this environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with pytest.raises(ValidationError) as raised:
            load_settings()
    return settings_error(raised.value)


@pytest.mark.parametrize("ending", ["", "\n", "\r\n", "\n\n"])
def test_the_database_url_comes_from_the_file_without_its_trailing_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    monkeypatch.setenv("HOOKSHELF_DATABASE_URL_FILE", str(secret_file(tmp_path, URL + ending)))
    settings = load_settings()
    assert settings.database_url == URL
    assert settings.effective_database_url == URL


def test_the_secret_key_comes_from_the_file_and_the_library_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv("HOOKSHELF_SECRET_KEY_FILE", str(secret_file(tmp_path, key.decode() + "\n")))
    monkeypatch.setenv("HOOKSHELF_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings()
    assert settings.secret_key == key.decode()
    cipher = secrets.load_cipher(settings)
    assert Fernet(key).decrypt(cipher.encrypt("x")[len(secrets.PREFIX) :].encode()) == b"x"
    assert not (tmp_path / "data" / secrets.KEY_FILE_NAME).exists()  # no key file made


def test_a_key_file_may_hold_the_rotation_list_one_key_per_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, old = Fernet.generate_key(), Fernet.generate_key()
    stored_with_old = secrets.SecretCipher([old]).encrypt("kept")
    text = f"{new.decode()}\n{old.decode()}\n"
    monkeypatch.setenv("HOOKSHELF_SECRET_KEY_FILE", str(secret_file(tmp_path, text)))
    cipher = secrets.load_cipher(load_settings(data_dir=tmp_path))
    assert cipher.decrypt(stored_with_old) == "kept"
    assert cipher.fingerprint == secrets.fingerprint(new)  # the first one encrypts


@pytest.mark.parametrize("name", ["DATABASE_URL", "SECRET_KEY"])
def test_setting_both_forms_is_refused_naming_both_variables(tmp_path: Path, name: str) -> None:
    message = refusal(
        **{
            f"HOOKSHELF_{name}": "direct-value",
            f"HOOKSHELF_{name}_FILE": str(secret_file(tmp_path, "file-value")),
        }
    )
    assert f"HOOKSHELF_{name} and HOOKSHELF_{name}_FILE are both set" in message
    assert "direct-value" not in message and "file-value" not in message


def test_an_empty_variable_next_to_the_file_counts_as_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKSHELF_DATABASE_URL", "")
    monkeypatch.setenv("HOOKSHELF_DATABASE_URL_FILE", str(secret_file(tmp_path, URL)))
    assert load_settings().database_url == URL


def test_a_missing_file_is_a_clear_refusal(tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted" / "url"
    message = refusal(HOOKSHELF_DATABASE_URL_FILE=str(missing))
    assert message == (
        f"HOOKSHELF_DATABASE_URL_FILE={missing}: cannot read it (No such file or directory)"
    )


def test_a_file_that_cannot_be_read_is_a_clear_refusal() -> None:
    # The tests run as root, who reads a file whatever its mode; reading a process's own
    # memory from offset 0 fails for everyone (EIO), which is the same path.
    path = "/proc/self/mem"
    message = refusal(HOOKSHELF_SECRET_KEY_FILE=path)
    assert message == f"HOOKSHELF_SECRET_KEY_FILE={path}: cannot read it (Input/output error)"


def test_a_directory_or_an_empty_file_is_refused(tmp_path: Path) -> None:
    assert "cannot read it" in refusal(HOOKSHELF_SECRET_KEY_FILE=str(tmp_path))
    empty = secret_file(tmp_path, "\n")
    # An empty URL would quietly mean SQLite: never that.
    assert refusal(HOOKSHELF_DATABASE_URL_FILE=str(empty)) == (
        f"HOOKSHELF_DATABASE_URL_FILE={empty}: the file is empty"
    )


def test_without_a_file_the_variable_is_used_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKSHELF_DATABASE_URL", URL)
    assert load_settings().database_url == URL
    assert Settings().secret_key == ""


def test_the_helper_is_reusable_for_other_secret_settings(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "token\n")
    assert secret_from_file("auth_token", "", str(path)) == "token"
    assert secret_from_file("auth_token", "direct", "") == "direct"
    with pytest.raises(ValueError, match="HOOKSHELF_AUTH_TOKEN and HOOKSHELF_AUTH_TOKEN_FILE"):
        secret_from_file("auth_token", "direct", str(path))
    for name in Settings.FILE_FORMS:
        assert f"{name}_file" in Settings.model_fields
