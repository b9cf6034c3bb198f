"""Audit store, export and offline verification: proofs from the database, tampering named by position."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import audit, checkpoint, merkle
from keys.audit import AuditEntry
from keys.audit_store import AuditStore, sqlite_engine
from keys.errors import AuditEntryError

ORIGIN = "tsunagu/test/audit-log"


def _entry(i: int) -> AuditEntry:
    return AuditEntry.now(actor=f"staff{i}", role="caseworker", action="reid.request", outcome="requested",
                          target=f"p_{i:04x}", purpose="支援の検討", legal_basis="個人情報保護法69条2項3号", case_ref=f"C-{i}")


@pytest.fixture()
def store(tmp_path: Path) -> AuditStore:
    return AuditStore(sqlite_engine(str(tmp_path / "audit.db")), checkpoint.Signer(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)


def _export(store: AuditStore) -> list[str]:
    return list(audit.export_lines(ORIGIN, store._signer.verifier.vkey(), store.entries(), store.checkpoints(), store.size()))


def test_schema_refuses_extra_fields() -> None:
    with pytest.raises(AuditEntryError, match="定義外"):
        AuditEntry.from_json({**_entry(1).to_json(), "name": "山田太郎"})
    with pytest.raises(AuditEntryError):
        AuditEntry.from_json({**_entry(1).to_json(), "time": "2024-01-01T00:00:00"})


def test_store_proofs_verify(store: AuditStore) -> None:
    receipts = [store.append(_entry(i)) for i in range(37)]
    leaves = [r.leaf_hash for r in receipts]
    for r in receipts:  # the proof an append returns is the one RFC 9162 defines, for the tree it made
        assert r.proof.proof == merkle.inclusion_proof(r.index, leaves[: r.index + 1])
        assert r.proof.root == merkle.root_hash(leaves[: r.index + 1])
    assert store.root() == merkle.root_hash(leaves)
    for index in (0, 5, 31, 36):
        proof = store.inclusion_proof(index)
        merkle.verify_inclusion(proof.leaf_hash, index, 37, proof.proof, proof.root)
        assert proof.proof == merkle.inclusion_proof(index, leaves)
    for size1 in (1, 8, 20, 37):
        proof = store.consistency_proof(size1)
        assert proof.root1 == merkle.root_hash(leaves[:size1])
        merkle.verify_consistency(size1, 37, proof.root1, proof.root2, proof.proof)
    cp = checkpoint.verify_checkpoint(store.latest_checkpoint(), store._signer.verifier, ORIGIN)
    assert (cp.size, cp.root) == (37, store.root())


def test_export_verifies_and_names_first_bad_position(store: AuditStore) -> None:
    for i in range(12):
        store.append(_entry(i))
    first_note = list(store.checkpoints())[4]
    lines = _export(store)
    report = audit.verify_export(lines, previous_note=first_note)
    assert (report.size, report.previous_size) == (12, 5)

    edited = list(lines)
    item = json.loads(edited[1 + 7])
    item["entry"]["outcome"] = "approved"
    edited[1 + 7] = json.dumps(item, ensure_ascii=False)
    with pytest.raises(audit.EntryMismatchError) as caught:
        audit.verify_export(edited)
    assert caught.value.position == 7

    deleted = lines[:4] + lines[5:]
    with pytest.raises(audit.EntryMismatchError) as caught:
        audit.verify_export(deleted)
    assert caught.value.position == 3

    # Reordered and renumbered, so only the signed roots can tell.
    swapped = list(lines)
    a, b = json.loads(swapped[3]), json.loads(swapped[4])
    a["index"], b["index"] = 3, 2
    swapped[3], swapped[4] = json.dumps(b), json.dumps(a)
    with pytest.raises(audit.EntryMismatchError) as caught:
        audit.verify_export(swapped)
    assert caught.value.position == 2

    with pytest.raises(audit.PublicKeyMismatchError):
        audit.verify_export(lines, pinned_vkey=checkpoint.Signer(ORIGIN, Ed25519PrivateKey.generate()).verifier.vkey())


def test_truncated_log_fails_against_previous_checkpoint(store: AuditStore, tmp_path: Path) -> None:
    for i in range(6):
        store.append(_entry(i))
    late_note = store.latest_checkpoint()
    lines = _export(store)
    entries_only = [l for l in lines if json.loads(l)["type"] != "checkpoint"]
    notes = [l for l in lines if json.loads(l)["type"] == "checkpoint"]
    truncated = entries_only[:5] + notes[:4]  # drop the last two entries and their checkpoints
    with pytest.raises(audit.InconsistentHistoryError, match="切り詰め"):
        audit.verify_export(truncated, previous_note=late_note)
