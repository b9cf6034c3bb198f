"""Audit store, export and offline verification: proofs from the database, tampering named by position."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from keys import audit
from transparency import tlog_checkpoint as checkpoint, rfc9162 as merkle
from keys.audit import AuditEntry
from service.audit_store import AuditStore, open_log
from service.db import sqlite_engine
from keys.errors import AuditEntryError

ORIGIN = "tsunagu/test/audit-log"


def _entry(i: int) -> AuditEntry:
    return AuditEntry.now(actor=f"staff{i}", role="caseworker", action="reid.request", outcome="requested",
                          target=f"p_{i:04x}", purpose="支援の検討", legal_basis="個人情報保護法69条2項3号", case_ref=f"C-{i}")


@pytest.fixture(params=["sqlite", "postgresql"])
def engines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Engine]]:
    """Two independent engines on one empty database (as two processes would have), on each supported database."""
    if request.param == "sqlite":
        made = [sqlite_engine(str(tmp_path / "audit.db")) for _ in range(2)]
    else:
        url = request.getfixturevalue("fresh_postgres_url")
        made = [create_engine(url) for _ in range(2)]
    yield made
    for engine in made:
        engine.dispose()


@pytest.fixture()
def signer() -> checkpoint.Signer:
    return checkpoint.Signer(ORIGIN, Ed25519PrivateKey.generate())


@pytest.fixture()
def store(engines: list[Engine], signer: checkpoint.Signer) -> AuditStore:
    return open_log(engines[0], signer, ORIGIN)


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


@pytest.mark.parametrize("sharing", ["one store", "two stores"])
def test_concurrent_appends_make_one_consistent_log(
    engines: list[Engine], signer: checkpoint.Signer, sharing: str
) -> None:
    # "two stores" stands for two processes: separate engines and connections,
    # each with its own cached right edge, meeting only in the database.
    stores = [open_log(engines[0], signer, ORIGIN)]
    stores.append(stores[0] if sharing == "one store" else open_log(engines[1], signer, ORIGIN))
    receipts: list[list] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(worker: int) -> None:
        try:
            start.wait()
            for i in range(200):
                receipts[worker].append(stores[worker].append(_entry(worker * 1000 + i)))
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    every = receipts[0] + receipts[1]
    assert sorted(r.index for r in every) == list(range(400))
    for worker in (0, 1):  # each appender sees its own entries in the order it wrote them
        assert [r.index for r in receipts[worker]] == sorted(r.index for r in receipts[worker])
    store = stores[0]
    assert store.size() == 400
    leaves = [e.leaf_hash() for e in store.entries()]
    assert len(leaves) == 400
    for r in every:  # every receipt names its own entry in a prefix of the one final tree
        assert leaves[r.index] == r.leaf_hash
        assert r.proof.root == merkle.root_hash(leaves[: r.proof.tree_size])
        merkle.verify_inclusion(r.leaf_hash, r.index, r.proof.tree_size, r.proof.proof, r.proof.root)
    report = audit.verify_export(_export(store), previous_note=receipts[1][0].checkpoint)
    assert (report.size, report.checkpoints) == (400, 400)


def test_opening_a_new_log_concurrently(engines: list[Engine]) -> None:
    # Processes starting together must not race on CREATE TABLE or the head row.
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(engine: Engine) -> None:
        try:
            start.wait()
            open_log(engine, None, ORIGIN)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(engines[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert open_log(engines[0], None, ORIGIN).size() == 0


def test_append_in_callers_transaction_commits_or_rolls_back_with_it(store: AuditStore, engines: list[Engine]) -> None:
    """An entry written on the caller's connection exists exactly when the caller's transaction commits."""
    store.append(_entry(0))
    with pytest.raises(RuntimeError):
        with engines[0].begin() as conn:
            store.append(_entry(1), connection=conn)
            raise RuntimeError("the change failed after its entry was written")
    assert store.size() == 1
    with engines[0].begin() as conn:
        receipt = store.append(_entry(2), connection=conn)
    store.append(_entry(3))  # the in-memory edge must not be stale after the external append
    assert store.size() == 3 and receipt.index == 1
    lines = _export(store)
    assert audit.verify_export(lines, store._signer.verifier.vkey()).size == 3
