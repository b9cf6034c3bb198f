"""The settings base of both services: defaults in the class, overridden by ``<home>/<service>.toml``, then by environment variables.

Each service subclasses :class:`ServiceSettings`, names its TOML file
(``config_file``) and its environment prefix, and declares only its own
fields. The order of the sources is the same for both: arguments given in
code, then the environment, then the TOML file in the service's home (the
file is looked up from ``home`` as given in code or in the environment).

Also here: the signing keys both services keep at rest. A service signs its
audit checkpoints (and the gateway its federation messages and return lists)
unattended, so each such key rests like a TLS server key: a 0600 PKCS#8 file
in the service's home, never under a passphrase nobody is there to type.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource


class ServiceSettings(BaseSettings):
    """What every service's settings have: its home folder, its TOML file, and its witness schedule."""

    #: the TOML file in ``home`` that overrides the defaults (``gateway.toml``, ``escrow.toml``)
    config_file: ClassVar[str]

    home: Path
    #: how often the audit log's latest checkpoint is sent to its witnesses for cosigning (0 = only at export)
    witness_interval_seconds: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _resolve_home(self) -> "ServiceSettings":
        self.home = self.home.resolve()
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Code, then environment, then ``<home>/<config_file>``; no dotenv and no secrets directory."""
        home = init_settings().get("home") or env_settings().get("home")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if home is not None and (Path(home) / cls.config_file).exists():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(home) / cls.config_file))
        return tuple(sources)


def read_signing_key(path: Path) -> Ed25519PrivateKey | None:
    """The Ed25519 key in the PKCS#8 file ``path``, or None if it holds another kind of key.

    Raises ``FileNotFoundError`` when the file is missing and ``ValueError``
    when it is not a private key at all; the caller turns either into its own
    refusal.
    """
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    return key if isinstance(key, Ed25519PrivateKey) else None


def write_signing_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` to the new 0600 file ``path`` (``FileExistsError`` if it exists: a key is never overwritten here)."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())


def signing_key_at_rest(path: Path) -> Ed25519PrivateKey | None:
    """The signing key at ``path``, made on first use (its folder 0700); None if the file holds another kind of key.

    Two processes starting at once may both find the file missing: the one
    that loses the exclusive create reads the winner's key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            write_signing_key(path, Ed25519PrivateKey.generate())
        except FileExistsError:
            pass
    return read_signing_key(path)
