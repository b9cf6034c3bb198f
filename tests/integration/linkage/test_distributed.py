"""The Dask engine on a real LocalCluster (scheduler and workers over TCP on loopback) gives the local engine's clusters."""

from __future__ import annotations

import numpy as np
import pytest

from linkage.encode import encode_sources
from linkage.match import components, link, solve, solve_components
from linkage.record import CanonicalRecord
from synthetic import generate_town

SECRET = b"test secret for dask engine, 32b"


@pytest.fixture(scope="module")
def encoded():
    town = generate_town(n_children=1500, seed=8)
    sources = [[CanonicalRecord.from_mapping(r) for r in town.sources[n]] for n in town.sources]
    return [e for e, _, _ in encode_sources(sources, SECRET, "k")]


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    # Two single-threaded worker processes; TCP on loopback, as a real deployment talks.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", protocol="tcp",
                      dashboard_address=None, silence_logs=40) as c:
        yield c


def _canonical(clusters):
    return sorted(tuple(sorted(c)) for c in clusters)


def test_dask_engine_gives_the_local_engines_clusters(encoded, cluster):
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    local = link(encoded)
    remote = link(encoded, dask_address=cluster.scheduler_address, model=local.model)
    assert _canonical(remote.clusters) == _canonical(local.clusters)
    assert remote.candidate_count == local.candidate_count
    # Same pairs, same weights (order may differ: compare as sorted pair records).
    def table(r):
        p = r.pairs
        rows = np.stack([p.source_a, p.index_a, p.source_b, p.index_b], axis=1)
        order = np.lexsort(rows.T[::-1])
        return rows[order], p.weight[order]
    (rl, wl), (rr, wr) = table(local), table(remote)
    assert np.array_equal(rl, rr) and np.allclose(wl, wr, equal_nan=True)
    assert sum(len(c) > 1 for c in local.clusters) > 1000


def test_solving_per_component_equals_solving_all_pairs(encoded):
    result = link(encoded)
    parts = components(result.pairs, [len(e) for e in encoded], result.match_threshold)
    assert len(parts) > 100
    assert _canonical(solve_components(encoded, result.pairs, result.match_threshold)) == _canonical(
        solve(encoded, result.pairs, result.match_threshold))


def test_tsunagu_link_dask_gives_the_same_clusters_as_without(cluster, tmp_path):
    import csv
    import subprocess
    import sys

    town = generate_town(n_children=400, seed=12)
    paths = [p for p in town.write(tmp_path) if not str(p).endswith("truth.csv")]
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"k" * 48)
    outputs = []
    for extra in ([], ["--dask", cluster.scheduler_address]):
        out = tmp_path / f"out{len(outputs)}.csv"
        proc = subprocess.run([sys.executable, "-m", "tsunagu.cli", "link", *map(str, paths), "--out", str(out),
                               "--secret-file", str(secret), *extra], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        with out.open(encoding="utf-8") as fh:
            groups: dict[str, set] = {}
            for row in csv.DictReader(fh):
                groups.setdefault(row["cluster_id"], set()).add((row["source"], row["record_id"]))
        outputs.append(sorted(tuple(sorted(g)) for g in groups.values()))
    assert outputs[0] == outputs[1]
    assert sum(len(g) > 1 for g in outputs[0]) > 100
