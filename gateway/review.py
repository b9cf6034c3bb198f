"""Clerical review: reviewers decide record pairs (link / non_link), and every later linkage run is bound by those decisions.

A decision names two records by (source, record token), never by a name: the
reviewer sees per-field levels (``linkage.score.LEVEL_LABELS``: カナ類似,
生年月日一致, 漢字異なる, 住所不明 …), not the values. The latest decision on a
pair wins. A run hands them to the linkage library as must-link / cannot-link
constraints (``linkage.match.Constraints``), which applies them in two places:

1. before solving, the pair's weight becomes ``FORCED_LINK`` or
   ``FORBIDDEN`` (so the solver builds clusters around the decision and
   the pair never returns to the review queue);
2. after solving, a forced pair that the candidate stage never produced is
   merged, and a cluster that still holds a forbidden pair (joined through a
   third record) is split: the record of the pair with the weaker evidence to
   the rest of the cluster leaves it.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from gateway import models
from gateway.core import Gateway
from gateway.crashpoints import crash_point
from gateway.db import utcnow
from gateway.errors import InvalidDecision, NoRun, ReasonRequired, ReasonTooLong, RecordNotFound, ReviewPairNotFound, SameSource
from gateway.identity import User
from linkage.encode import Encodings
from linkage.match import AMBIGUITY_MARGIN, MATCH_THRESHOLD, REVIEW_THRESHOLD, Constraints, LinkResult, link
from linkage.score import NAME_ONLY_MAX
from service.pools import ForkPool

DECISIONS = {"link": "同一人物", "non_link": "別人"}
#: What each comparison of ``linkage.compare.COMPARISONS`` looks at, in reviewers' words.
FIELD_LABELS = {"name_family": "漢字（姓）", "name_given": "漢字（名）", "kana_family": "カナ（姓）", "kana_given": "カナ（名）",
                "demographic": "生年月日・性別", "address": "住所"}
_SHORT_LEVELS = {"一致", "類似", "異なる", "一部一致", "一部異なる", "不明"}
_MAX_REASON = 2000

#: The review queue's order: ``gateway.link`` stores a run's pairs in the order ``LinkResult.review_queue`` returns them
#: (most useful decision first: expected gain, then weight), so the row id within a run is the pair's rank in the queue.
QUEUE_ORDER = (models.review_pairs.c.id,)

Record = tuple[str, str]  # (source, record token)
Pair = tuple[Record, Record]
Position = tuple[int, int]  # (source index, record index) in this run


def canonical(a: Record, b: Record) -> Pair:
    """The pair in its stored order."""
    return (a, b) if a <= b else (b, a)


def _pair_label(pair: Pair) -> str:
    (sa, ta), (sb, tb) = pair
    return f"{sa}:{ta}~{sb}:{tb}"


def decide_pair(gw: Gateway, user: User, pair_id: int, decision: str, reason: str) -> dict[str, Any]:
    """Decide the review pair ``pair_id`` of the current run (or an earlier run still kept)."""
    rp = models.review_pairs
    with gw.engine.connect() as conn:
        row = conn.execute(select(rp).where(rp.c.id == pair_id)).first()
    if row is None:
        raise ReviewPairNotFound(f"要確認ペア {pair_id} はありません（新しい名寄せで入れ替わった可能性があります。一覧を開き直してください）。")
    return decide(gw, user, (row.source_a, row.token_a), (row.source_b, row.token_b), decision, reason, review_pair_id=pair_id)


def decide(gw: Gateway, user: User, a: Record, b: Record, decision: str, reason: str,
           review_pair_id: int | None = None) -> dict[str, Any]:
    """Record ``user``'s decision on records ``a`` and ``b``; it is logged, then binds every later run."""
    if decision not in DECISIONS:
        raise InvalidDecision("判定は link（同一人物）か non_link（別人）のどちらかです。")
    reason = reason.strip()
    if not reason:
        raise ReasonRequired("判定の理由を入力してください（監査のため必須です）。")
    if len(reason) > _MAX_REASON:
        raise ReasonTooLong(f"判定の理由は {_MAX_REASON} 文字以内にしてください。")
    if a[0] == b[0]:
        raise SameSource(f"同じデータ元（{a[0]}）の 2 件は判定できません。名寄せは異なるデータ元の記録どうしを結び付けます。")
    pair = canonical(a, b)
    r = models.records
    with gw.engine.connect() as conn:
        for source, token in pair:
            if conn.execute(select(r.c.token).where(r.c.source == source, r.c.token == token)).first() is None:
                raise RecordNotFound(f"データ元「{source}」の記録 {token} は現在の提出にありません。")
    now = utcnow()
    crash_point("review.before_store")
    with gw.engine.begin() as conn:
        decision_id = conn.execute(insert(models.review_decisions).values(
            source_a=pair[0][0], token_a=pair[0][1], source_b=pair[1][0], token_b=pair[1][1], decision=decision,
            reason=reason, decided_by=user.username, decided_at=now, review_pair_id=review_pair_id)).inserted_primary_key[0]
        crash_point("review.after_decision_row")
        # The decision and its tamper-evident entry commit together (the reason stays in the table:
        # free text is kept out of the log, which holds pseudonyms only).
        gw.record(user.username, user.role, "review.decide", decision, target=_pair_label(pair), connection=conn)
        # The decision binds the next run: ask for it with the decision, so it is not lost to a restart.
        from gateway.link import request_run  # here: gateway.link imports this module for the decisions it applies

        request_run(conn, "review")
        crash_point("review.after_audit")
    crash_point("review.after_commit")
    return {"id": decision_id, "a": {"source": pair[0][0], "token": pair[0][1]}, "b": {"source": pair[1][0], "token": pair[1][1]},
            "decision": decision, "label": DECISIONS[decision], "decided_by": user.username, "decided_at": now,
            "review_pair_id": review_pair_id, "applies": "次回の名寄せ（判定の後に自動で実行されます）から反映されます。"}


def list_decisions(gw: Gateway, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """Every decision, newest first (pseudonymous: sources, record tokens, who, when, why)."""
    d = models.review_decisions
    with gw.engine.connect() as conn:
        rows = conn.execute(select(d).order_by(d.c.id.desc()).limit(limit).offset(offset)).all()
    return {"decisions": [{"id": x.id, "a": {"source": x.source_a, "token": x.token_a}, "b": {"source": x.source_b, "token": x.token_b},
                           "decision": x.decision, "label": DECISIONS[x.decision], "reason": x.reason, "decided_by": x.decided_by,
                           "decided_at": x.decided_at, "review_pair_id": x.review_pair_id} for x in rows]}


def review_pairs(gw: Gateway, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """The current run's review pairs (per-field levels and labels, never values), each with its latest decision if any,
    in the review queue's order (the most useful decision first, see :data:`QUEUE_ORDER`)."""
    rp = models.review_pairs
    with gw.engine.connect() as conn:
        run_id = _current_run(conn)
        if run_id is None:
            raise NoRun("まだ名寄せが実行されていません。提出を受け付けた後、名寄せの完了を待ってください。")
        total = conn.execute(select(func.count()).where(rp.c.run_id == run_id)).scalar_one()
        rows = conn.execute(select(rp).where(rp.c.run_id == run_id).order_by(*QUEUE_ORDER).limit(limit).offset(offset)).all()
        decided = current_decisions(conn)
    pairs = []
    for x in rows:
        fields = {name: {**f, "field": FIELD_LABELS.get(name, name), "text": _field_text(name, f)}
                  for name, f in json.loads(x.fields).items()}
        pairs.append({"id": x.id, "a": {"source": x.source_a, "token": x.token_a}, "b": {"source": x.source_b, "token": x.token_b},
                      "weight": round(x.weight, 3), "fields": fields, "summary": "・".join(f["text"] for f in fields.values()),
                      "decision": decided.get(canonical((x.source_a, x.token_a), (x.source_b, x.token_b)))})
    return {"run_id": run_id, "total": total, "pairs": pairs}


def review_reason(weight: float) -> str:
    """Why a pair is in review, from its weight and the run's thresholds (the two ways ``LinkResult.review_queue`` fills it)."""
    if weight >= MATCH_THRESHOLD:
        return (f"重み {weight:.1f} は同一人物とする基準 {MATCH_THRESHOLD:g} を超えていますが、同じデータ元に、ほぼ同じ重み"
                f"（差 {AMBIGUITY_MARGIN:g} 未満）で一致する別の記録があります。どちらか一方だけが本人です。")
    return (f"重み {weight:.1f} は、確認にまわす基準 {REVIEW_THRESHOLD:g} 以上で、自動で同一人物とする基準 {MATCH_THRESHOLD:g} に"
            "届いていません。")


def _waterfall(fields: dict[str, dict[str, Any]], weight: float) -> list[dict[str, Any]]:
    """The steps of the match weight, field by field (as Splink's waterfall chart): start, added weight, running total.

    A pair whose only agreement is on names is capped at ``NAME_ONLY_MAX``; that cap is its own step.
    """
    steps, total = [], 0.0
    for name, f in fields.items():
        added = float(f.get("weight", 0.0)) if f.get("level", -1) >= 0 else 0.0
        steps.append({"field": FIELD_LABELS.get(name, name), "level": "不明" if f.get("level", -1) < 0 else f.get("label", ""),
                      "start": total, "added": added, "end": total + added})
        total += added
    if all("weight" in f for f in fields.values()) and weight < total - 1e-6:
        steps.append({"field": f"名前だけの一致の上限（{NAME_ONLY_MAX:g}）", "level": "", "start": total, "added": weight - total,
                      "end": weight})
    return steps


#: Orders of the grouped review list. ``gain`` is the review queue's own order (expected gain, ``LinkResult.review_queue``):
#: a group stands where its most useful pair stands.
GROUP_SORTS = {"gain": "確認の効果が大きい順", "weight": "重みの高い順", "weight_asc": "重みの低い順", "size": "競合の多い順"}


def review_groups(gw: Gateway, *, source: str = "", decided: str = "", sort: str = "gain", limit: int | None = 20,
                  offset: int = 0) -> dict[str, Any]:
    """The current run's review pairs grouped by shared records (rivals together), with why each is in review,
    the weight each field adds, and both records' persons. Filter by source and by decided / undecided; sorted by
    :data:`GROUP_SORTS` (the queue's order unless asked otherwise); paged by group (``limit=None``: every group)."""
    rp, a = models.review_pairs, models.assignments
    with gw.engine.connect() as conn:
        run_id = _current_run(conn)
        if run_id is None:
            raise NoRun("まだ名寄せが実行されていません。提出を受け付けた後、名寄せの完了を待ってください。")
        rows = conn.execute(select(rp).where(rp.c.run_id == run_id).order_by(*QUEUE_ORDER)).all()
        decisions = current_decisions(conn)
        wanted = {(x.source_a, x.token_a) for x in rows} | {(x.source_b, x.token_b) for x in rows}
        persons: dict[Record, str] = {}
        if wanted:
            for row in conn.execute(select(a.c.source, a.c.token, a.c.person_id).where(a.c.run_id == run_id)):
                if (row.source, row.token) in wanted:
                    persons[(row.source, row.token)] = row.person_id
    # Connected components over shared records: one group holds a record and all its rival pairings.
    parent: dict[Record, Record] = {}

    def root(r: Record) -> Record:
        while parent.setdefault(r, r) != r:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    for x in rows:
        parent[root((x.source_a, x.token_a))] = root((x.source_b, x.token_b))
    groups: dict[Record, list[dict[str, Any]]] = {}
    for rank, x in enumerate(rows, start=1):
        fields = {name: {**f, "field": FIELD_LABELS.get(name, name), "text": _field_text(name, f)} for name, f in json.loads(x.fields).items()}
        ra, rb = (x.source_a, x.token_a), (x.source_b, x.token_b)
        groups.setdefault(root(ra), []).append({
            "id": x.id, "rank": rank, "a": {"source": ra[0], "token": ra[1], "person_id": persons.get(ra)},
            "b": {"source": rb[0], "token": rb[1], "person_id": persons.get(rb)},
            "weight": round(x.weight, 3), "fields": fields, "summary": "・".join(f["text"] for f in fields.values()),
            "reason": review_reason(x.weight), "waterfall": _waterfall(json.loads(x.fields), x.weight),
            "decision": decisions.get(canonical(ra, rb))})
    listed = []
    for pairs in groups.values():
        _mark_rivals(pairs)
        if source and not any(source in (p["a"]["source"], p["b"]["source"]) for p in pairs):
            continue
        open_ = any(p["decision"] is None for p in pairs)
        if (decided == "undecided" and not open_) or (decided == "decided" and open_):
            continue
        listed.append({"pairs": pairs, "weight": max(p["weight"] for p in pairs), "open": open_, "first": pairs[0]["id"],
                       "rank": pairs[0]["rank"], "rivals": any(p["rivals"] for p in pairs)})
    if sort == "weight":
        listed.sort(key=lambda g: (-g["weight"], g["rank"]))
    elif sort == "weight_asc":
        listed.sort(key=lambda g: (g["weight"], g["rank"]))
    elif sort == "size":
        listed.sort(key=lambda g: (-len(g["pairs"]), g["rank"]))
    # else "gain": groups were made in queue order, each at its first (most useful) pair
    page = listed[offset:] if limit is None else listed[offset:offset + limit]
    return {"run_id": run_id, "total_pairs": len(rows), "total_groups": len(listed), "groups": page,
            "undecided_pairs": sum(1 for x in rows if canonical((x.source_a, x.token_a), (x.source_b, x.token_b)) not in decisions)}


def _mark_rivals(pairs: list[dict[str, Any]]) -> None:
    """``rivals``: the ids of the pairs that join one of this pair's records to another record of the partner's source
    (at most one of them can be the same child)."""
    for p in pairs:
        p["rivals"] = []
        for q in pairs:
            if q is p:
                continue
            for mine, partner in ((p["a"], p["b"]), (p["b"], p["a"])):
                ends = {(q["a"]["source"], q["a"]["token"]): q["b"], (q["b"]["source"], q["b"]["token"]): q["a"]}
                other = ends.get((mine["source"], mine["token"]))
                if other is not None and other["source"] == partner["source"] and other["token"] != partner["token"]:
                    p["rivals"].append(q["id"])
                    break


def decide_group(gw: Gateway, user: User, pair_id: int, decision: str, reason: str) -> list[dict[str, Any]]:
    """Decide ``pair_id``; "same" also settles its rivals: a record links to at most one record of another source, so the
    pairs that join either record to another record of the partner's source are decided "different" (each logged)."""
    first = decide_pair(gw, user, pair_id, decision, reason)
    if decision != "link":
        return [first]
    a = (first["a"]["source"], first["a"]["token"])
    b = (first["b"]["source"], first["b"]["token"])
    rp = models.review_pairs
    with gw.engine.connect() as conn:
        run_id = _current_run(conn)
        rows = conn.execute(select(rp).where(rp.c.run_id == run_id, rp.c.id != pair_id)).all()
        decided = current_decisions(conn)
    settled = [first]
    for x in rows:
        ra, rb = (x.source_a, x.token_a), (x.source_b, x.token_b)
        for mine, other in ((ra, rb), (rb, ra)):
            partner = b if mine == a else a if mine == b else None
            if partner is not None and other != partner and other[0] == partner[0] and canonical(ra, rb) not in decided:
                settled.append(decide(gw, user, ra, rb, "non_link", f"ペア {pair_id} を同一人物と判定したため: {reason.strip()}"[:_MAX_REASON],
                                      review_pair_id=x.id))
                break
    return settled


def _current_run(conn: Connection) -> int | None:
    # gateway.link imports this module, so its current_run_id is not imported here.
    return conn.execute(select(models.current_run.c.run_id).where(models.current_run.c.id == 1)).scalar()


def _field_text(name: str, field: dict[str, Any]) -> str:
    """「カナ（姓）一致」「住所不明」: the field and its level (a missing side is 不明, not a disagreement)."""
    label = "不明" if field.get("level", -1) < 0 else str(field.get("label", ""))
    return f"{FIELD_LABELS.get(name, name)}{label}" if label in _SHORT_LEVELS else f"{FIELD_LABELS.get(name, name)}（{label}）"


def current_decisions(conn: Connection) -> dict[Pair, str]:
    """The latest decision on every decided pair."""
    d = models.review_decisions
    rows = conn.execute(select(d.c.source_a, d.c.token_a, d.c.source_b, d.c.token_b, d.c.decision).order_by(d.c.id)).all()
    return {((x.source_a, x.token_a), (x.source_b, x.token_b)): x.decision for x in rows}


def link_bound(names: Sequence[str], tokens: Sequence[Sequence[str]], encodings: Sequence[Encodings],
               decisions: dict[Pair, str]) -> LinkResult:
    """``linkage.match.link`` bound by reviewers' decisions (must-link / cannot-link constraints)."""
    return link(encodings, constraints=constraints_of(names, tokens, decisions), engine=ForkPool())


def constraints_of(names: Sequence[str], tokens: Sequence[Sequence[str]], decisions: dict[Pair, str]) -> Constraints:
    """The decisions whose two records are both in this run, as the linkage library's constraints."""
    where = _positions(names, tokens, decisions)
    return Constraints(must_link=[(a, b) for a, b, d in where if d == "link"],
                       cannot_link=[(a, b) for a, b, d in where if d == "non_link"])


def _positions(names: Sequence[str], tokens: Sequence[Sequence[str]], decisions: dict[Pair, str]) -> list[tuple[Position, Position, str]]:
    """Decisions whose two records are both in this run, as run positions."""
    wanted = {rec for pair in decisions for rec in pair}
    found: dict[Record, Position] = {}
    for s, name in enumerate(names):
        if any(src == name for src, _ in wanted):
            for i, token in enumerate(tokens[s]):
                if (name, token) in wanted:
                    found[(name, token)] = (s, i)
    return [(found[a], found[b], d) for (a, b), d in decisions.items() if a in found and b in found]
