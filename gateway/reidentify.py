"""Re-identification, the gateway's part: check a caseworker's request against the policy, log it, hand back the filing.

The gateway never opens anything and never talks to the escrow. It checks the
request (a purpose of the policy usable today, a case reference, a
justification, at most the purpose's record limit), appends
``reidentify.request`` to its tamper-evident audit log before anything else
happens, and returns the *filing* (``keys.filing.RequestFiling``, the model the
escrow validates it with, in an envelope signed with the gateway's key): the
person's sealed records (batch header, record token, ciphertext, exactly as
the agents sealed them) and the log entry with its inclusion proof and signed
checkpoint. The caseworker's
own client sends that filing to the escrow, which verifies the signature and the evidence
against the gateway's verifier key (``escrow.evidence``) and waits for
approvers of its own. Every refusal is in the audit log too.

The entry commits to exactly what may be opened (``keys.binding``): the
requester, purpose, legal basis and case reference in its fields; the
person, the number of records, a hash over the sorted sealed records, a hash
of the justification, the approvals and the record limit in an ``accepted:``
outcome. The escrow opens nothing the entry does not cover, so records taken
from a carried bundle, a refused entry or a made-up legal basis get nothing.

Free text is checked at the door: control and invisible format characters
(U+2028, U+0085, …) are refused in every field, and the case reference must
follow the format the policy declares (``[reidentification] case_ref_pattern``),
so that no name is written into the permanent log as a case number.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, select

from gateway import models
from gateway.core import Gateway
from gateway.errors import (
    CaseRefInvalid,
    CaseRefRequired,
    Forbidden,
    GatewayError,
    JustificationInvalid,
    JustificationRequired,
    JustificationTooLong,
    NoRun,
    PersonNotFound,
    PurposeInvalid,
    PurposeNotUsable,
    TooManyRecords,
)
from gateway.identity import User
from gateway.link import current_run_id
from keys import binding
from keys.audit import AuditEntry
from keys.filing import RequestFiling
from keys.filing import seal as seal_filing
from keys.seal import BatchHeader
from policy import PolicyError

ACTION = "reidentify.request"
JST = timezone(timedelta(hours=9))
_MAX_CASE_REF = 100
_MAX_JUSTIFICATION = 4000


def new_request_id() -> str:
    """A fresh, unguessable request id (``reid-`` and 16 hex digits)."""
    return f"reid-{secrets.token_hex(8)}"


def refuse(gw: Gateway, actor: str, role: str, error: GatewayError, *, target: str = "", purpose: str = "",
           legal_basis: str = "", case_ref: str = "") -> GatewayError:
    """Log a refused request in the audit log (and the refusal log) and hand the error back to be raised.

    Only what passed the door is written: a case reference outside the policy's
    format (it may be a name) or a purpose the policy does not know is logged
    as a placeholder, never as typed.
    """
    if case_ref and not (len(case_ref) <= _MAX_CASE_REF and binding.text_problem(case_ref) is None
                         and gw.policy.check_case_ref(case_ref)):
        case_ref = "（形式外の案件番号）"
    if purpose and purpose not in {p.name for p in gw.policy.purposes()}:
        purpose = "（不正な利用目的）"
    gw.audit.append(AuditEntry.now(actor=actor[:64] or "-", role=role or "-", action=ACTION, target=target,
                                   purpose=purpose, legal_basis=legal_basis, case_ref=case_ref,
                                   outcome=f"refused: {error.code}"))
    return error


def request(gw: Gateway, user: User, person_id: str, purpose: str, case_ref: str, justification: str,
            today: datetime | None = None) -> dict[str, Any]:
    """Check, log and package a request to re-identify ``person_id``; raises a logged :class:`GatewayError` if refused."""
    request_id = new_request_id()
    case_ref, justification = case_ref.strip(), binding.normalise_newlines(justification).strip()
    where = {"target": request_id, "purpose": purpose, "case_ref": case_ref}
    try:
        spec = _check(gw, user, purpose, case_ref, justification, today)
        where["legal_basis"] = spec.legal_basis
        records = _sealed_records(gw, person_id)
        if len(records) > spec.max_records_per_request:
            raise TooManyRecords(f"人物 {person_id} の記録は {len(records)} 件あり、利用目的「{spec.label}」で一度に開示できる上限"
                               f" {spec.max_records_per_request} 件を超えています。情報政策課に相談してください。")
    except GatewayError as exc:
        raise refuse(gw, user.username, user.role, exc, **where) from None
    bound = binding.Binding(
        person=person_id, records=len(records),
        records_sha256=binding.records_digest(
            (r["batch_header"]["batch_id"], r["token"], BatchHeader.from_json(r["batch_header"]).to_json(),
             base64.b64decode(r["ciphertext"])) for r in records),
        justification_sha256=binding.justification_digest(justification),
        approvals=spec.approvals_required, max_records=spec.max_records_per_request)
    # The entry is committed, with its signed checkpoint, before the package exists.
    entry = AuditEntry.now(actor=user.username, role=user.role, action=ACTION, target=request_id, purpose=spec.name,
                           legal_basis=spec.legal_basis, case_ref=case_ref, outcome=binding.accepted_outcome(bound))
    receipt = gw.audit.append(entry)
    filing = RequestFiling(
        request_id=request_id, requester=user.username, purpose=spec.name, legal_basis=spec.legal_basis,
        case_ref=case_ref, justification=justification, max_records=spec.max_records_per_request,
        approvals_required=spec.approvals_required, records=records,
        gateway_evidence={"entry": entry.to_json(), "leaf_index": receipt.index,
                          "inclusion_proof": [base64.b64encode(p).decode() for p in receipt.proof.proof],
                          "checkpoint": receipt.checkpoint})
    # The person id is for the caseworker's screen; the escrow takes the signed filing only.
    return {"request_id": request_id, "person_id": person_id, "filing": filing_envelope(gw, filing)}


def filing_envelope(gw: Gateway, filing: RequestFiling) -> dict[str, Any]:
    """The filing signed by the gateway's key (an envelope of kind ``reidentification-filing``), as the escrow takes it."""
    return seal_filing(filing, gw.signer.private_key)


def _check(gw: Gateway, user: User, purpose: str, case_ref: str, justification: str, today: datetime | None) -> Any:
    allowed = gw.policy.may(user.role, "reidentify.request")
    if not allowed:
        raise Forbidden(allowed.reason)
    if problem := binding.text_problem(purpose):
        raise PurposeInvalid(f"利用目的: {problem}")
    if not case_ref:
        raise CaseRefRequired("案件番号（要対協の番号など）を入力してください。案件番号のない再識別はできません。")
    if problem := binding.text_problem(case_ref):
        raise CaseRefInvalid(f"案件番号: {problem}")
    if len(case_ref) > _MAX_CASE_REF:
        raise CaseRefInvalid(f"案件番号は {_MAX_CASE_REF} 文字以内にしてください。")
    if not (fits := gw.policy.check_case_ref(case_ref)):
        raise CaseRefInvalid(fits.reason)
    if not justification:
        raise JustificationRequired("再識別が必要な理由を入力してください（承認者と監査担当が確認します）。")
    if len(justification) > _MAX_JUSTIFICATION:
        raise JustificationTooLong(f"理由は {_MAX_JUSTIFICATION} 文字以内にしてください。")
    if problem := binding.text_problem(justification, multiline=True):
        raise JustificationInvalid(f"理由: {problem}")
    on = (today or datetime.now(JST)).astimezone(JST).date()
    usable = gw.policy.may_use_purpose(purpose, on)
    if not usable:
        raise PurposeNotUsable(usable.reason)
    try:
        return gw.policy.purpose(purpose)
    except PolicyError as exc:
        raise PurposeNotUsable(str(exc)) from None


def _sealed_records(gw: Gateway, person_id: str) -> list[dict[str, Any]]:
    """The person's current records as the agents sealed them: batch header, record token, ciphertext (base64)."""
    a, r, s = models.assignments, models.records, models.submissions
    with gw.engine.connect() as conn:
        run_id = current_run_id(conn)
        if run_id is None:
            raise NoRun("まだ名寄せが実行されていません。")
        rows = conn.execute(select(r.c.source, r.c.token, r.c.sealed, s.c.seal_header)
                            .select_from(a.join(r, and_(r.c.source == a.c.source, r.c.token == a.c.token))
                                         .join(s, s.c.id == r.c.submission_id))
                            .where(a.c.run_id == run_id, a.c.person_id == person_id)).all()
    if not rows:
        raise PersonNotFound(f"人物 {person_id} は現在の名寄せ結果にありません（記録が残っていません）。")
    rows.sort(key=lambda x: (x.source, x.token))
    return [{"batch_header": json.loads(x.seal_header), "token": x.token, "ciphertext": base64.b64encode(x.sealed).decode()}
            for x in rows]
