"""Casework reads: persons of the current run, their records and their history, filtered by what the role may see.

Everything here is pseudonymous: person ids, record tokens, source names and
the attributes the policy lets the reader's role see.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from gateway import models
from gateway.core import Gateway
from gateway.errors import NoRun, PersonMerged, PersonNotFound, RecordNotFound
from gateway.link import current_run_id
from gateway.screening import attribute_catalog
from service import listing

a, r, h, s = models.assignments, models.records, models.record_history, models.submissions


def _visible(gw: Gateway, role: str, attributes: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in attributes.items() if gw.policy.may_see(role, k).allowed}


def _run(conn: Connection) -> int:
    run_id = current_run_id(conn)
    if run_id is None:
        raise NoRun("まだ名寄せが実行されていません。提出を受け付けた後、名寄せの完了を待ってください。")
    return run_id


#: Orders of the persons list (server-side), person id last so that paging is stable.
PERSON_SORTS = {"person": "人物 ID 順", "records": "記録の多い順", "sources": "データ元の多い順"}


def list_persons(gw: Gateway, *, source: str | None = None, min_sources: int = 1, limit: int = 100, offset: int = 0,
                 sort: str = "person", prefix: str = "") -> dict[str, Any]:
    """Persons of the current run with how many records and which sources: filtered, searched by id prefix, sorted, paged.

    Read from ``run_persons``, the summary the run wrote when it was published: each order is an index
    (``ix_run_persons_records``, ``ix_run_persons_sources``, the primary key), so a page costs the same on the
    first request after a run as on the hundredth, with no per-process cache to build.
    """
    rp = models.run_persons
    with gw.engine.connect() as conn:
        run_id = _run(conn)
        where = [rp.c.run_id == run_id]
        if min_sources > 1:
            where.append(rp.c.sources >= min_sources)
        if source:
            where.append(rp.c.source_list.contains(f",{source},", autoescape=True))
        if prefix:
            # Ids are P + lowercase hex: "~" sorts after every id character, so this is a range of the primary key.
            where.append(and_(rp.c.person_id >= prefix, rp.c.person_id < prefix + "~"))
        total = conn.execute(select(func.count()).select_from(rp).where(*where)).scalar_one()
        order = {"records": (rp.c.records.desc(), rp.c.person_id), "sources": (rp.c.sources.desc(), rp.c.person_id)}.get(
            sort, (rp.c.person_id,))
        rows = conn.execute(select(rp.c.person_id, rp.c.records, rp.c.sources).where(*where).order_by(*order)
                            .limit(limit).offset(offset)).all()
    return {"run_id": run_id, "total": total,
            "persons": [{"person_id": x.person_id, "records": x.records, "sources": x.sources} for x in rows]}


def person(gw: Gateway, person_id: str, role: str) -> dict[str, Any]:
    """A person's linked records (token, source, attributes, since/last submission)."""
    with gw.engine.connect() as conn:
        run_id = _run(conn)
        rows = conn.execute(
            select(a.c.source, a.c.token, r.c.attributes, r.c.submission_id, r.c.first_submission_id, s.c.received_at)
            .select_from(a.outerjoin(r, and_(r.c.source == a.c.source, r.c.token == a.c.token))
                         .outerjoin(s, s.c.id == r.c.submission_id))
            .where(a.c.run_id == run_id, a.c.person_id == person_id)
        ).all()
        if not rows:
            _not_found(conn, person_id)
    # Sorted here: an ORDER BY on (source, token) lures SQLite onto the primary key and a scan of the whole run.
    rows.sort(key=lambda x: (x.source, x.token))
    records = [{"source": x.source, "token": x.token, "status": "present" if x.attributes is not None else "deleted",
                "attributes": _visible(gw, role, json.loads(x.attributes)) if x.attributes is not None else {},
                "submission_id": x.submission_id, "first_submission_id": x.first_submission_id, "received_at": x.received_at}
               for x in rows]
    return {"person_id": person_id, "run_id": run_id, "sources": sorted({x.source for x in rows}), "records": records}


def timeline(gw: Gateway, person_id: str, role: str) -> dict[str, Any]:
    """Every submitted version of the person's records, oldest first (経年変化)."""
    with gw.engine.connect() as conn:
        run_id = _run(conn)
        members = select(a.c.source, a.c.token).where(a.c.run_id == run_id, a.c.person_id == person_id).subquery()
        rows = conn.execute(
            select(h.c.source, h.c.token, h.c.submission_id, h.c.status, h.c.attributes, s.c.received_at, s.c.created_at)
            .join(members, and_(members.c.source == h.c.source, members.c.token == h.c.token))
            .join(s, s.c.id == h.c.submission_id)
            .order_by(s.c.received_at, h.c.submission_id, h.c.source, h.c.token)
        ).all()
        if not rows:
            _not_found(conn, person_id)
    return {"person_id": person_id, "run_id": run_id, "events": [
        {"submission_id": x.submission_id, "received_at": x.received_at, "created_at": x.created_at, "source": x.source,
         "token": x.token, "status": x.status, "attributes": _visible(gw, role, json.loads(x.attributes))} for x in rows]}


def record_person(gw: Gateway, source: str, token: str) -> dict[str, Any]:
    """Which person a record token belongs to in the current run."""
    with gw.engine.connect() as conn:
        run_id = _run(conn)
        pid = conn.execute(select(a.c.person_id).where(a.c.run_id == run_id, a.c.source == source, a.c.token == token)).scalar()
    if pid is None:
        raise RecordNotFound(f"データ元「{source}」の記録 {token} は現在の名寄せ結果にありません。")
    return {"source": source, "token": token, "person_id": pid, "run_id": run_id}


#: The fixed columns of the analysts' export, in Japanese (attribute columns follow, by their catalog labels).
EXPORT_COLUMNS = ("人物ID", "データ元", "記録トークン")


def export_frame(gw: Gateway, role: str) -> pd.DataFrame:
    """One row per current record: person id, source (its label), record token and the attributes ``role`` may see.

    Columns are named in Japanese: the attribute's label from the catalog (``policy/attributes.toml``, or the
    gateway's own), in the catalog's order; an undeclared attribute keeps its key, and a label two attributes share
    is followed by the key so that no column hides another.
    """
    catalog = attribute_catalog(gw)
    sources = {name: spec.label for n in gw.policy.document.networks.values() for name, spec in n.sources.items()}
    with gw.engine.connect() as conn:
        run_id = _run(conn)
        rows = conn.execute(
            select(a.c.person_id, a.c.source, a.c.token, r.c.attributes)
            .join(r, and_(r.c.source == a.c.source, r.c.token == a.c.token))
            .where(a.c.run_id == run_id).order_by(a.c.person_id, a.c.source, a.c.token)
        ).all()
    allowed: dict[str, bool] = {}
    data: list[dict[str, str]] = []
    for x in rows:
        attrs = json.loads(x.attributes)
        row = {"person_id": x.person_id, "source": sources.get(x.source, x.source), "record_token": x.token}
        for k, v in attrs.items():
            if k not in allowed:
                allowed[k] = gw.policy.may_see(role, k).allowed
            if allowed[k]:
                row[k] = v
        data.append(row)
    declared = list(catalog.attributes)
    keys = sorted((k for k, ok in allowed.items() if ok), key=lambda k: (declared.index(k) if k in declared else len(declared), k))
    labels = [catalog.label(k) for k in keys]
    names = dict(zip(("person_id", "source", "record_token"), EXPORT_COLUMNS))
    names.update({k: f"{label}（{k}）" if labels.count(label) > 1 or label in EXPORT_COLUMNS else label for k, label in zip(keys, labels)})
    frame = pd.DataFrame(data, columns=["person_id", "source", "record_token", *keys], dtype="string")
    return frame.rename(columns=names)


def export_csv(gw: Gateway, role: str) -> bytes:
    """The export as UTF-8 CSV with a BOM (so that Excel opens it correctly); a cell a spreadsheet would run as a
    formula is written as text (``service.listing``)."""
    frame = export_frame(gw, role).fillna("")
    return listing.to_csv(list(frame.columns), frame.itertuples(index=False, name=None))


def export_xlsx(gw: Gateway, role: str) -> bytes:
    """The export as one Excel sheet, Japanese headers."""
    frame = export_frame(gw, role).fillna("")
    return listing.to_xlsx(list(frame.columns), frame.itertuples(index=False, name=None), "仮名化データ")


def export_parquet(gw: Gateway, role: str) -> bytes:
    """The export as Parquet (the same Japanese column names)."""
    buffer = io.BytesIO()
    export_frame(gw, role).to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def _not_found(conn: Connection, person_id: str) -> None:
    pe = models.person_events
    merged = conn.execute(select(pe.c.person_id).where(pe.c.kind == "merge", pe.c.related.contains(f'"{person_id}"'))
                          .order_by(pe.c.id.desc())).scalar()
    if merged:
        raise PersonMerged(f"人物 {person_id} は名寄せにより人物 {merged} に統合されました。")
    raise PersonNotFound(f"人物 {person_id} は現在の名寄せ結果にありません。")


def history(gw: Gateway, person_id: str, role: str) -> dict[str, Any]:
    """The child's history across departments, in date order: a record appeared, attributes changed, a record left.

    Built from :func:`timeline`; a resubmission that changed nothing is folded into the event before it
    (``unchanged`` counts them, ``last_seen`` is the latest), so a monthly snapshot does not repeat a line.
    """
    raw = timeline(gw, person_id, role)
    last: dict[tuple[str, str], dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    for e in raw["events"]:
        key = (e["source"], e["token"])
        before = last.get(key)
        if e["status"] != "present":
            if before is not None and before["status"] != "present":
                before["event"]["unchanged"] += 1
                before["event"]["last_seen"] = e["received_at"]
                continue
            kind, changes = "left", []
        elif before is None or before["status"] != "present":
            kind, changes = ("appeared" if before is None else "returned"), [
                {"attribute": k, "before": None, "after": v} for k, v in sorted(e["attributes"].items())]
        else:
            old, new = before["attributes"], e["attributes"]
            changes = [{"attribute": k, "before": old.get(k), "after": new.get(k)}
                       for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
            if not changes:
                before["event"]["unchanged"] += 1
                before["event"]["last_seen"] = e["received_at"]
                continue
            kind = "changed"
        event = {"at": e["received_at"], "source": e["source"], "token": e["token"], "kind": kind, "changes": changes,
                 "submission_id": e["submission_id"], "unchanged": 0, "last_seen": None}
        events.append(event)
        last[key] = {"status": e["status"], "attributes": e["attributes"], "event": event}
    return {"person_id": person_id, "run_id": raw["run_id"], "events": events, "submissions": len(raw["events"])}
