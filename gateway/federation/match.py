"""Match: a peer's query encodings against this gateway's children who moved out to that peer.

The comparison is linkage's own (``linkage.match``: keyed birth-date blocks and
anonlink Dice for candidates, ``linkage.compare`` per-field similarities,
``linkage.score`` Fellegi–Sunter weights); federation encodings carry no
address. Each query gets its best candidate and a band: 高 at or above the
match threshold and unambiguous, 中 in the review band or when two of our
children are within the ambiguity margin. Anything lower is no match, and the
answer says no more than that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keys.linkage_secret import ensure_same_key_id
from linkage.encode import Encodings
from linkage.match import AMBIGUITY_MARGIN, MATCH_THRESHOLD, REVIEW_THRESHOLD, candidate_pairs, fit_model, score_pairs
from linkage.schema import load_schema

HIGH, MEDIUM = "高", "中"


@dataclass(frozen=True, slots=True)
class Found:
    """The query at ``query`` matched our record at ``record`` with ``band``."""

    query: int
    record: int
    band: str


def encodings(schema_version: str, key_id: str, clks: list[bytes], present: list[int], blocks: list[bytes], n_blocks: int) -> Encodings:
    """An :class:`Encodings` batch from stored or received rows (blocks as little-endian uint64 bytes)."""
    nbytes = load_schema(schema_version).total_bytes
    n = len(clks)
    bits = np.frombuffer(b"".join(clks), dtype=np.uint8).reshape(n, nbytes).copy() if n else np.zeros((0, nbytes), np.uint8)
    blk = np.frombuffer(b"".join(blocks), dtype="<u8").reshape(n, n_blocks).astype(np.uint64) if n else np.zeros((0, n_blocks), np.uint64)
    return Encodings(schema_version, key_id, bits, np.asarray(present, dtype=np.uint16), blk)


def match(ours: Encodings, queries: Encodings) -> list[Found]:
    """For each query, our best record in the 高 or 中 band (queries without one are left out)."""
    ensure_same_key_id(ours.key_id, queries.key_id)
    if not len(ours) or not len(queries):
        return []
    sets = [ours, queries]
    sa, ia, sb, ib = candidate_pairs(sets)
    pairs = score_pairs(sets, sa, ia, sb, ib, fit_model(sets))
    weight = pairs.weight
    keep = np.flatnonzero(weight >= REVIEW_THRESHOLD)
    # sources are ordered (ours=0, queries=1), so index_a is ours and index_b the query
    order = keep[np.lexsort((-weight[keep], pairs.index_b[keep]))]
    found: list[Found] = []
    for q in np.unique(pairs.index_b[order]):
        rows = order[pairs.index_b[order] == q]
        best = rows[0]
        rival = len(rows) > 1 and weight[best] - weight[rows[1]] < AMBIGUITY_MARGIN
        band = HIGH if weight[best] >= MATCH_THRESHOLD and not rival else MEDIUM
        found.append(Found(int(q), int(pairs.index_a[best]), band))
    return found
