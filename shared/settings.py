"""Settings for both services and the CLI, read from HOOKSHELF_* environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob has a default that runs the embedded set-up (SQLite, local sockets)."""

    model_config = SettingsConfigDict(env_prefix="HOOKSHELF_", extra="ignore")

    data_dir: Path = Field(default=Path("./.data"), description="Library data: files, SQLite.")
    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty means SQLite at <data_dir>/library.db."
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
    secret_key: str = Field(default="", description="Fernet key; empty: a key file in data_dir.")
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

    @cached_property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'library.db').resolve()}"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (tests, CLI flags) on top."""
    return Settings(**overrides)  # type: ignore[arg-type]  # pydantic checks the overrides at runtime
