"""Reading the frozen lists and the support cases out of the gateway's database as evaluation rows, per period."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select

from gateway import models
from gateway.core import Gateway
from gateway.evaluation.figures import Case, Flag

PeriodKind = Literal["snapshot", "month", "quarter", "fiscal_year"]
PERIOD_KINDS: dict[str, str] = {"snapshot": "一覧（名寄せ）ごと", "month": "月ごと", "quarter": "四半期ごと", "fiscal_year": "年度ごと"}
_JST = dt.timezone(dt.timedelta(hours=9))


def period_of(when: dt.datetime | dt.date, kind: PeriodKind, snapshot_id: int | None = None) -> str:
    """The period label of a time (JST): ``一覧0003``, ``2026-12``, ``2026Q3`` (fiscal quarters from April), ``2026年度``."""
    if kind == "snapshot":
        return f"一覧{snapshot_id or 0:04d}"
    if isinstance(when, dt.datetime):
        day = (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).astimezone(_JST).date()
    else:
        day = when
    fiscal = day.year if day.month >= 4 else day.year - 1
    if kind == "month":
        return f"{day.year}-{day.month:02d}"
    if kind == "quarter":
        return f"{fiscal}Q{(day.month - 4) % 12 // 3 + 1}"
    return f"{fiscal}年度"


@dataclass(frozen=True, slots=True)
class Dataset:
    """Every frozen list's flags and every case, with the rules' labels and the lists' capacities."""

    flags: list[Flag]
    cases: list[Case]
    rules: dict[str, str]
    capacity: dict[int, int]
    periods: list[str]
    kind: str


def load(gw: Gateway, kind: PeriodKind = "month") -> Dataset:
    """Read the evaluation rows; a case found by another route gets the period of the newest list before it."""
    s, f, c = models.screening_snapshots, models.screening_flags, models.support_cases
    with gw.engine.connect() as conn:
        snaps = conn.execute(select(s).order_by(s.c.id)).all()
        flag_rows = conn.execute(select(f)).all()
        case_rows = conn.execute(select(c).order_by(c.c.id)).all()
    period = {x.id: period_of(x.taken_at, kind, x.id) for x in snaps}
    capacity = {x.id: x.capacity for x in snaps}
    rules: dict[str, str] = {}
    for x in snaps:
        rules.update(json.loads(x.rules))
    flags = [Flag(r.snapshot_id, period[r.snapshot_id], r.person_id, r.rank, r.score, tuple(json.loads(r.rules)),
                  r.rank <= capacity[r.snapshot_id], json.loads(r.features)) for r in flag_rows]
    flags.sort(key=lambda x: (x.snapshot_id, x.rank))
    cases = []
    for r in case_rows:
        if r.snapshot_id is not None:
            p = period[r.snapshot_id]
        elif kind == "snapshot":
            before = [x.id for x in snaps if x.taken_at <= r.opened_at]
            p = period_of(r.opened_at, kind, before[-1] if before else (snaps[0].id if snaps else 0))
        else:
            p = period_of(dt.date.fromisoformat(r.opened_on), kind)
        cases.append(Case(r.id, r.person_id, r.snapshot_id, p, r.assessment, tuple(json.loads(r.difficulties)),
                          tuple(json.loads(r.supports)), r.not_needed_reason, json.loads(r.features)))
    periods = sorted({x.period for x in flags} | {x.period for x in cases})
    return Dataset(flags, cases, rules, capacity, periods, kind)
