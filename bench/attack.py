"""`tsunagu bench attack`: a curious gateway attacks what it stores, and we count what it recovers.

Setting (docs/privacy.md): the victim is the resident register of a generated
town, as the gateway holds it — encodings, presence flags, blocking tokens,
the stored row order and the sealed identities' sizes — with no linkage
secret. The attacker's public knowledge is a *different* generated town
(another seed): its names with their frequencies, its birth dates, and its
records in plaintext, which it may encode under a key of its own with the
same (public) schema. Optionally it knows the exact birth dates of a few
victims.

Each attack assigns some records a value; a record counts as *recovered*
when the value is its true one. ``recovered`` is the share of all victim
records, ``precision`` the share of guesses that were right. Where a blind
guess would already be right sometimes (order and length attacks), the
figure is the lift over the same guesses made on a random order or without
the sizes.

Attacks, after the literature:

* frequency alignment (Kuzu et al. 2011): identical encoding units (a
  segment, a view, the whole row) grouped; group sizes ranked against the
  public frequencies of a field's values;
* bigram atoms and pattern mining (Kroll & Steinmetzer 2015; Christen et al.
  2017/2018): bit positions that (almost) always occur together are a q-gram's
  atom; records are decoded by matching their atom sets to public names
  under an atom→q-gram map learnt from the frequency-aligned classes;
* pattern mining for units that repeat (:func:`pattern_attack`): closed
  bigram atoms of the distinct patterns of segments sharing a key, mapped to
  bigrams by their exact counts against a name list covering the town, and
  patterns decoded by a likelihood from the known bigram bits plus matching
  of the residual overlap graphs;
* diffusion inversion for diffused schemas (:func:`invert_diffusion`): the XOR
  views are linear over GF(2), so intersecting their column spans isolates each
  segment, and decomposing a view's outputs gives back the segment's filter
  columns; the recovered name segments are then decoded by pattern mining and
  the demographic segment read as exact (birth date, sex) classes;
* similarity-graph matching (Vidanage et al. 2019/2020, simplified): node
  features (degrees at several similarity thresholds) of the victim's graph
  matched to those of the attacker's own encoding of its public town;
* birth dates from blocking tokens, with and without known birth dates, and
  from the encodings of pairs in one block (the project's own comparison run
  by the attacker);
* order: names assigned by quantile of the stored order, as if sorted;
* length: sealed identity sizes against the identity sizes of public records.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from agents.core.package import Spooled, parts, shuffled_lines
from linkage.compare import DATE_FULL, COMPARISONS, compare_pairs
from linkage.encode import Encodings, encode_sources
from linkage.normalise import normalise_record
from linkage.record import CanonicalRecord, IDENTITY_COLUMNS
from linkage.schema import EncodingSchema, load_schema, parse_schema

VICTIM_SECRET = b"victim municipality linkage secret (bench only)"
ATTACKER_SECRET = b"the attacker's own key for its public town (bench)"
FIELDS = ("family", "given", "kana_family", "kana_given", "birth_date")


@dataclass
class Finding:
    """One attack's result on one field."""

    attack: str
    field: str
    recovered: float
    precision: float
    note: str = ""
    guesses: dict = field(default_factory=dict, repr=False)


@dataclass
class AttackReport:
    """Every finding for one encoding variant."""

    variant: str
    records: int
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    def worst(self, fields: tuple[str, ...]) -> float:
        """Highest recovered share over attacks, for the given fields."""
        return max((f.recovered for f in self.findings if f.field in fields), default=0.0)


@dataclass
class _Side:
    """One town's resident register: normalised truth and (for the victim) what the gateway stores."""

    family: list[str]
    given: list[str]
    kana_family: list[str]
    kana_given: list[str]
    dates: list[tuple | None]
    person: list[str]
    canonical: list[CanonicalRecord]
    encodings: Encodings | None = None


def _side(records: list[CanonicalRecord], secret: bytes, schema: EncodingSchema) -> _Side:
    enc, index, _errors = encode_sources([records], secret, "attack", schema=schema)[0]
    kept = [records[i] for i in index]
    norm = [normalise_record(r) for r in kept]
    dates = [(n.birth_year, n.birth_month, n.birth_day) if None not in (n.birth_year, n.birth_month, n.birth_day) else None for n in norm]
    return _Side(
        [n.family_name or "" for n in norm],
        [n.given_name or "" for n in norm],
        [n.family_kana or "" for n in norm],
        [n.given_kana or "" for n in norm],
        dates,
        [r.record_id for r in kept],
        kept,
        enc,
    )


def _score(attack: str, fld: str, guesses: dict[int, str], truth: list, n: int, note: str = "") -> Finding:
    right = sum(1 for i, g in guesses.items() if truth[i] == g and g not in ("", None))
    return Finding(attack, fld, right / n if n else 0.0, right / len(guesses) if guesses else 0.0, note, guesses)


def _units(schema: EncodingSchema) -> dict[str, slice]:
    """The parts of an encoding row a frequency or atom attacker treats as one unit."""
    if schema.diffused:
        units = {v.name: v.byte_slice for v in schema.views}
    else:
        units = {s.name: s.byte_slice for s in schema.segments}
    units["whole row"] = slice(0, schema.total_bytes)
    return units


def frequency_attack(victim: _Side, public: _Side, schema: EncodingSchema) -> list[Finding]:
    """Identical units grouped, group sizes aligned by rank with public value frequencies (best unit per field)."""
    bits = victim.encodings.bits
    n = len(bits)
    out = []
    for fld in ("family", "given", "kana_family", "kana_given"):
        ranked = [v for v, _ in Counter(getattr(public, fld)).most_common() if v.strip()]
        truth = getattr(victim, fld)
        best = Finding("frequency alignment", fld, 0.0, 0.0, "no identical units")
        for unit, sl in _units(schema).items():
            rows = [bits[i, sl].tobytes() for i in range(n)]
            groups = [g for g in Counter(rows).most_common() if g[1] >= 2]
            if not groups:
                continue
            members = defaultdict(list)
            for i, r in enumerate(rows):
                members[r].append(i)
            guesses = {}
            for rank, (row, _size) in enumerate(groups[: len(ranked)]):
                if not any(bits[members[row][0], sl]):
                    continue  # the empty unit: a missing field, not a value
                for i in members[row]:
                    guesses[i] = ranked[rank]
            f = _score("frequency alignment", fld, guesses, truth, n, f"unit {unit}, {len(groups)} groups of ≥ 2")
            if f.recovered > best.recovered:
                best = f
        out.append(best)
    return out


def _atoms(x: np.ndarray, min_support: int, pairs: int = 2000) -> list[np.ndarray]:
    """Frequent bit patterns: the bits set in (nearly) every record that has a frequently co-occurring pair.

    Two bits of one frequent q-gram co-occur in every record holding it; the
    records holding both have that q-gram's other bits set too (Christen et
    al.'s pattern mining, seeded by pairs). A pattern of at least 4 bits set
    in ≥ 95 % of those records, and jointly in ≥ ``min_support`` records, is an atom.
    """
    xf = x.astype(np.float32)
    freq = xf.sum(axis=0)
    co = xf.T @ xf
    expected = np.outer(freq, freq) / max(len(x), 1)
    np.fill_diagonal(co, 0)
    iu = np.triu_indices(x.shape[1], 1)
    # Excess co-occurrence over independent bits: what a shared q-gram adds.
    score = (co - expected)[iu]
    atoms: list[np.ndarray] = []
    covered: set[tuple[int, int]] = set()
    misses = 0
    for k in np.argsort(-score)[:pairs]:
        i, j = int(iu[0][k]), int(iu[1][k])
        if score[k] < min_support or (i, j) in covered:
            continue
        if misses >= 100:  # a hundred seeds in a row without a pattern: there are none left
            break
        misses += 1
        rows = x[:, i].astype(bool) & x[:, j].astype(bool)
        pattern = np.flatnonzero(x[rows].mean(axis=0) >= 0.9)
        if len(pattern) < 4:
            continue
        support = int(x[:, pattern].all(axis=1).sum())
        if support < min_support:
            continue
        atoms.append(pattern)
        misses = 0
        covered.update((int(a), int(b)) for a in pattern for b in pattern if a < b)
    # The same atom found from several seeds counts once.
    unique = {tuple(a.tolist()): a for a in atoms}
    return list(unique.values())


def _bigrams(value: str) -> set[str]:
    word = f" {value} "
    return {word[i : i + 2] for i in range(len(word) - 1)}


def atom_attack(victim: _Side, public: _Side, schema: EncodingSchema, max_bits: int = 768, mining_records: int = 6000) -> list[Finding]:
    """Pattern mining: atoms per unit, an atom→bigram map voted from frequency-aligned atom sets, then decoding."""
    bits = victim.encodings.bits
    n = len(bits)
    out = []
    units = {k: v for k, v in _units(schema).items() if k != "whole row"}
    rng = np.random.default_rng(0)
    found: dict[str, tuple] = {}
    mine = np.sort(rng.choice(n, min(n, mining_records), replace=False))
    for unit, sl in units.items():
        x = np.unpackbits(bits[:, sl], axis=1)
        if x.shape[1] > max_bits:  # a random sample of positions: atoms would show in it too
            x = x[:, np.sort(rng.choice(x.shape[1], max_bits, replace=False))]
        # Patterns are mined on a sample of records, then looked for in all of them.
        atoms = _atoms(x[mine], min_support=max(5, len(mine) // 1000))
        if atoms:
            has = np.column_stack([x[:, a].all(axis=1) for a in atoms])
            found[unit] = (atoms, [frozenset(np.flatnonzero(row).tolist()) for row in has])
    for fld in ("family", "given", "kana_family", "kana_given"):
        public_values = Counter(v for v in getattr(public, fld) if v.strip())
        truth = getattr(victim, fld)
        best = Finding("bigram atoms", fld, 0.0, 0.0, f"no atoms in any unit ({len(units)} units)")
        by_grams = {frozenset(_bigrams(v)): v for v in public_values}
        for unit, (atoms, sets) in found.items():
            # First map: atoms ranked by support against the field's bigrams ranked by public frequency.
            support = Counter(a for st in sets for a in st)
            gram_freq = Counter(g for v in getattr(public, fld) if v.strip() for g in _bigrams(v))
            votes: dict[int, Counter] = defaultdict(Counter)
            for (a, _), (g, _) in zip(support.most_common(), gram_freq.most_common()):
                votes[a][g] += 1
            guesses: dict[int, str] = {}
            for _round in range(3):  # refine the map with what it decodes
                mapping = {a: c.most_common(1)[0][0] for a, c in votes.items()}
                image = set(mapping.values())
                # A public value is consistent with a record when exactly its bigrams that have an atom are present.
                best_for: dict[frozenset, tuple[int, str]] = {}
                for v, count in public_values.items():
                    key = frozenset(_bigrams(v) & image)
                    if key and count > best_for.get(key, (0, ""))[0]:
                        best_for[key] = (count, v)
                guesses = {}
                for i, st in enumerate(sets):
                    if st and all(a in mapping for a in st):
                        hit = best_for.get(frozenset(mapping[a] for a in st))
                        if hit:
                            guesses[i] = hit[1]
                votes = defaultdict(Counter)
                for i, v in guesses.items():
                    for a in sets[i]:
                        votes[a].update(_bigrams(v))
                if not votes:
                    break
            f = _score("bigram atoms", fld, guesses, truth, n, f"unit {unit}, {len(atoms)} atoms")
            if f.recovered > best.recovered or (best.recovered == 0 and "no atoms" in best.note):
                best = f
        out.append(best)
    return out


def _closed_atoms(x: np.ndarray, k: int) -> list[np.ndarray]:
    """Bigram atoms of deterministic units: the bit sets shared by every pattern that holds one bigram.

    ``x`` holds distinct patterns (rows, bool). Two patterns whose names share a
    bigram share its ``k`` bits on top of what two random patterns share; the
    patterns holding at least 80 % of such an intersection are (almost exactly)
    those holding the bigram, and the bits all of them hold are its atom (closed
    frequent itemsets, Christen et al. 2017/2018, seeded by pairs). Atoms are
    told apart by the set of patterns holding them; a set of bits that contains
    another atom (a union of two, or one with stray bits) is dropped.
    """
    u, length = x.shape
    if u < 3:
        return []
    xf = x.astype(np.float32)
    overlap = xf @ xf.T
    size = xf.sum(axis=1)
    excess = overlap - np.outer(size, size) / length
    np.fill_diagonal(excess, -1)
    ii, jj = np.nonzero(np.triu(excess >= 0.6 * k, 1))
    if len(ii) > 100_000:  # the strongest overlaps: enough pairs per bigram survive
        keep = np.argsort(-excess[ii, jj])[:100_000]
        ii, jj = ii[keep], jj[keep]
    inter = np.unique(x[ii] & x[jj], axis=0)
    supports: dict[bytes, np.ndarray] = {}
    for start in range(0, len(inter), 2048):
        cand = inter[start : start + 2048].astype(np.float32)
        hold = (xf @ cand.T) >= np.ceil(0.8 * cand.sum(axis=1))[None, :]  # u × c
        for c in np.flatnonzero(hold.sum(axis=0) >= 3):
            supports.setdefault(np.packbits(hold[:, c]).tobytes(), hold[:, c])
    if not supports:
        return []
    cores = {}
    for hold in supports.values():
        core = x[hold].mean(axis=0) >= 0.85  # a few dense patterns (long latin names) may hold 80 % by chance
        if core.sum() >= max(3, int(0.6 * k)):
            cores[np.packbits(core).tobytes()] = core
    if not cores:
        return []
    mat = np.array(list(cores.values()))
    mf = mat.astype(np.float32)
    contains = (mf @ mf.T) >= mf.sum(axis=1)[None, :]  # contains[a, b]: core a ⊇ core b
    np.fill_diagonal(contains, False)
    minimal = ~contains.any(axis=1)
    return [np.flatnonzero(r) for r in mat[minimal]]


def _bits_per_token(schema: EncodingSchema, segment: str) -> int:
    """The (public) number of bits each bigram sets in a segment, from the schema document."""
    for raw in schema.document["segments"]:
        if raw["name"] == segment:
            return int(raw["clkhash"]["features"][0]["hashing"]["strategy"].get("bitsPerToken", 12))
    return 12


INVERTED_SEGMENTS = ("name_family", "name_given", "kana_family", "kana_given", "demographic")
CROSS_ROUNDS = 2  # kanji ↔ kana re-decodings
PRIOR_WEIGHT = 1.0  # the public frequency prior, per unit of |log count ratio|


def _sinkhorn(z: np.ndarray, rounds: int = 20) -> np.ndarray:
    """A soft one-to-one assignment from scores (rows and columns normalised in turn)."""
    q = np.exp(z - z.max(axis=1, keepdims=True))
    for _ in range(rounds):
        q /= q.sum(axis=1, keepdims=True) + 1e-30
        q /= q.sum(axis=0, keepdims=True) + 1e-30
    return q


def _map_atoms(has: np.ndarray, name_grams: np.ndarray, min_holders: int = 3, weight: float = 2.0, rounds: int = 20) -> dict[int, int]:
    """Atoms to bigrams by matching two weighted graphs whose weights agree exactly (Kroll & Steinmetzer 2015).

    ``has`` is pattern × atom, ``name_grams`` name × bigram. When the name list
    covers the town, the patterns holding an atom are as many as the listed
    names holding its bigram, and two atoms share as many patterns as their
    bigrams share names (measured at 4,000 children: 113 of 118 counts and
    6,902 of 6,903 pair counts equal). Starting from the counts, each atom's
    soft assignment is re-weighted by how many of its co-occurrence counts
    (1, 2, 3, ≥ 4) agree with a candidate bigram's under the assignment of the
    others (a soft Weisfeiler–Lehman refinement, Sinkhorn-normalised), then
    made one-to-one (Hungarian). An atom whose count is off by more than one
    from its bigram's is dropped: a chance pattern, not a bigram.
    """
    from scipy.optimize import linear_sum_assignment

    hv = has.astype(np.float32)
    support, holders = hv.sum(axis=0), name_grams.sum(axis=0)
    cols = np.flatnonzero(holders >= min_holders)
    if not len(cols) or not hv.shape[1]:
        return {}
    cv = hv.T @ hv
    cp = (name_grams.T @ name_grams)[np.ix_(cols, cols)]
    np.fill_diagonal(cv, 0)
    np.fill_diagonal(cp, 0)
    bins = [((cv == c) if c < 4 else (cv >= 4), (cp == c) if c < 4 else (cp >= 4)) for c in range(1, 5)]
    bins = [(a.astype(np.float32), b.astype(np.float32)) for a, b in bins]
    prior = -2.0 * np.abs(support[:, None] - holders[cols][None, :])
    q = _sinkhorn(prior)
    score = prior
    for _ in range(rounds):
        score = prior + weight * sum(a @ q @ b for a, b in bins)
        q = _sinkhorn(score, 10)
    r, c = linear_sum_assignment(-score)
    return {int(a): int(cols[j]) for a, j in zip(r, c) if abs(support[a] - holders[cols[j]]) <= 1}


def _decode_patterns(x: np.ndarray, counts: np.ndarray, name_grams: np.ndarray, prior: np.ndarray, sets: np.ndarray,
                     known: np.ndarray, k: int, *, extra: np.ndarray | None = None, weight: float = 4.0,
                     threshold: float = 5.0, rounds: int = 2) -> dict[int, int]:
    """Distinct patterns to listed names: a likelihood from known bigram bits, and the residual overlap graphs.

    ``x`` is pattern × bit, ``name_grams`` name × bigram, ``sets`` the bits of
    each bigram where ``known``. A pattern is the OR of its name's bigrams'
    bits: a name's known bits must all be set (else ε per missing bit), and every
    other bit is set with the chance that the name's unknown bigrams set it. Two
    patterns whose bits outside known atoms overlap by ``threshold`` more than
    chance most likely share an unknown bigram (pairs sharing one: median excess
    6.7; pairs sharing none: 99th percentile 5.0, at 4,000 children); the
    pattern-overlap graph is matched to the names' shared-unknown-bigram graph
    by mean-field iterations over a Sinkhorn-normalised soft assignment, and the
    assignment made one-to-one (Hungarian). The bigram bits are then re-read
    from the decoded patterns (bits all, or 80 % from five on, of the patterns
    of names holding the bigram share) and the decoding repeated. ``extra``
    (pattern × name) is added to the likelihood: what other fields say.
    """
    from scipy import sparse
    from scipy.optimize import linear_sum_assignment

    length = x.shape[1]
    eps = 0.01
    weights = x.sum(axis=1)[:, None]
    log_counts = np.log(counts.astype(np.float64))[:, None]
    assign: dict[int, int] = {}
    for _round in range(rounds):
        required = (name_grams[:, known] @ sets[known]) > 0  # name × bit
        m = required.sum(axis=1)[None, :]
        unknown = name_grams[:, ~known].sum(axis=1)
        q = np.clip(1 - (1 - 1 / length) ** (k * unknown), 0.003, 0.99)[None, :]
        hit = x @ required.T.astype(np.float32)  # pattern × name: required bits present
        ll = (m - hit) * np.log(eps) + (weights - hit) * np.log(q) + (length - m - weights + hit) * np.log(1 - q)
        ll -= PRIOR_WEIGHT * np.abs(log_counts - np.log(prior + 0.5)[None, :])
        if extra is not None:
            ll += extra
        # Residual graphs: what the known atoms do not explain.
        ks = sets[known]
        inside = (x @ ks.T) >= ks.sum(axis=1)[None, :] - 0.5
        residual = x * ((inside.astype(np.float32) @ ks) == 0)
        rw = residual.sum(axis=1)
        excess = residual @ residual.T - np.outer(rw, rw) / length
        np.fill_diagonal(excess, 0)
        graph_p = sparse.csr_matrix((excess >= threshold).astype(np.float32))
        nu = sparse.csr_matrix(name_grams[:, ~known])
        graph_n = (nu @ nu.T).tocsr()
        graph_n.data[:] = 1
        graph_n.setdiag(0)
        graph_n.eliminate_zeros()
        score = ll
        for _ in range(15):
            soft = _sinkhorn(score)
            score = ll + weight * np.asarray((graph_n @ (graph_p @ soft).T).T)
        r, c = linear_sum_assignment(-score)
        assign = {int(i): int(j) for i, j in zip(r, c)}
        holders: dict[int, list[int]] = defaultdict(list)
        for i, j in assign.items():
            for g in np.flatnonzero(name_grams[j]):
                holders[int(g)].append(i)
        sets = np.zeros_like(sets)
        known = np.zeros(len(known), bool)
        for g, rows in holders.items():
            if len(rows) >= 2:
                s = x[rows].mean(axis=0) >= (1.0 if len(rows) < 5 else 0.8)
                if s.sum() >= 4:
                    sets[g], known[g] = s, True
    return assign


def _cross_field(names: list[str], other: dict[int, str], counts: np.ndarray,
                 inverse: np.ndarray, rows: np.ndarray, pairs: set[tuple[str, str]], weight: float = 3.0) -> np.ndarray:
    """Pattern × name bonus: the share of a pattern's records whose other-script guess is a public reading of the name.

    ``other`` maps a pooled record position to its guess in the other script
    (kanji ↔ kana); ``pairs`` are the (kanji, kana) pairs of the public town.
    """
    where = {int(r): i for i, r in enumerate(rows)}
    by_other: dict[str, list[int]] = defaultdict(list)
    for a, b in pairs:
        by_other[b].append(a)
    col = {v: j for j, v in enumerate(names)}
    out = np.zeros((len(rows), len(names)))
    for pos, guess in other.items():
        u = where.get(int(inverse[pos]))
        if u is None:
            continue
        for v in by_other.get(guess, ()):
            if v in col:
                out[u, col[v]] += 1
    return weight * out / counts[:, None]


def pattern_attack(victim: _Side, public: _Side, schema: EncodingSchema,
                   recovered: dict[str, np.ndarray] | None = None) -> list[Finding]:
    """Bigram-atom decoding of units that repeat (Kroll & Steinmetzer 2015; Christen et al. 2017/2018).

    Per key group (segments sharing a key share atoms: family and given name),
    atoms are mined as closed bit sets of the distinct patterns that are not
    dense (:func:`_closed_atoms`; a pattern with more than 40 % of its bits set,
    a long latin name, holds most intersections by chance; mined apart, the
    dense ones gave 185 atoms at 20,000 children of which 27 were one bigram's,
    and cost 8.9 points of family names); mapped to bigrams by their exact
    counts (:func:`_map_atoms`); and patterns decoded against the attacker's name list
    (:func:`_decode_patterns`). The list is the victim town's names for the
    group's fields, without frequencies (the issue's attacker, whose list
    covers every name in the town); the public town's frequencies are a weak
    prior. Then the kanji and kana groups are decoded again, each with the
    other's guesses for the same records read through the public town's
    (name, reading) pairs (:func:`_cross_field`). Units that do not repeat
    (record-level or diffused encodings) are left to :func:`atom_attack`.
    """
    bits = victim.encodings.bits
    n = len(bits)
    fields_of = {"name_family": "family", "name_given": "given", "kana_family": "kana_family", "kana_given": "kana_given"}
    # Per key group, each segment's bits for every record: read from the row, or recovered from the views.
    groups: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)
    attack = "pattern mining (atoms + decoding)"
    cross: list[tuple[str, str]] = []
    if recovered is not None:
        attack = "diffusion inversion + pattern mining"
        for name, cols in recovered.items():
            if name in fields_of:
                groups[name].append((name, cols))
        cross = [("name_family", "kana_family"), ("name_given", "kana_given")]
    elif not schema.diffused:
        for seg in schema.segments:
            if seg.name in fields_of:
                groups[seg.key_group].append((seg.name, np.unpackbits(bits[:, seg.byte_slice], axis=1).astype(bool)))
        cross = [("name_part", "kana_part")]
    prepared: dict[str, dict] = {}
    for group, segs in groups.items():
        k = _bits_per_token(schema, segs[0][0])
        # Distinct patterns pooled over the group's segments (the same bigram sets the same bits in each).
        stacked = np.vstack([cols for _, cols in segs])
        pats, inverse, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        nonempty = pats.any(axis=1)
        if len(pats) > 0.5 * len(stacked):  # no repetition: the unit is not deterministic per value
            continue
        length = pats.shape[1]
        dense = pats.sum(axis=1) > 0.4 * length
        atoms = _closed_atoms(pats[nonempty & ~dense], k)
        if not atoms:
            continue
        rows = np.flatnonzero(nonempty)
        x = pats[rows].astype(np.float32)
        amat = np.zeros((len(atoms), length), np.float32)
        for a, at in enumerate(atoms):
            amat[a, at] = 1
        has = (x @ amat.T) >= amat.sum(axis=1)[None, :]  # pattern × atom
        flds = [fields_of[name] for name, _ in segs]
        names = sorted({v for fld in flds for v in getattr(victim, fld) if v.strip()})
        public_counts = Counter(v for fld in flds for v in getattr(public, fld) if v.strip())
        scale = n / max(len(public.family), 1)
        prior = np.array([public_counts.get(v, 0) * scale for v in names])
        grams = sorted({g for v in names for g in _bigrams(v)})
        col = {g: i for i, g in enumerate(grams)}
        name_grams = np.zeros((len(names), len(grams)), np.float32)
        for j, v in enumerate(names):
            name_grams[j, [col[g] for g in _bigrams(v)]] = 1
        sets = np.zeros((len(grams), length), np.float32)
        known = np.zeros(len(grams), bool)
        for a, g in _map_atoms(has, name_grams).items():
            sets[g], known[g] = amat[a], True
        # A pattern seen in the family segment is a family name: the attacker's lists say which names are which.
        where = np.full(len(pats), -1)
        where[rows] = np.arange(len(rows))
        occurs = np.zeros((len(rows), len(segs)), np.float32)
        for seg_no in range(len(segs)):
            u = where[inverse[seg_no * n : (seg_no + 1) * n]]
            occurs[u[u >= 0], seg_no] = 1
        listed = {fld: set(getattr(victim, fld)) for fld in flds}
        absent = np.array([[v not in listed[fld] for fld in flds] for v in names], np.float32)
        fields = -30.0 * ((occurs @ absent.T) > 0)
        prepared[group] = dict(segs=segs, k=k, inverse=inverse, rows=rows, x=x, counts=counts[rows], names=names,
                               name_grams=name_grams, prior=prior, sets=sets, known=known, atoms=len(atoms), fields=fields)

    def decode(group: str, extra: np.ndarray | None = None) -> dict[int, str]:
        g = prepared[group]
        extra = g["fields"] if extra is None else g["fields"] + extra
        assign = _decode_patterns(g["x"], g["counts"], g["name_grams"], g["prior"], g["sets"], g["known"], g["k"], extra=extra)
        decoded = {int(g["rows"][i]): j for i, j in assign.items()}
        inverse = g["inverse"]
        return {pos: g["names"][decoded[int(u)]] for pos, u in enumerate(inverse) if int(u) in decoded}

    guesses = {group: decode(group) for group in prepared}
    pairs = {(a, b) for fa, fb in (("family", "kana_family"), ("given", "kana_given"))
             for a, b in zip(getattr(public, fa), getattr(public, fb)) if a.strip() and b.strip()}
    for kanji, kana in cross:
        if kanji not in prepared or kana not in prepared:
            continue
        gk, gr = prepared[kanji], prepared[kana]
        for _ in range(CROSS_ROUNDS):  # each script decoded again with the other's latest guesses
            guesses[kanji] = decode(kanji, _cross_field(gk["names"], guesses[kana], gk["counts"], gk["inverse"],
                                                        gk["rows"], pairs))
            guesses[kana] = decode(kana, _cross_field(gr["names"], guesses[kanji], gr["counts"], gr["inverse"],
                                                      gr["rows"], {(b, a) for a, b in pairs}))
    results: dict[str, Finding] = {}
    for group, g in prepared.items():
        for seg_no, (name, _) in enumerate(g["segs"]):
            fld = fields_of[name]
            offset = seg_no * n
            found = {i: guesses[group][offset + i] for i in range(n) if offset + i in guesses[group]}
            results[fld] = _score(attack, fld, found, getattr(victim, fld), n,
                                  f"key group {group}: {g['atoms']} atoms, {int(g['known'].sum())} mapped, "
                                  f"{len(g['rows'])} patterns")
    return [results[f] for f in ("family", "given", "kana_family", "kana_given") if f in results]


def _degrees(enc: Encodings, sl: slice, thresholds: tuple[float, ...]) -> np.ndarray:
    from anonlink.similarities import dice_coefficient_accelerated
    from bitarray import bitarray

    rows = []
    for row in np.ascontiguousarray(enc.bits[:, sl]):
        ba = bitarray(endian="big")
        ba.frombytes(row.tobytes())
        rows.append(ba)
    sims, (i0, i1) = dice_coefficient_accelerated([rows, rows], min(thresholds))
    s = np.frombuffer(sims, dtype=np.float64)
    a, b = np.frombuffer(i0, dtype=np.uint32), np.frombuffer(i1, dtype=np.uint32)
    keep = a != b
    feats = np.zeros((len(rows), len(thresholds)))
    for k, t in enumerate(thresholds):
        sel = keep & (s >= t)
        feats[:, k] = np.bincount(a[sel], minlength=len(rows))
    return feats


def graph_attack(victim: _Side, public: _Side, schema: EncodingSchema) -> list[Finding]:
    """Similarity-graph node features of the victim matched to the attacker's own encoding of its public town."""
    unit = "all" if schema.diffused else "name_family"
    sl = (schema.view(unit) if schema.diffused else schema.segment(unit)).byte_slice
    thresholds = (0.75, 0.8, 0.85, 0.9, 0.95) if schema.diffused else (0.7, 0.8, 0.9, 0.95, 0.99)
    fv, fp = _degrees(victim.encodings, sl, thresholds), _degrees(public.encodings, sl, thresholds)
    # Nearest public node by feature vector (log degrees); ties go to the first, as a greedy attacker does.
    lv, lp = np.log1p(fv), np.log1p(fp)
    informative = fv.sum(axis=1) > 0
    order = np.lexsort(lp.T[::-1])
    keys_p = lp[order]
    guesses_idx = {}
    for i in np.flatnonzero(informative):
        j = int(np.argmin(((keys_p - lv[i]) ** 2).sum(axis=1)))
        guesses_idx[int(i)] = int(order[j])
    out = []
    for fld in ("family", "given", "kana_family", "kana_given"):
        pv, tv = getattr(public, fld), getattr(victim, fld)
        out.append(_score("similarity graph", fld, {i: pv[j] for i, j in guesses_idx.items()}, tv, len(tv), f"unit {unit}"))
    return out


_DATE_PARTS = {"YM": (0, 1), "MD": (1, 2), "YD": (0, 2), "Y": (0,), "Y+MD": (0, 1, 2)}


def _components(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Class of each record: connected components of the graph whose edges are the records' token pairs (a, b)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ua, ia = np.unique(a, return_inverse=True)
    ub, ib = np.unique(b, return_inverse=True)
    size = len(ua) + len(ub)
    graph = coo_matrix((np.ones(len(a)), (ia.reshape(-1), len(ua) + ib.reshape(-1))), shape=(size, size))
    _, label = connected_components(graph, directed=False)
    return np.unique(label[ia.reshape(-1)], return_inverse=True)[1].reshape(-1)


def _date_labels(blocks: np.ndarray, keys: tuple[str, ...], public_dates: list, known: list[tuple[int, tuple]],
                 scale: float, rounds: int = 8, restarts: int = 30, link_weight: float = 5.0) -> dict[int, tuple]:
    """Exact birth dates from year-month, month-day and year-day tokens: unlabelled classes, then labels.

    A record's YM and YD tokens share its year, YM and MD its month, MD and YD
    its day; the connected components of those token graphs are exactly the
    year, month and day classes, unlabelled. Records whose Y+MD tokens agree
    while their MD tokens differ have swapped month and day, which ties a month
    class to a day class of the same number. Labels (a year, a month, a day
    per class) maximise a Poisson likelihood of the class triples' counts
    under the public town's year-month frequencies and the calendar (no 31
    June, 29 February only in leap years), plus the month–day ties, with the
    known children's classes fixed to their dates; coordinate ascent by one
    Hungarian assignment per part, from the size ranks and random starts.
    """
    import calendar

    from scipy.optimize import linear_sum_assignment

    at = {name: i for i, name in enumerate(keys)}
    if not {"YM", "MD", "YD"} <= set(at) or not len(blocks):
        return {}
    ok = (blocks[:, [at["YM"], at["MD"], at["YD"]]] != 0).all(axis=1)
    rows = np.flatnonzero(ok)
    if not len(rows):
        return {}
    ym, md, yd = (blocks[rows, at[k]] for k in ("YM", "MD", "YD"))
    yc, mc, dc = _components(ym, yd), _components(ym, md), _components(md, yd)
    ties = np.zeros((int(mc.max()) + 1, int(dc.max()) + 1))
    if "Y+MD" in at:
        pairs: dict[int, set] = defaultdict(set)
        for i, token in enumerate(blocks[rows, at["Y+MD"]].tolist()):
            pairs[token].add((int(mc[i]), int(dc[i])))
        for both in pairs.values():
            if len(both) == 2:
                (m1, d1), (m2, d2) = both
                ties[m1, d2] += 1
                ties[m2, d1] += 1
    return _label_dates(rows, yc, mc, dc, ties, public_dates, known, scale, rounds, restarts, link_weight)


def _label_dates(rows: np.ndarray, yc: np.ndarray, mc: np.ndarray, dc: np.ndarray, ties: np.ndarray, public_dates: list,
                 known: list[tuple[int, tuple]], scale: float, rounds: int = 8, restarts: int = 30,
                 link_weight: float = 5.0) -> dict[int, tuple]:
    """Labels for unlabelled year, month and day classes of ``rows`` (see :func:`_date_labels`)."""
    import calendar

    from scipy.optimize import linear_sum_assignment

    ny, nm, nd = int(yc.max()) + 1, int(mc.max()) + 1, int(dc.max()) + 1
    pub_ym = Counter((d[0], d[1]) for d in public_dates if d)
    first, last = min(y for y, _ in pub_ym), max(y for y, _ in pub_ym)
    years = list(range(first - 2, last + 3))
    counts = np.zeros((ny, nm, nd))
    np.add.at(counts, (yc, mc, dc), 1)
    lam = np.full((len(years), 12, 31), 1e-3)
    for a, y in enumerate(years):
        for m in range(1, 13):
            days = calendar.monthrange(y, m)[1]
            lam[a, m - 1, :days] = max(scale * pub_ym.get((y, m), 0), 0.05) / days
    log_lam, year_total = np.log(lam), lam.sum(axis=(1, 2))
    where = {int(r): i for i, r in enumerate(rows)}
    fixed = [(where[r], d) for r, d in known if r in where]

    def force(classes: np.ndarray, labels: list, part: int) -> np.ndarray:
        out = np.zeros((int(classes.max()) + 1, len(labels)))
        for i, d in fixed:
            if d[part] in labels:
                out[classes[i], labels.index(d[part])] += 1e4
        return out

    fy, fm, fd = force(yc, years, 0), force(mc, list(range(1, 13)), 1), force(dc, list(range(1, 32)), 2)

    def by_rank(sizes: np.ndarray, reference: np.ndarray) -> np.ndarray:
        cost = np.abs(np.argsort(np.argsort(-sizes))[:, None] - np.argsort(np.argsort(-reference))[None, :])
        r, c = assign(-cost)
        out = np.zeros(len(sizes), int)
        out[r] = c
        return out

    def assign(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # A small town splits a part into more classes than it has values: then a value may take several classes.
        copies = -(-cost.shape[0] // cost.shape[1])
        r, c = linear_sum_assignment(-np.tile(cost, copies))
        return r, c % cost.shape[1]

    def start_at(size: int, labels: int) -> np.ndarray:
        return np.resize(rng.permutation(labels), size)

    rng = np.random.default_rng(0)
    best = None
    for start in range(restarts):
        if start == 0:
            py = by_rank(counts.sum(axis=(1, 2)), year_total)
            pm = by_rank(counts.sum(axis=(0, 2)), lam.sum(axis=(0, 2)))
            pd = by_rank(counts.sum(axis=(0, 1)), lam.sum(axis=(0, 1)))
        else:
            py, pm, pd = start_at(ny, len(years)), start_at(nm, 12), start_at(nd, 31)
        for _ in range(rounds):
            cost = np.einsum("ymd,amd->ya", counts, log_lam[:, pm][:, :, pd]) - year_total[None, :] + fy
            r, c = assign(cost)
            py[r] = c
            cost = np.einsum("ymd,yad->ma", counts, log_lam[py][:, :, pd]) + fm
            cost += link_weight * np.stack([ties[:, pd == m].sum(axis=1) for m in range(12)], axis=1)
            r, c = assign(cost)
            pm[r] = c
            cost = np.einsum("ymd,yma->da", counts, log_lam[py][:, pm]) + fd
            cost += link_weight * np.stack([ties[pm == d].sum(axis=0) for d in range(31)], axis=1)
            r, c = assign(cost)
            pd[r] = c
        objective = ((counts * log_lam[py][:, pm][:, :, pd]).sum() - year_total[py].sum()
                     + fy[np.arange(ny), py].sum() + fm[np.arange(nm), pm].sum() + fd[np.arange(nd), pd].sum()
                     + link_weight * ties[pm[:, None] == pd[None, :]].sum())
        if best is None or objective > best[0]:
            best = (objective, py.copy(), pm.copy(), pd.copy())
    _, py, pm, pd = best
    return {int(r): (years[py[yc[i]]], int(pm[mc[i]]) + 1, int(pd[dc[i]]) + 1) for i, r in enumerate(rows)}


def date_attack(victim: _Side, public: _Side, schema: EncodingSchema, known: int, rng: np.random.Generator) -> list[Finding]:
    """Exact birth dates from blocking tokens (+ known birth dates), and from pairs compared inside a block.

    Where the tokens give year, month and day classes (``tsunagu-jp/1``), the
    classes are labelled as a whole (:func:`_date_labels`); otherwise each token
    class is read from a known child's date, or ranked by size against the
    public distribution of its date part.
    """
    enc = victim.encodings
    n = len(enc)
    truth = victim.dates
    known_idx = [int(i) for i in rng.choice([i for i in range(n) if truth[i]], size=min(known, n), replace=False)] if known else []
    guesses = _date_labels(enc.blocks, tuple(schema.blocking_keys), public.dates, [(i, truth[i]) for i in known_idx],
                           n / max(len(public.dates), 1))
    ym: dict[int, tuple] = {i: d[:2] for i, d in guesses.items()}
    if not guesses:
        parts: list[dict[int, int]] = [{}, {}, {}]  # record -> year, month, day, as learnt
        for k, name in enumerate(schema.blocking_keys):
            col = enc.blocks[:, k]
            if known_idx:
                learnt = {int(col[i]): truth[i] for i in known_idx if col[i]}
            else:
                # No known dates: classes ranked by size against the public distribution of that date part.
                pub = Counter(tuple(d[p] for p in _DATE_PARTS[name]) for d in public.dates if d)
                tokens = [t for t, _ in Counter(col[col != 0].tolist()).most_common()]
                learnt = {int(t): v for t, (v, _) in zip(tokens, pub.most_common())}
                learnt = {t: _expand(name, v) for t, v in learnt.items()}
            for i in range(n):
                d = learnt.get(int(col[i]))
                if d is None:
                    continue
                for p in _DATE_PARTS[name]:
                    if name != "Y+MD":  # unordered month/day: only confirms
                        parts[p][i] = d[p]
        guesses = {i: (parts[0][i], parts[1][i], parts[2][i]) for i in range(n) if all(i in parts[p] for p in range(3))}
        ym = {i: (parts[0][i], parts[1][i]) for i in range(n) if i in parts[0] and i in parts[1]}
    label = f"+ {known} known" if known else "tokens only"
    out = [_score(f"date from blocking tokens ({label})", "birth_date", guesses, truth, n)]
    out.append(_score(f"date from blocking tokens ({label})", "birth_ym", ym, [d[:2] if d else None for d in truth], n))
    if known_idx:
        # The attacker runs the project's own comparison between each known child and its block.
        cmp_guess: dict[int, tuple] = {}
        col = enc.blocks[:, 0] if enc.blocks.shape[1] else np.zeros(n, np.uint64)
        for k in known_idx:
            others = np.flatnonzero((col == col[k]) & (np.arange(n) != k))
            if not len(others):
                continue
            sims = compare_pairs(enc, np.full(len(others), k), enc, others)
            demo = sims.values[:, COMPARISONS.index("demographic")]
            same = (demo >= 0.97) & (sims.date_detail == DATE_FULL)
            for i in others[same]:
                cmp_guess[int(i)] = truth[k]
        out.append(_score(f"date from comparing with known children (+ {known} known)", "birth_date", cmp_guess, truth, n,
                          f"{len(cmp_guess)} guesses"))
    return out


def blocking_attack(victim: _Side, public: _Side, schema: EncodingSchema, known: int,
                    rng: np.random.Generator) -> list[Finding]:
    """What the blocking of a diffused schema gives away: its view-LSH band keys (``linkage.blocking``).

    The gateway computes them from the views it stores, with the positions
    the linkage uses. Per field, the band (of any LSH view) whose key groups,
    ranked by size, best match the public frequencies (frequency alignment,
    the best band chosen with hindsight); and birth dates: a record sharing
    the key of a band holding the birth date with a known child is given
    that child's date (majority over the bands).
    """
    if not schema.diffused:
        return []  # tsunagu-jp/1's blocking tokens: date_attack
    from linkage.blocking import band_keys, view_lsh_positions
    from linkage.match import VIEW_BLOCKING as config

    enc = victim.encodings
    n = len(enc)
    keyed = []  # (view, band, keys of every record)
    for v, name in enumerate(config.lsh_views):
        view = schema.view(name)
        keys = band_keys(enc.bits, view_lsh_positions(view.byte_slice, v, config))
        keyed += [(view, b, keys[:, b]) for b in range(keys.shape[1])]
    out = []
    for fld in ("family", "given", "kana_family", "kana_given"):
        ranked = [v for v, _ in Counter(getattr(public, fld)).most_common() if v.strip()]
        best = Finding("view-LSH band keys, frequency alignment", fld, 0.0, 0.0, "no band key shared")
        for view, b, col in keyed:
            groups = [(k, c) for k, c in Counter(col.tolist()).most_common() if c >= 2]
            rank = {k: r for r, (k, _c) in enumerate(groups[: len(ranked)])}
            guesses = {i: ranked[rank[k]] for i, k in enumerate(col.tolist()) if k in rank}
            f = _score("view-LSH band keys, frequency alignment", fld, guesses, getattr(victim, fld), n,
                       f"view {view.name} band {b}: {len(groups)} keys shared by ≥ 2")
            if f.recovered >= best.recovered and guesses:
                best = f
        out.append(best)
    truth = victim.dates
    known_idx = [int(i) for i in rng.choice([i for i in range(n) if truth[i]], size=min(known, n), replace=False)]
    votes: dict[int, Counter] = defaultdict(Counter)
    for view, b, col in keyed:
        if "demographic" in view.omit:
            continue
        for k in known_idx:
            for i in np.flatnonzero(col == col[k]).tolist():
                if i != k:
                    votes[i][truth[k]] += 1
    guesses = {i: c.most_common(1)[0][0] for i, c in votes.items()}
    out.append(_score(f"date from view-LSH band keys (+ {known} known)", "birth_date", guesses, truth, n,
                      f"{len(guesses)} guesses"))
    return out


def inverted_date_attack(victim: _Side, recovered: dict[str, np.ndarray], known: int,
                         rng: np.random.Generator) -> list[Finding]:
    """Exact birth dates from the demographic segment recovered by :func:`invert_diffusion`, with known birth dates.

    The segment hashes the birth year, month and day and the sex as exact
    tokens, so two records hold the same recovered bits exactly when they share
    birth date and sex: every record in a known child's class is given its
    date. (Labelling the classes of unknown children from the value atoms, as
    :func:`_date_labels` does for ``/1``'s tokens, is not done: a bound from below.)
    """
    truth = victim.dates
    n = len(truth)
    cols = recovered.get("demographic")
    known_idx = [int(i) for i in rng.choice([i for i in range(n) if truth[i]], size=min(known, n), replace=False)] if known else []
    guesses: dict[int, tuple] = {}
    note = "no demographic segment recovered"
    if cols is not None:
        inverse = np.unique(cols, axis=0, return_inverse=True)[1].reshape(-1)
        learnt = {int(inverse[k]): truth[k] for k in known_idx}
        guesses = {i: learnt[int(c)] for i, c in enumerate(inverse) if int(c) in learnt and i not in known_idx}
        pairs = {(c, truth[i][:3] if truth[i] else None, victim.canonical[i].sex) for i, c in enumerate(inverse.tolist())}
        classes = len({c for c, _, _ in pairs})
        note = f"{classes} classes of {len({(d, x) for _, d, x in pairs})} (birth date, sex) values"
    attack = f"date from the inverted demographic segment (+ {known} known)"
    return [_score(attack, "birth_date", guesses, truth, n, note),
            _score(attack, "birth_ym", {i: d[:2] for i, d in guesses.items()}, [d[:2] if d else None for d in truth], n)]


def _expand(name: str, value: tuple) -> tuple:
    full = [None, None, None]
    for p, v in zip(_DATE_PARTS[name], value):
        full[p] = v
    return tuple(full)


def order_attack(victim: _Side, public: _Side, order: list[int]) -> list[Finding]:
    """Names by quantile of the stored order, as if sorted by name; lift over the same on a random order."""
    n = len(order)
    out = []
    for fld in ("family", "kana_family"):
        pub = sorted(v for v in getattr(public, fld) if v.strip())
        truth = getattr(victim, fld)
        guess_at = [pub[min(len(pub) - 1, int(p * len(pub) / n))] for p in range(n)]
        hit = sum(1 for pos, i in enumerate(order) if truth[i] == guess_at[pos])
        shuffled = np.random.default_rng(1).permutation(n)
        chance = sum(1 for pos, i in enumerate(shuffled) if truth[i] == guess_at[pos])
        out.append(Finding("row order", fld, max(0, hit - chance) / n, hit / n if n else 0.0,
                           f"{hit / n:.1%} right vs {chance / n:.1%} on a random order"))
    return out


def length_attack(victim: _Side, public: _Side, pad: bool) -> list[Finding]:
    """Sealed sizes → the most common public name of identities that seal to that size; lift over a blind guess."""
    import json

    from keys.seal import padded_size

    def size(rec: CanonicalRecord) -> int:
        identity = {c: v for c in IDENTITY_COLUMNS if (v := getattr(rec, c))}
        raw = len(json.dumps(identity, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        return 12 + 16 + (padded_size(raw) if pad else raw)  # nonce + tag + body, as AES-GCM gives it

    pub_sizes = [size(r) for r in public.canonical]
    vic_sizes = [size(r) for r in victim.canonical]
    out = []
    for fld in ("family", "given"):
        pv, tv = getattr(public, fld), getattr(victim, fld)
        by_size: dict[int, Counter] = defaultdict(Counter)
        for s, v in zip(pub_sizes, pv):
            by_size[s][v] += 1
        overall = Counter(pv).most_common(1)[0][0]
        guesses = {i: (by_size[s].most_common(1)[0][0] if s in by_size else overall) for i, s in enumerate(vic_sizes)}
        hit = sum(1 for i, g in guesses.items() if tv[i] == g)
        chance = sum(1 for v in tv if v == overall)
        out.append(Finding("sealed size", fld, max(0, hit - chance) / len(tv), hit / len(tv),
                           f"{len(set(vic_sizes))} distinct sizes"))
    return out


#: The attacker's trust, strongest attack first: one guess per record and field comes from the first attack that has one.
_TRUST = ("pattern mining", "diffusion inversion", "date from blocking tokens (+", "date from the inverted demographic segment (+",
          "bigram atoms", "date from blocking tokens (tokens only)",
          "frequency alignment", "similarity graph")


def whole_person(victim: _Side, findings: list[Finding]) -> list[Finding]:
    """Family name, given name and birth year-month of one record, as one attacker would combine the attacks.

    The first figure takes, per field, the guess of the strongest attack that
    made one (``_TRUST``): one guess per record, so its precision is real. The
    second counts a record when some attack got each part right: an upper
    bound no single attacker reaches, since it cannot tell which guess is right.
    """
    truth = {"family": victim.family, "given": victim.given,
             "birth_ym": [d[:2] if d else None for d in victim.dates]}
    n = len(victim.family)
    right: dict[str, set[int]] = defaultdict(set)
    chosen: dict[str, dict[int, object]] = defaultdict(dict)
    ranked = sorted(findings, key=lambda f: next((k for k, a in enumerate(_TRUST) if f.attack.startswith(a)), len(_TRUST)))
    for f in ranked:
        if f.field in truth:
            right[f.field] |= {i for i, g in f.guesses.items() if g is not None and truth[f.field][i] == g}
            if any(f.attack.startswith(a) for a in _TRUST):
                for i, g in f.guesses.items():
                    if g not in (None, ""):
                        chosen[f.field].setdefault(i, g)
    guessed = set(chosen["family"]) & set(chosen["given"]) & set(chosen["birth_ym"])
    hits = {i for i in guessed if all(truth[k][i] == chosen[k][i] for k in truth)}
    anyright = right["family"] & right["given"] & right["birth_ym"]
    return [
        Finding("whole person (one guess per record)", "name + birth year-month", len(hits) / n if n else 0.0,
                len(hits) / len(guessed) if guessed else 0.0, f"{len(guessed)} guessed"),
        Finding("whole person (any attack right, upper bound)", "name + birth year-month",
                len(anyright) / n if n else 0.0, 1.0 if anyright else 0.0),
    ]


def run_variant(
    variant: str,
    schema: EncodingSchema,
    victim_records: list[CanonicalRecord],
    public_records: list[CanonicalRecord],
    *,
    sorted_order: bool,
    padded: bool,
    known_dates: int = 20,
    progress: Callable[[str], None] = lambda _m: None,
) -> AttackReport:
    """Every attack against one encoding variant."""
    started = time.perf_counter()
    progress(f"{variant}: 符号化")
    victim = _side(victim_records, VICTIM_SECRET, schema)
    public = _side(public_records, ATTACKER_SECRET, schema)
    report = AttackReport(variant, len(victim.family))
    progress(f"{variant}: 頻度攻撃")
    report.findings += frequency_attack(victim, public, schema)
    progress(f"{variant}: ビグラム原子攻撃")
    report.findings += atom_attack(victim, public, schema)
    report.findings += pattern_attack(victim, public, schema)
    recovered: dict[str, np.ndarray] = {}
    if schema.diffused:
        progress(f"{variant}: 拡散層の線形解読")
        recovered = invert_diffusion(victim.encodings, schema, INVERTED_SEGMENTS)
        report.findings += pattern_attack(victim, public, schema, recovered)
        report.findings += inverted_date_attack(victim, recovered, known_dates, np.random.default_rng(7))
    progress(f"{variant}: 類似度グラフ攻撃")
    report.findings += graph_attack(victim, public, schema)
    progress(f"{variant}: 生年月日攻撃")
    rng = np.random.default_rng(7)
    report.findings += date_attack(victim, public, schema, 0, rng)
    report.findings += date_attack(victim, public, schema, known_dates, rng)
    report.findings += blocking_attack(victim, public, schema, known_dates, rng)
    progress(f"{variant}: 並び順・長さ攻撃")
    n = len(victim.family)
    if sorted_order:
        order = sorted(range(n), key=lambda i: victim.canonical[i].family_name or victim.canonical[i].family_name_kana)
    else:  # the agent's own order, as it sends (and the gateway stores) the records
        order = agent_order(n)
    report.findings += order_attack(victim, public, order)
    report.findings += length_attack(victim, public, padded)
    report.findings += whole_person(victim, report.findings)
    report.seconds = time.perf_counter() - started
    return report


def agent_order(n: int, records_per_part: int | None = None) -> list[int]:
    """The order in which the agent sends (and the gateway stores) ``n`` records, from the agent's own code.

    A spool whose lines are the row numbers goes through :func:`agents.core.package.parts` and
    :func:`agents.core.package.shuffled_lines`, as a real snapshot does (several parts unless told otherwise).
    """
    with tempfile.TemporaryDirectory(prefix="tsunagu-attack-") as tmp:
        spool = Path(tmp) / "spool"
        spool.write_bytes(b"".join(b"%d\n" % i for i in range(n)))
        spooled = Spooled("victim", "", {}, spool, n, spool.stat().st_size)
        order: list[int] = []
        for path in parts(spooled, records_per_part or max(1, n // 4), Path(tmp) / "parts"):
            order += [int(line) for line in shuffled_lines(path)]
    return order


def variants() -> dict[str, tuple[EncodingSchema, bool, bool]]:
    """Encoding variants compared: (schema, agent sorts by name, identities padded)."""
    v1, v2 = load_schema("tsunagu-jp/1"), load_schema("tsunagu-jp/2")
    out = {
        "tsunagu-jp/1, sorted, unpadded (before #16)": (v1, True, False),
        "tsunagu-jp/1": (v1, False, True),
    }
    doc = copy.deepcopy(v2.document)
    doc["diffusion"]["balanced"] = False
    out["/2 without balancing"] = (parse_schema(doc), False, True)
    doc = copy.deepcopy(v2.document)
    doc["diffusion"]["taps"] = 1
    doc["diffusion"]["function"] = "xor"  # one tap: the output is a copy of a filter bit
    out["/2 with 1 tap (no diffusion)"] = (parse_schema(doc), False, True)
    doc = copy.deepcopy(v2.document)
    doc["diffusion"].update(taps=3, function="xor")
    out["/2 with the XOR layer (session 5)"] = (parse_schema(doc), False, True)
    out["tsunagu-jp/2"] = (v2, False, True)
    return out


def write_chart(reports: list[AttackReport], path: Path, f1: dict[str, float] | None = None) -> list[Path]:
    """Bar chart: worst recovered share per attack family and variant; and attack success vs F1 when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = sorted({f.attack for r in reports for f in r.findings})
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / max(len(reports), 1)
    for k, r in enumerate(reports):
        vals = [100 * max((f.recovered for f in r.findings if f.attack == a), default=0) for a in attacks]
        ax.bar(np.arange(len(attacks)) + k * width, vals, width, label=r.variant)
    ax.axhline(0.5, color="k", linestyle="--", linewidth=0.8, label="target 0.5 %")
    ax.set_xticks(np.arange(len(attacks)) + width * (len(reports) - 1) / 2)
    ax.set_xticklabels(attacks, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("records recovered (%, worst field)")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_title("What a curious gateway recovers, per attack and encoding")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths = [path]
    if f1:
        fig, ax = plt.subplots(figsize=(7, 5))
        for r in reports:
            if r.variant in f1:
                worst = 100 * r.worst(FIELDS)
                ax.scatter(f1[r.variant], worst)
                ax.annotate(r.variant, (f1[r.variant], worst), fontsize=8)
        ax.axhline(0.5, color="k", linestyle="--", linewidth=0.8)
        ax.axvline(0.99, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xlabel("linkage F1 (synthetic town)")
        ax.set_ylabel("worst attack: records recovered (%)")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_title("Privacy against linkage quality")
        fig.tight_layout()
        paths.append(path.with_name("attack-tradeoff.png"))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


# --- Diffusion inversion: the XOR layer is linear over GF(2) -------------------------------------------------

def _gf2_pack(m: np.ndarray) -> np.ndarray:
    """Bool rows × columns → uint64 rows × words (column c in word c >> 6, bit c & 63)."""
    rows, cols = m.shape
    b = np.packbits(m, axis=1, bitorder="little")
    out = np.zeros((rows, -(-cols // 64) * 8), np.uint8)
    out[:, : b.shape[1]] = b
    return out.view(np.uint64).copy()


def _gf2_unpack(p: np.ndarray, cols: int) -> np.ndarray:
    return np.unpackbits(p.view(np.uint8), axis=1, bitorder="little")[:, :cols].astype(bool)


def _gf2_rref(m: np.ndarray, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reduced row echelon form over GF(2): (packed reduced rows, pivot columns), pivots among the first ``limit`` columns."""
    rows, cols = m.shape
    p = _gf2_pack(m)
    limit = cols if limit is None else limit
    r, pivots = 0, []
    one = np.uint64(1)
    for c in range(limit):
        if r == rows:
            break
        word, bit = c >> 6, np.uint64(c & 63)
        nz = np.flatnonzero((p[r:, word] >> bit) & one)
        if not len(nz):
            continue
        k = r + int(nz[0])
        if k != r:
            p[[r, k]] = p[[k, r]]
        hit = ((p[:, word] >> bit) & one).astype(bool)
        hit[r] = False
        if hit.any():
            p[hit] ^= p[r]
        pivots.append(c)
        r += 1
    return p[:r], np.array(pivots, dtype=int)


def _mod2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bool matrix product over GF(2) (exact in float32 below 2**24 terms)."""
    return (a.astype(np.float32) @ b.astype(np.float32)) % 2 > 0.5


class _Spans:
    """Column spaces over the victim's records of its views and of their intersections (GF(2), constants included).

    Output bit *j* of a view is ``b_a ⊕ b_b ⊕ b_c`` (⊕ 1 for a complemented tap)
    of the record filter, so, as a function over the records, every output
    column lies in the span of the kept segments' filter columns and the
    constant. Segments are hashed independently, so the span of a view is the
    direct sum of its segments' spans, and intersecting the spans of two views
    gives the span of the segments both keep (checked on all records, not only
    the sample the linear algebra runs on).
    """

    def __init__(self, enc: Encodings, schema: EncodingSchema, sample: int = 3000, seed: int = 0):
        self.enc, self.schema = enc, schema
        n = len(enc)
        self.n = n
        self.rows = np.sort(np.random.default_rng(seed).choice(n, min(n, sample), replace=False))
        self.kept = {v.name: frozenset(s.name for s in schema.segments if s.name not in v.omit) for v in schema.views}
        self.cache: dict[frozenset, np.ndarray] = {}

    def view_columns(self, name: str) -> np.ndarray:
        view = self.schema.view(name)
        return np.unpackbits(self.enc.bits[:, view.byte_slice], axis=1).astype(bool)

    def basis(self, u: np.ndarray) -> np.ndarray:
        """Independent columns of ``u`` (on the sample), the constant first."""
        u = np.concatenate([np.ones((len(u), 1), bool), u], axis=1)
        _, pivots = _gf2_rref(u[self.rows])
        return u[:, pivots]

    def intersect(self, u: np.ndarray, v: np.ndarray) -> np.ndarray | None:
        ub, vb = self.basis(u), self.basis(v)
        if ub.shape[1] + vb.shape[1] > 0.9 * len(self.rows):
            return None  # too few records: two spans that fill the sample meet by chance
        a, c = ub.shape[1], ub.shape[1] + vb.shape[1]
        reduced, pivots = _gf2_rref(np.concatenate([ub[self.rows], vb[self.rows]], axis=1))
        r = _gf2_unpack(reduced, c)
        free = np.setdiff1d(np.arange(c), pivots)
        x = np.zeros((a, len(free)), bool)
        for k, f in enumerate(free):  # null vectors of [U V]: the U-part of each gives a vector of both spans
            if f < a:
                x[f, k] = True
            for row in np.flatnonzero(r[:, f]):
                if pivots[row] < a:
                    x[pivots[row], k] = True
        return self.basis(_mod2(ub, x))[:, 1:]

    def span(self, segments: frozenset) -> np.ndarray | None:
        """The span of ``segments`` (without the constant), from views whose kept sets intersect to it; None if none do."""
        if segments in self.cache:
            return self.cache[segments]
        holding = sorted((len(k), name) for name, k in self.kept.items() if segments <= k)
        if not holding:
            return None
        _, first = holding[0]
        current, span = self.kept[first], self.view_columns(first)
        for _, name in holding[1:]:
            if current == segments:
                break
            if not (current - self.kept[name]):
                continue
            current = current & self.kept[name]
            span = self.intersect(span, self.view_columns(name))
            if span is None:
                return None
        if current != segments:
            return None
        self.cache[segments] = span
        return span


def invert_diffusion(enc: Encodings, schema: EncodingSchema, segments: tuple[str, ...], sample: int = 3000,
                     min_count: int = 3) -> dict[str, np.ndarray]:
    """Each segment's filter bits of every record, up to an order of the bits, from the diffused views alone.

    A segment that some views' kept sets intersect to exactly is isolated as a
    span (:class:`_Spans`). A view all of whose segments are isolated is then
    decomposed: every output column splits uniquely into a part in each
    segment's span and a constant, and the part in segment *s* is the sum of
    the output's taps in *s*. One tap in *s* is the commonest case, so the
    parts that recur (``min_count`` times or more) are the filter columns of
    *s* themselves (a part that is two taps' sum recurs about once in 200
    outputs). A column is only known up to its complement (a balanced filter
    holds both): :func:`_polarity` chooses it.
    """
    if not schema.diffused:
        return {}
    spans = _Spans(enc, schema, sample)
    isolated = {s: sp for s in segments if (sp := spans.span(frozenset([s]))) is not None and sp.shape[1]}
    out: dict[str, np.ndarray] = {}
    for s in isolated:
        views = sorted((len(k), name) for name, k in spans.kept.items() if s in k and k <= set(isolated))
        if not views:
            continue
        name = views[0][1]
        parts = sorted(spans.kept[name])
        blocks = [np.ones((spans.n, 1), bool)] + [isolated[t] for t in parts]
        base = np.concatenate(blocks, axis=1)
        outputs = spans.view_columns(name)
        width = base.shape[1]
        reduced, pivots = _gf2_rref(np.concatenate([base[spans.rows], outputs[spans.rows]], axis=1), limit=width)
        r = _gf2_unpack(reduced, width + outputs.shape[1])
        start = 1 + sum(isolated[t].shape[1] for t in parts[: parts.index(s)])
        stop = start + isolated[s].shape[1]
        mine = (pivots >= start) & (pivots < stop)
        coeff = r[mine][:, width:]  # basis vector of s × output column
        keys = Counter(np.packbits(coeff[:, j]).tobytes() for j in range(coeff.shape[1]) if coeff[:, j].any())
        kept = [(c, k) for k, c in keys.items() if c >= min_count]
        if not kept:
            continue
        chosen = np.array([np.unpackbits(np.frombuffer(k, np.uint8))[: coeff.shape[0]].astype(bool) for _, k in kept])
        chosen = chosen[_drop_sums(chosen, np.array([c for c, _ in kept]))]
        out[s] = _polarity(_mod2(base[:, pivots[mine]], chosen.T))
    return out


def _polarity(cols: np.ndarray) -> np.ndarray:
    """Filter columns known up to complement, each turned the sparser way over the distinct patterns.

    A Bloom-filter bit is set for fewer than half of the distinct values (a
    name of three bigrams sets about 36 of a segment's 128 bits); counted over
    records instead, a bit of a very common name's bigram may be set for most.
    """
    distinct = np.unique(cols, axis=0)
    return cols ^ (distinct.mean(axis=0) > 0.5)[None, :]


def _drop_sums(coeff: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices of the parts to keep: of three parts one of which is the sum of the other two, the rarest is a two-tap sum."""
    index = {row.tobytes(): i for i, row in enumerate(coeff)}
    drop: set[int] = set()
    for i in range(len(coeff)):
        for j in range(i + 1, len(coeff)):
            k = index.get((coeff[i] ^ coeff[j]).tobytes())
            if k is not None and not ({i, j, k} & drop):
                drop.add(min((i, j, k), key=lambda t: counts[t]))
    return np.array([i for i in range(len(coeff)) if i not in drop], dtype=int)


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.attack CHILDREN [VARIANT]``: one variant's attacks on the command's towns (seeds 11 and 12, 20 known dates).

    The same code path as ``tsunagu bench attack``, which measures every ``tsunagu-jp/`` variant in turn; this
    measures one (a 20,000-children run of ``/2`` alone, without the two ``/1`` columns' 15 minutes).
    """
    import sys

    from bench import linkage as b

    args = sys.argv[1:] if argv is None else argv
    children, variant = int(args[0]), (args[1] if len(args) > 1 else "tsunagu-jp/2")
    victim = b.town_dataset(children, 11).sources["residents"]
    public = b.town_dataset(children, 12).sources["residents"]
    schema, sorted_order, padded = variants()[variant]
    started = time.perf_counter()
    report = run_variant(variant, schema, victim, public, sorted_order=sorted_order, padded=padded, known_dates=20,
                         progress=lambda m: print(f"[{time.perf_counter() - started:6.0f} s] {m}", flush=True))
    print(f"## {variant} ({report.records} records, {report.seconds:.0f} s)")
    for f in report.findings:
        print(f"| {f.attack} | {f.field} | {100 * f.recovered:.2f} % | {f.precision:.3f} | {f.note} |")


if __name__ == "__main__":
    main()
