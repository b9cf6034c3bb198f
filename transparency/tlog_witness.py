"""Witnesses for audit logs: C2SP tlog-cosignature (``cosignature/v1``, Ed25519) and tlog-witness (``add-checkpoint``).

A witness is an independent party that cosigns a log's checkpoint only after
checking that it extends the last checkpoint it cosigned for that log (an
RFC 9162 consistency proof). An operator who rewrites, truncates or forks
their own log and re-signs it with the log's key therefore cannot get the new
history cosigned, and a verifier who trusts the witness's key sees that
without having kept a checkpoint of its own.

Wire formats, as in C2SP:

- cosignature line ``— <name> base64(key ID || u64 timestamp || Ed25519 signature)``,
  key ID = ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``, the signed
  message ``cosignature/v1\\ntime <ts>\\n`` followed by the checkpoint body;
- witness verifier key ``<name>+<hex key ID>+base64(0x04 || public key)``;
- ``POST <prefix>/add-checkpoint`` body ``old <size>\\n``, up to 63 base64 proof
  lines, an empty line, then the signed checkpoint note; answers 200 with the
  cosignature line(s), 400 malformed, 403 not signed by the trusted log key,
  404 unknown origin, 409 (``text/x.tlog.size``) when the old size is not the
  witness's, 422 when the consistency proof fails.

A witness keeps its state in one folder (``<home>/witness/``)::

    witness-signing.pem    Ed25519 witness key (0600)
    witness-verifier.txt   its verifier key, for auditors (0644)
    witness.json           its name and the logs it witnesses: origin -> log verifier key
    state.json             per origin, the latest cosigned size and root hash
    refusals.jsonl         checkpoints it refused as inconsistent (evidence of misbehaviour)
    submit-to.json         when the folder belongs to a log's home: the witnesses that log asks to cosign

The check of the old size and the update of the state happen under an
exclusive file lock, so concurrent requests cannot roll the state back
(tlog-witness's race).
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import logging
import re
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Protocol, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from transparency import tlog_checkpoint as _cp
from transparency import rfc9162 as merkle
from keys.documents import b64e, write_atomic
from keys.errors import KeysError


log = logging.getLogger("tsunagu.witness")


class Log(Protocol):
    """What the witness client needs of an audit log (the services' store, ``service.audit_store.AuditStore``, is one)."""

    def latest_checkpoint(self) -> str | None:
        """The newest signed checkpoint note, or None for an empty log."""

    def cosigned_size(self, witness: str) -> int:
        """The largest tree size ``witness`` has cosigned (0 if none)."""

    def consistency_proof(self, size1: int, size2: int | None = None) -> Any:
        """The RFC 9162 consistency proof between two sizes (``.proof``: the hashes)."""

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        """Keep a witness's cosignature line of the checkpoint at ``size``."""

    def export(self, vkey: str) -> Any:
        """The whole log for an auditor, verified against ``vkey``."""

COSIGNATURE_V1 = 0x04
SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
MAX_REQUEST_BYTES = 16 * 1024
_DASH = "\u2014 "
_NAME = re.compile(r"^[^\s+]+$")
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,18})$")

SIGNING_KEY = "witness-signing.pem"
VERIFIER = "witness-verifier.txt"
CONFIG = "witness.json"
STATE = "state.json"
REFUSALS = "refusals.jsonl"
SUBMIT_TO = "submit-to.json"


class WitnessError(KeysError):
    """A witness key, cosignature or witness folder is unusable."""


#: A witness's key (tlog-cosignature ``cosignature/v1``, type 0x04).
COSIGNATURE = _cp.NoteKeyType(COSIGNATURE_V1, "cosignature/v1（Ed25519）の鍵", WitnessError, what="証人の検証鍵", id_name="鍵ID",
                              hint="（ログの検証鍵を指定していませんか）")


class CosignatureInvalidError(WitnessError):
    """A cosignature line by a trusted witness key does not verify: the checkpoint it sits on was altered."""


def cosigned_message(body: str, timestamp: int) -> bytes:
    """The bytes a ``cosignature/v1`` signs: header line, time line, then the checkpoint body."""
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode("utf-8")


@dataclass(frozen=True)
class Cosignature:
    """One verified cosignature: which witness, and when it cosigned (POSIX seconds)."""

    witness: str
    timestamp: int


@dataclass(frozen=True)
class CosignerKey(_cp.NoteKey):
    """A witness's public key, as an auditor configures it (``name+keyid+base64(0x04||key)``)."""

    TYPE: ClassVar[_cp.NoteKeyType] = COSIGNATURE

    def verify(self, note: str) -> list[Cosignature]:
        """This witness's valid cosignatures on ``note``; a line with its key ID that does not verify raises."""
        body, signatures = _split(note)
        found = []
        for name, blob in signatures:
            if name != self.name or blob[:4] != self.key_id:
                continue
            if len(blob) != 4 + 8 + 64:
                raise CosignatureInvalidError(f"証人 {name} の連署の長さが正しくありません。")
            (timestamp,) = struct.unpack(">Q", blob[4:12])
            try:
                self.public_key.verify(blob[12:], cosigned_message(body, timestamp))
            except InvalidSignature as exc:
                raise CosignatureInvalidError(
                    f"証人 {name} の連署がチェックポイントと一致しません（チェックポイントが書き換えられています）。") from exc
            found.append(Cosignature(name, timestamp))
        return found


def _split(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    try:
        return _cp._split_note(note)  # one parser for signed notes
    except _cp.CheckpointError as exc:
        raise WitnessError(str(exc)) from exc


def cosign(body: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> str:
    """The ``cosignature/v1`` signature line of ``key`` (named ``name``) over a checkpoint ``body``."""
    signature = key.sign(cosigned_message(body, timestamp))
    blob = COSIGNATURE.key_id(name, key.public_key().public_bytes_raw()) + struct.pack(">Q", timestamp) + signature
    return f"{_DASH}{name} {base64.b64encode(blob).decode()}\n"


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The body of a tlog-witness ``add-checkpoint`` request."""
    lines = [f"old {old_size}", *(base64.b64encode(p).decode() for p in proof), ""]
    return ("\n".join(lines) + "\n" + note).encode("utf-8")


@dataclass(frozen=True)
class WitnessResponse:
    """What the witness answers: HTTP status, content type and body."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


@dataclass
class Witness:
    """A witness's folder: its key, the logs it trusts, and the latest checkpoint it cosigned for each."""

    folder: Path
    name: str
    key: Ed25519PrivateKey = field(repr=False)
    logs: dict[str, str]

    @classmethod
    def init(cls, folder: Path, name: str) -> Witness:
        """Create a witness (a new key) in ``folder``; refuses a folder that already holds one."""
        if not _NAME.match(name):
            raise WitnessError(f"証人の名前 {name!r} に空白や + は使えません（例: auditor.example.jp/witness）。")
        if (folder / CONFIG).exists():
            raise WitnessError(f"{folder} には既に証人があります。")
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        write_atomic(folder / SIGNING_KEY, pem, mode=0o600)
        witness = cls(folder, name, key, {})
        write_atomic(folder / VERIFIER, (witness.vkey + "\n").encode("utf-8"), mode=0o644)
        witness._save_config()  # written last: an interrupted init is simply run again
        return witness

    @classmethod
    def open(cls, folder: Path) -> Witness:
        """Open the witness in ``folder``."""
        try:
            config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
            key = serialization.load_pem_private_key((folder / SIGNING_KEY).read_bytes(), password=None)
        except FileNotFoundError as exc:
            raise WitnessError(f"{folder} に証人がありません。先に `tsunagu audit witness init` を実行してください。") from exc
        except (ValueError, json.JSONDecodeError) as exc:
            raise WitnessError(f"{folder} の証人の設定または鍵が読めません。") from exc
        if not isinstance(key, Ed25519PrivateKey) or not isinstance(config, dict) or not isinstance(config.get("logs"), dict):
            raise WitnessError(f"{folder} の証人の設定または鍵が正しくありません。")
        return cls(folder, str(config["name"]), key, {str(k): str(v) for k, v in config["logs"].items()})

    @classmethod
    def ensure(cls, folder: Path, name: str) -> Witness:
        """Open the witness in ``folder``, creating it first if there is none (processes starting together make one key)."""
        if not (folder / CONFIG).exists():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(folder / ".lock", "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    if not (folder / CONFIG).exists():
                        cls.init(folder, name)
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
        return cls.open(folder)

    @property
    def cosigner(self) -> CosignerKey:
        """The witness's public key."""
        return CosignerKey(self.name, self.key.public_key())

    @property
    def vkey(self) -> str:
        """The witness's verifier key string (give it to auditors)."""
        return self.cosigner.vkey()

    def trust(self, origin: str, log_vkey: str) -> None:
        """Witness the log ``origin``, accepting only checkpoints signed by ``log_vkey``."""
        try:
            _cp.Verifier.from_vkey(log_vkey)
        except _cp.CheckpointError as exc:
            raise WitnessError(f"ログの検証鍵が読めません: {exc}") from exc
        if not origin or "\n" in origin:
            raise WitnessError("ログの origin が空か改行を含みます。")
        with self._locked():
            self.logs[origin] = log_vkey.strip()
            self._save_config()

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        """The size and root of the latest checkpoint cosigned for ``origin``."""
        item = self._state().get(origin)
        return (int(item["size"]), base64.b64decode(item["root"])) if item else None

    def add_checkpoint(self, request: bytes) -> WitnessResponse:
        """Handle one tlog-witness ``add-checkpoint`` request body."""
        if len(request) > MAX_REQUEST_BYTES:
            return WitnessResponse(400, "要求が大きすぎます。")
        try:
            old, proof, note = _parse_request(request.decode("utf-8"))
            body, _ = _cp._split_note(note)
            origin = body.split("\n", 1)[0]
        except (UnicodeDecodeError, ValueError, binascii.Error, _cp.CheckpointError) as exc:
            return WitnessResponse(400, f"add-checkpoint の要求の形式が違います: {exc}")
        vkey = self.logs.get(origin)
        if vkey is None:
            return WitnessResponse(404, f"この証人はログ {origin!r} を証明していません。")
        try:
            cp = _cp.verify_checkpoint(note, _cp.Verifier.from_vkey(vkey), origin)
        except (_cp.UnknownSignerError, _cp.SignatureInvalidError):
            return WitnessResponse(403, "チェックポイントに、信頼するログの鍵の正しい署名がありません。")
        except _cp.CheckpointError as exc:
            return WitnessResponse(400, f"チェックポイントが読めません: {exc}")
        if old > cp.size:
            return WitnessResponse(400, f"old {old} がチェックポイントの大きさ {cp.size} より大きいです。")
        with self._locked():
            state = self._state()
            known = state.get(origin)
            size, root = (int(known["size"]), base64.b64decode(known["root"])) if known else (0, merkle.EMPTY_ROOT)
            if old != size:
                return WitnessResponse(409, f"{size}\n", SIZE_CONTENT_TYPE)
            if old == 0 and proof:
                return WitnessResponse(400, "old 0 のときの一貫性証明は空でなければなりません。")
            if old == cp.size and old and root != cp.root:
                self._refused(origin, note, "same size, different root")
                return WitnessResponse(409, "同じ大きさで根ハッシュの異なるチェックポイントです（ログの分岐）。")
            if 0 < old < cp.size:
                try:
                    merkle.verify_consistency(old, cp.size, root, cp.root, proof)
                except merkle.ProofError as exc:
                    self._refused(origin, note, f"consistency from {old}: {exc}")
                    return WitnessResponse(422, f"大きさ {old} からの一貫性証明を確認できません: {exc}")
            stamp = int(time.time())
            line = cosign(body, self.name, self.key, stamp)
            state[origin] = {"size": cp.size, "root": b64e(cp.root), "time": stamp, "note": note + line}
            write_atomic(self.folder / STATE, json.dumps(state, indent=1, sort_keys=True).encode("utf-8"), mode=0o644)
        return WitnessResponse(200, line)

    def latest_note(self, origin: str) -> str | None:
        """The latest checkpoint this witness cosigned for ``origin``, with the log's signature and its cosignature.

        A verifier who kept no checkpoint uses it as the earlier checkpoint the
        log must extend: an export that stops short of it was truncated.
        """
        item = self._state().get(origin)
        return item.get("note") if item else None

    def cosign_export(self, lines: Sequence[str]) -> list[str]:
        """Witness an export offline (an auditor's witness): check it extends the last state, then cosign its latest checkpoint.

        The consistency proof is computed here from the export's own entries,
        after the export verifies against the log key this witness trusts.
        Returns the export's lines with the cosignature added to the latest
        checkpoint line.
        """
        from keys import audit

        header, _, _ = audit._parse_export(lines)
        origin = header["origin"]
        vkey = self.logs.get(origin)
        if vkey is None:
            raise WitnessError(f"この証人はログ {origin!r} を証明していません（`tsunagu audit witness trust` で登録してください）。")
        audit.verify_export(lines, vkey)
        leaves = audit.export_leaves(lines)
        known = self.latest(origin)
        old = known[0] if known else 0
        if old > len(leaves):
            raise WitnessError(f"証人は既に {old} 件のログに連署しています。この書き出しは {len(leaves)} 件しかありません（切り詰められています）。")
        proof = merkle.consistency_proof(old, leaves) if 0 < old < len(leaves) else []
        out = list(lines)
        last = max(i for i, line in enumerate(out) if '"checkpoint"' in line and json.loads(line).get("type") == "checkpoint")
        note = json.loads(out[last])["note"]
        answer = self.add_checkpoint(add_checkpoint_body(old, proof, note))
        if answer.status != 200:
            raise WitnessError(f"証人は連署を拒否しました（{answer.status}）: {answer.body.strip()}")
        out[last] = audit.dumps_line({"type": "checkpoint", "note": note + answer.body})
        return out

    def _state(self) -> dict[str, Any]:
        try:
            state = json.loads((self.folder / STATE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return state if isinstance(state, dict) else {}

    def _save_config(self) -> None:
        config = {"name": self.name, "logs": self.logs}
        write_atomic(self.folder / CONFIG, json.dumps(config, indent=1, ensure_ascii=False).encode("utf-8"), mode=0o644)

    def _refused(self, origin: str, note: str, reason: str) -> None:
        # Kept as evidence: a validly signed checkpoint that does not extend what was cosigned.
        with open(self.folder / REFUSALS, "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": int(time.time()), "origin": origin, "reason": reason, "note": note}) + "\n")
        log.warning("witness %s refused an inconsistent checkpoint of %s: %s", self.name, origin, reason)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.folder / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _parse_request(text: str) -> tuple[int, list[bytes], str]:
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ValueError("空行がありません")
    lines = head.split("\n")
    match = re.fullmatch(r"old (0|[1-9][0-9]{0,18})", lines[0])
    if not match:
        raise ValueError("1 行目が old <大きさ> ではありません")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ValueError("一貫性証明の行が多すぎます")
    proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    if any(len(p) != merkle.HASH_SIZE for p in proof):
        raise ValueError("一貫性証明のハッシュが 32 バイトではありません")
    return int(match.group(1)), proof, note


# -- the log's side: asking witnesses to cosign ------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A witness a log submits its checkpoints to: its add-checkpoint URL prefix and its key."""

    url: str
    key: CosignerKey


def peers(folder: Path) -> list[Peer]:
    """The witnesses the log whose home holds ``folder`` asks to cosign (``submit-to.json``)."""
    try:
        items = json.loads((folder / SUBMIT_TO).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except json.JSONDecodeError as exc:
        raise WitnessError(f"{folder / SUBMIT_TO} が JSON として読めません。") from exc
    return [Peer(str(i["url"]).rstrip("/"), CosignerKey.from_vkey(str(i["vkey"]))) for i in items]


def add_peer(folder: Path, url: str, witness_vkey: str) -> Peer:
    """Make the log whose home holds ``folder`` submit to the witness at ``url`` (replacing one with the same key)."""
    if not re.match(r"^https?://", url):
        raise WitnessError("証人の URL は http:// または https:// で始めてください。")
    peer = Peer(url.rstrip("/"), CosignerKey.from_vkey(witness_vkey))
    kept = [p for p in peers(folder) if p.key.vkey() != peer.key.vkey()] + [peer]
    write_atomic(folder / SUBMIT_TO, json.dumps([{"url": p.url, "vkey": p.key.vkey()} for p in kept], indent=1).encode("utf-8"),
                 mode=0o644)
    return peer


def witness_id(key: CosignerKey) -> str:
    """How a log stores which witness a cosignature came from."""
    return f"{key.name}+{key.key_id.hex()}"


#: How a log reaches a witness: POST ``body`` to ``url`` and answer as a :class:`WitnessResponse`.
#: The HTTP one is ``service.witness_client.http_post``; tests pass a witness directly.
Post = Callable[[str, bytes], WitnessResponse]


def submit(store: Log, peer: Peer, post: Post) -> int:
    """Ask ``peer`` to cosign the store's latest checkpoint; store the cosignature and return the size it covers.

    The old size is the last one this witness cosigned for us; if the
    witness disagrees (409) it tells its size and we retry once from there.
    Raises :class:`WitnessError` when the witness refuses or cannot be reached.
    """
    note = store.latest_checkpoint()
    if note is None:
        return 0
    body, _ = _cp._split_note(note)
    size = int(body.split("\n")[1])
    old = store.cosigned_size(witness_id(peer.key))
    for _attempt in range(2):
        proof = store.consistency_proof(old, size).proof if 0 < old < size else []
        r = post(f"{peer.url}/add-checkpoint", add_checkpoint_body(old, proof, note))
        if r.status == 409 and r.content_type.startswith(SIZE_CONTENT_TYPE):
            told = r.body.strip()
            if not _SIZE.match(told) or int(told) > size:
                raise WitnessError(f"証人 {peer.key.name} は大きさ {told} のログに連署済みです（このログは {size} 件: 切り詰めか分岐）。")
            old = int(told)
            continue
        if r.status != 200:
            raise WitnessError(f"証人 {peer.key.name} が連署を拒否しました（{r.status}）: {r.body.strip()[:300]}")
        lines = [line + "\n" for line in r.body.split("\n") if line.startswith(f"{_DASH}{peer.key.name} ")]
        if not peer.key.verify(note + "".join(lines)):
            raise WitnessError(f"証人 {peer.key.name} の応答に、その鍵の連署がありません。")
        store.add_cosignature(size, witness_id(peer.key), "".join(lines))
        return size
    raise WitnessError(f"証人 {peer.key.name} と大きさが合いません。")


def submit_all(store: Log, folder: Path, post: Post) -> dict[str, str]:
    """Ask every configured witness to cosign; a witness that fails is logged and reported, never raised."""
    results = {}
    for peer in peers(folder):
        try:
            results[peer.key.name] = f"cosigned {submit(store, peer, post)}"
        except (WitnessError, KeysError) as exc:
            log.warning("witness %s did not cosign: %s", peer.key.name, exc)
            results[peer.key.name] = f"failed: {exc}"
    return results




def witnessed_export(store: Log, vkey: str, folder: Path, post: Post) -> list[str]:
    """The store's export after its witnesses cosigned its latest checkpoint (an entry appended meanwhile: once more)."""
    export: list[str] = []
    for _attempt in range(2):
        results = submit_all(store, folder, post)
        export = store.export(vkey)
        size = json.loads(export[0])["size"]
        reached = [p for p in peers(folder) if results.get(p.key.name, "").startswith("cosigned")]
        if all(store.cosigned_size(witness_id(p.key)) >= size for p in reached):
            break
    return export
