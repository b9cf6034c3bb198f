"""Second-stage scoring: a Fellegi–Sunter model over per-field similarity levels.

Each comparison's similarity falls into a level; each level carries a weight
log2(m/u), where m is how often true matches land there (documented priors,
checked against measurement in the README) and u how often random pairs do
(estimated from the data of every run, so the weights fit the town at hand).
A missing field weighs nothing. The total weight is explainable field by
field, which is what the clerical review shows. One rule sits above the
weights, because Fellegi–Sunter assumes fields independent and siblings break
that assumption: two records whose given names disagree in every form both
carry are never a match (twins share everything else) — unless the pair is
*releasable* (:func:`guard_releasable`): only one form of the given name to
go on, and family name, birth date and address all corroborate. Such a pair
keeps its weight (the given-name disagreement counted against it), and the
solver still drops it when either record shows a twin pattern
(``linkage.match.twin_suspects``: two live pairs into one source).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from linkage.compare import COMPARISONS, DATE_FULL, PairSimilarities

#: Level boundaries (similarity at or above each bound moves one level up).
LEVEL_BOUNDS: dict[str, tuple[float, ...]] = {
    "name_family": (0.45, 0.7, 0.95),
    "name_given": (0.45, 0.7, 0.95),
    "kana_family": (0.45, 0.7, 0.95),
    "kana_given": (0.45, 0.7, 0.95),
    "demographic": (0.6, 0.97),  # then split by what both dates carry: see levels()
    "address": (0.6, 0.9),
}

#: Level names for people (clerical review), lowest level first.
LEVEL_LABELS: dict[str, tuple[str, ...]] = {
    "name_family": ("異なる", "一部一致", "類似", "一致"),
    "name_given": ("異なる", "一部一致", "類似", "一致"),
    "kana_family": ("異なる", "一部一致", "類似", "一致"),
    "kana_given": ("異なる", "一部一致", "類似", "一致"),
    "demographic": ("異なる", "一部異なる", "年または性別のみ一致", "年月まで一致", "一致"),
    "address": ("異なる", "一部一致", "一致"),
}

#: m-probabilities: P(level | same child). Priors from how departments hold
#: data (typos, kana variants, surname changes, moves), checked in README.
DEFAULT_M: dict[str, tuple[float, ...]] = {
    "name_family": (0.03, 0.04, 0.08, 0.85),
    "name_given": (0.01, 0.04, 0.08, 0.87),
    "kana_family": (0.03, 0.04, 0.08, 0.85),
    "kana_given": (0.01, 0.04, 0.08, 0.87),
    "demographic": (0.005, 0.03, 0.965, 0.965, 0.965),
    "address": (0.2, 0.15, 0.65),
}

#: u-probability priors, P(level | different children), measured on the
#: 50,000-children synthetic town (README, "Quality"). Each run's random pairs
#: refine them; the priors keep small pilots (a few hundred records, where a
#: random sample is full of true matches) from weighing agreement as nothing.
DEFAULT_U: dict[str, tuple[float, ...]] = {
    "name_family": (0.958, 0.0357, 2.5e-05, 0.00604),
    "name_given": (0.978, 0.0189, 2.5e-05, 0.00287),
    "kana_family": (0.9, 0.0922, 0.00212, 0.0057),
    "kana_given": (0.918, 0.0741, 0.00137, 0.00658),
    "demographic": (0.854, 0.12, 0.502, 0.0037, 3.5e-05),
    "address": (0.909, 0.0831, 0.00816),
}
#: Weight of the priors, in random pairs.
PRIOR_PAIRS = 2000.0

#: Highest weight of a pair that agrees on names only (inside the review band).
NAME_ONLY_MAX = 8.0

#: Given-name guard: a pair whose given names (kanji and kana, where both
#: sides have them) are all below this similarity is never a match.
GIVEN_NAME_GUARD = 0.45

_U_FLOOR = 1e-6


def _frequencies(levels_seen: np.ndarray, prior: np.ndarray) -> np.ndarray:
    counts = np.bincount(levels_seen.astype(np.int64), minlength=len(prior)).astype(float)
    # The prior acts as PRIOR_PAIRS pseudo-pairs: it keeps unseen levels finite
    # and small samples sensible.
    return np.maximum((counts + PRIOR_PAIRS * prior) / (counts.sum() + PRIOR_PAIRS), _U_FLOOR)


def levels(sims: PairSimilarities) -> np.ndarray:
    """Level per pair and comparison; -1 where the field is missing on either side."""
    out = np.full(sims.values.shape, -1, dtype=np.int8)
    for c, name in enumerate(COMPARISONS):
        v = sims.values[:, c]
        known = ~np.isnan(v)
        lv = np.searchsorted(np.asarray(LEVEL_BOUNDS[name]), np.where(known, v, 0.0), side="right")
        if name == "demographic":
            # Agreement is worth what both dates carry: year/sex only, year-month, full date.
            lv = np.where(lv == 2, 2 + sims.date_detail, lv)
        out[:, c] = np.where(known, lv, -1)
    return out


@dataclass(slots=True)
class ScoringModel:
    """Fellegi–Sunter weights: ``m`` priors and ``u`` estimated from random pairs."""

    m: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(DEFAULT_M))
    u: dict[str, np.ndarray] = field(default_factory=dict)

    def fit_u(self, random_pairs: PairSimilarities) -> "ScoringModel":
        """Estimate u-probabilities from pairs drawn at random (almost all non-matches)."""
        lv = levels(random_pairs)
        for c, name in enumerate(COMPARISONS):
            prior = np.asarray(DEFAULT_U[name])
            col = lv[:, c]
            known = col >= 0
            self.u[name] = _frequencies(col[known], prior)
            if name == "demographic":
                # Agreement on a year-month (or on the sex alone) is far more common
                # among strangers than agreement on a full date: each agreement
                # level's u is measured among the pairs whose dates carry as much.
                detail = random_pairs.date_detail[known]
                for d in range(3):
                    within = detail == d
                    conditional = prior.copy()
                    conditional[2 + d] = prior[2 + d] / max(prior[2 + d] + prior[0] + prior[1], _U_FLOOR)
                    self.u[name][2 + d] = _frequencies(col[known][within], conditional)[2 + d]
        return self

    def weight_table(self) -> dict[str, np.ndarray]:
        """log2(m/u) per comparison and level."""
        if not self.u:
            raise ValueError("the model has no u-probabilities yet: call fit_u first")
        table = {}
        for name in COMPARISONS:
            w = np.log2(np.asarray(self.m[name]) / self.u[name])
            # Closer agreement never weighs less: a rare near-miss must not
            # outweigh an exact match just because strangers seldom land there.
            top = 2 if name == "demographic" else len(w) - 1
            for level in range(top - 1, -1, -1):
                w[level] = min(w[level], w[level + 1:].min() if name != "demographic" else w[level + 1 :].min())
            table[name] = w
        return table

    def contributions(self, sims: PairSimilarities) -> np.ndarray:
        """Weight each comparison adds to each pair (0 where missing)."""
        table = self.weight_table()
        lv = levels(sims)
        out = np.zeros(lv.shape, dtype=float)
        for c, name in enumerate(COMPARISONS):
            col = lv[:, c]
            known = col >= 0
            out[known, c] = table[name][col[known]]
        return out

    def score(self, sims: PairSimilarities) -> np.ndarray:
        """Total match weight per pair; -inf where the given-name guard rejects the pair.

        A pair with nothing but names in common (no birth year-month, no address
        that agrees) is capped at NAME_ONLY_MAX: namesakes are common, so such a
        pair goes to clerical review at most. So is a pair whose full birth
        dates contradict (:func:`dates_contradict`) unless its address agrees
        fully: a namesake born years apart in the same district is another child. A pair the given-name guard
        rejects weighs -inf, unless :func:`guard_releasable`.
        """
        total = self.contributions(sims).sum(axis=1)
        total = np.where(capped(sims), np.minimum(total, NAME_ONLY_MAX), total)
        return np.where(given_names_disagree(sims) & ~guard_releasable(sims), -np.inf, total)


def names_only(sims: PairSimilarities) -> np.ndarray:
    """True where neither the birth date (year-month at least) nor the address corroborates the names."""
    lv = levels(sims)
    date_agrees = lv[:, COMPARISONS.index("demographic")] >= 3
    address_agrees = lv[:, COMPARISONS.index("address")] >= 1
    return ~date_agrees & ~address_agrees


def capped(sims: PairSimilarities) -> np.ndarray:
    """True where the pair weighs NAME_ONLY_MAX at most: names only, or full dates that contradict and no fully agreeing address."""
    return names_only(sims) | (dates_contradict(sims) & ~address_agrees_fully(sims))


def dates_contradict(sims: PairSimilarities) -> np.ndarray:
    """True where both records carry a full birth date and the dates are at the lowest level ("異なる")."""
    lv = levels(sims)
    return (lv[:, COMPARISONS.index("demographic")] == 0) & (sims.date_detail == DATE_FULL)


def address_agrees_fully(sims: PairSimilarities) -> np.ndarray:
    """True where both records carry an address and it is at the highest level ("一致")."""
    lv = levels(sims)
    return lv[:, COMPARISONS.index("address")] == len(LEVEL_BOUNDS["address"])


def given_names_disagree(sims: PairSimilarities) -> np.ndarray:
    """True where every given-name form both records carry disagrees (twins, siblings)."""
    kanji = sims.values[:, COMPARISONS.index("name_given")]
    kana = sims.values[:, COMPARISONS.index("kana_given")]
    known_any = ~np.isnan(kanji) | ~np.isnan(kana)
    kanji_low = np.isnan(kanji) | (kanji < GIVEN_NAME_GUARD)
    kana_low = np.isnan(kana) | (kana < GIVEN_NAME_GUARD)
    return known_any & kanji_low & kana_low


def guard_releasable(sims: PairSimilarities) -> np.ndarray:
    """True where the given-name guard may yield: one given-name form only, everything else corroborating.

    Twins and siblings differ in their given names in writing *and* in
    reading, so a pair where both records carry both forms and both disagree
    stays rejected whatever else agrees. With a single form to compare (a
    reading-only NPO list, a register without kana, FEBRL), a disagreeing
    given name is as often a replaced or mistyped one, so it is weighed
    like any other field, but only when the family name is not unlike, the
    birth date agrees as far as both records carry it (the sex too, which
    the date segment holds: twins of different sex never qualify) and the
    address does not disagree. Same-sex twins in that position are caught
    by the solver, which drops a released pair when either record has two
    live pairs into one source (``linkage.match.twin_suspects``).
    """
    kanji = sims.values[:, COMPARISONS.index("name_given")]
    kana = sims.values[:, COMPARISONS.index("kana_given")]
    one_form = np.isnan(kanji) ^ np.isnan(kana)
    lv = levels(sims)
    family = np.maximum(lv[:, COMPARISONS.index("name_family")], lv[:, COMPARISONS.index("kana_family")])
    date_agrees = lv[:, COMPARISONS.index("demographic")] >= 3
    address = lv[:, COMPARISONS.index("address")]
    return given_names_disagree(sims) & one_form & (family >= 1) & date_agrees & (address != 0)
