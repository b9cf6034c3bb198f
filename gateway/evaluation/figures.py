"""The evaluation's figures (抽出方法の評価), as pure functions of frozen lists and staff judgements.

Definitions (the evaluation guide, docs/guide-evaluation.md, says them in staff's words):

* flagged (抽出): a person within the capacity of a frozen screening list;
* checked (確認済み): a flagged person whose case has a decided assessment
  (支援が必要・見守り・対応不要; 判断保留 is not yet checked);
* needing support (支援が必要): the assessment ``needs_support``;
* supported (支援実施): a case with at least one kind of support recorded;
* precision (適合率) = needing support / checked;
* recall proxy: of the children supported, the share that any list flagged
  (the rest were found by other routes: 相談, 通告, 学校からの連絡 …).

A flagged person's case is the newest case linked to that frozen list. Each
figure is a function of :class:`Flag` and :class:`Case` rows only, so a test
can check it on a hand-made case whose answer is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from policy.support import DECIDED


@dataclass(frozen=True, slots=True)
class Flag:
    """A person on a frozen screening list."""

    snapshot_id: int
    period: str
    person_id: str
    rank: int
    score: float
    rules: tuple[str, ...]
    in_list: bool = True
    features: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Case:
    """A support case's coded state (the evaluation needs nothing else)."""

    case_id: int
    person_id: str
    snapshot_id: int | None
    period: str
    assessment: str
    difficulties: tuple[str, ...] = ()
    supports: tuple[str, ...] = ()
    not_needed_reason: str | None = None
    features: Mapping[str, str] = field(default_factory=dict)

    @property
    def checked(self) -> bool:
        """A person decided (判断保留 is not a decision)."""
        return self.assessment in DECIDED

    @property
    def needs_support(self) -> bool:
        """Judged to need support."""
        return self.assessment == "needs_support"

    @property
    def supported(self) -> bool:
        """At least one kind of support was given."""
        return bool(self.supports)


@dataclass(frozen=True, slots=True)
class FunnelRow:
    """flagged → checked → needing support → supported, and the precision."""

    key: str
    flagged: int
    checked: int
    needs_support: int
    supported: int
    not_needed: int

    @property
    def precision(self) -> float | None:
        """needing support / checked (None when nobody was checked)."""
        return self.needs_support / self.checked if self.checked else None


def case_of_flag(cases: Iterable[Case]) -> dict[tuple[int, str], Case]:
    """The newest case of each (frozen list, person)."""
    out: dict[tuple[int, str], Case] = {}
    for c in sorted(cases, key=lambda c: c.case_id):
        if c.snapshot_id is not None:
            out[(c.snapshot_id, c.person_id)] = c
    return out


def _row(key: str, flags: Iterable[Flag], linked: Mapping[tuple[int, str], Case]) -> FunnelRow:
    flagged = checked = needs = supported = not_needed = 0
    for f in flags:
        if not f.in_list:
            continue
        flagged += 1
        c = linked.get((f.snapshot_id, f.person_id))
        if c is None:
            continue
        checked += c.checked
        needs += c.needs_support
        supported += c.supported
        not_needed += c.assessment == "not_needed"
    return FunnelRow(key, flagged, checked, needs, supported, not_needed)


def funnel_by_period(flags: Sequence[Flag], cases: Sequence[Case]) -> list[FunnelRow]:
    """The funnel per period (in period order)."""
    linked = case_of_flag(cases)
    periods = sorted({f.period for f in flags})
    return [_row(p, [f for f in flags if f.period == p], linked) for p in periods]


def funnel_by_rule(flags: Sequence[Flag], cases: Sequence[Case], rules: Sequence[str]) -> list[FunnelRow]:
    """The funnel per rule (a person flagged by two rules counts under both), in the rules' order."""
    linked = case_of_flag(cases)
    return [_row(rule, [f for f in flags if rule in f.rules], linked) for rule in rules]


def funnel_total(flags: Sequence[Flag], cases: Sequence[Case]) -> FunnelRow:
    """The funnel of every list together."""
    return _row("合計", flags, case_of_flag(cases))


@dataclass(frozen=True, slots=True)
class Reach:
    """Children supported (or judged to need support) and whether any list flagged them."""

    supported: int
    supported_flagged: int
    supported_other_route: int
    needing: int
    needing_flagged: int

    @property
    def recall_proxy(self) -> float | None:
        """Share of the supported children that a list flagged."""
        return self.supported_flagged / self.supported if self.supported else None


def reach(flags: Sequence[Flag], cases: Sequence[Case]) -> Reach:
    """Per person: supported at all, and flagged by any list (within the capacity) or not."""
    flagged = {f.person_id for f in flags if f.in_list}
    supported = {c.person_id for c in cases if c.supported}
    needing = {c.person_id for c in cases if c.needs_support}
    return Reach(len(supported), len(supported & flagged), len(supported - flagged), len(needing), len(needing & flagged))


def capacity_curve(flags: Sequence[Flag], positives: set[str], snapshot_id: int, order: Mapping[str, float] | None = None) -> list[tuple[int, int]]:
    """For each cap k = 1..n: how many ``positives`` the first k persons of the list ``snapshot_id`` hold.

    The list is every flagged person (also beyond the capacity) in rank order,
    or ordered by ``order`` (higher first, ties by rank) to compare a ranking.
    """
    members = sorted((f for f in flags if f.snapshot_id == snapshot_id),
                     key=lambda f: (-(order or {}).get(f.person_id, 0.0), f.rank) if order is not None else (f.rank,))
    found, curve = 0, []
    for k, f in enumerate(members, start=1):
        found += f.person_id in positives
        curve.append((k, found))
    return curve


#: Values that departments write for "no" (a system that keeps 受診 / 未受診 as words, not 0 / 1).
NEGATIVE_WORDS = frozenset({"受診", "済", "なし", "無", "無し", "いいえ", "非該当", "該当なし", "false", "no", "n"})


def item_present(value: str | None) -> bool:
    """An item is present when it has a value other than blank, zero or a word for "no" (受給あり, 未受診, 欠席 12 日 …)."""
    if value is None:
        return False
    text = str(value).strip()
    if not text or text.casefold() in NEGATIVE_WORDS:
        return False
    try:
        return float(text) != 0.0
    except ValueError:
        return True


@dataclass(frozen=True, slots=True)
class ItemAssociation:
    """One data item against one difficulty type, over the checked cases."""

    item: str
    difficulty: str
    n: int  # checked cases
    with_item: int
    with_type: int
    both: int

    @property
    def share_with_type(self) -> float | None:
        """How often the item is present among children with the difficulty."""
        return self.both / self.with_type if self.with_type else None

    @property
    def share_without_type(self) -> float | None:
        """How often the item is present among the other checked children."""
        rest = self.n - self.with_type
        return (self.with_item - self.both) / rest if rest else None

    @property
    def phi(self) -> float | None:
        """The phi coefficient (Pearson correlation of the two yes/no variables); None when either never varies."""
        a = self.both
        b = self.with_item - a
        c = self.with_type - a
        d = self.n - a - b - c
        denominator = (a + b) * (c + d) * (a + c) * (b + d)
        return (a * d - b * c) / math.sqrt(denominator) if denominator else None


def items_by_difficulty(cases: Sequence[Case], difficulties: Sequence[str]) -> list[ItemAssociation]:
    """Every data item (seen in any checked case's features) against every difficulty type."""
    checked = [c for c in cases if c.checked]
    items = sorted({k for c in checked for k in c.features})
    out = []
    for item in items:
        has = [item_present(c.features.get(item)) for c in checked]
        for d in difficulties:
            typed = [d in c.difficulties for c in checked]
            out.append(ItemAssociation(item, d, len(checked), sum(has), sum(typed), sum(h and t for h, t in zip(has, typed))))
    return out


def item_presence(cases: Sequence[Case]) -> dict[str, tuple[int, int]]:
    """Per item: (checked cases with the item present, checked cases)."""
    checked = [c for c in cases if c.checked]
    items = sorted({k for c in checked for k in c.features})
    return {i: (sum(item_present(c.features.get(i)) for c in checked), len(checked)) for i in items}


@dataclass(frozen=True, slots=True)
class HumanCheck:
    """What staff's check changed on the lists: flagged but judged not needed, by coded reason."""

    checked: int
    not_needed: int
    watch: int
    needs_support: int
    reasons: dict[str, int]
    by_rule: dict[str, int]


def human_check(flags: Sequence[Flag], cases: Sequence[Case]) -> HumanCheck:
    """Among flagged and checked persons: how many staff judged 対応不要 (and why), 見守り, 支援が必要."""
    linked = case_of_flag(cases)
    reasons: dict[str, int] = {}
    by_rule: dict[str, int] = {}
    checked = not_needed = watch = needs = 0
    for f in flags:
        c = linked.get((f.snapshot_id, f.person_id))
        if not f.in_list or c is None or not c.checked:
            continue
        checked += 1
        watch += c.assessment == "watch"
        needs += c.needs_support
        if c.assessment == "not_needed":
            not_needed += 1
            key = c.not_needed_reason or "unknown"
            reasons[key] = reasons.get(key, 0) + 1
            for rule in f.rules:
                by_rule[rule] = by_rule.get(rule, 0) + 1
    return HumanCheck(checked, not_needed, watch, needs, dict(sorted(reasons.items())), dict(sorted(by_rule.items())))
