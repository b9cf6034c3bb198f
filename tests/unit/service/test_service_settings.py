"""The settings base both services share (defaults, <home>/<service>.toml, environment) and the signing keys they keep at rest."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from escrow.config import Settings as EscrowSettings
from gateway.config import Settings as GatewaySettings
from service.settings import read_signing_key, signing_key_at_rest


def test_each_service_reads_its_own_file_and_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gateway.toml").write_text("session_minutes = 5\nwitness_interval_seconds = 7\n", encoding="utf-8")
    (tmp_path / "escrow.toml").write_text('municipality = "131016"\nwitness_interval_seconds = 9\n', encoding="utf-8")
    (tmp_path / "x").mkdir()
    gateway, escrow = GatewaySettings(home=tmp_path / "x" / ".."), EscrowSettings(home=tmp_path)
    assert (gateway.home, gateway.session_minutes, gateway.witness_interval_seconds) == (tmp_path.resolve(), 5, 7)
    assert gateway.database_url == f"sqlite:///{tmp_path.resolve() / 'gateway.db'}"  # derived from the resolved home
    assert (escrow.municipality, escrow.witness_interval_seconds, escrow.session_minutes) == ("131016", 9, 30)

    # The environment overrides the file, each service under its own prefix only.
    monkeypatch.setenv("TSUNAGU_WITNESS_INTERVAL_SECONDS", "11")
    monkeypatch.setenv("TSUNAGU_ESCROW_WITNESS_INTERVAL_SECONDS", "13")
    assert GatewaySettings(home=tmp_path).witness_interval_seconds == 11
    assert EscrowSettings(home=tmp_path).witness_interval_seconds == 13
    # Code overrides both.
    assert EscrowSettings(home=tmp_path, witness_interval_seconds=0).witness_interval_seconds == 0


def test_a_field_of_the_other_service_is_refused(tmp_path: Path) -> None:
    (tmp_path / "escrow.toml").write_text('municipality = "131016"\nlinkage_mode = "full"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="linkage_mode"):
        EscrowSettings(home=tmp_path)


def test_signing_key_is_made_once_0600_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-signing.pem"
    first = signing_key_at_rest(path)
    assert first is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = signing_key_at_rest(path)
    assert again is not None and again.public_key().public_bytes_raw() == first.public_key().public_bytes_raw()


def test_a_key_of_another_kind_is_not_a_signing_key(tmp_path: Path) -> None:
    path = tmp_path / "other.pem"
    path.write_bytes(generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    assert signing_key_at_rest(path) is None
    path.write_text("not a key", encoding="utf-8")
    with pytest.raises(ValueError):
        read_signing_key(path)
    with pytest.raises(FileNotFoundError):
        read_signing_key(tmp_path / "missing.pem")
