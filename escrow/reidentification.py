"""Re-identification requests at the escrow: file (checked against the gateway's log) → approve or reject → release once.

The contract with the gateway is :class:`RequestFiling`, in an envelope signed
with the gateway's key (``keys.filing``; :func:`open_filing`). Who may do what is
checked here and in the routes: only a caseworker files, and only for
themselves; only approvers decide, never on their own request; only the
requesting caseworker has the records opened, once, within
``release_window_minutes`` of the last approval, after the release is in
the escrow's audit log. Identities are returned, never stored.

What may be opened is what the gateway logged (``keys.binding``): a filing is
accepted only with an included, accepted gateway entry whose requester,
purpose, legal basis, case reference, justification hash, approvals, record
limit, record count and hash over the sorted sealed records all match it. A
refused gateway entry (``refused: …``) is never evidence; any mismatch is
refused with its reason and logged. Every change here (a filing, a decision,
a release) commits in one transaction with its audit entry
(``Escrow.record(..., connection=conn)``), so the escrow never says
"released" without a release in its log, whatever point a crash hits
(``escrow.faults`` marks the points the kill -9 tests use).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from escrow import db
from escrow.errors import (
    AlreadyDecided,
    AlreadyReleased,
    ApprovalsRequired,
    BindingMismatch,
    CaseRefInvalid,
    DuplicateRecord,
    FilingMalformed,
    FilingNotSigned,
    FilingVersion,
    EscrowError,
    GatewayEntryUnbound,
    GatewayRefused,
    InvalidRecord,
    MaxRecords,
    NoRecords,
    NotApproved,
    NotRequester,
    OpenFailed,
    OwnRequest,
    PolicyMismatch,
    PurposeNotUsable,
    Rejected,
    ReleaseExpired,
    RequestExists,
    RequestNotFound,
    RequesterMismatch,
    TooManyRecords,
    UnknownPurpose,
    WrongEscrowKey,
)
from escrow.evidence import REQUEST_ACTION, GatewayEvidence, verify_evidence
from escrow.faults import crash_point
from escrow.identity import User
from escrow.service import Escrow
from keys import binding, seal
from keys import filing as filing_envelope
from keys.envelope import EnvelopeError, EnvelopeSignatureError, EnvelopeVersionError
from keys.filing import ID_PATTERN as _ID_PATTERN
from keys.filing import RequestFiling as RequestFiling  # the one model of a filing, shared with the gateway
from keys.errors import KeysError
from policy import LEGAL_BASES, Policy, PolicyError, default_policy

_PLACEHOLDER = {"purpose": "（不正な利用目的）", "legal_basis": "（不正な法的根拠）", "case_ref": "（形式外の案件番号）"}


def read_filing(escrow: Escrow, data: Any) -> RequestFiling:
    """The filing inside a gateway-signed envelope (``keys.filing``), from its JSON text or its parsed body.

    The one mapping from an envelope that does not open to the escrow's refusal
    (another version, not the gateway's signature, not a filing); the refusal is
    raised, not logged: :func:`open_filing` logs it, the web's preview only shows it.
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError:
            raise FilingMalformed("申請の内容を JSON として読み取れません。") from None
    try:
        return filing_envelope.open_filing(data, escrow.gateway.public_key)
    except EnvelopeVersionError as exc:
        raise FilingVersion(str(exc)) from None
    except EnvelopeSignatureError as exc:
        raise FilingNotSigned(str(exc)) from None
    except EnvelopeError as exc:
        raise FilingMalformed(f"再識別の申請として読めません: {exc}") from None


def open_filing(escrow: Escrow, user: User, data: Any) -> RequestFiling:
    """:func:`read_filing` for ``user``; a filing that does not open is refused and logged."""
    try:
        return read_filing(escrow, data)
    except EscrowError as error:
        named = _named_request(data)
        where = {"target": named} if named is not None else {}
        raise escrow.refuse(user.username, "caseworker", "reidentify.request", error, **where) from None


def _named_request(data: Any) -> str | None:
    """The request id an unopened filing names, for its refusal's audit entry (only if it has the id's form)."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    manifest = data.get("manifest") if isinstance(data, dict) else None
    named = manifest.get("request_id") if isinstance(manifest, dict) else None
    return named if isinstance(named, str) and re.fullmatch(_ID_PATTERN, named) else None


def file_signed(escrow: Escrow, user: User, data: Any) -> dict[str, Any]:
    """Open a gateway-signed filing (:func:`open_filing`) and file it (:func:`file_request`)."""
    return file_request(escrow, user, open_filing(escrow, user, data))


def file_request(escrow: Escrow, user: User, filing: RequestFiling) -> dict[str, Any]:
    """Check and store a request (pending) with its audit entry, in one transaction; refusals are logged with their reason."""
    where = _refusal_where(escrow, filing)
    try:
        records = _check_filing(escrow, user, filing)
        evidence = filing.gateway_evidence
        checkpoint = verify_evidence(
            GatewayEvidence(evidence.entry, evidence.leaf_index, evidence.inclusion_proof, evidence.checkpoint),
            escrow.gateway,
            {"action": REQUEST_ACTION, "actor": filing.requester, "target": filing.request_id,
             "purpose": filing.purpose, "legal_basis": filing.legal_basis, "case_ref": filing.case_ref},
        )
        _check_binding(filing, records, str(evidence.entry.get("outcome", "")))
        with escrow.engine.connect() as conn:
            if _row(conn, filing.request_id) is not None:
                raise RequestExists(f"申請 {filing.request_id} は既に受け付けています。")
    except EscrowError as exc:
        raise escrow.refuse(user.username, "caseworker", "reidentify.request", exc, **where) from None
    # Accepted: every field is the gateway's logged one, so it is logged as filed.
    where = {"target": filing.request_id, "purpose": filing.purpose, "legal_basis": filing.legal_basis, "case_ref": filing.case_ref}
    now = db.utcnow()
    digest = binding.records_digest((h.batch_id, t, h.to_json(), c) for h, t, c in records)
    try:
        with escrow.engine.begin() as conn:
            conn.execute(insert(db.requests).values(
                id=filing.request_id, requester=filing.requester, purpose=filing.purpose, legal_basis=filing.legal_basis,
                case_ref=filing.case_ref, justification=filing.justification, max_records=filing.max_records,
                approvals_required=filing.approvals_required, status="pending", created_at=now,
                gateway_entry=json.dumps(evidence.entry, ensure_ascii=False), gateway_leaf_index=evidence.leaf_index,
                gateway_checkpoint=evidence.checkpoint))
            conn.execute(insert(db.request_records), [
                {"request_id": filing.request_id, "position": i, "batch_header": json.dumps(header.to_json()),
                 "token": token, "ciphertext": ciphertext} for i, (header, token, ciphertext) in enumerate(records)])
            crash_point("file.after_insert")
            escrow.record(user.username, "caseworker", "reidentify.request",
                          f"filed: {len(records)} records, {filing.approvals_required} approvals required, gateway log size"
                          f" {checkpoint.size}, records_sha256={digest},"
                          f" justification_sha256={binding.justification_digest(filing.justification)}",
                          connection=conn, **where)
            crash_point("file.after_log")
    except IntegrityError:
        error = RequestExists(f"申請 {filing.request_id} は既に受け付けています。")
        raise escrow.refuse(user.username, "caseworker", "reidentify.request", error, **where) from None
    return describe(escrow, filing.request_id)


def decide(escrow: Escrow, user: User, request_id: str, approve: bool, reason: str) -> dict[str, Any]:
    """Record an approver's approval or rejection with its audit entry; the requester can never decide their own request."""
    action = "reidentify.approve" if approve else "reidentify.reject"
    row, where = _row_and_where(escrow, request_id)
    try:
        if row is None:
            raise _not_found(request_id)
        if row.requester == user.username:
            raise OwnRequest("申請者本人は自分の申請を承認・却下できません。別の承認者が判断してください。")
        _check_open(escrow, row)
        with escrow.engine.connect() as conn:
            if conn.execute(select(db.decisions.c.decision).where(
                    db.decisions.c.request_id == request_id, db.decisions.c.approver == user.username)).first():
                raise AlreadyDecided(f"申請 {request_id} は既に判断済みです（承認者 {user.username}）。")
    except EscrowError as exc:
        raise escrow.refuse(user.username, "approver", action, exc, **where) from None
    now = db.utcnow()
    try:
        with escrow.engine.begin() as conn:
            conn.execute(insert(db.decisions).values(request_id=request_id, approver=user.username,
                                                     decision="approve" if approve else "reject", reason=reason, at=now))
            if not approve:
                conn.execute(update(db.requests).where(db.requests.c.id == request_id, db.requests.c.status == "pending")
                             .values(status="rejected", closed_at=now))
            elif _approvals(conn, request_id) >= row.approvals_required:
                conn.execute(update(db.requests).where(db.requests.c.id == request_id, db.requests.c.status == "pending")
                             .values(status="approved", approved_at=now))
            crash_point("decide.after_insert")
            escrow.record(user.username, "approver", action, "approved" if approve else "rejected", connection=conn, **where)
            crash_point("decide.after_log")
    except IntegrityError:  # the same approver, twice at once
        error = AlreadyDecided(f"申請 {request_id} は既に判断済みです（承認者 {user.username}）。")
        raise escrow.refuse(user.username, "approver", action, error, **where) from None
    return describe(escrow, request_id)


def release(escrow: Escrow, user: User, request_id: str) -> dict[str, Any]:
    """Open the request's records once for its requester.

    The state change to ``released`` and the ``reidentify.release`` entry commit
    together; the records are opened in memory inside that transaction and
    handed out only after it committed. A record that does not open rolls
    everything back: nothing was released, and the refusal is logged.
    """
    row, where = _row_and_where(escrow, request_id)
    try:
        if row is None:
            raise _not_found(request_id)
        if row.requester != user.username:
            raise NotRequester("開示を受けられるのは、この申請をしたケースワーカー本人だけです。")
        if row.status == "released":
            raise AlreadyReleased(f"既に開示済みです（申請 {request_id}、{db.iso(row.released_at)}）。")
        if row.status == "pending":
            with escrow.engine.connect() as conn:
                count = _approvals(conn, request_id)
            raise NotApproved(f"承認が足りません（{count}/{row.approvals_required}）。")
        _check_open(escrow, row)
        key = escrow.vault.key()
        crash_point("release.before_claim")
        released_at = db.utcnow()
        with escrow.engine.begin() as conn:
            claimed = conn.execute(update(db.requests).where(db.requests.c.id == request_id, db.requests.c.status == "approved")
                                   .values(status="released", released_at=released_at)).rowcount
            if not claimed:
                raise AlreadyReleased(f"既に開示済みです（申請 {request_id}）。")
            crash_point("release.after_claim")
            records = conn.execute(select(db.request_records).where(db.request_records.c.request_id == request_id)
                                   .order_by(db.request_records.c.position)).all()
            headers = [seal.BatchHeader.from_json(json.loads(r.batch_header)) for r in records]
            digest = binding.records_digest((h.batch_id, r.token, h.to_json(), r.ciphertext) for h, r in zip(headers, records))
            escrow.record(user.username, "caseworker", "reidentify.release",
                          f"released: {len(records)} records, records_sha256={digest}", connection=conn, **where)
            crash_point("release.after_log")
            opened = []
            try:
                for header, record in zip(headers, records):
                    record_key = seal.derive_record_key(key, header, record.token)
                    opened.append({"source": header.source, "batch_id": header.batch_id, "token": record.token,
                                   "identity": seal.open_record(record_key, header, record.ciphertext)})
            except KeysError as exc:
                raise OpenFailed(f"記録を開封できませんでした（開示はしていません。申請内容を確認してください）: {exc}") from None
            crash_point("release.after_open")
        crash_point("release.after_commit")
    except EscrowError as exc:
        raise escrow.refuse(user.username, "caseworker", "reidentify.release", exc, **where) from None
    return {"request_id": request_id, "released_at": db.iso(released_at), "records": opened}


def list_requests(escrow: Escrow, requester: str | None = None) -> list[dict[str, Any]]:
    """Every request, newest first (or only ``requester``'s): who, when, why, decisions and outcome."""
    query = select(db.requests.c.id).order_by(db.requests.c.created_at.desc(), db.requests.c.id)
    if requester is not None:
        query = query.where(db.requests.c.requester == requester)
    with escrow.engine.connect() as conn:
        ids = conn.execute(query).scalars().all()
    return [describe(escrow, request_id) for request_id in ids]


def describe(escrow: Escrow, request_id: str) -> dict[str, Any]:
    """One request as shown to approvers and auditors (pseudonymous tokens only, never an identity)."""
    with escrow.engine.connect() as conn:
        row = _row(conn, request_id)
        if row is None:
            raise _not_found(request_id)
        records = conn.execute(select(db.request_records.c.batch_header, db.request_records.c.token)
                               .where(db.request_records.c.request_id == request_id)
                               .order_by(db.request_records.c.position)).all()
        decisions = conn.execute(select(db.decisions).where(db.decisions.c.request_id == request_id)
                                 .order_by(db.decisions.c.at)).all()
    expires = _release_deadline(escrow, row)
    status = "expired" if row.status == "approved" and expires is not None and expires <= db.utcnow() else row.status
    return {
        "request_id": row.id, "requester": row.requester, "purpose": row.purpose, "legal_basis": row.legal_basis,
        "case_ref": row.case_ref, "justification": row.justification, "max_records": row.max_records,
        "approvals_required": row.approvals_required, "approvals": sum(d.decision == "approve" for d in decisions),
        "status": status, "created_at": db.iso(row.created_at), "approved_at": db.iso(row.approved_at),
        "release_expires_at": db.iso(expires) if row.status == "approved" else None,
        "closed_at": db.iso(row.closed_at), "released_at": db.iso(row.released_at),
        "records": [_pseudonyms(r.batch_header, r.token) for r in records],
        "decisions": [{"approver": d.approver, "decision": d.decision, "reason": d.reason, "at": db.iso(d.at)} for d in decisions],
    }


def _pseudonyms(batch_header: str, token: str) -> dict[str, str]:
    header = json.loads(batch_header)
    return {"source": header["source"], "batch_id": header["batch_id"], "token": token}


_JST = timezone(timedelta(hours=9))


def _check_against_policy(policy: Policy, filing: RequestFiling) -> None:
    """Refuse a filing whose purpose, approvals or record limit the installed policy does not back."""
    try:
        purpose = policy.purpose(filing.purpose)
    except PolicyError:
        raise UnknownPurpose("申請の利用目的はポリシーにありません。") from None
    usable = policy.may_use_purpose(filing.purpose, datetime.now(_JST).date())
    if not usable.allowed:
        raise PurposeNotUsable(usable.reason)
    if filing.legal_basis != purpose.legal_basis:
        raise PolicyMismatch(f"利用目的「{purpose.label}」の法的根拠は {purpose.legal_basis_label} ですが、"
                                                  "申請の法的根拠はこれと違います。")
    if not (fits := policy.check_case_ref(filing.case_ref)):
        raise CaseRefInvalid(fits.reason)
    if filing.approvals_required < purpose.approvals_required:
        raise PolicyMismatch(f"利用目的「{purpose.label}」には承認が {purpose.approvals_required} 件必要ですが、"
                                                  f"申請は {filing.approvals_required} 件としています。")
    if filing.max_records > purpose.max_records_per_request:
        raise PolicyMismatch(f"利用目的「{purpose.label}」で開示できる記録は {purpose.max_records_per_request} 件までですが、"
                                                  f"申請は {filing.max_records} 件としています。")


def _check_filing(escrow: Escrow, user: User, filing: RequestFiling) -> list[tuple[seal.BatchHeader, str, bytes]]:
    if filing.requester != user.username:
        raise RequesterMismatch(f"申請者（{filing.requester}）がログインしている利用者（{user.username}）と違います。申請は本人だけができます。")
    if escrow.policy is not None:
        _check_against_policy(escrow.policy, filing)
    if filing.approvals_required < 1:
        raise ApprovalsRequired("必要な承認数は 1 以上でなければなりません。")
    if filing.max_records < 1:
        raise MaxRecords("開示できる記録数の上限は 1 以上でなければなりません。")
    if not filing.records:
        raise NoRecords("開示を求める記録がありません。")
    if len(filing.records) > filing.max_records:
        raise TooManyRecords(f"開示を求める記録が {len(filing.records)} 件あり、この目的の上限 {filing.max_records} 件を超えています。")
    records, seen = [], set()
    for number, record in enumerate(filing.records, start=1):
        try:
            header = seal.BatchHeader.from_json(record.batch_header)
            ciphertext = base64.b64decode(record.ciphertext, validate=True)
        except KeysError as exc:
            raise InvalidRecord(f"{number} 件目の記録: {exc}") from None
        except (binascii.Error, ValueError):
            raise InvalidRecord(f"{number} 件目の記録の暗号文が base64 として読めません。") from None
        if header.escrow_key_id != escrow.vault.escrow_key_id:
            raise WrongEscrowKey(f"{number} 件目の記録はエスクロー鍵 {header.escrow_key_id} 宛てで、このエスクローの鍵は {escrow.vault.escrow_key_id} です。")
        if (header.batch_id, record.token) in seen:
            raise DuplicateRecord(f"{number} 件目の記録（{record.token}）が重複しています。")
        seen.add((header.batch_id, record.token))
        records.append((header, record.token, ciphertext))
    return records


def _check_binding(filing: RequestFiling, records: list[tuple[seal.BatchHeader, str, bytes]], outcome: str) -> None:
    """Refuse a filing the gateway's entry does not cover exactly: a refused entry, or any field that differs."""
    if outcome.startswith("refused"):
        raise GatewayRefused(f"ゲートウェイはこの申請を拒否しています（{outcome[:100]}）。拒否された申請は開示できません。")
    bound = binding.parse_outcome(outcome)
    if bound is None:
        raise GatewayEntryUnbound("ゲートウェイの監査記録が、開示してよい記録を特定する形式（accepted: …）ではありません。ゲートウェイで申請し直してください。")
    digest = binding.records_digest((h.batch_id, t, h.to_json(), c) for h, t, c in records)
    checks = [
        ("記録の件数", bound.records, len(records)),
        ("記録の一覧（ハッシュ）", bound.records_sha256, digest),
        ("理由（ハッシュ）", bound.justification_sha256, binding.justification_digest(filing.justification)),
        ("必要な承認数", bound.approvals, filing.approvals_required),
        ("開示できる記録数の上限", bound.max_records, filing.max_records),
    ]
    for what, logged, filed in checks:
        if logged != filed:
            raise BindingMismatch(f"申請の{what}（{filed}）が、ゲートウェイの監査ログに記録された内容（{logged}）と一致しません。"
                              "ゲートウェイが記録した申請のとおりにしか開示できません。")


def _refusal_where(escrow: Escrow, filing: RequestFiling) -> dict[str, str]:
    """A refused filing's fields for its audit entry: a value outside the policy (its format, its purposes, the legal
    bases) is logged as a placeholder, not as sent, so that a name typed as a case number never enters the log.

    Without an installed policy the shipped default's case-reference format is used (for this entry only).
    """
    policy = escrow.policy or default_policy()
    where = {"target": filing.request_id, "purpose": filing.purpose, "legal_basis": filing.legal_basis, "case_ref": filing.case_ref}
    if escrow.policy is not None and filing.purpose not in {p.name for p in escrow.policy.purposes()}:
        where["purpose"] = _PLACEHOLDER["purpose"]
    if filing.legal_basis not in LEGAL_BASES:
        where["legal_basis"] = _PLACEHOLDER["legal_basis"]
    if not policy.check_case_ref(filing.case_ref):
        where["case_ref"] = _PLACEHOLDER["case_ref"]
    return where


def _check_open(escrow: Escrow, row: Any) -> None:
    """Refuse a decision or a release on a request that is closed (rejected, released) or whose release expired."""
    if row.status == "rejected":
        raise Rejected(f"申請 {row.id} は却下されています。")
    if row.status == "released":
        raise AlreadyReleased(f"既に開示済みです（申請 {row.id}）。")
    deadline = _release_deadline(escrow, row)
    if row.status == "expired" or (deadline is not None and deadline <= db.utcnow()):
        if row.status != "expired":
            with escrow.engine.begin() as conn:
                conn.execute(update(db.requests).where(db.requests.c.id == row.id, db.requests.c.status == "approved")
                             .values(status="expired", closed_at=db.utcnow()))
        raise ReleaseExpired(f"開示の期限が切れています（承認から {escrow.settings.release_window_minutes:g} 分以内に受け取る必要があります）。"
                          "必要なら新しく申請してください。")


def _release_deadline(escrow: Escrow, row: Any) -> datetime | None:
    if row.approved_at is None:
        return None
    return row.approved_at + timedelta(minutes=escrow.settings.release_window_minutes)


def _approvals(conn: Connection, request_id: str) -> int:
    return len(conn.execute(select(db.decisions.c.approver).where(
        db.decisions.c.request_id == request_id, db.decisions.c.decision == "approve")).all())


def _row(conn: Connection, request_id: str) -> Any:
    return conn.execute(select(db.requests).where(db.requests.c.id == request_id)).first()


def _row_and_where(escrow: Escrow, request_id: str) -> tuple[Any, dict[str, str]]:
    """The request's row (None if there is none) and the audit fields of an entry about it."""
    with escrow.engine.connect() as conn:
        row = _row(conn, request_id)
    return row, _where(row, request_id)


def _where(row: Any, request_id: str) -> dict[str, str]:
    if row is None:
        return {"target": request_id if re.match(_ID_PATTERN, request_id) else "（不正な申請 ID）"}
    return {"target": row.id, "purpose": row.purpose, "legal_basis": row.legal_basis, "case_ref": row.case_ref}


def _not_found(request_id: str) -> EscrowError:
    return RequestNotFound(f"申請 {request_id} はありません。")
