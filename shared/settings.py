"""Settings for both services and the CLI, read from HOOKSHELF_* environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import ClassVar, Self

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "HOOKSHELF_"


def secret_from_file(name: str, value: str, file: str) -> str:
    """A secret setting given directly (``value``) or as a file holding it (``file``), the
    way Kubernetes Secrets, Vault agents and Docker secrets hand secrets over.

    Trailing newlines are dropped. Both set, an unreadable or an empty file is a
    ValueError naming the variables (never the secret). ``name`` is the field's name.
    """
    variable = f"{ENV_PREFIX}{name.upper()}"
    if not file:
        return value
    if value:
        raise ValueError(f"{variable} and {variable}_FILE are both set: set only one")
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ValueError(f"{variable}_FILE={file}: cannot read it ({reason})") from None
    text = text.rstrip("\r\n")
    if not text.strip():
        raise ValueError(f"{variable}_FILE={file}: the file is empty")
    return text


class Settings(BaseSettings):
    """Every knob has a default that runs the embedded set-up (SQLite, local sockets)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # Secret settings that may be given as a file instead: X_FILE names a file holding X
    # (secret_from_file). Each has a field "<name>_file" next to it.
    FILE_FORMS: ClassVar[tuple[str, ...]] = (
        "database_url",
        "secret_key",
        "auth_token",
        "executor_token",
        "reader_token",
    )

    data_dir: Path = Field(default=Path("./.data"), description="Library data: files, SQLite.")
    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty means SQLite at <data_dir>/library.db."
    )
    database_url_file: str = Field(
        default="", description="A file holding the database URL, instead of DATABASE_URL."
    )
    library_listen: str = Field(
        default="127.0.0.1:50051", description="Where the library serves: host:port or unix:path."
    )
    library_health_listen: str = Field(
        default="", description="Separate health port for probes (host:port); empty: none."
    )
    library_target: str = Field(
        default="127.0.0.1:50051", description="Where clients (executor, CLI) find the library."
    )
    executor_listen: str = Field(
        default="unix:./.data/executor.sock",
        description="Where the executor serves: unix:path or host:port.",
    )
    executor_health_listen: str = Field(
        default="", description="Separate health port for probes (host:port); empty: none."
    )
    executor_target: str = Field(
        default="unix:./.data/executor.sock", description="Where clients find the executor."
    )
    executor_state_dir: Path = Field(
        default=Path("./.data/executor"),
        description="Executor journal and content cache; must survive restarts.",
    )
    executor_max_concurrent_runs: int = Field(
        default=256, ge=1, description="Open backup runs accepted before RESOURCE_EXHAUSTED."
    )
    executor_plan_max_age_seconds: int = Field(
        default=7 * 86_400,
        ge=0,
        description="While the library is unreachable, backups run the plans kept from the "
        "last backup that reached it, if resolved at most this long ago; 0: never.",
    )
    executor_journal_retention_seconds: int = Field(
        default=7 * 86_400,
        ge=0,
        description="Ended runs whose records reached the library are deleted from the "
        "journal this long after they ended; 0: as soon as their records are delivered.",
    )
    executor_journal_key: str = Field(
        default="",
        description="Fernet key sealing secret values in the executor's journal from hooks; "
        "give it in the environment, never in a file hooks could read; empty: not sealed.",
    )
    secret_key: str = Field(
        default="",
        description="Fernet key(s), comma-separated: the first encrypts, all decrypt; "
        "empty: a key file in data_dir.",
    )
    secret_key_file: str = Field(
        default="", description="A file holding the Fernet key(s), instead of SECRET_KEY."
    )
    auth_token: str = Field(default="", description="Bearer token both sides must present.")
    auth_token_file: str = Field(
        default="", description="File holding the admin token (instead of auth_token)."
    )
    executor_token: str = Field(
        default="", description="Bearer token of the executor role (executors, orchestrators)."
    )
    executor_token_file: str = Field(
        default="", description="File holding the executor token (instead of executor_token)."
    )
    reader_token: str = Field(default="", description="Bearer token of the read-only role.")
    reader_token_file: str = Field(
        default="", description="File holding the reader token (instead of reader_token)."
    )
    cert_roles: str = Field(
        default="",
        description="Client certificates to roles: role=CN=name or role=SAN, comma-separated.",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: str = Field(default="json", description="json or console.")
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="After SIGTERM, how long in-flight calls may finish."
    )
    metrics_listen: str = Field(default="", description="host:port for Prometheus; empty: off.")
    mirror_enabled: bool = Field(
        default=True, description="Mirror scripts to files; exactly one replica may own it."
    )
    mirror_scan_seconds: float = Field(
        default=2.0, ge=0, description="How often the mirror looks for external edits."
    )
    install_templates: bool = Field(
        default=True, description="Install or upgrade the built-in templates at start-up."
    )
    read_cache_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        description="Memory for kept GetScript/ListScripts answers; 0: off.",
    )

    # TLS. The server side (a service's own TCP listener, never its unix socket or its
    # health port) and the client side (the executor's channel to the library, the CLI)
    # are separate settings: one process may be both, with different certificates.
    tls_cert_file: str = Field(
        default="", description="Server certificate chain (PEM); with its key: serve TLS."
    )
    tls_key_file: str = Field(default="", description="Private key (PEM) of tls_cert_file.")
    tls_client_ca_file: str = Field(
        default="", description="CA (PEM) client certificates must chain to: mutual TLS."
    )
    tls_ca_file: str = Field(
        default="", description="Clients: the CA (PEM) to trust; set: TLS to TCP targets."
    )
    tls_client_cert_file: str = Field(
        default="", description="Clients: certificate chain (PEM) presented for mutual TLS."
    )
    tls_client_key_file: str = Field(
        default="", description="Clients: private key (PEM) of tls_client_cert_file."
    )
    tls_server_name: str = Field(
        default="", description="Clients: name to verify in the server's certificate."
    )

    @model_validator(mode="after")
    def _read_file_forms(self) -> Self:
        for name in self.FILE_FORMS:
            value = secret_from_file(name, getattr(self, name), getattr(self, f"{name}_file"))
            setattr(self, name, value)
        return self

    @cached_property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'library.db').resolve()}"


def settings_error(error: ValidationError) -> str:
    """One line saying what is wrong with the HOOKSHELF_* settings, for a refused start."""
    problems = []
    for problem in error.errors():
        where = ".".join(map(str, problem["loc"]))
        message = str(problem["msg"]).removeprefix("Value error, ")
        problems.append(f"{ENV_PREFIX}{where.upper()}: {message}" if where else message)
    return "; ".join(problems)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (tests, CLI flags) on top."""
    return Settings(**overrides)  # type: ignore[arg-type]  # pydantic checks the overrides at runtime
