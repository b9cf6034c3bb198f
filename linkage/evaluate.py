"""Linkage quality against a known truth: pairwise precision, recall and F1.

A pair is two records of different sources; it is predicted when both sit in
one cluster and true when both belong to one person. Figures are given overall
and per source pair, as the PPRL literature reports them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Hashable, Iterable, Mapping


Record = tuple[str, str]  # (source, record_id)


@dataclass(frozen=True, slots=True)
class Quality:
    """Pair counts and the figures derived from them."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else 1.0

    @property
    def recall(self) -> float:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(groups: Iterable[Iterable[Record]]) -> set[tuple[Record, Record]]:
    out: set[tuple[Record, Record]] = set()
    for group in groups:
        members = sorted(set(group))
        for a, b in combinations(members, 2):
            if a[0] != b[0]:
                out.add((a, b))
    return out


def groups_from_labels(labels: Mapping[Record, Hashable]) -> list[list[Record]]:
    """Turn record -> cluster/person label into lists of records."""
    groups: dict[Hashable, list[Record]] = defaultdict(list)
    for rec, label in labels.items():
        groups[label].append(rec)
    return list(groups.values())


def pairwise_quality(
    predicted: Mapping[Record, Hashable], truth: Mapping[Record, Hashable]
) -> tuple[Quality, dict[tuple[str, str], Quality]]:
    """Overall and per-source-pair quality of ``predicted`` clusters against ``truth`` persons."""
    pred = _pairs(groups_from_labels(predicted))
    true = _pairs(groups_from_labels(truth))
    overall = Quality(len(pred & true), len(pred - true), len(true - pred))
    by_sources: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for pair in pred | true:
        key = (pair[0][0], pair[1][0])
        counts = by_sources[key]
        if pair in pred and pair in true:
            counts[0] += 1
        elif pair in pred:
            counts[1] += 1
        else:
            counts[2] += 1
    return overall, {k: Quality(*v) for k, v in sorted(by_sources.items())}
