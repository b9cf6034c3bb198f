"""A transparent risk index beside the declared rules: for ordering a list within its capacity, never for deciding.

The index is a logistic regression (scikit-learn) on yes/no data items
("item present": a value other than blank or zero, ``figures.item_present``),
fitted on past staff judgements (支援が必要 = 1, 見守り・対応不要 = 0). Each
child's index is ``100 × sigmoid(intercept + Σ weight × item)``, shown with
every item that contributes and by how much (log-odds points), so a person
can read why a child sits where it does. It is evaluated on a later period
than it was fitted on, and checked against groups whose data tends to be
blank (転入児童, 外国籍の児童): a group whose children judged to need support
sit systematically lower in the ranking is reported, because blank is not
"no risk" — a person decides, and the list keeps every flagged child.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from gateway.evaluation.figures import Case, item_present

#: A group whose positives rank this many percentile points lower than the others' is reported (注意).
FAIRNESS_GAP_POINTS = 10.0
#: A group needs at least this many positives in the evaluation period for the check to say anything.
FAIRNESS_MIN_POSITIVES = 5
#: Minimum judged cases (and of each class) to fit at all.
MIN_FIT_CASES = 10


class RiskIndexError(ValueError):
    """Too few past judgements to fit the index; the message says how many there are."""


@dataclass(frozen=True, slots=True)
class RiskIndex:
    """A fitted index: the intercept and one weight per data item (log-odds)."""

    items: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float
    fitted_on: tuple[str, ...]  # periods
    cases: int

    def logit(self, features: Mapping[str, str]) -> float:
        """Intercept plus the weights of the present items."""
        return self.intercept + sum(w for i, w in zip(self.items, self.weights) if item_present(features.get(i)))

    def index(self, features: Mapping[str, str]) -> float:
        """The index, 0–100."""
        return 100.0 / (1.0 + math.exp(-self.logit(features)))

    def contributions(self, features: Mapping[str, str]) -> list[tuple[str, float]]:
        """The present items and their weights, largest effect first (what moves this child's index)."""
        present = [(i, w) for i, w in zip(self.items, self.weights) if item_present(features.get(i))]
        return sorted(present, key=lambda x: -abs(x[1]))


def _matrix(items: Sequence[str], cases: Sequence[Case]) -> np.ndarray:
    return np.array([[1.0 if item_present(c.features.get(i)) else 0.0 for i in items] for c in cases]).reshape(len(cases), len(items))


def fit(cases: Sequence[Case], periods: Sequence[str]) -> RiskIndex:
    """Fit on the checked cases of ``periods`` (L2-regularised, so rare items get modest weights)."""
    train = [c for c in cases if c.checked and c.period in set(periods)]
    y = np.array([1 if c.needs_support else 0 for c in train])
    if len(train) < MIN_FIT_CASES or y.sum() == 0 or y.sum() == len(y):
        raise RiskIndexError(f"リスク指数を当てはめるには、確認済みの判断が {MIN_FIT_CASES} 件以上（支援が必要とそれ以外の両方）必要です"
                             f"（対象期間 {', '.join(periods) or 'なし'}: {len(train)} 件、うち支援が必要 {int(y.sum())} 件）。")
    # scikit-learn loads in seconds: imported here, so that starting the gateway does not wait for it.
    from sklearn.linear_model import LogisticRegression

    items = tuple(sorted({k for c in train for k in c.features}))
    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit(_matrix(items, train), y)
    return RiskIndex(items, tuple(float(w) for w in model.coef_[0]), float(model.intercept_[0]), tuple(sorted(set(periods))), len(train))


@dataclass(frozen=True, slots=True)
class RiskEvaluation:
    """The index on a later period: discrimination, and precision of the first half when ordered by rules or index."""

    period: str
    cases: int
    positives: int
    auc: float | None
    k: int
    precision_rules: float | None
    precision_index: float | None


def evaluate(index: RiskIndex, cases: Sequence[Case], period: str, rule_score: Mapping[int, float]) -> RiskEvaluation:
    """Judged cases of ``period`` (later than the fit): AUC, and precision of the first half by rule score vs by index."""
    if period in index.fitted_on:
        raise RiskIndexError(f"評価する期間 {period} は当てはめに使った期間です。後の期間で評価してください。")
    from sklearn.metrics import roc_auc_score

    test = [c for c in cases if c.checked and c.period == period]
    y = [1 if c.needs_support else 0 for c in test]
    scores = [index.index(c.features) for c in test]
    auc = float(roc_auc_score(y, scores)) if 0 < sum(y) < len(y) else None
    k = max(1, len(test) // 2) if test else 0

    def top(order: list[float]) -> float | None:
        if not test:
            return None
        ranked = sorted(range(len(test)), key=lambda j: (-order[j], test[j].case_id))[:k]
        return sum(y[j] for j in ranked) / k

    return RiskEvaluation(period, len(test), sum(y), auc, k, top([rule_score.get(c.case_id, 0.0) for c in test]), top(scores))


@dataclass(frozen=True, slots=True)
class GroupCheck:
    """Where a group's children judged to need support sit in the index ranking, against the others'."""

    group: str
    label: str
    members: int
    positives: int
    mean_percentile_group: float | None
    mean_percentile_others: float | None

    @property
    def gap(self) -> float | None:
        """Others' mean percentile minus the group's (positive: the group ranks lower)."""
        if self.mean_percentile_group is None or self.mean_percentile_others is None:
            return None
        return self.mean_percentile_others - self.mean_percentile_group

    @property
    def verdict(self) -> str:
        """注意 / 問題なし / 判定できません, in staff's words."""
        if self.positives < FAIRNESS_MIN_POSITIVES or self.gap is None:
            return f"判定できません（支援が必要とされた該当者が {self.positives} 人で、{FAIRNESS_MIN_POSITIVES} 人未満）"
        if self.gap > FAIRNESS_GAP_POINTS:
            return f"注意: 支援が必要な子どもが平均 {self.gap:.1f} ポイント低く順位付けされています（データの空欄が不利に働いている可能性）"
        return f"問題なし（差 {self.gap:+.1f} ポイント、基準 {FAIRNESS_GAP_POINTS:g} ポイント）"


def percentiles(values: Sequence[float]) -> list[float]:
    """Each value's percentile rank, 0–100 (100 = highest; ties share their mean rank)."""
    n = len(values)
    if n == 0:
        return []
    if n == 1:
        return [100.0]
    order = sorted(range(n), key=lambda j: values[j])
    ranks = [0.0] * n
    j = 0
    while j < n:
        k = j
        while k + 1 < n and values[order[k + 1]] == values[order[j]]:
            k += 1
        for m in range(j, k + 1):
            ranks[order[m]] = (j + k) / 2
        j = k + 1
    return [100.0 * r / (n - 1) for r in ranks]


def group_check(index: RiskIndex, cases: Sequence[Case], period: str, group: str, label: str, member: Sequence[bool]) -> GroupCheck:
    """``member[j]`` says whether the j-th checked case of ``period`` (in ``cases`` order) belongs to the group."""
    test = [c for c in cases if c.checked and c.period == period]
    if len(member) != len(test):
        raise ValueError("member must give one answer per checked case of the period")
    pct = percentiles([index.index(c.features) for c in test])
    in_group = [p for p, c, m in zip(pct, test, member) if m and c.needs_support]
    others = [p for p, c, m in zip(pct, test, member) if not m and c.needs_support]
    mean = (lambda xs: sum(xs) / len(xs) if xs else None)
    return GroupCheck(group, label, sum(member), len(in_group), mean(in_group), mean(others))
