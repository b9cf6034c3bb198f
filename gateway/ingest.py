"""Ingest: the one pipeline for every upload from an agent, and the snapshot's own checks and store.

Every upload (an envelope, ``keys.envelope``, of a :class:`Kind`) passes
:func:`run`: parse (version, kind, fields, content hash) → verify (a
registered agent, its registered key, its signature, the agent not revoked)
→ the kind's own checks → store. The first failure refuses the whole upload
and is logged in ``ingest_events``. Kinds: :data:`SUBMISSION` here, the
federation submission in ``gateway.federation.ingest``.

A snapshot's own checks, in order: the sequence number (a replay is
refused; the same submission again gets its first answer back), the network
and source the agent is registered for, the encoding schema, the linkage key
id, and the policy for every attribute. Records that cannot be used (wrong
encoding length, duplicate token) are refused one by one and named by token.

Ownership and chain: a source's snapshots come from the one agent that owns
it (``source_owners``; an administrator hands a source over); an agent's
submissions name the previous one (``previous``), and one that does not
follow the last accepted submission is a fork, refused before anything is
replaced. A submission without chain fields (from an agent older than the
chain) is accepted only while its agent has no chain yet: the upgraded
agent's first chained submission starts the chain (``previous`` = ""), and
from then on an unchained one — old software, or an old copy of the agent —
is refused (``unchained``) with a message saying to upgrade that copy.

Snapshot semantics: the accepted records replace the source's current ones;
each record version is kept in ``record_history`` under the submission id,
and a record missing from the new snapshot gets a ``deleted`` history row.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway import agents as _agents
from gateway import models
from gateway.core import Gateway
from gateway.crashpoints import crash_point
from gateway.db import utcnow
from gateway.errors import (
    RevokedAgentRequest,
    BadSignature,
    ContentMismatch,
    Fork,
    ForbiddenAttribute,
    GatewayError,
    MalformedSubmission,
    NotConfigured,
    PartsMissing,
    Replay,
    SourceNotAllowed,
    SourceNotRegistered,
    SourceOwnedByOther,
    TooLarge,
    Unchained,
    UnknownEnvelopeVersion,
    UnknownSchema,
    WrongLinkageKey,
)
from gateway.link import request_run
from keys import envelope
from keys.envelope import EnvelopeContentError, EnvelopeVersionError
from keys.errors import KeysError
from keys.submission import ContentHashError, Submission, SubmissionVersionError, manifest_sha256, read_submission
from linkage.schema import SchemaError, load_schema

log = logging.getLogger("tsunagu.gateway.ingest")

_MAX_TOKEN = 128
_PRESENT_LIMIT = 1 << 16
_CHUNK = 10_000


@dataclass
class IngestResult:
    """The answer to an agent: JSON-ready with :meth:`to_json`."""

    status: str
    submission_id: int
    accepted: int
    refused: list[dict[str, str]]
    sequence: int

    def to_json(self) -> dict[str, Any]:
        """The answer as the API returns it."""
        return {"status": self.status, "submission_id": self.submission_id, "accepted": self.accepted,
                "refused": self.refused, "sequence": self.sequence}


#: Called with each newly accepted submission (e.g. to schedule a linkage run).
Listener = Callable[[IngestResult], None]


@dataclass(frozen=True)
class Kind:
    """What the pipeline needs to know about one kind of upload (an envelope kind, ``keys.envelope``).

    ``parse`` reads the bytes into (manifest, signature, payload) and raises the kind module's errors;
    ``accept`` runs the kind's own checks and stores it (called once the sender is authenticated).
    Every kind is refused with the same classes, so one meaning has one code on the wire
    (``malformed_submission``, ``content_mismatch``, ``agent_revoked``, …).
    """

    name: str
    parse: Callable[[bytes], tuple[dict[str, Any], bytes, Any]]
    accept: Callable[[Gateway, dict[str, Any], Any, "_agents.RegisteredAgent", str, dict[str, Any]], Any]


def ingest(gw: Gateway, data: bytes, channel: str, path: str | None = None) -> IngestResult:
    """Verify and store one submission; a refusal raises :class:`GatewayError` after logging it."""
    result = run(gw, SUBMISSION, data, channel, path)
    if result.status == "accepted":
        for listener in list(gw.listeners):
            listener(result)
    return result


def run(gw: Gateway, kind: Kind, data: bytes, channel: str, path: str | None = None) -> Any:
    """The one ingest pipeline: parse → verify → check the sender → the kind's checks and store; refusals logged, then raised."""
    where: dict[str, Any] = {"path": path}
    try:
        if len(data) > gw.settings.max_submission_bytes:
            raise TooLarge(f"提出データが大きすぎます（{len(data)} バイト、上限 {gw.settings.max_submission_bytes} バイト）。")
        manifest, signature, payload = _parse(kind, data)
        agent = _sender(gw, kind, manifest, signature, where)
        return kind.accept(gw, manifest, payload, agent, channel, where)
    except GatewayError as exc:
        gw.event(channel, exc.status, exc.code, exc.detail, **where)
        raise


def _parse(kind: Kind, data: bytes) -> tuple[dict[str, Any], bytes, Any]:
    """The kind's reader, its errors turned into the refusals every kind shares (an old envelope version: ``unknown_version``)."""
    try:
        return kind.parse(data)
    except (SubmissionVersionError, EnvelopeVersionError) as exc:
        raise UnknownEnvelopeVersion(str(exc)) from None
    except (ContentHashError, EnvelopeContentError) as exc:
        raise ContentMismatch(str(exc)) from None
    except KeysError as exc:
        raise MalformedSubmission(str(exc)) from None


def _sender(gw: Gateway, kind: Kind, m: dict[str, Any], signature: bytes, where: dict[str, Any]) -> "_agents.RegisteredAgent":
    """The registered, unrevoked agent whose registered key signed ``m`` (every kind an agent uploads)."""
    agent_id, sequence = str(m["agent_id"]), m["sequence"]
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        raise MalformedSubmission("マニフェストの sequence（連番）が 0 以上の整数ではありません。")
    where.update(agent_id=agent_id[:64], sequence=sequence)
    agent = _agents.get_agent(gw, agent_id)
    if m["signing_key_id"] != agent.signing_key_id:
        raise BadSignature(f"提出データの署名鍵 {m['signing_key_id']} はエージェント {agent_id} の登録済みの鍵ではありません。")
    try:
        envelope.verify(m, signature, agent.signing_key, f"エージェント {agent_id} ")
    except envelope.EnvelopeSignatureError as exc:
        raise BadSignature(str(exc)) from None
    if agent.status != "enrolled":
        raise RevokedAgentRequest(f"エージェント {agent_id} は失効しています。提出は受け付けません。")
    return agent


def _parse_submission(data: bytes) -> tuple[dict[str, Any], bytes, Submission]:
    sub = read_submission(data)
    return sub.manifest, sub.signature, sub


def _accept_submission(gw: Gateway, m: dict[str, Any], sub: Submission, agent: "_agents.RegisteredAgent", channel: str,
                       where: dict[str, Any]) -> IngestResult:
    """A snapshot (or part)'s own checks: replay, source and its owner, policy, schema, linkage key, attributes; then store."""
    agent_id, sequence = agent.agent_id, m["sequence"]
    duplicate = _previous_answer(gw, agent_id, sequence, m["content_sha256"])
    if duplicate is not None:
        return duplicate
    network, source = str(m["network"]), str(m["source"])
    if network != agent.network or source not in agent.sources:
        raise SourceNotRegistered(f"エージェント {agent_id} は {network} のデータ元「{source}」の提出者として登録されていません。")
    owner = _agents.source_owner(gw, source)
    if owner is not None and owner != agent_id:
        raise SourceOwnedByOther(f"データ元「{source}」はエージェント {owner} の担当です。エージェント {agent_id} からの提出は受け付けません"
                           "（別のエージェントの記録を上書きしないため）。担当を替えるときは、管理者が"
                           f" tsunagu gateway agent handover --source {source} --to {agent_id} で引き継いでください。")
    if gw.policy.network_of(source) != network:
        raise SourceNotAllowed(f"ポリシーでは、データ元「{source}」をネットワーク {network} から受け付けません。")
    try:
        schema = load_schema(str(m["schema_version"]))
    except SchemaError as exc:
        raise UnknownSchema(str(exc)) from None
    if not gw.settings.linkage_key_id:
        raise NotConfigured("ゲートウェイに現在の連携鍵 ID（linkage_key_id）が設定されていません。gateway.toml を確認してください。")
    if m["linkage_key_id"] != gw.settings.linkage_key_id:
        raise WrongLinkageKey(f"提出データの連携鍵 ID {m['linkage_key_id']} は現在の連携鍵 {gw.settings.linkage_key_id} ではありません。エージェントに新しい鍵を配布してください。")
    _check_attributes(gw, sub, network, source)
    rows, refused = _record_rows(sub, source, schema.total_bytes, len(schema.blocking_keys))
    return _store(gw, sub, rows, refused, channel, where)


#: The agent's snapshot, or one part of it (``keys.submission``).
SUBMISSION = Kind("submission", _parse_submission, _accept_submission)


def _previous_answer(gw: Gateway, agent_id: str, sequence: int, content_sha256: str) -> IngestResult | None:
    """The first answer if this exact submission was accepted before; 409 if the sequence was used or passed."""
    s = models.submissions
    with gw.engine.connect() as conn:
        row = conn.execute(select(s).where(s.c.agent_id == agent_id, s.c.sequence == sequence)).first()
        last = conn.execute(select(func.max(s.c.sequence)).where(s.c.agent_id == agent_id)).scalar()
    if row is not None and row.content_sha256 == content_sha256:
        return IngestResult("duplicate", row.id, row.accepted, json.loads(row.refused), sequence)
    if row is not None or (last is not None and sequence <= last):
        raise Replay(f"連番 {sequence} は受付済みの連番 {last} 以下です（再送または再生攻撃）。新しい連番で提出してください。")
    return None


def _check_attributes(gw: Gateway, sub: Submission, network: str, source: str) -> None:
    names = set()
    for r in sub.records:
        names.update(r.attributes)
    for name in sorted(names):
        decision = gw.policy.may_send(network, source, name)
        if not decision.allowed:
            raise ForbiddenAttribute(f"提出全体を受け付けません: {decision.reason}")


def _record_rows(sub: Submission, source: str, clk_bytes: int, n_blocks: int) -> tuple[list[tuple], list[dict[str, str]]]:
    """Rows (source, token, clk, present, blocks, sealed, attributes) of the usable records, and the refused ones."""
    rows: list[tuple] = []
    refused: list[dict[str, str]] = []
    seen: set[str] = set()
    pack = struct.Struct(f"<{n_blocks}Q").pack
    dumps = json.dumps
    for r in sub.records:
        token = r.token
        if not token or len(token) > _MAX_TOKEN:
            refused.append({"token": token[:_MAX_TOKEN], "reason": f"記録トークンが空か {_MAX_TOKEN} 文字を超えています。"})
        elif token in seen:
            refused.append({"token": token, "reason": "同じ記録トークンが提出内に重複しています（2 件目以降を除外）。"})
        elif len(r.clk) != clk_bytes:
            refused.append({"token": token, "reason": f"符号（CLK）の長さ {len(r.clk)} バイトがスキーマの {clk_bytes} バイトと違います。"})
        elif not 0 <= r.present < _PRESENT_LIMIT:
            refused.append({"token": token, "reason": "項目の有無フラグが範囲外です。"})
        else:
            try:
                blocks = pack(*r.blocks)  # refuses a wrong count and values outside uint64
            except struct.error:
                refused.append({"token": token, "reason": f"ブロッキングトークンが {n_blocks} 個の 64 ビット値ではありません。"})
                continue
            seen.add(token)
            attributes = dumps(r.attributes, ensure_ascii=False, sort_keys=True) if r.attributes else "{}"
            rows.append((source, token, r.clk, r.present, blocks, r.sealed, attributes))
    return rows, refused


def _store(gw: Gateway, sub: Submission, rows: list[tuple], refused: list[dict[str, str]], channel: str,
           where: dict[str, Any]) -> IngestResult:
    m = sub.manifest
    source, agent_id, sequence = str(m["source"]), str(m["agent_id"]), int(m["sequence"])
    crash_point("ingest.before_store")
    try:
        with gw.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Serialise one agent's submissions so the sequence check below holds.
                conn.execute(select(models.agents.c.agent_id).where(models.agents.c.agent_id == agent_id).with_for_update())
            # Writing first takes SQLite's write lock before anything is read.
            submission_id = conn.execute(insert(models.submissions).values(
                agent_id=agent_id, sequence=sequence, content_sha256=m["content_sha256"], network=m["network"], source=source,
                schema_version=m["schema_version"], linkage_key_id=m["linkage_key_id"], escrow_key_id=str(m["escrow_key_id"]),
                batch_id=str(m["batch_id"])[:128], seal_header=json.dumps(m["seal_header"], sort_keys=True),
                created_at=str(m["created_at"])[:40], received_at=utcnow(), channel=channel, record_count=len(sub.records),
                accepted=len(rows), refused=json.dumps(refused, ensure_ascii=False),
            )).inserted_primary_key[0]
            crash_point("ingest.after_submission_row")
            later = conn.execute(select(func.max(models.submissions.c.sequence)).where(
                models.submissions.c.agent_id == agent_id, models.submissions.c.id != submission_id)).scalar()
            if later is not None and later >= sequence:
                raise Replay(f"連番 {sequence} は受付済みの連番 {later} 以下です。新しい連番で提出してください。")
            part, parts = int(m.get("part", 1)), int(m.get("parts", 1))
            if part > 1 and _staged_parts(conn, agent_id, str(m["batch_id"])[:128]) != set(range(1, part)):
                # Before the chain check: a part out of order is a missing part, not a second copy of the agent.
                raise PartsMissing(f"分割提出（{m['batch_id']}）の {part}/{parts} 番目より前の部分がそろっていません。"
                                                         "エージェントの送信待ち（または持ち出しファイル）を古い順に送り直してください。")
            if "previous" in m:
                _extend_chain(conn, m, submission_id)
            elif chain_head(conn, agent_id) is not None:
                _refuse_unchained(agent_id, int(m["sequence"]))
            accepted = len(rows)
            if part < parts:
                _stage_part(conn, m, submission_id, rows)
                gw.record(f"agent:{agent_id}", "agent", "submission.part", f"part={part}/{parts} accepted={len(rows)}",
                          target=f"{source}#{submission_id}", connection=conn)
            else:
                if parts > 1:
                    accepted = _assemble_snapshot(conn, m, submission_id, rows, refused)
                else:
                    _replace_snapshot(conn, source, submission_id, rows)
                    accepted = len(rows)
                crash_point("ingest.after_records")
                # The run request and the audit entry commit with the data, or neither does.
                request_run(conn, "submission")
                gw.record(f"agent:{agent_id}", "agent", "submission.accept", f"accepted={accepted} refused={len(refused)}",
                          target=f"{source}#{submission_id}", connection=conn)
                crash_point("ingest.after_audit")
    except IntegrityError:
        answer = _previous_answer(gw, agent_id, sequence, m["content_sha256"])
        if answer is None:
            raise
        return answer
    crash_point("ingest.after_commit")
    where["submission_id"] = submission_id
    log.info("submission %s accepted: agent=%s source=%s sequence=%s accepted=%d refused=%d",
             submission_id, agent_id, source, sequence, accepted, len(refused))
    return IngestResult("accepted", submission_id, accepted, refused, sequence)


_PART_COLUMNS = ("source", "token", "clk", "present", "blocks", "sealed", "attributes")


def _staged_parts(conn: Connection, agent_id: str, batch_id: str) -> set[int]:
    p = models.snapshot_parts
    return set(conn.execute(select(p.c.part).where(p.c.agent_id == agent_id, p.c.batch_id == batch_id).distinct()).scalars())


def _stage_part(conn: Connection, m: dict[str, Any], submission_id: int, rows: list[tuple]) -> None:
    """Keep a part's records aside until the snapshot's last part arrives; parts must come in order."""
    p = models.snapshot_parts
    agent_id, batch_id, part, source = str(m["agent_id"]), str(m["batch_id"])[:128], int(m["part"]), str(m["source"])
    if part == 1:
        # A new snapshot of the source: parts of an earlier one that never completed are dropped.
        stale = select(models.submissions.c.id).where(models.submissions.c.agent_id == agent_id,
                                                      models.submissions.c.source == source)
        conn.execute(delete(p).where(p.c.submission_id.in_(stale)))
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    columns = (*_PART_COLUMNS, "submission_id", "agent_id", "batch_id", "part")
    sql = f"INSERT INTO snapshot_parts ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    for i in range(0, len(rows), _CHUNK):
        conn.exec_driver_sql(sql, [(*r, submission_id, agent_id, batch_id, part) for r in rows[i:i + _CHUNK]])


def _assemble_snapshot(conn: Connection, m: dict[str, Any], submission_id: int, rows: list[tuple],
                       refused: list[dict[str, str]]) -> int:
    """Replace the source's records with every record of a multi-part snapshot, inside the database.

    The last part is staged like the others, then the staged rows go into ``records`` with set-based
    statements: the gateway never holds a whole city's snapshot in memory, only one part (the one it
    was sent). A token in two parts is kept once (the last part's, else the earliest part's) and the
    others are refused. Returns how many records the source now has.
    """
    p, rec, hist = models.snapshot_parts, models.records, models.record_history
    agent_id, batch_id, source = str(m["agent_id"]), str(m["batch_id"])[:128], str(m["source"])
    _stage_part(conn, m, submission_id, rows)
    batch = (p.c.agent_id == agent_id, p.c.batch_id == batch_id)
    twice = select(p.c.token).where(*batch).group_by(p.c.token).having(func.count() > 1)
    copies: dict[str, list[tuple[int, int]]] = {}
    for token, part, sid in conn.execute(select(p.c.token, p.c.part, p.c.submission_id).where(*batch, p.c.token.in_(twice))):
        copies.setdefault(token, []).append((part, sid))
    last = int(m["parts"])
    for token, found in copies.items():
        keep = max(found, key=lambda c: (c[0] == last, -c[0]))
        for part, sid in found:
            if (part, sid) != keep:
                refused.append({"token": token, "reason": "同じ記録トークンが分割提出の別の部分にもあります（2 件目以降を除外）。"})
                conn.execute(delete(p).where(p.c.submission_id == sid, p.c.token == token))
    staged = select(p).where(*batch).subquery()
    # Records the source already had: new contents, same first submission (the child's history goes on).
    conn.execute(update(rec).where(rec.c.source == source, rec.c.token == staged.c.token).values(
        submission_id=submission_id, clk=staged.c.clk, present=staged.c.present, blocks=staged.c.blocks,
        sealed=staged.c.sealed, attributes=staged.c.attributes))
    # Records new to the source.
    known = select(rec.c.token).where(rec.c.source == source, rec.c.token == p.c.token).exists()
    conn.execute(insert(rec).from_select(
        ["source", "token", "submission_id", "first_submission_id", "clk", "present", "blocks", "sealed", "attributes"],
        select(literal(source), p.c.token, literal(submission_id), literal(submission_id), p.c.clk, p.c.present, p.c.blocks,
               p.c.sealed, p.c.attributes).where(*batch, ~known)))
    # Records the snapshot no longer holds: their history says so, then they go.
    conn.execute(insert(hist).from_select(
        ["source", "token", "submission_id", "status", "attributes"],
        select(rec.c.source, rec.c.token, literal(submission_id), literal("deleted"), literal("{}"))
        .where(rec.c.source == source, rec.c.submission_id != submission_id)))
    conn.execute(delete(rec).where(rec.c.source == source, rec.c.submission_id != submission_id))
    # Each version's attributes, copied inside the database (as for a one-part snapshot).
    conn.execute(insert(hist).from_select(
        ["source", "token", "submission_id", "status", "attributes"],
        select(rec.c.source, rec.c.token, rec.c.submission_id, literal("present"), rec.c.attributes).where(rec.c.source == source)))
    conn.execute(delete(p).where(*batch))
    return conn.execute(select(func.count()).select_from(rec).where(rec.c.source == source)).scalar_one()


def chain_head(conn: Connection, agent_id: str) -> Any:
    """The agent's last accepted chained submission (sequence, manifest hash, instance), or None."""
    c = models.submission_chain
    return conn.execute(select(c).where(c.c.agent_id == agent_id).order_by(c.c.sequence.desc()).limit(1)).first()


def _refuse_unchained(agent_id: str, sequence: int) -> None:
    """An agent that has sent a chained submission never goes back: an unchained one now is an old copy or old software."""
    raise Unchained(f"エージェント {agent_id} の連番 {sequence} の提出には、直前の提出とのつながり（previous）がありません。このエージェントは"
                       "すでにつながりのある提出を送っているため、つながりのない提出（古い版の tsunagu で動くエージェントか、そのコピー）は"
                       "受け付けず、記録は何も上書きしていません。この提出を送った機械のエージェントを最新の tsunagu に更新してから"
                       " tsunagu agent run で送り直してください（更新したエージェントは、まずゲートウェイの記録と突き合わせます）。"
                       "同じエージェントが別の機械でも動いている場合は、一方を止めてください。")


def _extend_chain(conn: Connection, m: dict[str, Any], submission_id: int) -> None:
    """Refuse a fork (the submission does not follow the agent's last accepted one); else record the link."""
    agent_id = str(m["agent_id"])
    head = chain_head(conn, agent_id)
    expected = head.manifest_sha256 if head is not None else ""
    moved = (head is not None and head.instance and m.get("instance") and m["instance"] != head.instance
             and m.get("moved_from") != head.instance)
    if m["previous"] != expected or moved:
        here = str(m.get("instance_label") or "（不明）")
        if head is None:
            there = "まだ連鎖のある提出を受け付けていません"
        else:
            there = f"最後に受け付けたのは {head.instance_label or '（不明）'} からの連番 {head.sequence} です"
        raise Fork(f"エージェント {agent_id} の提出が分岐しています: {here} からの連番 {m['sequence']} は、ゲートウェイが受け付けた"
                           f"最後の提出の続きではありません（{there}）。同じエージェントが 2 か所で動いているか、古い状態（state/）から"
                           "動いています。提出は受け付けず、記録は何も上書きしていません。ゲートウェイが最後に受け付けた側"
                           f"（{head.instance_label if head is not None else '—'}）を残し、もう一方を止めてください。こちらを残す場合は、"
                           "もう一方を止めてから、こちらで tsunagu agent resync を実行してください。")
    conn.execute(insert(models.submission_chain).values(
        submission_id=submission_id, agent_id=agent_id, sequence=int(m["sequence"]), manifest_sha256=manifest_sha256(m),
        previous_sha256=str(m["previous"]), instance=str(m.get("instance", ""))[:64],
        instance_label=str(m.get("instance_label", ""))[:200]))


def agent_state(gw: Gateway, agent_id: str) -> dict[str, Any]:
    """What the gateway has accepted from ``agent_id``: the authority an agent reconciles its state with."""
    s = models.submissions
    with gw.engine.connect() as conn:
        last = conn.execute(select(s).where(s.c.agent_id == agent_id).order_by(s.c.sequence.desc()).limit(1)).first()
        head = chain_head(conn, agent_id)
        owned = conn.execute(select(models.source_owners.c.source).where(models.source_owners.c.agent_id == agent_id)).scalars().all()
        sources = {}
        for source in owned:
            row = conn.execute(select(s.c.id, s.c.sequence, s.c.content_sha256, s.c.agent_id).where(s.c.source == source)
                               .order_by(s.c.id.desc()).limit(1)).first()
            sources[source] = ({"submission_id": row.id, "sequence": row.sequence, "content_sha256": row.content_sha256,
                                "agent_id": row.agent_id} if row is not None else None)
    return {
        "agent_id": agent_id,
        "sequence": last.sequence if last is not None else 0,
        "content_sha256": last.content_sha256 if last is not None else "",
        "received_at": last.received_at.isoformat() if last is not None else None,
        "head": ({"sequence": head.sequence, "manifest_sha256": head.manifest_sha256, "instance": head.instance,
                  "instance_label": head.instance_label} if head is not None else None),
        "sources": sources,
    }


def _replace_snapshot(conn: Connection, source: str, submission_id: int, rows: list[tuple]) -> None:
    rec, hist = models.records, models.record_history
    first_seen = dict(conn.execute(select(rec.c.token, rec.c.first_submission_id).where(rec.c.source == source)).all())
    conn.execute(delete(rec).where(rec.c.source == source))
    # The bulk of the data goes through the driver's executemany as plain tuples:
    # SQLAlchemy's per-value bind processing would cost more than the insert itself.
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    columns = ("source", "token", "clk", "present", "blocks", "sealed", "attributes", "submission_id", "first_submission_id")
    sql = f"INSERT INTO records ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    for i in range(0, len(rows), _CHUNK):
        conn.exec_driver_sql(sql, [(*r, submission_id, first_seen.get(r[1], submission_id)) for r in rows[i:i + _CHUNK]])
    # Each version's attributes, copied inside the database.
    conn.execute(insert(hist).from_select(
        ["source", "token", "submission_id", "status", "attributes"],
        select(rec.c.source, rec.c.token, rec.c.submission_id, literal("present"), rec.c.attributes).where(rec.c.source == source)))
    current = {r[1] for r in rows}
    gone = [t for t in first_seen if t not in current]
    if gone:
        conn.execute(insert(hist), [{"source": source, "token": t, "submission_id": submission_id,
                                     "status": "deleted", "attributes": "{}"} for t in gone])
