"""Gateway settings: defaults here, overridden by ``<home>/gateway.toml``, then by ``TSUNAGU_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from service.settings import ServiceSettings

CONFIG_FILE = "gateway.toml"
MiB = 1024 * 1024


class Settings(ServiceSettings):
    """One gateway deployment's configuration (everything but ``home`` may sit in gateway.toml)."""

    model_config = SettingsConfigDict(env_prefix="TSUNAGU_", extra="forbid")
    config_file = CONFIG_FILE

    #: SQLAlchemy URL; default: SQLite in WAL mode at <home>/gateway.db
    database_url: str = ""
    #: key id of the municipality's current linkage key (the gateway never holds the key itself)
    linkage_key_id: str = ""
    #: policy file (relative to home); default: <home>/policy.toml if present, else the shipped default
    policy_file: Path | None = None
    max_submission_bytes: int = Field(default=256 * MiB, ge=1)
    session_minutes: int = Field(default=480, ge=1)
    #: the first back-off after repeated failed sign-ins (doubled with each further failure; service.frontdoor.throttle)
    login_backoff_seconds: float = Field(default=1.0, gt=0)
    #: folder polled for submission files (moved to imported/ or rejected/ afterwards)
    drop_folder: Path | None = None
    drop_poll_seconds: float = Field(default=10.0, gt=0)
    #: days an imported file is kept in <drop>/imported/ (it holds sealed identities; the gateway's database has the records)
    drop_imported_retention_days: float = Field(default=7.0, ge=0)
    #: a linkage run starts this long after the last accepted submission
    link_debounce_seconds: float = Field(default=30.0, ge=0)
    #: and in any case every so often (0 = only after submissions)
    link_interval_minutes: int = Field(default=1440, ge=0)
    retention_interval_minutes: int = Field(default=1440, ge=0)
    #: /health fails (503) when the gateway's folder has less free disk than this
    min_free_disk_mb: int = Field(default=200, ge=0)
    #: "incremental": a run links the new and changed records against the last run (a full run when
    #: there is nothing to continue from, reviewers' decisions exist, or `--full`); "full": every run
    #: relinks and refits the model (docs/linkage-at-scale.md)
    linkage_mode: str = Field(default="incremental", pattern="^(incremental|full)$")
    #: Dask scheduler for full runs (tcp://host:8786); empty: this machine's cores
    linkage_dask_address: str = ""

    @model_validator(mode="after")
    def _resolve(self) -> "Settings":
        # the base has resolved ``home`` already
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'gateway.db'}"
        if self.policy_file is not None and not self.policy_file.is_absolute():
            self.policy_file = self.home / self.policy_file
        if self.policy_file is None and (self.home / "policy.toml").exists():
            self.policy_file = self.home / "policy.toml"
        if self.drop_folder is not None and not self.drop_folder.is_absolute():
            self.drop_folder = self.home / self.drop_folder
        return self

    @property
    def log_dir(self) -> Path:
        """Where the gateway writes its log files."""
        return self.home / "logs"

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite database."""
        return self.database_url.startswith("sqlite")


def load_settings(home: Path | None = None, **overrides: Any) -> Settings:
    """Settings of the gateway at ``home`` (or ``TSUNAGU_HOME``)."""
    if home is not None:
        overrides["home"] = home
    return Settings(**overrides)
