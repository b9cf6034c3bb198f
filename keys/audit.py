"""The audit log's entries, export format and offline verification (pure code, no database).

An entry holds only who did what, to which pseudonym, why and with what
outcome; fields outside the schema are refused so that no raw identity can
ride along. Leaves are RFC 9162 leaf hashes of an entry's canonical JSON.

Export (JSON lines): one header line (origin, verifier key, size), one line
per entry in log order, one line per signed checkpoint. The log signs a
checkpoint at every append, so the verifier finds the exact first position
where the entries stop matching what was signed. A checkpoint a witness
cosigned carries the witness's ``cosignature/v1`` lines in its note
(:mod:`transparency.tlog_witness`); given the witnesses' keys, the verifier requires the
latest checkpoint to be cosigned, which a log's operator cannot obtain for a
rewritten, truncated or forked history.

One entry is always one line, whatever its text holds: every line is JSON
with U+2028, U+2029 and U+0085 escaped (JSON escapes the C0 controls itself),
and readers split an export on ``\n`` only (:func:`split_export`), never with
``str.splitlines``, which also breaks at those characters.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping, Sequence

from transparency import tlog_checkpoint as _cp
from transparency import rfc9162 as merkle
from transparency import tlog_witness as _witness
from keys.documents import canonical_json
from keys.errors import AuditEntryError, KeysError

EXPORT_FORMAT = "tsunagu/audit-export"
EXPORT_VERSION = 1
_MAX_FIELD = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class AuditEntry:
    """One audit entry. ``target`` is a pseudonym (person or record token), never a name or record id."""

    time: str
    actor: str
    role: str
    action: str
    outcome: str
    target: str = ""
    purpose: str = ""
    legal_basis: str = ""
    case_ref: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str):
                raise AuditEntryError(f"監査記録の項目 {f.name} は文字列でなければなりません。")
            if len(value) > _MAX_FIELD or _CONTROL.search(value):
                raise AuditEntryError(f"監査記録の項目 {f.name} が長すぎるか、制御文字を含みます。")
        for required in ("time", "actor", "role", "action", "outcome"):
            if not getattr(self, required):
                raise AuditEntryError(f"監査記録の項目 {required} が空です。")
        try:
            parsed = datetime.fromisoformat(self.time)
        except ValueError as exc:
            raise AuditEntryError(f"監査記録の時刻 {self.time!r} が ISO 8601 ではありません。") from exc
        if parsed.tzinfo is None:
            raise AuditEntryError("監査記録の時刻にはタイムゾーンが必要です。")

    @classmethod
    def now(cls, **values: str) -> AuditEntry:
        """An entry stamped with the current UTC time."""
        return cls(time=datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **values)

    @classmethod
    def from_json(cls, data: Any) -> AuditEntry:
        """Build from a dict, refusing fields outside the schema."""
        if not isinstance(data, dict):
            raise AuditEntryError("監査記録が JSON オブジェクトではありません。")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise AuditEntryError(f"監査記録に定義外の項目があります: {', '.join(unknown)}（本人情報は記録できません）。")
        try:
            return cls(**data)
        except TypeError as exc:
            raise AuditEntryError("監査記録に必要な項目が足りません（time, actor, role, action, outcome）。") from exc

    def to_json(self) -> dict[str, str]:
        """The entry as a dict."""
        return asdict(self)

    def leaf_hash(self) -> bytes:
        """RFC 9162 leaf hash of the entry's canonical JSON."""
        return merkle.leaf_hash(canonical_json(self.to_json()))


class AuditVerificationError(KeysError):
    """The export does not verify; ``position`` is the first bad entry index when it can be named."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class ExportFormatError(AuditVerificationError):
    """The export file is not a tsunagu audit export."""


class PublicKeyMismatchError(AuditVerificationError):
    """The export's public key is not the pinned one."""


class EntryMismatchError(AuditVerificationError):
    """An entry was edited, deleted, inserted or moved: it no longer matches the signed tree."""


class UnsignedEntriesError(AuditVerificationError):
    """Entries follow the last signed checkpoint (appended without the key?) or entries are missing."""


class InconsistentHistoryError(AuditVerificationError):
    """An earlier checkpoint is not a prefix of the current log (history rewritten or truncated)."""


class UnwitnessedError(AuditVerificationError):
    """No trusted witness cosigned a checkpoint covering the whole export (history rewritten or forked, or not yet witnessed)."""


class CosignatureMismatchError(AuditVerificationError):
    """A trusted witness's cosignature does not match the checkpoint it sits on (the checkpoint was re-signed)."""


@dataclass(frozen=True)
class VerifyReport:
    """What an export verification established."""

    size: int
    root: bytes
    checkpoints: int
    previous_size: int | None
    #: the largest size cosigned by enough trusted witnesses (None: no witness keys given)
    witnessed_size: int | None = None
    #: the cosignatures on that checkpoint
    cosignatures: tuple[_witness.Cosignature, ...] = ()


def dumps_line(item: Any) -> str:
    """One export line: JSON with the characters ``str.splitlines`` breaks at escaped, so the line never splits."""
    text = json.dumps(item, ensure_ascii=False)
    # These code points only occur inside JSON strings, where their escape means the same text.
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\x85", "\\u0085")


def split_export(text: str) -> list[str]:
    """The lines of an export's text, split on ``\\n`` only (a ``\\r`` left by a CRLF copy is JSON whitespace)."""
    return text.split("\n")


def export_lines(origin: str, vkey: str, entries: Iterable[AuditEntry], notes: Iterable[str], size: int,
                 cosignatures: Mapping[int, Sequence[str]] | None = None) -> Iterator[str]:
    """The export as JSON lines: header, entries in log order, signed checkpoint notes.

    ``cosignatures`` maps a tree size to the witnesses' cosignature lines on
    that size's checkpoint; they are appended to the note, as signed notes do.
    """
    cosignatures = cosignatures or {}
    yield dumps_line({"type": "header", "format": EXPORT_FORMAT, "version": EXPORT_VERSION,
                      "origin": origin, "public_key": vkey, "size": size})
    for index, entry in enumerate(entries):
        yield dumps_line({"type": "entry", "index": index, "entry": entry.to_json()})
    for index, note in enumerate(notes):
        yield dumps_line({"type": "checkpoint", "note": note + "".join(cosignatures.get(index + 1, ()))})


def verify_export(
    lines: Iterable[str], pinned_vkey: str | None = None, previous_note: str | None = None, *,
    witness_vkeys: Sequence[str] | None = None, quorum: int = 1,
) -> VerifyReport:
    """Verify an export offline; raise an :class:`AuditVerificationError` subclass naming the first bad position.

    ``pinned_vkey`` makes the export's own public key untrusted unless equal;
    ``previous_note`` is an earlier checkpoint the auditor kept, proved to be a
    prefix of this log with an RFC 9162 consistency proof. With
    ``witness_vkeys`` the latest checkpoint (covering every entry) must carry
    valid cosignatures by at least ``quorum`` of those witnesses.
    """
    header, raw_entries, notes = _parse_export(lines)
    if pinned_vkey is not None and pinned_vkey.strip() != header["public_key"]:
        raise PublicKeyMismatchError("書き出しファイルの公開鍵が、指定された公開鍵と一致しません（別の鍵で署名し直されたか、指定した鍵が違います）。")
    try:
        verifier = _cp.Verifier.from_vkey(header["public_key"])
        witnesses = [_witness.CosignerKey.from_vkey(v) for v in witness_vkeys or ()]
    except (_cp.CheckpointError, _witness.WitnessError) as exc:
        raise ExportFormatError(f"検証鍵が読めません: {exc}") from exc
    if witness_vkeys is not None and not 1 <= quorum <= len(witnesses):
        raise ExportFormatError(f"必要な証人の数 {quorum} は、指定された証人の鍵の数 {len(witnesses)} 以下で 1 以上にしてください。")
    signed: dict[int, bytes] = {}
    cosigned: dict[int, tuple[_witness.Cosignature, ...]] = {}
    for number, note in enumerate(notes):
        try:
            cp = _cp.verify_checkpoint(note, verifier, header["origin"])
        except _cp.CheckpointError as exc:
            raise ExportFormatError(f"{number} 番目のチェックポイントを検証できません: {exc}") from exc
        if signed.setdefault(cp.size, cp.root) != cp.root:
            raise InconsistentHistoryError(f"大きさ {cp.size} に対して根ハッシュの異なる二つのチェックポイントがあります（ログの分岐）。")
        try:
            found = tuple(c for w in witnesses for c in w.verify(note)[:1])
        except _witness.WitnessError as exc:
            raise CosignatureMismatchError(f"大きさ {cp.size} のチェックポイント: {exc}", None) from exc
        if found:
            cosigned[cp.size] = cosigned.get(cp.size, ()) + found

    leaves = _check_entries(raw_entries, signed)
    size = len(leaves)
    latest = max(signed, default=0)
    if latest > size:
        raise UnsignedEntriesError(
            f"署名済みの木は {latest} 件ですが、書き出しには {size} 件しかありません。位置 {size} 以降の記録が削除されています。", size
        )
    if latest < size:
        raise UnsignedEntriesError(f"位置 {latest} 以降の記録は署名されていません（後から追加された疑いがあります）。", latest)
    root = merkle.root_hash(leaves)
    previous_size = _check_previous(previous_note, verifier, header["origin"], leaves, root) if previous_note else None
    if witness_vkeys is None:
        return VerifyReport(size, root, len(signed), previous_size)
    enough = [s for s, cs in cosigned.items() if len({c.witness for c in cs}) >= quorum]
    witnessed = max(enough, default=0)
    if witnessed == 0:
        raise UnwitnessedError(
            f"信頼する証人（{len(witnesses)} 人中 {quorum} 人以上）が連署したチェックポイントがありません。"
            "証人に連署されていない履歴は、運用者による書き換え・分岐を否定できません。", 0)
    if witnessed < size:
        raise UnwitnessedError(
            f"証人の連署は {witnessed} 件までです。位置 {witnessed} 以降の {size - witnessed} 件は証人に連署されていません"
            "（書き換え・分岐した履歴か、まだ証人に送られていない記録です）。", witnessed)
    return VerifyReport(size, root, len(signed), previous_size, witnessed, cosigned[witnessed])


def export_leaves(lines: Iterable[str]) -> list[bytes]:
    """The leaf hashes of an export's entries, in order (verify the export first)."""
    _, raw_entries, _ = _parse_export(lines)
    return [AuditEntry.from_json(item.get("entry")).leaf_hash() for _, item in raw_entries]


def _parse_export(lines: Iterable[str]) -> tuple[dict[str, Any], list[tuple[int, Any]], list[str]]:
    header = None
    entries: list[tuple[int, Any]] = []
    notes: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ExportFormatError(f"書き出しファイルの {number} 行目が JSON として読めません（途中で切れているか壊れています）。") from exc
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "header" and header is None and number == 1:
            header = item
        elif kind == "entry":
            entries.append((len(entries), item))
        elif kind == "checkpoint" and isinstance(item.get("note"), str):
            notes.append(item["note"])
        else:
            raise ExportFormatError(f"書き出しファイルの {number} 行目の種類が不明です。")
    if (
        header is None
        or header.get("format") != EXPORT_FORMAT
        or header.get("version") != EXPORT_VERSION
        or not isinstance(header.get("origin"), str)
        or not isinstance(header.get("public_key"), str)
    ):
        raise ExportFormatError("tsunagu の監査ログ書き出しファイル（版 1）ではありません。")
    return header, entries, notes


def _check_entries(raw_entries: list[tuple[int, Any]], signed: dict[int, bytes]) -> list[bytes]:
    # Walk the entries once, keeping the right edge of the tree (perfect
    # subtrees, largest first) so the root after each entry costs O(log n).
    leaves: list[bytes] = []
    edge: list[tuple[int, bytes]] = []
    last_good = 0
    for position, item in raw_entries:
        if item.get("index") != position:
            raise EntryMismatchError(
                f"位置 {position} の記録の番号が {item.get('index')!r} です。記録が削除・挿入・並べ替えされています。", position
            )
        try:
            leaf = AuditEntry.from_json(item.get("entry")).leaf_hash()
        except AuditEntryError as exc:
            raise EntryMismatchError(f"位置 {position} の記録が監査記録の形式に合いません: {exc}", position) from exc
        leaves.append(leaf)
        level, node = 0, leaf
        while edge and edge[-1][0] == level:
            node = merkle.node_hash(edge.pop()[1], node)
            level += 1
        edge.append((level, node))
        size = position + 1
        if size in signed:
            if merkle.fold_right([h for _, h in edge]) != signed[size]:
                where = f"位置 {position}" if last_good == position else f"位置 {last_good}〜{position} のいずれか"
                raise EntryMismatchError(
                    f"{where} の記録が署名済みのログと一致しません（編集・削除・挿入・並べ替えのいずれか）。", last_good
                )
            last_good = size
    return leaves


def _check_previous(note: str, verifier: _cp.Verifier, origin: str, leaves: list[bytes], root: bytes) -> int:
    try:
        previous = _cp.verify_checkpoint(note, verifier, origin)
    except _cp.CheckpointError as exc:
        raise InconsistentHistoryError(f"以前のチェックポイントを検証できません: {exc}") from exc
    if previous.size > len(leaves):
        raise InconsistentHistoryError(
            f"以前のチェックポイントは {previous.size} 件ですが、現在のログは {len(leaves)} 件です。ログが切り詰められています。",
            len(leaves),
        )
    if previous.size == 0:
        return 0
    proof = merkle.consistency_proof(previous.size, leaves) if previous.size < len(leaves) else []
    try:
        merkle.verify_consistency(previous.size, len(leaves), previous.root, root, proof)
    except merkle.ProofError as exc:
        raise InconsistentHistoryError(
            f"以前のチェックポイント（{previous.size} 件）が現在のログの先頭部分ではありません。履歴が書き換えられています: {exc}"
        ) from exc
    return previous.size
