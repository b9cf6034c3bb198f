"""Tamper suite: every way of altering a witnessed audit log is caught by `tsunagu audit verify` with the trusted keys.

The log's operator holds the log's signing key, so they can rewrite history
and re-sign every checkpoint; what they cannot do is get a witness to cosign
a history that does not extend the one it already cosigned. The verifier
here keeps no checkpoint of its own: it has only the log's key and the
witness's key. Genuine exports (every size, CRLF copies, text with line
separators) must all verify.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from transparency import tlog_checkpoint as checkpoint, tlog_witness as witness
from keys.audit import AuditEntry
from service.audit_store import AuditStore, open_log
from service.db import sqlite_engine
from tsunagu.cli import app
from tsunagu.errors import CommandError

ORIGIN = "tsunagu.gateway/131016"
SEPARATORS = "\u2028\u2029\u0085"


def _entry(i: int, outcome: str = "requested") -> AuditEntry:
    # Some entries carry the characters str.splitlines() breaks at.
    odd = SEPARATORS if i % 3 == 0 else ""
    return AuditEntry.now(actor=f"staff{i}{odd}", role="caseworker", action="reidentify.request", outcome=outcome,
                          target=f"req-{i}", purpose=f"支援{odd}の検討", legal_basis="個人情報保護法69条2項3号", case_ref=f"R6-{i:03d}")


class Log:
    """A gateway-like log (store + key) witnessed by an independent witness, as files for the CLI."""

    def __init__(self, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp
        self.signer = checkpoint.Signer("tsunagu-gateway", Ed25519PrivateKey.generate())
        self.vkey = self.signer.verifier.vkey()
        self.store = open_log(sqlite_engine(str(tmp / "gateway.db")), self.signer, ORIGIN)
        self.witness = witness.Witness.init(tmp / "escrow" / "witness", "tsunagu.escrow/131016/witness")
        self.witness.trust(ORIGIN, self.vkey)
        self.peer = witness.Peer("escrow", witness.CosignerKey.from_vkey(self.witness.vkey))
        (tmp / "log.vkey").write_text(self.vkey + "\n")
        (tmp / "witness.vkey").write_text(self.witness.vkey + "\n")

    def post(self, _url: str, body: bytes) -> witness.WitnessResponse:
        return self.witness.add_checkpoint(body)

    def append(self, entry: AuditEntry, witnessed: bool = True) -> None:
        self.store.append(entry)
        if witnessed:
            witness.submit(self.store, self.peer, self.post)

    def rebuilt(self, entries: list[AuditEntry], signer: checkpoint.Signer | None = None, name: str = "rewritten") -> AuditStore:
        """The operator's rewrite: a new log of ``entries``, every checkpoint re-signed (by the log's own key by default)."""
        store = open_log(sqlite_engine(str(self.tmp / f"{name}.db")), signer or self.signer, ORIGIN)
        for e in entries:
            store.append(e)
        return store


def verify(tmp: Path, lines: list[str], *extra: str, name: str = "export.jsonl", newline: str = "\n") -> tuple[int, str]:
    path = tmp / name
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))
    r = CliRunner().invoke(app, ["audit", "verify", str(path), "--public-key", str(tmp / "log.vkey"),
                                 "--witness-key", str(tmp / "witness.vkey"), *extra])
    return r.exit_code, r.output


@pytest.fixture()
def log(tmp_path: Path) -> Log:
    made = Log(tmp_path)
    for i in range(12):
        made.append(_entry(i), witnessed=i % 4 == 3)  # witnessed at sizes 4, 8 and 12
    return made


def _edit(lines: list[str]) -> list[str]:
    out = list(lines)
    item = json.loads(out[1 + 5])
    item["entry"]["outcome"] = "approved"
    out[1 + 5] = json.dumps(item, ensure_ascii=False)
    return out


def _delete(lines: list[str]) -> list[str]:
    return lines[:1 + 6] + lines[1 + 7:]


def _reorder(lines: list[str]) -> list[str]:
    out = list(lines)
    a, b = json.loads(out[1 + 2]), json.loads(out[1 + 3])
    a["index"], b["index"] = 3, 2
    out[1 + 2], out[1 + 3] = json.dumps(b, ensure_ascii=False), json.dumps(a, ensure_ascii=False)
    return out


def _truncate(lines: list[str]) -> list[str]:
    # The last two entries and their checkpoints cut off (a non-witnessed size).
    entries = [l for l in lines if json.loads(l)["type"] != "checkpoint"]
    notes = [l for l in lines if json.loads(l)["type"] == "checkpoint"]
    return entries[:-2] + notes[:-2]


def _cosignature_lines(note: str) -> str:
    return "".join(l for l in note.splitlines(keepends=True) if "witness" in l)


def _strip_cosignatures(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        item = json.loads(line)
        if item["type"] == "checkpoint":
            item["note"] = item["note"].replace(_cosignature_lines(item["note"]), "")
        out.append(json.dumps(item, ensure_ascii=False))
    return out


def _fork_in_export(log: Log) -> Callable[[list[str]], list[str]]:
    def fork(lines: list[str]) -> list[str]:
        other = log.rebuilt([*list(log.store.entries())[:7], _entry(99)], name="fork-in-export")
        return lines + [json.dumps({"type": "checkpoint", "note": other.latest_checkpoint()}, ensure_ascii=False)]
    return fork


def test_every_tamper_variant_is_detected_and_no_genuine_export_is_broken(log: Log, tmp_path: Path) -> None:
    genuine = log.store.export(log.vkey)
    entries = list(log.store.entries())
    code, out = verify(tmp_path, genuine)
    assert code == 0, out

    results: dict[str, tuple[int, str]] = {}
    for name, change in [("edit", _edit), ("delete", _delete), ("reorder", _reorder), ("truncate", _truncate),
                         ("strip cosignatures", _strip_cosignatures), ("fork inside the export", _fork_in_export(log))]:
        results[name] = verify(tmp_path, change(genuine), name=f"{name}.jsonl")

    # Re-signed with the log's own key (the operator rewrites entry 2) …
    rewritten = log.rebuilt([*entries[:2], _entry(2, outcome="refused: person_not_found"), *entries[3:]])
    own = rewritten.export(log.vkey)
    # … keeping the witness's cosignatures from the genuine log,
    kept = [json.dumps({"type": "checkpoint", "note": json.loads(o)["note"] + _cosignature_lines(json.loads(g)["note"])},
                       ensure_ascii=False) if json.loads(o)["type"] == "checkpoint" else o for o, g in zip(own, genuine)]
    results["re-signed with own key, old cosignatures kept"] = verify(tmp_path, kept, name="own-kept.jsonl")
    # … or asking the witness to cosign the rewritten history: it refuses, so the export has no cosignature.
    with pytest.raises(witness.WitnessError, match="拒否|連署済み"):
        witness.submit(rewritten, log.peer, log.post)
    results["re-signed with own key"] = verify(tmp_path, rewritten.export(log.vkey), name="own.jsonl")

    # Re-signed with another key, the export claiming that key (and a witness of the operator's own making).
    stranger = checkpoint.Signer("tsunagu-gateway", Ed25519PrivateKey.generate())
    other = log.rebuilt(entries, signer=stranger, name="other-key")
    fake = witness.Witness.init(tmp_path / "fake" / "witness", "tsunagu.escrow/131016/witness")
    fake.trust(ORIGIN, stranger.verifier.vkey())
    witness.submit(other, witness.Peer("fake", witness.CosignerKey.from_vkey(fake.vkey)), lambda _u, b: fake.add_checkpoint(b))
    results["re-signed with another key"] = verify(tmp_path, other.export(stranger.verifier.vkey()), name="other.jsonl")

    # A fork: from the witnessed size 8, another history than the genuine one.
    fork = log.rebuilt([*entries[:8], _entry(80), _entry(81), _entry(82), _entry(83)], name="fork")
    for size in (4, 8):  # the shared prefix keeps its genuine cosignatures
        fork.add_cosignature(size, witness.witness_id(log.peer.key), _cosignature_lines(json.loads(genuine[1 + 12 + size - 1])["note"]))
    with pytest.raises(witness.WitnessError):
        witness.submit(fork, log.peer, log.post)
    results["fork"] = verify(tmp_path, fork.export(log.vkey), name="fork.jsonl")

    # Truncated by the operator exactly at a witnessed size (8): only the witness's newer state can tell.
    prefix = log.rebuilt(entries[:8], name="prefix")
    prefix.add_cosignature(8, witness.witness_id(log.peer.key), _cosignature_lines(json.loads(genuine[1 + 12 + 7])["note"]))
    latest = tmp_path / "witness-latest.txt"
    assert CliRunner().invoke(app, ["audit", "witness", "latest", "--home", str(tmp_path / "escrow"), "--origin", ORIGIN,
                                    "--out", str(latest)]).exit_code == 0
    results["truncated at a witnessed size"] = verify(tmp_path, prefix.export(log.vkey), "--previous-checkpoint", str(latest),
                                                      name="prefix.jsonl")

    expected = {
        "edit": "位置 5", "delete": "位置 6", "reorder": "位置 2", "truncate": "連署されていません",
        "strip cosignatures": "連署", "fork inside the export": "分岐",
        "re-signed with own key, old cosignatures kept": "書き換えられています",
        "re-signed with own key": "連署", "re-signed with another key": "一致しません", "fork": "位置 8 以降の 4 件は証人に連署されていません",
        "truncated at a witnessed size": "切り詰め",
    }
    detected = {name: code == 1 and expected[name] in out for name, (code, out) in results.items()}
    print(f"tamper variants detected: {sum(detected.values())} of {len(detected)}")
    assert all(detected.values()), {n: results[n] for n, ok in detected.items() if not ok}

    # Genuine exports: every size the witness cosigned, a CRLF copy, a fresh log cosigned at every append.
    fresh = Log(tmp_path / "fresh")
    broken = 0
    total = 0
    for i in range(15):
        fresh.append(_entry(i))
        code, out = verify(fresh.tmp, fresh.store.export(fresh.vkey), name=f"genuine-{i}.jsonl")
        broken += code != 0
        total += 1
    code, _ = verify(tmp_path, genuine, name="crlf.jsonl", newline="\r\n")
    broken += code != 0
    total += 1
    print(f"genuine exports reported broken: {broken} of {total}")
    assert broken == 0


def test_verify_refuses_to_run_without_trusted_keys(log: Log, tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(log.store.export(log.vkey)) + "\n", encoding="utf-8")
    # (The installed command prints these on stderr with exit code 2: tests/integration/tsunagu/test_keys_cli.py.)
    r = CliRunner().invoke(app, ["audit", "verify", str(path)])
    assert isinstance(r.exception, CommandError) and "--public-key" in str(r.exception) and "信頼できません" in str(r.exception)
    r = CliRunner().invoke(app, ["audit", "verify", str(path), "--public-key", str(tmp_path / "log.vkey")])
    assert isinstance(r.exception, CommandError) and "--witness-key" in str(r.exception)
    # The log key given as a witness key is refused with the reason.
    r = CliRunner().invoke(app, ["audit", "verify", str(path), "--public-key", str(tmp_path / "log.vkey"),
                                 "--witness-key", str(tmp_path / "log.vkey")])
    assert r.exit_code == 1 and "cosignature/v1" in r.output
