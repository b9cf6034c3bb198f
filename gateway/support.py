"""Support records: what staff judged and did about a flagged (or otherwise found) child, pseudonymous and coded.

A case belongs to a person id and names the frozen screening list and rules
that led there (or none: found by another route). Its fields are codes from
the policy's ``[support]`` vocabularies (``policy.support``) and a short note
that is refused when it looks like a name, an address or a phone number.
Every change is stored with its full state in ``support_events`` and logged
in the audit log in the same transaction.

Screening lists are frozen per linkage run (``screening_snapshots``): every
flagged person with rank, score, fired rules and the pseudonymous attribute
values the rules saw. The evaluation (``gateway.evaluation``) compares those
lists with staff judgements.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway import models
from gateway.core import Gateway
from gateway.db import utcnow
from gateway.errors import (
    CaseChanged,
    CaseNotFound,
    GatewayError,
    InvalidAssignee,
    InvalidDate,
    NoRun,
    NoteRefused,
    PersonNotFound,
    ReasonRequired,
    ReasonWithoutNotNeeded,
    UnknownAssessment,
    UnknownDepartment,
    UnknownDifficulties,
    UnknownNotNeededReason,
    UnknownStatus,
    UnknownSupports,
)
from gateway.identity import User
from gateway.link import current_run_id
from policy.support import ASSESSMENTS, CASE_STATUSES, DECIDED, SupportVocabulary, note_problem

JST = dt.timezone(dt.timedelta(hours=9))
_FIELDS = ("status", "assignee", "department", "assessment", "difficulties", "supports", "not_needed_reason", "note",
           "checked_on", "supported_on")
sc, ev, snaps, sf = models.support_cases, models.support_events, models.screening_snapshots, models.screening_flags


def today() -> str:
    """Today in Japan (cases are dated as staff see the calendar)."""
    return dt.datetime.now(JST).date().isoformat()


def vocabulary(gw: Gateway) -> SupportVocabulary:
    """The policy's support vocabularies."""
    return gw.policy.document.support


def vocabulary_json(gw: Gateway) -> dict[str, Any]:
    """Every code with its label (for forms and API clients)."""
    v = vocabulary(gw)
    return {"assessments": ASSESSMENTS, "statuses": CASE_STATUSES, "difficulties": v.difficulties, "supports": v.supports,
            "departments": v.departments, "not_needed_reasons": v.not_needed_reasons, "actions": v.actions, "note_max": v.note_max}


# ---- frozen screening lists ---------------------------------------------------------------------------------


def all_attributes(conn: Connection, run_id: int, persons: Iterable[str] | None = None) -> dict[str, dict[str, dict[str, str]]]:
    """``{person_id: {source: {attribute: value}}}`` of the run's current records (every attribute; pseudonymous)."""
    a, r = models.assignments, models.records
    q = (select(a.c.person_id, a.c.source, r.c.attributes).join(r, and_(r.c.source == a.c.source, r.c.token == a.c.token))
         .where(a.c.run_id == run_id))
    if persons is not None:
        q = q.where(a.c.person_id.in_(list(persons)))
    out: dict[str, dict[str, dict[str, str]]] = {}
    for row in conn.execute(q):
        out.setdefault(row.person_id, {}).setdefault(row.source, {}).update(json.loads(row.attributes))
    return out


def flatten(attributes: dict[str, dict[str, str]]) -> dict[str, str]:
    """``{"source.attribute": value}``: the features stored with a flag or a case."""
    return {f"{s}.{k}": v for s, attrs in sorted(attributes.items()) for k, v in sorted(attrs.items())}


def ensure_snapshot(gw: Gateway, actor: str) -> int | None:
    """The frozen list of the current run, taken now if it was not yet (None when there is no run)."""
    from gateway.screening import screening_rules

    with gw.engine.connect() as conn:
        run_id = current_run_id(conn)
        if run_id is None:
            return None
        found = conn.execute(select(snaps.c.id).where(snaps.c.run_id == run_id)).scalar()
        if found is not None:
            return found
        persons = all_attributes(conn, run_id)
    rules = screening_rules(gw)
    entries = []
    for person_id, attributes in persons.items():
        flags = rules.evaluate(attributes)
        if flags:
            entries.append((-sum(f.weight for f in flags), person_id, flags, attributes))
    entries.sort(key=lambda e: (e[0], e[1]))
    try:
        with gw.engine.begin() as conn:
            snapshot_id = conn.execute(insert(snaps).values(
                run_id=run_id, taken_at=utcnow(), taken_by=actor, capacity=rules.capacity, flagged=len(entries),
                rules=json.dumps({r.id: r.label for r in rules.rules}, ensure_ascii=False))).inserted_primary_key[0]
            if entries:
                conn.execute(insert(sf), [
                    {"snapshot_id": snapshot_id, "person_id": pid, "rank": rank, "score": -neg, "rules": json.dumps([f.rule_id for f in flags]),
                     "features": json.dumps(flatten(attributes), ensure_ascii=False)}
                    for rank, (neg, pid, flags, attributes) in enumerate(entries, start=1)])
            gw.record(actor, "system", "screening.snapshot", f"flagged={len(entries)} capacity={rules.capacity}",
                      target=f"run#{run_id}", connection=conn)
    except IntegrityError:  # another request froze the same run first
        with gw.engine.connect() as conn:
            return conn.execute(select(snaps.c.id).where(snaps.c.run_id == run_id)).scalar_one()
    return snapshot_id


# ---- cases --------------------------------------------------------------------------------------------------


def _date(value: str | None, field: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise InvalidDate(f"「{field}」の日付 {value!r} が読めません。YYYY-MM-DD で書いてください。") from None


def _codes(values: Iterable[str], vocab: dict[str, str], field: str, refusal: type[GatewayError]) -> list[str]:
    values = list(dict.fromkeys(values))
    unknown = [v for v in values if v not in vocab]
    if unknown:
        raise refusal(f"「{field}」に未知のコード {', '.join(unknown)} があります（使えるもの: {', '.join(vocab)}）。")
    return values


def _validated(gw: Gateway, state: dict[str, Any]) -> dict[str, Any]:
    """Check every coded field against the vocabularies and the note against the identity check."""
    v = vocabulary(gw)
    if state["assessment"] not in ASSESSMENTS:
        raise UnknownAssessment(f"判断は {', '.join(f'{k}（{x}）' for k, x in ASSESSMENTS.items())} のいずれかです。")
    if state["status"] not in CASE_STATUSES:
        raise UnknownStatus(f"対応状況は {', '.join(f'{k}（{x}）' for k, x in CASE_STATUSES.items())} のいずれかです。")
    state["difficulties"] = _codes(state["difficulties"], v.difficulties, "difficulties", UnknownDifficulties)
    state["supports"] = _codes(state["supports"], v.supports, "supports", UnknownSupports)
    if state["department"]:
        _codes([state["department"]], v.departments, "department", UnknownDepartment)
    else:
        state["department"] = None
    if state["not_needed_reason"]:
        _codes([state["not_needed_reason"]], v.not_needed_reasons, "not_needed_reason", UnknownNotNeededReason)
        if state["assessment"] != "not_needed":
            raise ReasonWithoutNotNeeded("「対応不要の理由」は、判断が「対応不要」のときだけ記録できます。")
    else:
        state["not_needed_reason"] = None
    if state["assessment"] == "not_needed" and not state["not_needed_reason"]:
        raise ReasonRequired("判断が「対応不要」のときは、その理由（コード）を選んでください。")
    assignee = (state["assignee"] or "").strip()
    if assignee and not all(c.isascii() and (c.isalnum() or c in "._@-") for c in assignee):
        raise InvalidAssignee("担当者は利用者名（英数字と . _ @ -）で指定してください。氏名は記録できません。")
    state["assignee"] = assignee or None
    note = (state["note"] or "").strip()
    problem = note_problem(note, v.note_max) if note else None
    if problem:
        raise NoteRefused(problem)
    state["note"] = note
    state["checked_on"] = _date(state["checked_on"], "checked_on")
    state["supported_on"] = _date(state["supported_on"], "supported_on")
    if state["assessment"] in DECIDED and not state["checked_on"]:
        state["checked_on"] = today()
    if state["supports"] and not state["supported_on"]:
        state["supported_on"] = today()
    return state


def _latest_flag(conn: Connection, person_id: str) -> Any:
    """The newest frozen list on which ``person_id`` was within the capacity, with rank and rules."""
    return conn.execute(select(sf.c.snapshot_id, sf.c.rank, sf.c.rules).join(snaps, snaps.c.id == sf.c.snapshot_id)
                        .where(sf.c.person_id == person_id, sf.c.rank <= snaps.c.capacity)
                        .order_by(sf.c.snapshot_id.desc()).limit(1)).first()


def open_case(gw: Gateway, user: User, person_id: str, **fields: Any) -> dict[str, Any]:
    """Open a case for ``person_id`` (linked to the newest list that showed the person, if any); logged with the change."""
    ensure_snapshot(gw, user.username)
    state = {"status": "open", "assignee": user.username, "department": None, "assessment": "pending", "difficulties": [],
             "supports": [], "not_needed_reason": None, "note": "", "checked_on": None, "supported_on": None}
    state.update({k: v for k, v in fields.items() if k in _FIELDS and v is not None})
    state = _validated(gw, state)
    opened_on = _date(fields.get("opened_on"), "opened_on") or today()
    now = utcnow()
    with gw.engine.begin() as conn:
        run_id = current_run_id(conn)
        if run_id is None:
            raise NoRun("まだ名寄せが実行されていません。")
        persons = all_attributes(conn, run_id, [person_id])
        if person_id not in persons:
            raise PersonNotFound(f"人物 {person_id} は現在の名寄せ結果にありません。")
        flag = _latest_flag(conn, person_id)
        case_id = conn.execute(insert(sc).values(
            person_id=person_id, snapshot_id=flag.snapshot_id if flag else None, rules=flag.rules if flag else "[]",
            rank=flag.rank if flag else None, features=json.dumps(flatten(persons[person_id]), ensure_ascii=False),
            opened_on=opened_on, opened_by=user.username, opened_at=now, updated_at=now, version=1,
            **_stored(state))).inserted_primary_key[0]
        conn.execute(insert(ev).values(case_id=case_id, version=1, at=now, by=user.username, state=json.dumps(state, ensure_ascii=False)))
        gw.record(user.username, user.role, "support.open", _outcome(state), target=f"case#{case_id}:{person_id}", connection=conn)
    return get_case(gw, case_id)


def update_case(gw: Gateway, user: User, case_id: int, expected_version: int | None = None, **fields: Any) -> dict[str, Any]:
    """Change a case's coded fields (a field left None keeps its value); refused if someone else changed it first."""
    now = utcnow()
    with gw.engine.begin() as conn:
        row = conn.execute(select(sc).where(sc.c.id == case_id)).first()
        if row is None:
            raise CaseNotFound(f"支援記録 {case_id} はありません。")
        if expected_version is not None and expected_version != row.version:
            raise CaseChanged(f"支援記録 {case_id} は他の人が先に更新しました（版 {row.version}）。開き直してから記録してください。")
        state = _state(row)
        state.update({k: v for k, v in fields.items() if k in _FIELDS and v is not None})
        state = _validated(gw, state)
        version = row.version + 1
        conn.execute(update(sc).where(sc.c.id == case_id).values(updated_at=now, version=version, **_stored(state)))
        conn.execute(insert(ev).values(case_id=case_id, version=version, at=now, by=user.username, state=json.dumps(state, ensure_ascii=False)))
        gw.record(user.username, user.role, "support.update", _outcome(state), target=f"case#{case_id}:{row.person_id}", connection=conn)
    return get_case(gw, case_id)


def _outcome(state: dict[str, Any]) -> str:
    # Codes only: the audit log holds no note.
    return (f"status={state['status']} assessment={state['assessment']} difficulties={','.join(state['difficulties'])} "
            f"supports={','.join(state['supports'])} reason={state['not_needed_reason'] or ''}")


def _stored(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "difficulties": json.dumps(state["difficulties"]), "supports": json.dumps(state["supports"])}


def _state(row: Any) -> dict[str, Any]:
    return {"status": row.status, "assignee": row.assignee, "department": row.department, "assessment": row.assessment,
            "difficulties": json.loads(row.difficulties), "supports": json.loads(row.supports),
            "not_needed_reason": row.not_needed_reason, "note": row.note, "checked_on": row.checked_on, "supported_on": row.supported_on}


def _case_json(row: Any, snapshot_run: int | None = None) -> dict[str, Any]:
    return {"id": row.id, "person_id": row.person_id, "snapshot_id": row.snapshot_id, "run_id": snapshot_run,
            "origin": "screening" if row.snapshot_id else "other", "rules": json.loads(row.rules), "rank": row.rank,
            **_state(row), "opened_on": row.opened_on, "opened_by": row.opened_by, "opened_at": row.opened_at,
            "updated_at": row.updated_at, "version": row.version}


def get_case(gw: Gateway, case_id: int) -> dict[str, Any]:
    """One case with its history (each version's coded state)."""
    with gw.engine.connect() as conn:
        row = conn.execute(select(sc, snaps.c.run_id).outerjoin(snaps, snaps.c.id == sc.c.snapshot_id).where(sc.c.id == case_id)).first()
        if row is None:
            raise CaseNotFound(f"支援記録 {case_id} はありません。")
        history = conn.execute(select(ev).where(ev.c.case_id == case_id).order_by(ev.c.version)).all()
    return {**_case_json(row, row.run_id), "history": [{"version": h.version, "at": h.at, "by": h.by, **json.loads(h.state)} for h in history]}


#: The support list's orders: (label, ORDER BY columns); ties broken by the newest case first.
CASE_SORTS = {
    "new": ("新しい順", (sc.c.id.desc(),)),
    "old": ("古い順", (sc.c.id.asc(),)),
    "updated": ("更新の新しい順", (sc.c.updated_at.desc(), sc.c.id.desc())),
    "status": ("対応状況", (sc.c.status.asc(), sc.c.id.desc())),
    "assignee": ("担当", (sc.c.assignee.asc(), sc.c.id.desc())),
}


def list_cases(gw: Gateway, *, status: str | None = None, person_id: str | None = None, assignee: str | None = None,
               search: str = "", sort: str = "new", limit: int | None = 100, offset: int = 0) -> dict[str, Any]:
    """Cases filtered by status, person or assignee, searched (case number, person id prefix or assignee) and sorted
    (:data:`CASE_SORTS`; newest first by default); ``limit=None`` gives every matching case (exports)."""
    q = select(sc, snaps.c.run_id).outerjoin(snaps, snaps.c.id == sc.c.snapshot_id)
    wanted = search.strip()
    if wanted:
        like = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        terms = [sc.c.person_id.like(like + "%", escape="\\"), sc.c.assignee.like("%" + like + "%", escape="\\")]
        if wanted.isdigit():
            terms.append(sc.c.id == int(wanted))
        q = q.where(or_(*terms))
    if status:
        if status not in CASE_STATUSES:
            raise UnknownStatus(f"対応状況は {', '.join(CASE_STATUSES)} のいずれかです。")
        q = q.where(sc.c.status == status)
    if person_id:
        q = q.where(sc.c.person_id == person_id)
    if assignee:
        q = q.where(sc.c.assignee == assignee)
    with gw.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(q.subquery())).scalar_one()
        ordered = q.order_by(*CASE_SORTS.get(sort, CASE_SORTS["new"])[1]).offset(offset)
        rows = conn.execute(ordered if limit is None else ordered.limit(limit)).all()
    return {"total": total, "cases": [_case_json(r, r.run_id) for r in rows]}
