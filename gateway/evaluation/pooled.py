"""Pooled evaluation across towns: each town shares aggregate counts only, small counts suppressed; the prefecture sums.

A town's gateway computes, from its own lists and cases, counts per rule
(flagged, checked, needing support, supported, judged not needed) and per data
item (checked children with the item, with each difficulty type, with both).
Every count from 1 to ``MIN_COUNT - 1`` is replaced by None (秘匿) before
anything leaves the town; no person id, token or feature value is in the
message. The counts travel as a signed federation message
(``gateway.federation.protocol``) of kind ``pooled_counts`` to the
prefecture's gateway, which verifies it like any peer message and stores the
counts; its report sums what is not suppressed and says how many cells were.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select

from gateway import models
from gateway.core import Gateway
from gateway.db import utcnow
from gateway.errors import GatewayError, MalformedCounts, UnknownEvaluationPeer
from gateway.evaluation import figures
from gateway.evaluation.data import Dataset, PeriodKind, load
from gateway.identity import User

KIND = "pooled_counts"
#: Counts below this (and above zero) are suppressed before they leave the town.
MIN_COUNT = 5
_RULE_FIELDS = ("flagged", "checked", "needs_support", "supported", "not_needed")


def suppress(n: int, minimum: int = MIN_COUNT) -> int | None:
    """``n``, or None when it is small enough to point at a few children (0 is safe to show)."""
    return None if 0 < n < minimum else n


def counts(data: Dataset, difficulties: list[str], minimum: int = MIN_COUNT) -> dict[str, Any]:
    """The town's aggregate counts, suppressed: per rule, overall, and per data item × difficulty type."""
    rules = {r.key: {k: suppress(getattr(r, k), minimum) for k in _RULE_FIELDS}
             for r in figures.funnel_by_rule(data.flags, data.cases, list(data.rules))}
    total = figures.funnel_total(data.flags, data.cases)
    items: dict[str, Any] = {}
    for a in figures.items_by_difficulty(data.cases, difficulties):
        entry = items.setdefault(a.item, {"checked": suppress(a.n, minimum), "with_item": suppress(a.with_item, minimum), "types": {}})
        entry["types"][a.difficulty] = {"with_type": suppress(a.with_type, minimum), "both": suppress(a.both, minimum)}
    return {"min_count": minimum, "rule_labels": data.rules, "rules": rules,
            "total": {k: suppress(getattr(total, k), minimum) for k in _RULE_FIELDS}, "items": items}


def share(gw: Gateway, user: User, prefecture: str, kind: PeriodKind = "fiscal_year", period: str | None = None) -> dict[str, Any]:
    """Sign this town's counts (all periods, or one) for the prefecture's gateway; send it, or hand back the bundle."""
    from gateway.federation import config as fconfig
    from gateway.federation import service
    from gateway.federation.protocol import sign_message

    config = fconfig.load(gw.settings.home)
    if config.peer(prefecture) is None:
        raise UnknownEvaluationPeer(f"自治体 {prefecture} は連携先として設定されていません。")
    data = load(gw, kind)
    if period is not None:
        data = Dataset([f for f in data.flags if f.period == period], [c for c in data.cases if c.period == period],
                       data.rules, data.capacity, [period], kind)
    body = {"period": period or "全期間", "period_kind": kind, "counts": counts(data, list(gw.policy.document.support.difficulties))}
    message = sign_message(config, fconfig.signer(gw.settings.home, config.code), KIND, prefecture, body, bundle=True)
    gw.record(user.username, user.role, "pooled.share", f"period={body['period']}", target=f"peer:{prefecture}")
    try:
        service.post_to_peer(gw, prefecture, KIND, message)
    except GatewayError as exc:
        if exc.code not in ("peer_unreachable", "peer_no_url"):
            raise
        return {"delivered": False, "reason": exc.detail, "bundle": json.loads(message), "counts": body["counts"]}
    return {"delivered": True, "counts": body["counts"]}


def receive(gw: Gateway, data: bytes, channel: str) -> dict[str, Any]:
    """The prefecture's side: verify a town's signed counts and store them (counts only; a row is never accepted)."""
    from gateway.federation import config as fconfig
    from gateway.federation.protocol import verify_message

    config = fconfig.load(gw.settings.home)
    message = verify_message(gw, config, data, KIND, channel)
    body = message.get("body") or {}
    c = body.get("counts")
    if not isinstance(c, dict) or set(c) - {"min_count", "rule_labels", "rules", "total", "items"}:
        raise MalformedCounts("集計値の形式が正しくありません。")
    _only_counts(c.get("rules", {}), 2)
    _only_counts(c.get("total", {}), 1)
    for item in c.get("items", {}).values():
        _only_counts({k: v for k, v in item.items() if k != "types"}, 1)
        _only_counts(item.get("types", {}), 2)
    with gw.engine.begin() as conn:
        conn.execute(insert(models.pooled_reports).values(peer=message["from"], period=str(body.get("period", ""))[:16], received_at=utcnow(),
                                                          counts=json.dumps(c, ensure_ascii=False)))
        gw.record(f"peer:{message['from']}", "peer", "pooled.receive", f"period={body.get('period', '')}", target=f"peer:{message['from']}",
                  connection=conn)
    return {"status": "accepted", "from": message["from"]}


def _only_counts(tree: Any, depth: int) -> None:
    """Every leaf is a non-negative integer or None (suppressed), ``depth`` levels down."""
    if not isinstance(tree, dict):
        raise MalformedCounts("集計値の形式が正しくありません。")
    for value in tree.values():
        if depth > 1:
            _only_counts(value, depth - 1)
        elif value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise MalformedCounts("集計値には 0 以上の整数か秘匿（null）だけを含めてください。")


def pooled(gw: Gateway) -> dict[str, Any]:
    """The prefecture's report: per rule and item, the sums over the newest counts of every town, and suppressed cells."""
    p = models.pooled_reports
    with gw.engine.connect() as conn:
        rows = conn.execute(select(p).order_by(p.c.id)).all()
    newest: dict[str, Any] = {}
    for r in rows:
        newest[r.peer] = json.loads(r.counts)
    labels: dict[str, str] = {}
    rules: dict[str, dict[str, Any]] = {}
    items: dict[str, dict[str, Any]] = {}
    for town in newest.values():
        labels.update(town.get("rule_labels", {}))
        for rule, fields in town["rules"].items():
            _add(rules.setdefault(rule, {}), fields)
        for item, entry in town["items"].items():
            target = items.setdefault(item, {"types": {}})
            _add(target, {k: v for k, v in entry.items() if k != "types"})
            for kind, fields in entry["types"].items():
                _add(target["types"].setdefault(kind, {}), fields)
    total: dict[str, Any] = {}
    for town in newest.values():
        _add(total, town["total"])
    for row in [*rules.values(), total]:
        row["precision"] = (row["needs_support"]["sum"] / row["checked"]["sum"]
                            if row.get("checked", {}).get("sum") and not row["checked"]["suppressed"] and not row["needs_support"]["suppressed"] else None)
    return {"towns": sorted(newest), "rule_labels": labels, "rules": rules, "total": total, "items": items}


def _add(target: dict[str, Any], fields: dict[str, int | None]) -> None:
    for key, value in fields.items():
        cell = target.setdefault(key, {"sum": 0, "suppressed": 0})
        if value is None:
            cell["suppressed"] += 1
        else:
            cell["sum"] += value
