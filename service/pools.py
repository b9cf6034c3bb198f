"""The process pool that runs the linkage library's heavy steps: the shells own processes, ``linkage`` stays pure.

``linkage`` takes chunks and returns results; it starts no process and keeps
no state between calls. :class:`ForkPool` is the :class:`linkage.match.Engine`
(and the :class:`linkage.encode.ChunkRunner`) that the gateway, ``tsunagu
link`` and the benchmarks hand to it to use this machine's cores.

Each step forks its workers after the step's data exists (the records, the
bitarrays of the names, the encodings): the pool's initializer keeps that
data in this module's worker-side state (:data:`_WORKER`, filled in the
children only), so the workers read it from memory inherited copy-on-write and
only chunk bounds, task lists and results cross the pipe. Each worker function
then calls the pure library function with explicit arguments. The parent
process keeps nothing between calls.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Iterator, Sequence

import numpy as np

from linkage.encode import Chunk, Encoder, Encodings, RowError, encode_chunk
from linkage.match import (Engine, ScoredPairs, bitarray_datasets, cluster_pairs, compare_block_tasks, first_stage, score_slices,
                           take_pairs)
from linkage.record import CanonicalRecord

#: Candidate pairs above which scoring is split over the workers (below, one process is quicker than forking).
SCORE_SPLIT = 50_000

#: One step's data, in a forked worker only (set by :func:`_keep`, the pool's initializer).
_WORKER: dict[str, Any] = {}


def _keep(data: dict[str, Any]) -> None:
    _WORKER.update(data)


def _encode(src: int, start: int, stop: int) -> tuple[Encodings, list[int], list[RowError]]:
    return encode_chunk(_WORKER["encoder"], _WORKER["sources"][src][start:stop], start)


def _compare(tasks: list) -> np.ndarray:
    return compare_block_tasks(_WORKER["datasets"], tasks, _WORKER["threshold"], _WORKER["offsets"])


def _score(slices: list) -> list:
    return score_slices(_WORKER["encodings"], slices, _WORKER["ia"], _WORKER["ib"])


def _fork_map(fn, shares: list, **data: Any) -> list:
    """``fn`` over ``shares``, one forked process per share, each inheriting ``data`` (never pickled)."""
    with get_context("fork").Pool(len(shares), initializer=_keep, initargs=(data,)) as pool:
        return pool.map(fn, shares)


class ForkPool(Engine):
    """Linkage's heavy steps in ``workers`` forked processes on this machine (default: up to 2 cores).

    Results equal the in-process ones: only where the work runs changes.
    """

    #: Solving is quick: all pairs at once, in this process, like the in-process path.
    solves_components = False

    def __init__(self, workers: int | None = None):
        self.workers = workers or min(2, os.cpu_count() or 1)
        self.partitions = self.workers

    def encode_chunks(self, encoder: Encoder, sources: Sequence[Sequence[CanonicalRecord]],
                      chunks: list[Chunk]) -> Iterator[tuple[Encodings, list[int], list[RowError]]]:
        """:func:`linkage.encode.encode_chunk` of every chunk, in order, as the workers finish them."""
        if self.workers <= 1 or len(chunks) <= 1:
            yield from (encode_chunk(encoder, sources[src][start:stop], start) for src, start, stop in chunks)
            return
        # Forked workers read the records from inherited memory: only chunk bounds cross the pipe.
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("fork"), initializer=_keep,
                                 initargs=({"encoder": encoder, "sources": sources},)) as pool:
            yield from pool.map(_encode, *zip(*chunks), chunksize=1)

    def compare_blocks(self, encodings: Sequence[Encodings], shares: list, threshold: float,
                       offsets: np.ndarray) -> list[np.ndarray]:
        datasets = bitarray_datasets(encodings)
        if self.workers <= 1 or len(shares) <= 1:
            return [compare_block_tasks(datasets, share, threshold, offsets) for share in shares]
        return _fork_map(_compare, shares, datasets=datasets, threshold=threshold, offsets=offsets)

    def filter_pairs(self, encodings: Sequence[Encodings], keys: np.ndarray, threshold: float,
                     parts: Sequence[slice] | None) -> np.ndarray:
        # numpy over the listed pairs: quick enough in this process.
        return keys[first_stage(encodings, keys, threshold, parts)]

    def score(self, encodings: Sequence[Encodings], slices: list, ia: np.ndarray, ib: np.ndarray) -> list:
        shares = [slices[w :: self.workers] for w in range(self.workers)] if len(ia) > SCORE_SPLIT else [slices]
        shares = [share for share in shares if share]
        if self.workers <= 1 or len(shares) <= 1:
            return [item for share in shares for item in score_slices(encodings, share, ia, ib)]
        scored = _fork_map(_score, shares, encodings=encodings, ia=ia, ib=ib)
        return [item for share in scored for item in share]

    def solve_components(self, pairs: ScoredPairs, parts: list[np.ndarray], match_threshold: float) -> list:
        return [c for part in parts for c in cluster_pairs(take_pairs(pairs, part), match_threshold)]
