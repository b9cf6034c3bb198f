"""The matching engine on Dask (``dask.distributed``): past one machine, same clusters as the local engine.

``linkage.match.link(..., dask_address="tcp://scheduler:8786")`` (or
``tsunagu link --dask ADDRESS``, or the gateway's ``linkage_dask_address``
setting) runs the heavy steps on a Dask cluster:

* the encodings are scattered to every worker once;
* **blocks as partitions** — the keyed block pairs are dealt into
  partitions (largest first, each to the least loaded) and each partition is
  compared in a worker with anonlink's compiled Dice; the LSH pass's pairs are
  checked in chunks in workers too;
* **scoring in workers** — the candidate pairs, in slices per source pair;
* **solving per connected component** — the pairs the solver reads split
  into connected components (``linkage.match.components``), solved in
  batches in workers.

Only pair indices, similarities and clusters travel back. Fitting the
u-probabilities (a random sample) and drawing the LSH positions stay on the
client, so both engines use the same model and blocks and give identical
clusters.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from linkage.encode import Encodings
from linkage.match import (
    Engine,
    ScoredPairs,
    bitarray_datasets,
    cluster_pairs,
    compare_block_tasks,
    first_stage,
    take_pairs,
)
from linkage.compare import compare_pairs

#: Candidate pairs per scoring or filtering task.
CHUNK = 200_000


def _compare_partition(encodings: Sequence[Encodings], tasks: list, threshold: float, offsets: np.ndarray) -> np.ndarray:
    return compare_block_tasks(bitarray_datasets(encodings), tasks, threshold, offsets)


def _filter_chunk(encodings: Sequence[Encodings], keys: np.ndarray, threshold: float, parts) -> np.ndarray:
    return keys[first_stage(encodings, keys, threshold, parts)]


def _score_slices(encodings: Sequence[Encodings], slices: list) -> list:
    return [(sel, compare_pairs(encodings[s], a, encodings[t], b)) for s, t, sel, a, b in slices]


def _solve_batch(pairs: ScoredPairs, match_threshold: float, lone: np.ndarray) -> list:
    # The batch holds whole components only, so solving it at once equals solving each alone.
    return cluster_pairs(pairs, match_threshold, lone)


class DaskEngine(Engine):
    """Runs the matching steps on the Dask cluster at ``address`` (a context manager: it closes its client)."""

    def __init__(self, address: str, partitions_per_worker: int = 2):
        from distributed import Client

        self.client = Client(address, set_as_default=False)
        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.partitions = workers * partitions_per_worker
        self._scattered: tuple[int, object] | None = None

    def __enter__(self) -> "DaskEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client (the cluster itself keeps running)."""
        self.client.close()

    def _encodings(self, encodings: Sequence[Encodings]):
        # One copy per worker for the whole run, not one per task.
        if self._scattered is None or self._scattered[0] != id(encodings):
            self._scattered = (id(encodings), self.client.scatter(list(encodings), broadcast=True))
        return self._scattered[1]

    def compare_blocks(self, encodings, shares, threshold, offsets):
        remote = self._encodings(encodings)
        futures = [self.client.submit(_compare_partition, remote, share, threshold, offsets, pure=False) for share in shares]
        return self.client.gather(futures)

    def filter_pairs(self, encodings, keys, threshold, parts):
        if not len(keys):
            return keys
        remote = self._encodings(encodings)
        futures = [self.client.submit(_filter_chunk, remote, keys[i : i + CHUNK], threshold, parts, pure=False)
                   for i in range(0, len(keys), CHUNK)]
        return np.concatenate(self.client.gather(futures))

    def score(self, encodings, slices, ia, ib):
        remote = self._encodings(encodings)
        batches = [slices[w :: self.partitions] for w in range(self.partitions)]
        futures = [self.client.submit(_score_slices, remote, [(s, t, sel, ia[sel], ib[sel]) for s, t, sel in batch], pure=False)
                   for batch in batches if batch]
        return [item for part in self.client.gather(futures) for item in part]

    def solve_components(self, pairs, parts, match_threshold, lone):
        if not parts:
            return []
        # Components dealt into batches of similar size; each batch travels as its pairs only.
        loads = [0] * self.partitions
        batches: list[list[np.ndarray]] = [[] for _ in range(self.partitions)]
        for part in sorted(parts, key=len, reverse=True):
            w = loads.index(min(loads))
            batches[w].append(part)
            loads[w] += len(part)
        futures = [self.client.submit(_solve_batch, take_pairs(pairs, np.concatenate(b)), match_threshold,
                                      lone[np.concatenate(b)], pure=False) for b in batches if b]
        return [c for part in self.client.gather(futures) for c in part]


__all__ = ["DaskEngine"]
