"""Escrow settings: defaults here, overridden by ``<home>/escrow.toml``, then by ``TSUNAGU_ESCROW_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from service.settings import ServiceSettings

CONFIG_FILE = "escrow.toml"


class Settings(ServiceSettings):
    """One escrow deployment's configuration (``municipality`` is written by ``tsunagu escrow init``)."""

    model_config = SettingsConfigDict(env_prefix="TSUNAGU_ESCROW_", extra="forbid")
    config_file = CONFIG_FILE

    #: municipality code, names the escrow's audit log (origin ``tsunagu.escrow/<code>``)
    municipality: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    #: a session token expires this long after sign-in
    session_minutes: float = Field(default=30, gt=0)
    #: an approved request must be released within this time after its last approval, or it expires
    release_window_minutes: float = Field(default=1440, gt=0)

    @property
    def database_path(self) -> Path:
        """The escrow's SQLite database: users, sessions, requests and its audit log."""
        return self.home / "escrow.db"

    @property
    def audit_origin(self) -> str:
        """The origin line of the escrow's audit checkpoints."""
        return f"tsunagu.escrow/{self.municipality}"


def load_settings(home: Path, **overrides: Any) -> Settings:
    """Settings of the escrow at ``home``."""
    return Settings(home=home, **overrides)
