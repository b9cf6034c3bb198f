"""Benchmarks of the key library: records sealed per second, audit appends per second with proofs.

Run ``python -m bench.keys`` (or call :func:`bench_seal` / :func:`bench_audit`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from keys import seal
from transparency import rfc9162 as merkle
from keys.audit import AuditEntry
from service.audit_store import open_log
from service.db import sqlite_engine
from transparency.tlog_checkpoint import Signer
from keys.custody import EscrowPublicKey


def bench_seal(records: int = 50_000) -> float:
    """Seal ``records`` realistic identities in one batch; returns records per second (one core)."""
    escrow = EscrowPublicKey.from_raw(X25519PrivateKey.generate().public_key().public_bytes_raw())
    identities = {
        f"rt_{i:012x}": {"name": "山田 太郎", "kana": "ヤマダ タロウ", "birth_date": "2015-04-01",
                         "address": "東京都千代田区千代田1-1", "record_id": f"A{i:09d}"}
        for i in range(records)
    }
    start = time.perf_counter()
    seal.seal_batch(escrow, "edu", "bench", identities)
    return records / (time.perf_counter() - start)


def bench_audit(entries: int = 1_000, directory: Path | None = None) -> float:
    """Append ``entries`` to a SQLite audit log (WAL, full fsync), each returning its signed checkpoint and inclusion proof.

    Returns appends per second; every proof is verified after timing.
    """
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        signer = Signer("tsunagu/bench/audit-log", Ed25519PrivateKey.generate())
        store = open_log(sqlite_engine(str(Path(tmp) / "audit.db")), signer, signer.name)
        proofs = []
        start = time.perf_counter()
        for i in range(entries):
            receipt = store.append(AuditEntry.now(actor="bench", role="caseworker", action="reid.request",
                                                  outcome="requested", target=f"p_{i:08x}"))
            proofs.append((receipt.leaf_hash, receipt.proof))
        rate = entries / (time.perf_counter() - start)
        for leaf, proof in proofs:
            merkle.verify_inclusion(leaf, proof.leaf_index, proof.tree_size, proof.proof, proof.root)
    return rate


def fsync_latency_ms(directory: Path | None = None, rounds: int = 50) -> float:
    """Median time of one small write + fsync in ``directory``: the floor under each durable append."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = Path(tmp) / "probe"
        times = []
        with path.open("wb") as handle:
            for _ in range(rounds):
                start = time.perf_counter()
                handle.write(b"x" * 512)
                handle.flush()
                os.fsync(handle.fileno())
                times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    """Print both figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--entries", type=int, default=1_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary SQLite file goes (its disk is measured)")
    args = parser.parse_args()
    print(f"seal: {bench_seal(args.records):,.0f} records/s (one batch of {args.records:,}, one core; target 50,000)")
    print(f"audit: {bench_audit(args.entries, args.dir):,.0f} appends/s with an inclusion proof each "
          f"({args.entries:,} entries, SQLite WAL synchronous=FULL; target 1,000)")
    print(f"disk: {fsync_latency_ms(args.dir):.2f} ms per fsync here (each append commits, so it pays at least one)")


if __name__ == "__main__":
    main()
