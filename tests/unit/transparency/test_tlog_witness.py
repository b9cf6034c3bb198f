"""Witness cosigning (C2SP tlog-witness / tlog-cosignature): every answer of add-checkpoint, and cosigned exports."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import audit
from transparency import tlog_checkpoint as checkpoint, tlog_witness as witness
from keys.audit import AuditEntry
from service.audit_store import AuditStore, open_log
from service.db import sqlite_engine

ORIGIN = "tsunagu.gateway/131016"


def _entry(i: int) -> AuditEntry:
    return AuditEntry.now(actor=f"staff{i}", role="caseworker", action="review.decide", outcome="link", target=f"p_{i:04x}")


@pytest.fixture()
def signer() -> checkpoint.Signer:
    return checkpoint.Signer("tsunagu-gateway", Ed25519PrivateKey.generate())


@pytest.fixture()
def store(tmp_path: Path, signer: checkpoint.Signer) -> AuditStore:
    return open_log(sqlite_engine(str(tmp_path / "log.db")), signer, ORIGIN)


@pytest.fixture()
def wit(tmp_path: Path, signer: checkpoint.Signer) -> witness.Witness:
    w = witness.Witness.init(tmp_path / "w" / "witness", "escrow.example/witness")
    w.trust(ORIGIN, signer.verifier.vkey())
    return w


def _direct(w: witness.Witness) -> witness.Post:
    return lambda _url, body: w.add_checkpoint(body)


def _peer(w: witness.Witness) -> witness.Peer:
    return witness.Peer("local", witness.CosignerKey.from_vkey(w.vkey))


def test_cosignature_format_is_c2sp_cosignature_v1(store: AuditStore, wit: witness.Witness) -> None:
    store.append(_entry(0))
    note = store.latest_checkpoint()
    answer = wit.add_checkpoint(witness.add_checkpoint_body(0, [], note))
    assert answer.status == 200
    line = answer.body
    assert line.startswith("\u2014 escrow.example/witness ") and line.endswith("\n")
    blob = base64.b64decode(line.split()[-1])
    assert len(blob) == 4 + 8 + 64
    key = witness.CosignerKey.from_vkey(wit.vkey)
    assert blob[:4] == key.key_id
    (stamp,) = struct.unpack(">Q", blob[4:12])
    body = note[: note.rindex("\n\n") + 1]
    # The signed message: header line, time line, checkpoint body (tlog-cosignature).
    key.public_key.verify(blob[12:], f"cosignature/v1\ntime {stamp}\n{body}".encode())
    assert base64.b64decode(wit.vkey.split("+", 2)[2])[0] == 0x04  # (base64 may itself hold "+")
    # The log key still verifies the note with the cosignature added; the witness key verifies the cosignature.
    assert checkpoint.verify_checkpoint(note + line, store._signer.verifier).size == 1
    assert key.verify(note + line)[0].timestamp == stamp


def test_add_checkpoint_answers(store: AuditStore, wit: witness.Witness, tmp_path: Path) -> None:
    for i in range(5):
        store.append(_entry(i))
    notes = list(store.checkpoints())
    assert wit.add_checkpoint(witness.add_checkpoint_body(0, [], notes[2])).status == 200  # size 3
    # Old size not the witness's: 409 with its size, as text/x.tlog.size.
    stale = wit.add_checkpoint(witness.add_checkpoint_body(0, [], notes[4]))
    assert (stale.status, stale.body, stale.content_type) == (409, "3\n", "text/x.tlog.size")
    # A wrong consistency proof: 422, and the state does not move.
    bad = wit.add_checkpoint(witness.add_checkpoint_body(3, [b"\x00" * 32, b"\x01" * 32], notes[4]))
    assert bad.status == 422 and wit.latest(ORIGIN)[0] == 3
    good = wit.add_checkpoint(witness.add_checkpoint_body(3, store.consistency_proof(3, 5).proof, notes[4]))
    assert good.status == 200 and wit.latest(ORIGIN)[0] == 5
    # Old size above the checkpoint's: 400; unknown origin: 404; not signed by the trusted key: 403.
    assert wit.add_checkpoint(witness.add_checkpoint_body(5, [], notes[2])).status == 400
    other = checkpoint.sign_checkpoint(checkpoint.Checkpoint("tsunagu.gateway/999999", 1, b"\x00" * 32), store._signer)
    assert wit.add_checkpoint(witness.add_checkpoint_body(0, [], other)).status == 404
    forged = checkpoint.sign_checkpoint(checkpoint.Checkpoint(ORIGIN, 9, b"\x00" * 32),
                                        checkpoint.Signer("tsunagu-gateway", Ed25519PrivateKey.generate()))
    assert wit.add_checkpoint(witness.add_checkpoint_body(5, [], forged)).status == 403
    # Same size, other root (a fork): refused and kept as evidence.
    fork = checkpoint.sign_checkpoint(checkpoint.Checkpoint(ORIGIN, 5, b"\x07" * 32), store._signer)
    assert wit.add_checkpoint(witness.add_checkpoint_body(5, [], fork)).status == 409
    assert "different root" in (wit.folder / witness.REFUSALS).read_text()
    assert wit.add_checkpoint(b"not a request").status == 400
    # The state survives reopening (another process, a restart).
    assert witness.Witness.open(wit.folder).latest(ORIGIN)[0] == 5


def test_submit_stores_cosignatures_and_export_verifies(store: AuditStore, wit: witness.Witness, tmp_path: Path) -> None:
    peer = _peer(wit)
    for i in range(7):
        store.append(_entry(i))
        if i in (2, 6):
            assert witness.submit(store, peer, _direct(wit)) == i + 1
    lines = store.export(store._signer.verifier.vkey())
    report = audit.verify_export(lines, store._signer.verifier.vkey(), witness_vkeys=[wit.vkey])
    assert (report.size, report.witnessed_size) == (7, 7)
    assert [c.witness for c in report.cosignatures] == ["escrow.example/witness"]
    # A second witness that never cosigned: a quorum of 2 is not met.
    other = witness.Witness.init(tmp_path / "other" / "witness", "auditor.example/witness")
    with pytest.raises(audit.UnwitnessedError):
        audit.verify_export(lines, store._signer.verifier.vkey(), witness_vkeys=[wit.vkey, other.vkey], quorum=2)
    # The log grew after the last cosignature: the tail is named as unwitnessed.
    store.append(_entry(7))
    with pytest.raises(audit.UnwitnessedError) as caught:
        audit.verify_export(store.export(store._signer.verifier.vkey()), store._signer.verifier.vkey(), witness_vkeys=[wit.vkey])
    assert caught.value.position == 7


def test_submit_recovers_its_old_size_from_a_409(store: AuditStore, wit: witness.Witness, tmp_path: Path) -> None:
    # The log forgot what the witness cosigned (a restored database): the witness's 409 tells it.
    for i in range(4):
        store.append(_entry(i))
    witness.submit(store, _peer(wit), _direct(wit))
    fresh = open_log(sqlite_engine(str(tmp_path / "copy.db")), store._signer, ORIGIN)
    for e in store.entries():
        fresh.append(e)
    fresh.append(_entry(4))
    assert witness.submit(fresh, _peer(wit), _direct(wit)) == 5


def test_offline_cosign_of_an_export(store: AuditStore, wit: witness.Witness, tmp_path: Path) -> None:
    for i in range(3):
        store.append(_entry(i))
    vkey = store._signer.verifier.vkey()
    first = wit.cosign_export(store.export(vkey))
    assert audit.verify_export(first, vkey, witness_vkeys=[wit.vkey]).witnessed_size == 3
    store.append(_entry(3))
    assert audit.verify_export(wit.cosign_export(store.export(vkey)), vkey, witness_vkeys=[wit.vkey]).witnessed_size == 4
    # An export of a rewritten history is refused: the witness computed the proof from its entries.
    rewritten = open_log(sqlite_engine(str(tmp_path / "rw.db")), store._signer, ORIGIN)
    for e in [_entry(9), *list(store.entries())[1:], _entry(4)]:
        rewritten.append(e)
    with pytest.raises(witness.WitnessError, match="拒否"):
        wit.cosign_export(rewritten.export(vkey))


def test_witness_keys_are_refused_as_log_keys_and_the_reverse(wit: witness.Witness, signer: checkpoint.Signer) -> None:
    with pytest.raises(witness.WitnessError, match="cosignature/v1"):
        witness.CosignerKey.from_vkey(signer.verifier.vkey())
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.Verifier.from_vkey(wit.vkey)
    assert json.loads((wit.folder / witness.CONFIG).read_text())["logs"] == {ORIGIN: signer.verifier.vkey()}
    assert oct((wit.folder / witness.SIGNING_KEY).stat().st_mode & 0o777) == "0o600"
