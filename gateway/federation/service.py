"""Service: queries to a peer and their answers, handles, handovers (引継ぎ), and the same exchanges as carried bundle files.

Side B (where the child lives now) asks side A (where the child came from)
about B's children whose 転入 record names A; A compares them only with its
children whose 転出 record names B. A answers per query item: no match, or a
match with a band (高/中), a random handle valid for this exchange only and A's
contact department. With a handle, B's caseworker files a handover request;
A's caseworker answers it with a message and the attributes A's policy lets it
share. Every step is in both gateways' audit logs; every refusal is logged
with its reason.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import ssl
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Connection, Row, Table, and_, delete, func, insert, select, update

from gateway import models
from gateway.core import Gateway
from gateway.db import utcnow
from gateway.errors import (
    AlreadyAnswered,
    AttributeNotShareable,
    Forbidden,
    GatewayError,
    HandleExpired,
    InvalidText,
    KeyIdMismatch,
    MalformedMessage,
    NoTransferRecord,
    NothingToAsk,
    PeerInsecure,
    PeerNoUrl,
    PeerRefused,
    PeerUnreachable,
    RateLimited,
    UnexpectedAnswer,
    UnexpectedHandoverAnswer,
    UnknownExchange,
    UnknownHandle,
    UnknownHandover,
    UnknownPeer,
)
from gateway.federation import config as _config
from gateway.federation import protocol
from gateway.federation.match import encodings, match
from gateway.identity import User
from keys.documents import b64d, b64e
from keys.errors import KeysError
from linkage.schema import SchemaError, load_schema

PEER_PATHS = {"query": "/api/v1/federation/peer/query", "handover_request": "/api/v1/federation/peer/handover",
              "handover_answer": "/api/v1/federation/peer/handover-answer",
              "pooled_counts": "/api/v1/federation/peer/pooled"}
_MAX_TEXT = 2000


def _new_id() -> str:
    return secrets.token_hex(16)


def _refuse(gw: Gateway, user: User, action: str, error: GatewayError) -> GatewayError:
    gw.event("federation", error.status, error.code, error.detail, path=action)
    _config.audit(gw, user.username, user.role, action, f"refused:{error.code}")
    return error


def _peer(gw: Gateway, config: _config.FederationConfig, user: User, action: str, code: str) -> _config.Peer:
    peer = config.peer(code)
    if peer is None:
        raise _refuse(gw, user, action, UnknownPeer(f"自治体 {code} は連携先として設定されていません（tsunagu federation peer add）。"))
    return peer


def _text(value: str, what: str) -> str:
    if not value.strip() or len(value) > _MAX_TEXT:
        raise InvalidText(f"{what}を 1〜{_MAX_TEXT} 文字で書いてください。")
    return value


# ---- side B: ask ---------------------------------------------------------------------------------------


def start_query(gw: Gateway, user: User, peer_code: str, tokens: list[str] | None = None, *, bundle: bool = False) -> tuple[str, bytes]:
    """Make a signed query about our children who moved in from ``peer_code`` (all, or the given record tokens).

    A token without a 転入 record naming that peer is refused: the query cannot be used to ask about anyone else.
    """
    config = _config.load(gw.settings.home)
    _peer(gw, config, user, "federation.query.send", peer_code)
    r = models.federation_records
    with gw.engine.connect() as conn:
        rows = conn.execute(select(r).where(r.c.moved_in_from == peer_code)).all()
        key_ids = set(conn.execute(select(models.federation_submissions.c.federation_key_id)).scalars())
    if tokens is not None:
        wanted, held = set(tokens), {row.token for row in rows}
        if not wanted <= held:
            raise _refuse(gw, user, "federation.query.send", NoTransferRecord(
                f"{len(wanted - held)} 件のこどもには自治体 {peer_code} からの転入の記録がありません。転入の記録があるこどもについてだけ照会できます。"))
        rows = [row for row in rows if row.token in wanted]
    if not rows:
        raise _refuse(gw, user, "federation.query.send", NothingToAsk(
            f"自治体 {peer_code} からの転入の記録があるこどもがいません（連携圏用の符号が届いているか確認してください）。"))
    if key_ids - {config.federation_key_id}:
        raise _refuse(gw, user, "federation.query.send", KeyIdMismatch("連携圏用の符号に、設定と異なる鍵 ID のものがあります。"))
    exchange = _new_id()
    schema = load_schema()
    items, stored = [], []
    for row in rows:
        qid = secrets.token_hex(12)
        items.append({"q": qid, "c": b64e(row.clk), "p": row.present, "b": b64e(row.blocks)})
        stored.append({"exchange_id": exchange, "qid": qid, "source": row.source, "token": row.token})
    data = protocol.sign_message(config, _config.signer(gw.settings.home, config.code), "query", peer_code,
                         {"exchange": exchange, "schema_version": schema.version, "items": items}, bundle=bundle)
    with gw.engine.begin() as conn:
        conn.execute(insert(models.federation_exchanges).values(id=exchange, direction="out", peer=peer_code, kind="query",
                                                               status="sent", items=len(items), created_at=utcnow(), actor=user.username))
        conn.execute(insert(models.federation_query_items), stored)
    _config.audit(gw, user.username, user.role, "federation.query.send", "ok", target=f"{peer_code}:{exchange}:{len(items)}", purpose=config.purpose)
    return exchange, data


def post_to_peer(gw: Gateway, peer_code: str, kind: str, data: bytes) -> bytes:
    """POST a signed message to the peer's gateway and return the answer's bytes (4xx/5xx become a refusal)."""
    config = _config.load(gw.settings.home)
    peer = config.peer(peer_code)
    if peer is None or not peer.url:
        raise PeerNoUrl(f"自治体 {peer_code} の URL が設定されていません。持ち出しファイルで運んでください。")
    parts = urlsplit(peer.url)
    if parts.scheme != "https" and not _loopback(parts.hostname or ""):
        raise PeerInsecure("連携先へは HTTPS で接続してください（HTTP はこの機械の中だけ）。")
    try:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=peer.ca_file) if peer.ca_file else True
        response = httpx.post(peer.url + PEER_PATHS[kind], content=data, timeout=120, verify=verify,
                              headers={"Content-Type": "application/json", "User-Agent": "tsunagu-gateway/1"})
    except httpx.TransportError as exc:
        raise PeerUnreachable(f"自治体 {peer_code} のゲートウェイに接続できません（{type(exc).__name__}）。") from None
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", "")
        except ValueError:
            detail = ""
        raise PeerRefused(f"自治体 {peer_code} のゲートウェイが受け付けませんでした（{response.status_code}: {detail}）。")
    return response.content


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def ask(gw: Gateway, user: User, peer_code: str, tokens: list[str] | None = None) -> dict[str, Any]:
    """Query the peer over HTTPS and store its answer; returns the results."""
    exchange, data = start_query(gw, user, peer_code, tokens)
    try:
        answer = post_to_peer(gw, peer_code, "query", data)
    except GatewayError as exc:
        raise _refuse(gw, user, "federation.query.send", exc) from None
    accept_answer(gw, answer, "federation")
    return results(gw, exchange)


def accept_answer(gw: Gateway, data: bytes, channel: str) -> str:
    """Store a peer's signed answer to one of our queries; returns the exchange id."""
    config, peer, body = _received(gw, data, "answer", channel)
    x = models.federation_exchanges
    exchange = str(body.get("exchange", ""))
    with gw.engine.begin() as conn:
        _awaiting_answer(gw, conn, x, exchange, peer, "sent", channel, f"federation answer from {peer}",
                         UnexpectedAnswer("この回答に対応する照会がないか、回答を受信済みです。"))
        expires = utcnow() + timedelta(hours=int(body.get("handle_hours", 0)))
        for result in body.get("results", []):
            values: dict[str, Any] = {"match": bool(result.get("match"))}
            if values["match"]:
                values.update(band=str(result["band"]), handle=str(result["handle"]), contact=str(body.get("contact", "")), expires_at=expires)
            conn.execute(update(models.federation_query_items).where(and_(
                models.federation_query_items.c.exchange_id == exchange, models.federation_query_items.c.qid == str(result.get("q")))).values(**values))
        conn.execute(update(x).where(x.c.id == exchange).values(status="answered", answered_at=utcnow(), answer=data.decode("utf-8")))
    matches = sum(1 for r in body.get("results", []) if r.get("match"))
    _config.audit(gw, f"peer:{peer}", "peer", "federation.answer.receive", "ok", target=f"{peer}:{exchange}:{matches}", purpose=config.purpose)
    return exchange


def _received(gw: Gateway, data: bytes, kind: str, channel: str) -> tuple[_config.FederationConfig, str, dict[str, Any]]:
    """The federation settings, and the sending peer and the body of ``data``: a peer's signed message of ``kind``, verified."""
    config = _config.load(gw.settings.home)
    message = protocol.verify_message(gw, config, data, kind, channel)
    return config, message["from"], message["body"]


def _awaiting_answer(gw: Gateway, conn: Connection, table: Table, key: str, peer: str, waiting: str, channel: str, path: str,
                     unexpected: GatewayError) -> Row:
    """Our message ``key`` to ``peer`` in ``table``, still ``waiting`` for the answer that arrived; else ``unexpected``, counted and raised.

    A peer's answer must answer exactly one message we sent that peer, once.
    """
    row = conn.execute(select(table).where(and_(table.c.id == key, table.c.direction == "out", table.c.peer == peer))).first()
    if row is None or row.status != waiting:
        gw.event(channel, unexpected.status, unexpected.code, unexpected.detail, path=path)
        raise unexpected
    return row


def results(gw: Gateway, exchange: str) -> dict[str, Any]:
    """One of our queries and its answer: per item our record token, and match, band, handle, contact."""
    x, i = models.federation_exchanges, models.federation_query_items
    with gw.engine.connect() as conn:
        row = conn.execute(select(x).where(and_(x.c.id == exchange, x.c.direction == "out"))).first()
        if row is None:
            raise UnknownExchange("その照会はありません。")
        items = conn.execute(select(i).where(i.c.exchange_id == exchange).order_by(i.c.qid)).all()
    return {"exchange": exchange, "peer": row.peer, "status": row.status, "created_at": row.created_at.isoformat(),
            "items": [{"source": it.source, "token": it.token, "match": it.match, "band": it.band, "handle": it.handle,
                       "contact": it.contact} for it in items]}


# ---- side A: answer ------------------------------------------------------------------------------------


def answer_query(gw: Gateway, data: bytes, channel: str, *, bundle: bool = False) -> bytes:
    """Verify a peer's query, compare it with our children who moved out to that peer, store and return the signed answer."""
    config = _config.load(gw.settings.home)
    message = protocol.verify_message(gw, config, data, "query", channel)
    peer, body = message["from"], message["body"]
    items = body.get("items") if isinstance(body.get("items"), list) else []
    x = models.federation_exchanges
    now = utcnow()
    with gw.engine.connect() as conn:
        day = conn.execute(select(func.coalesce(func.sum(x.c["items"]), 0)).where(and_(
            x.c.peer == peer, x.c.direction == "in", x.c.created_at > now - timedelta(days=1)))).scalar()
        hour = conn.execute(select(func.count()).select_from(x).where(and_(
            x.c.peer == peer, x.c.direction == "in", x.c.created_at > now - timedelta(hours=1)))).scalar()
    error = None
    if hour + 1 > config.max_requests_per_hour:
        error = RateLimited(f"自治体 {peer} からの照会が 1 時間の上限（{config.max_requests_per_hour} 回）を超えました。")
    elif day + len(items) > config.max_items_per_day:
        error = RateLimited(f"自治体 {peer} からの照会が 24 時間の上限（{config.max_items_per_day} 件）を超えます。")
    elif not items:
        error = MalformedMessage("照会に項目がありません。")
    if error is not None:
        gw.event(channel, error.status, error.code, error.detail, path=f"federation query from {peer}")
        _config.audit(gw, f"peer:{peer}", "peer", "federation.query.receive", f"refused:{error.code}")
        raise error
    try:
        schema = load_schema(str(body.get("schema_version")))
        queries = encodings(schema.version, message["federation_key_id"], [b64d(it["c"], "c") for it in items],
                            [int(it["p"]) for it in items], [b64d(it["b"], "b") for it in items], len(schema.blocking_keys))
    except (KeyError, TypeError, ValueError, KeysError, SchemaError) as exc:
        error = MalformedMessage(f"照会の符号が読めません（{type(exc).__name__}）。")
        gw.event(channel, error.status, error.code, error.detail, path=f"federation query from {peer}")
        raise error from None
    r = models.federation_records
    with gw.engine.connect() as conn:
        ours = conn.execute(select(r.c.source, r.c.token, r.c.clk, r.c.present, r.c.blocks).where(r.c.moved_out_to == peer)).all()
    ours_enc = encodings(schema.version, config.federation_key_id, [o.clk for o in ours], [o.present for o in ours],
                         [o.blocks for o in ours], len(schema.blocking_keys))
    found = {f.query: f for f in match(ours_enc, queries)}
    with gw.engine.begin() as conn:  # handles past their expiry open nothing any more: drop them
        conn.execute(delete(models.federation_handles).where(models.federation_handles.c.expires_at < now))
    exchange = _new_id()
    expires = now + timedelta(hours=config.handle_hours)
    results_out, handles = [], []
    for n, it in enumerate(items):
        f = found.get(n)
        if f is None:
            # A non-match says nothing else: no band, no score, whatever the similarity was.
            results_out.append({"q": str(it.get("q")), "match": False})
            continue
        handle = secrets.token_urlsafe(24)
        handles.append({"handle_hash": hashlib.sha256(handle.encode()).digest(), "exchange_id": exchange, "peer": peer,
                        "source": ours[f.record].source, "token": ours[f.record].token, "band": f.band, "expires_at": expires})
        results_out.append({"q": str(it.get("q")), "match": True, "band": f.band, "handle": handle})
    answer = protocol.sign_message(config, _config.signer(gw.settings.home, config.code), "answer", peer,
                           {"exchange": body.get("exchange"), "contact": config.contact, "handle_hours": config.handle_hours,
                            "results": results_out}, bundle=bundle)
    with gw.engine.begin() as conn:
        conn.execute(insert(x).values(id=exchange, direction="in", peer=peer, kind="query", status="answered", items=len(items),
                                      created_at=now, answered_at=utcnow(), actor=f"peer:{peer}", answer=answer.decode("utf-8")))
        if handles:
            conn.execute(insert(models.federation_handles), handles)
    # One audit entry per answer (an entry per handle would cost more than the comparison at 10,000 items); it commits
    # to exactly which of our records were reported as matches: SHA-256 over the sorted "source:token" of the handles,
    # which an auditor recomputes from federation_handles.
    _config.audit(gw, f"peer:{peer}", "peer", "federation.query.answer", "ok", purpose=config.purpose,
                  target=f"{peer}:{exchange}:{len(items)}:{len(handles)}:sha256:{matched_digest(handles)}")
    return answer


def matched_digest(handles: list[dict[str, Any]]) -> str:
    """SHA-256 (hex) over the sorted ``source:token`` lines of the records an answer reported as matches."""
    lines = sorted(f"{h['source']}:{h['token']}" for h in handles)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def stored_answer(gw: Gateway, exchange: str) -> bytes:
    """The signed answer we gave to a peer's query (for export-answer)."""
    x = models.federation_exchanges
    with gw.engine.connect() as conn:
        row = conn.execute(select(x.c.answer).where(and_(x.c.id == exchange, x.c.direction == "in"))).first()
    if row is None or not row.answer:
        raise UnknownExchange(f"照会 {exchange} への回答はありません。")
    return row.answer.encode("utf-8")


# ---- handovers (引継ぎ) ---------------------------------------------------------------------------------


def request_handover(gw: Gateway, user: User, handle: str, case_ref: str, message: str, *, bundle: bool = False) -> tuple[str, str, bytes]:
    """Side B: a handover request about the child behind ``handle``; returns (request id, peer, signed message)."""
    config = _config.load(gw.settings.home)
    i = models.federation_query_items
    with gw.engine.connect() as conn:
        item = conn.execute(select(i, models.federation_exchanges.c.peer).join(
            models.federation_exchanges, models.federation_exchanges.c.id == i.c.exchange_id).where(i.c.handle == handle)).first()
    if item is None:
        raise _refuse(gw, user, "federation.handover.request", UnknownHandle("そのハンドルの照会結果はありません。"))
    if item.expires_at is not None and item.expires_at < utcnow():
        raise _refuse(gw, user, "federation.handover.request", HandleExpired("ハンドルの有効期限が切れています。照会し直してください。"))
    _text(case_ref, "案件番号")
    _text(message, "依頼の内容")
    rid = _new_id()
    data = protocol.sign_message(config, _config.signer(gw.settings.home, config.code), "handover_request", item.peer,
                         {"request": rid, "handle": handle, "case_ref": case_ref, "message": message}, bundle=bundle)
    with gw.engine.begin() as conn:
        conn.execute(insert(models.federation_handovers).values(
            id=rid, direction="out", peer=item.peer, source=item.source, token=item.token, purpose=config.purpose, case_ref=case_ref,
            message=message, status="open", created_at=utcnow(), requested_by=user.username))
    _config.audit(gw, user.username, user.role, "federation.handover.request", "ok", target=f"{item.source}:{item.token}",
              purpose=config.purpose, case_ref=case_ref)
    return rid, item.peer, data


def withdraw_handover(gw: Gateway, request_id: str, reason: str) -> None:
    """Side B: the peer refused our handover request; it is closed with the peer's reason."""
    t = models.federation_handovers
    with gw.engine.begin() as conn:
        conn.execute(update(t).where(and_(t.c.id == request_id, t.c.direction == "out")).values(
            status="refused", answered_at=utcnow(), answer_message=reason[:_MAX_TEXT]))


def receive_handover(gw: Gateway, data: bytes, channel: str) -> dict[str, Any]:
    """Side A: a peer's handover request; the handle must be one we gave that peer and still valid."""
    config = _config.load(gw.settings.home)
    message = protocol.verify_message(gw, config, data, "handover_request", channel)
    peer, body = message["from"], message["body"]
    h = models.federation_handles
    digest = hashlib.sha256(str(body.get("handle", "")).encode()).digest()
    with gw.engine.connect() as conn:
        handle = conn.execute(select(h).where(and_(h.c.handle_hash == digest, h.c.peer == peer))).first()
    error = None
    if handle is None:
        error = UnknownHandle("そのハンドルはこの自治体から発行していません。")
    elif handle.expires_at < utcnow():
        error = HandleExpired("ハンドルの有効期限が切れています。")
    else:
        try:
            case_ref, text = _text(str(body.get("case_ref", "")), "案件番号"), _text(str(body.get("message", "")), "依頼の内容")
        except GatewayError as exc:
            error = exc
    if error is not None:
        gw.event(channel, error.status, error.code, error.detail, path=f"federation handover from {peer}")
        _config.audit(gw, f"peer:{peer}", "peer", "federation.handover.receive", f"refused:{error.code}")
        raise error
    hid = f"{peer}-{str(body.get('request', ''))[:32]}"
    with gw.engine.begin() as conn:
        conn.execute(insert(models.federation_handovers).values(
            id=hid, direction="in", peer=peer, source=handle.source, token=handle.token, purpose=message["purpose"], case_ref=case_ref,
            message=text, status="open", created_at=utcnow(), requested_by=f"peer:{peer}"))
    _config.audit(gw, f"peer:{peer}", "peer", "federation.handover.receive", "ok", target=f"{handle.source}:{handle.token}",
              purpose=message["purpose"], case_ref=case_ref)
    return {"status": "received", "id": hid}


def list_handovers(gw: Gateway, direction: str | None = None) -> list[dict[str, Any]]:
    """Handover requests (``in``: peers' requests to us; ``out``: ours), newest first."""
    t = models.federation_handovers
    query = select(t).order_by(t.c.created_at.desc())
    if direction:
        query = query.where(t.c.direction == direction)
    with gw.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [{"id": r.id, "direction": r.direction, "peer": r.peer, "source": r.source, "token": r.token, "purpose": r.purpose,
             "case_ref": r.case_ref, "message": r.message, "status": r.status, "created_at": r.created_at.isoformat(),
             "answered_at": r.answered_at.isoformat() if r.answered_at else None, "answer_message": r.answer_message,
             "answer_attributes": json.loads(r.answer_attributes) if r.answer_attributes else None} for r in rows]


def answer_handover(gw: Gateway, user: User, handover_id: str, message: str, attributes: list[str], *, bundle: bool = False) -> tuple[str, bytes]:
    """Side A: answer a peer's handover request with a message and the chosen attributes; returns (peer, signed message)."""
    config = _config.load(gw.settings.home)
    t = models.federation_handovers
    with gw.engine.connect() as conn:
        row = conn.execute(select(t).where(and_(t.c.id == handover_id, t.c.direction == "in"))).first()
        record = None if row is None else conn.execute(select(models.records.c.attributes).where(and_(
            models.records.c.source == row.source, models.records.c.token == row.token))).first()
    action = "federation.handover.answer"
    if row is None:
        raise _refuse(gw, user, action, UnknownHandover("その引継ぎ依頼はありません。"))
    if row.status != "open":
        raise _refuse(gw, user, action, AlreadyAnswered("その引継ぎ依頼には回答済みです。"))
    for name in attributes:
        if name not in config.shareable_attributes:
            raise _refuse(gw, user, action, AttributeNotShareable(f"属性「{name}」は連携圏の設定で提供を認められていません。"))
        decision = gw.policy.may_see(user.role, name)
        if not decision.allowed:
            raise _refuse(gw, user, action, Forbidden(decision.reason))
    _text(message, "回答")
    held = json.loads(record.attributes) if record else {}
    shared = {name: held.get(name, "") for name in attributes}
    data = protocol.sign_message(config, _config.signer(gw.settings.home, config.code), "handover_answer", row.peer,
                         {"request": handover_id.split("-", 1)[1], "message": message, "attributes": shared}, bundle=bundle)
    with gw.engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == handover_id).values(status="answered", answered_at=utcnow(), answered_by=user.username,
                                                                  answer_message=message, answer_attributes=json.dumps(shared, ensure_ascii=False)))
    _config.audit(gw, user.username, user.role, action, "ok", target=f"{row.source}:{row.token}:{','.join(attributes)}",
              purpose=row.purpose, case_ref=row.case_ref)
    return row.peer, data


def receive_handover_answer(gw: Gateway, data: bytes, channel: str) -> dict[str, Any]:
    """Side B: the peer's answer to our handover request."""
    config, peer, body = _received(gw, data, "handover_answer", channel)
    t = models.federation_handovers
    rid = str(body.get("request", ""))
    with gw.engine.begin() as conn:
        row = _awaiting_answer(gw, conn, t, rid, peer, "open", channel, f"federation handover answer from {peer}",
                               UnexpectedHandoverAnswer("この回答に対応する引継ぎ依頼がないか、回答を受信済みです。"))
        attributes = body.get("attributes") if isinstance(body.get("attributes"), dict) else {}
        conn.execute(update(t).where(t.c.id == rid).values(status="answered", answered_at=utcnow(), answered_by=f"peer:{peer}",
                                                          answer_message=str(body.get("message", ""))[:_MAX_TEXT],
                                                          answer_attributes=json.dumps({str(k): str(v) for k, v in attributes.items()}, ensure_ascii=False)))
    _config.audit(gw, f"peer:{peer}", "peer", "federation.handover.answer.receive", "ok", target=f"{row.source}:{row.token}",
              purpose=row.purpose, case_ref=row.case_ref)
    return {"status": "received", "id": rid}


def list_queries(gw: Gateway, limit: int = 50) -> list[dict[str, Any]]:
    """Our transfer-in queries, newest first: peer, status, how many children asked and how many the peer matched."""
    x, i = models.federation_exchanges, models.federation_query_items
    with gw.engine.connect() as conn:
        rows = conn.execute(select(x).where(x.c.direction == "out").order_by(x.c.created_at.desc()).limit(limit)).all()
        matched = dict(conn.execute(select(i.c.exchange_id, func.count()).where(i.c.match.is_(True))
                                    .group_by(i.c.exchange_id)).all()) if rows else {}
    return [{"exchange": r.id, "peer": r.peer, "status": r.status, "items": r.items, "matched": matched.get(r.id, 0),
             "actor": r.actor, "created_at": r.created_at, "answered_at": r.answered_at} for r in rows]
