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
  bigram atoms of the distinct patterns of segments sharing a key, paired
  with a name list covering the town by similarity propagation;
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


def _propagate(has, counts, nonempty, names, name_grams, gram_names, listed, scale, iters: int = 5) -> dict[int, int]:
    """Patterns to names by similarity propagation over the pattern–atom and name–bigram graphs.

    Atoms and bigrams start similar by weight (records holding them) and degree
    (patterns / names holding them); a pattern and a name are as similar as their
    atoms and bigrams, times a frequency prior and a size prior; atom–bigram
    similarity is then re-read from the pattern–name similarity (similarity
    flooding; Sinkhorn-normalised); the pairing is one-to-one (Hungarian).
    Relabelling atoms from the pairing and pairing again, and a quadratic
    assignment (FAQ) of the pattern-overlap graph to the shared-bigram graph
    started from this pairing, were tried and gained little (docs/privacy.md).
    """
    from scipy.optimize import linear_sum_assignment

    rows = np.flatnonzero(nonempty)
    hv = has[rows].astype(np.float64)
    hv = hv[:, hv.sum(axis=0) >= 2]
    grams = [g for g, js in gram_names.items() if len(js) >= 2]
    col = {g: i for i, g in enumerate(grams)}
    hp = np.zeros((len(names), len(grams)))
    for j, gs in enumerate(name_grams):
        for g in gs:
            if g in col:
                hp[j, col[g]] = 1
    cv = counts[rows].astype(np.float64)
    cp = np.array([listed[v] * scale for v in names])
    sim = np.exp(-np.abs(np.log1p(cv @ hv)[:, None] - np.log1p(cp @ hp)[None, :])
                 - np.abs(np.log1p(hv.sum(axis=0))[:, None] - np.log1p(hp.sum(axis=0))[None, :]))
    nv, npn = hv.sum(axis=1), hp.sum(axis=1)
    prior = np.exp(-0.5 * np.abs(np.log(cv)[:, None] - np.log(cp + 0.5)[None, :]) - np.abs(nv[:, None] - npn[None, :]))
    match = prior
    for _ in range(iters):
        match = (hv @ sim @ hp.T) / np.maximum(1, np.maximum(nv[:, None], npn[None, :])) * prior
        match /= match.sum(axis=1, keepdims=True) + 1e-12
        match /= match.sum(axis=0, keepdims=True) + 1e-12
        sim = hv.T @ match @ hp
        for _ in range(3):
            sim /= sim.sum(axis=1, keepdims=True) + 1e-12
            sim /= sim.sum(axis=0, keepdims=True) + 1e-12
    r, c = linear_sum_assignment(-np.log(match + 1e-30))
    return {int(rows[i]): int(j) for i, j in zip(r, c)}


def pattern_attack(victim: _Side, public: _Side, schema: EncodingSchema) -> list[Finding]:
    """Bigram-atom decoding of units that repeat (Kroll & Steinmetzer 2015; Christen et al. 2017/2018).

    Per key group (segments sharing a key share atoms: family and given name),
    atoms are mined as closed bit sets of the distinct patterns
    (:func:`_closed_atoms`), and patterns are paired with listed names by
    similarity propagation over the two atom graphs (:func:`_propagate`). The
    attacker's name list holds every name of the public town with its frequency
    and every name of the victim town without one (the issue's attacker: a list
    covering every name in the town). Units that do not repeat (record-level or
    diffused encodings) are left to :func:`atom_attack`.
    """
    bits = victim.encodings.bits
    n = len(bits)
    fields_of = {"name_family": "family", "name_given": "given", "kana_family": "kana_family", "kana_given": "kana_given"}
    groups: dict[str, list] = defaultdict(list)
    if not schema.diffused:
        for seg in schema.segments:
            if seg.name in fields_of:
                groups[seg.key_group].append(seg)
    results: dict[str, Finding] = {}
    for group, segs in groups.items():
        k = _bits_per_token(schema, segs[0].name)
        # Distinct patterns pooled over the group's segments (the same bigram sets the same bits in each).
        stacked = np.vstack([np.unpackbits(bits[:, seg.byte_slice], axis=1).astype(bool) for seg in segs])
        pats, inverse, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        nonempty = pats.any(axis=1)
        if len(pats) > 0.5 * len(stacked):  # no repetition: the unit is not deterministic per value
            continue
        atoms = _closed_atoms(pats[nonempty], k)
        if not atoms:
            continue
        amat = np.zeros((len(atoms), pats.shape[1]), np.float32)
        for a, at in enumerate(atoms):
            amat[a, at] = 1
        has = (pats.astype(np.float32) @ amat.T) >= amat.sum(axis=1)[None, :]  # pattern × atom
        has[~nonempty] = False
        # The attacker's name list for the group's fields, with public frequencies (victim-only names: 0.5).
        flds = [fields_of[s.name] for s in segs]
        listed: Counter = Counter()
        for fld in flds:
            listed.update(v for v in getattr(public, fld) if v.strip())
        scale = n / max(len(public.family), 1)
        for fld in flds:
            for v in set(getattr(victim, fld)):
                if v.strip() and v not in listed:
                    listed[v] = 0.5 / scale
        names = list(listed)
        name_grams = [frozenset(_bigrams(v)) for v in names]
        gram_names: dict[str, list[int]] = defaultdict(list)
        for j, gs in enumerate(name_grams):
            for g in gs:
                gram_names[g].append(j)
        decoded = _propagate(has, counts, nonempty, names, name_grams, gram_names, listed, scale)
        for seg_no, seg in enumerate(segs):
            fld = fields_of[seg.name]
            offset = seg_no * n
            guesses = {i: names[decoded[int(inverse[offset + i])]] for i in range(n) if int(inverse[offset + i]) in decoded}
            results[fld] = _score("pattern mining (closed atoms + propagation)", fld, guesses, getattr(victim, fld), n,
                                  f"key group {group}: {len(atoms)} atoms from {int(nonempty.sum())} patterns")
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


def date_attack(victim: _Side, public: _Side, schema: EncodingSchema, known: int, rng: np.random.Generator) -> list[Finding]:
    """Exact birth dates from blocking tokens (+ known birth dates), and from pairs compared inside a block."""
    enc = victim.encodings
    n = len(enc)
    truth = victim.dates
    known_idx = [int(i) for i in rng.choice([i for i in range(n) if truth[i]], size=min(known, n), replace=False)] if known else []
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
    label = f"+ {known} known" if known else "tokens only"
    out = [_score(f"date from blocking tokens ({label})", "birth_date", guesses, truth, n)]
    ym = {i: (parts[0][i], parts[1][i]) for i in range(n) if i in parts[0] and i in parts[1]}
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


def whole_person(victim: _Side, findings: list[Finding]) -> Finding:
    """Records whose family name, given name and birth year-month some attack each recovered."""
    right: dict[str, set[int]] = defaultdict(set)
    truth = {"family": victim.family, "given": victim.given,
             "birth_ym": [d[:2] if d else None for d in victim.dates]}
    for f in findings:
        if f.field in truth:
            right[f.field] |= {i for i, g in f.guesses.items() if g is not None and truth[f.field][i] == g}
    both = right["family"] & right["given"] & right["birth_ym"]
    n = len(victim.family)
    return Finding("whole person (any attacks combined)", "name + birth year-month", len(both) / n if n else 0.0,
                   1.0 if both else 0.0)


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
    progress(f"{variant}: 類似度グラフ攻撃")
    report.findings += graph_attack(victim, public, schema)
    progress(f"{variant}: 生年月日攻撃")
    rng = np.random.default_rng(7)
    report.findings += date_attack(victim, public, schema, 0, rng)
    report.findings += date_attack(victim, public, schema, known_dates, rng)
    progress(f"{variant}: 並び順・長さ攻撃")
    n = len(victim.family)
    if sorted_order:
        order = sorted(range(n), key=lambda i: victim.canonical[i].family_name or victim.canonical[i].family_name_kana)
    else:  # the agent's own order, as it sends (and the gateway stores) the records
        order = agent_order(n)
    report.findings += order_attack(victim, public, order)
    report.findings += length_attack(victim, public, padded)
    report.findings.append(whole_person(victim, report.findings))
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
    out["/2 with 1 tap (no diffusion)"] = (parse_schema(doc), False, True)
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
