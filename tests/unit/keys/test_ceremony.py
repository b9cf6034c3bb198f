"""The whole ceremony through the Python API, and every bad input refused with a named reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keys import audit, custody, enrolment, seal
from keys.custody import Custodian, ShareInput
from keys.errors import AgentError, KeyFileError, KeyIdMismatchError, SealError, ShareError, UnknownKeyIdError, WrongPassphraseError
from keys.keyring import Keyring, init_municipality
from keys.linkage_secret import ensure_same_key_id
from keys.passphrase import KdfParams
from service.audit_store import keyring_log, record_key_operation

FAST = KdfParams(memory_kib=1024, iterations=1, lanes=1)  # small but real Argon2id
OPERATOR = "operator pass 1"
CUSTODIANS = [Custodian(f"custodian{i}", f"custodian pass {i}") for i in range(1, 6)]


@pytest.fixture()
def admin(tmp_path: Path) -> tuple[Path, list[Path]]:
    result = init_municipality(tmp_path / "admin", "131016", CUSTODIANS, 3, OPERATOR, FAST)
    return tmp_path / "admin", result.share_files


def _shares(paths: list[Path], picks: list[int]) -> list[ShareInput]:
    return [ShareInput(paths[i], CUSTODIANS[i].passphrase) for i in picks]


def _entry(action: str, **extra: str) -> dict[str, str]:
    return {"actor": "tanaka", "role": "key-administrator", "action": action, "outcome": "ok", **extra}


def test_whole_ceremony(admin: tuple[Path, list[Path]], tmp_path: Path) -> None:
    home, share_files = admin
    ring = Keyring(home)
    signer = ring.checkpoint_signer(OPERATOR)

    agent_home = tmp_path / "agent"
    public_file = enrolment.init_agent(agent_home, "edu-1", "agent pass", FAST)
    registry = enrolment.AgentRegistry(home)
    agent_public = enrolment.read_agent_public(public_file)
    record_key_operation(ring, signer, **_entry("agent.enrol", target="edu-1"))
    wrapped = registry.enrol(agent_public, ring.linkage_secret(OPERATOR), ring.federation_signer(OPERATOR), home / "enrolments")
    key_id = enrolment.install_linkage_secret(agent_home, wrapped, "agent pass", params=FAST)
    assert enrolment.load_linkage_secret(agent_home, "agent pass") == ring.linkage_secret(OPERATOR)
    assert key_id == ring.current_linkage_key_id

    identities = {f"tok{i}": {"name": f"山田 太郎{i}", "kana": "ヤマダ タロウ", "birth_date": "2015-04-01",
                              "address": "東京都千代田区", "record_id": f"R{i}"} for i in range(100)}
    batch = seal.SealedBatch.from_json(json.loads(json.dumps(
        seal.seal_batch(ring.escrow_public(), "edu", "batch-1", identities).to_json())))

    escrow = custody.unseal(ring.escrow_sealed_path, _shares(share_files, [4, 0, 2]))
    receipt = record_key_operation(ring, signer, **_entry("reid.release", target="tok42", purpose="支援", legal_basis="法69条", case_ref="C-1"))
    record_key = seal.derive_record_key(escrow, batch.header, "tok42")
    assert seal.open_record(record_key, batch.header, batch.records["tok42"]) == identities["tok42"]
    with pytest.raises(SealError):  # the released key opens that record only
        seal.open_record(record_key, batch.header, batch.records["tok43"])
    assert receipt.index == 1

    store = keyring_log(ring, None)
    lines = list(audit.export_lines(store.origin, ring.checkpoint_vkey, store.entries(), store.checkpoints(), store.size()))
    assert audit.verify_export(lines, pinned_vkey=ring.checkpoint_vkey).size == 2
    tampered = lines[:1] + [lines[1].replace("agent.enrol", "agent.revoke")] + lines[2:]
    with pytest.raises(audit.EntryMismatchError) as caught:
        audit.verify_export(tampered)
    assert caught.value.position == 0


def test_share_errors_are_named(admin: tuple[Path, list[Path]], tmp_path: Path) -> None:
    home, files = admin
    sealed = Keyring(home).escrow_sealed_path
    with pytest.raises(ShareError, match="足りません"):
        custody.unseal(sealed, _shares(files, [0, 1]))
    with pytest.raises(ShareError, match="二度"):
        custody.unseal(sealed, _shares(files, [0, 1, 1]))
    with pytest.raises(ShareError, match="パスフレーズが違います"):
        custody.unseal(sealed, [ShareInput(files[0], "wrong"), *_shares(files, [1, 2])])
    with pytest.raises(ShareError, match="ありません"):
        custody.unseal(sealed, [ShareInput(tmp_path / "nope.json", "x"), *_shares(files, [1, 2])])
    other = init_municipality(tmp_path / "other", "131024", CUSTODIANS, 3, OPERATOR, FAST)
    with pytest.raises(ShareError, match="別のエスクロー鍵"):
        custody.unseal(sealed, [ShareInput(other.share_files[0], CUSTODIANS[0].passphrase), *_shares(files, [1, 2])])
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(files[0].read_bytes()[:-40])
    with pytest.raises(KeyFileError, match="途中で切れている"):
        custody.unseal(sealed, [ShareInput(truncated, CUSTODIANS[0].passphrase), *_shares(files, [1, 2])])
    edited = tmp_path / "edited.json"
    edited.write_text(files[0].read_text().replace('"index": 1', '"index": 4'))
    with pytest.raises(KeyFileError, match="編集"):
        custody.unseal(sealed, [ShareInput(edited, CUSTODIANS[0].passphrase), *_shares(files, [1, 2])])


def test_rewrap_makes_old_shares_foreign(admin: tuple[Path, list[Path]]) -> None:
    home, files = admin
    ring = Keyring(home)
    before = custody.unseal(ring.escrow_sealed_path, _shares(files, [0, 1, 2]))
    new_custodians = [Custodian("a", "new a"), Custodian("b", "new b")]
    _, new_files = custody.rewrap(ring.escrow_sealed_path, _shares(files, [2, 3, 4]), ring.shares_dir, new_custodians, 2, FAST)
    with pytest.raises(ShareError, match="以前の"):
        custody.unseal(ring.escrow_sealed_path, _shares(files, [0, 1, 2]))
    after = custody.unseal(ring.escrow_sealed_path, [ShareInput(p, c.passphrase) for p, c in zip(new_files, new_custodians)])
    assert after.public == before.public


def test_rotation_revocation_and_key_ids(admin: tuple[Path, list[Path]], tmp_path: Path) -> None:
    home, _ = admin
    ring = Keyring(home)
    old = ring.linkage_secret(OPERATOR)
    new = ring.rotate_linkage(OPERATOR, FAST)
    ring = Keyring(home)
    assert ring.current_linkage_key_id == new.key_id
    assert ring.linkage_keys[old.key_id]["status"] == "retired"
    assert ring.linkage_secret(OPERATOR, old.key_id) == old
    with pytest.raises(KeyIdMismatchError):
        ensure_same_key_id(old, new)
    with pytest.raises(UnknownKeyIdError):
        ring.linkage_secret(OPERATOR, "lk_0000000000000000")
    with pytest.raises(WrongPassphraseError):
        ring.linkage_secret("wrong")

    public_file = enrolment.init_agent(tmp_path / "agent", "net-1", "agent pass", FAST)
    registry = enrolment.AgentRegistry(home)
    registry.enrol(enrolment.read_agent_public(public_file), new, ring.federation_signer(OPERATOR), home / "enrolments")
    registry.revoke("net-1", "端末紛失")
    with pytest.raises(AgentError, match="失効"):
        enrolment.AgentRegistry(home).enrol(enrolment.read_agent_public(public_file), new, ring.federation_signer(OPERATOR), home)


def test_wrapped_secret_is_for_one_agent(admin: tuple[Path, list[Path]], tmp_path: Path) -> None:
    home, _ = admin
    ring = Keyring(home)
    a = enrolment.init_agent(tmp_path / "a", "agent-a", "pa", FAST)
    enrolment.init_agent(tmp_path / "b", "agent-b", "pb", FAST)
    wrapped = enrolment.AgentRegistry(home).enrol(enrolment.read_agent_public(a), ring.linkage_secret(OPERATOR),
                                                  ring.federation_signer(OPERATOR), home / "enrolments")
    with pytest.raises(AgentError, match="宛て"):
        enrolment.install_linkage_secret(tmp_path / "b", wrapped, "pb", params=FAST)
    doc = json.loads(wrapped.read_text())
    doc["ciphertext"] = doc["ciphertext"][::-1]
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="チェックサム"):
        enrolment.install_linkage_secret(tmp_path / "a", forged, "pa", params=FAST)


def test_seal_binds_token_source_and_batch(admin: tuple[Path, list[Path]]) -> None:
    home, files = admin
    ring = Keyring(home)
    batch = seal.seal_batch(ring.escrow_public(), "edu", "b1", {"t1": {"name": "a"}, "t2": {"name": "b"}})
    escrow = custody.unseal(ring.escrow_sealed_path, _shares(files, [0, 1, 2]))
    moved = seal.derive_record_key(escrow, batch.header, "t2")
    with pytest.raises(SealError):
        seal.open_record(moved, batch.header, batch.records["t1"])
    other_source = seal.BatchHeader(batch.header.escrow_key_id, "mynumber", "b1", batch.header.ephemeral_public)
    with pytest.raises(SealError):
        seal.open_record(seal.derive_record_key(escrow, other_source, "t1"), other_source, batch.records["t1"])
