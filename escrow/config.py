"""Escrow settings: defaults here, overridden by ``<home>/escrow.toml``, then by ``TSUNAGU_ESCROW_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

CONFIG_FILE = "escrow.toml"


class Settings(BaseSettings):
    """One escrow deployment's configuration (``municipality`` is written by ``tsunagu escrow init``)."""

    model_config = SettingsConfigDict(env_prefix="TSUNAGU_ESCROW_", extra="forbid")

    home: Path
    #: municipality code, names the escrow's audit log (origin ``tsunagu.escrow/<code>``)
    municipality: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    #: a session token expires this long after sign-in
    session_minutes: float = Field(default=30, gt=0)
    #: an approved request must be released within this time after its last approval, or it expires
    release_window_minutes: float = Field(default=1440, gt=0)
    #: how often the audit log's latest checkpoint is sent to its witnesses for cosigning (0 = only at export)
    witness_interval_seconds: float = Field(default=60, ge=0)

    @model_validator(mode="after")
    def _resolve(self) -> "Settings":
        self.home = self.home.resolve()
        return self

    @property
    def database_path(self) -> Path:
        """The escrow's SQLite database: users, sessions, requests and its audit log."""
        return self.home / "escrow.db"

    @property
    def audit_origin(self) -> str:
        """The origin line of the escrow's audit checkpoints."""
        return f"tsunagu.escrow/{self.municipality}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        home = init_settings().get("home") or env_settings().get("home")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if home is not None and (Path(home) / CONFIG_FILE).exists():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(home) / CONFIG_FILE))
        return tuple(sources)


def load_settings(home: Path, **overrides: Any) -> Settings:
    """Settings of the escrow at ``home``."""
    return Settings(home=home, **overrides)
