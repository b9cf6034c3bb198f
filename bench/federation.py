"""Benchmark: 10,000 transferred-in children queried against a peer gateway holding 100,000 children's federation encodings.

``python -m bench.federation [--work DIR]``. Worst case for the peer:
all its 100,000 children are recorded as moved out to the asking town, so
every one is a comparison candidate. Timed: the asking gateway builds and
signs the query from its database; the peer verifies it, loads its
encodings, compares (linkage's candidates, per-field scores) and stores
handles and the signed answer; the asking gateway verifies and stores the
answer. Both gateways are real (SQLite homes); only the HTTP hop is left out.

``--quality`` instead measures the bands on a 20,000-children town: the
住民記録 (without address, as federation encodes it) answers queries made from
each other department's records of the same children, which are written as
another system writes them (hiragana, half-width kana, 通称, partial dates) — a
harder case than two towns' 住民記録.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert

from gateway import models
from gateway.core import Gateway
from gateway.db import utcnow
from gateway.federation import config as _config
from gateway.federation import service
from gateway.identity import User
from keys.linkage_secret import generate_linkage_secret
from linkage.encode import encode_records
from linkage.record import CanonicalRecord
from service.pools import ForkPool
from synthetic import generate_town

A, B = "082201", "082210"


def _home(root: Path, code: str, key_id: str) -> Gateway:
    gw = Gateway.open(root / code, linkage_key_id="lk_0000000000000000")
    _config.save(gw.settings.home, _config.FederationConfig(code=code, name=code, contact="こども家庭センター", federation_key_id=key_id,
                                                         purpose="early_support", max_items_per_day=1_000_000))
    return gw


def _store(gw: Gateway, records: list[CanonicalRecord], secret, moved_in_from: str | None, moved_out_to: str | None) -> None:
    stripped = [dataclasses.replace(r, postal_code="", address="") for r in records]
    enc, index, _ = encode_records(stripped, secret.secret, secret.key_id, runner=ForkPool(2))
    with gw.engine.begin() as conn:
        conn.execute(insert(models.agents).values(agent_id="bench", signing_key=b"\0" * 32, signing_key_id="bench", network="mynumber",
                                                 status="enrolled", registered_at=utcnow()))
        sid = conn.execute(insert(models.federation_submissions).values(
            agent_id="bench", sequence=1, content_sha256="0" * 64, federation_key_id=secret.key_id, source="residents",
            record_count=len(index), received_at=utcnow())).inserted_primary_key[0]
        blocks = enc.blocks.astype("<u8")
        conn.execute(insert(models.federation_records), [
            {"source": "residents", "token": f"t{i:08d}", "submission_id": sid, "clk": enc.bits[row].tobytes(),
             "present": int(enc.present[row]), "blocks": blocks[row].tobytes(), "moved_in_from": moved_in_from,
             "moved_out_to": moved_out_to} for row, i in enumerate(index.tolist())])


def quality() -> None:
    """Per department: queries, answered (高 or 中), correct, and the same for 高 alone."""
    from gateway.federation.match import HIGH, match

    secret = generate_linkage_secret()
    town = generate_town(n_children=20_000, seed=1)
    person = {(source, record_id): p for source, record_id, p in town.truth}

    def encoded(source: str) -> tuple[Any, list[str]]:
        rows = town.sources[source]
        records = [dataclasses.replace(CanonicalRecord.from_mapping(r), postal_code="", address="") for r in rows]
        enc, index, _ = encode_records(records, secret.secret, secret.key_id, runner=ForkPool(2))
        return enc, [person[(source, rows[i]["record_id"])] for i in index.tolist()]

    ours, our_people = encoded("residents")
    print("| 照会元 | 照会 | 回答（高・中） | うち正しい | 高 | うち正しい |")
    print("|---|---:|---:|---:|---:|---:|")
    for source in ("maternal", "school", "npo"):
        queries, their_people = encoded(source)
        found = match(ours, queries)
        high = [f for f in found if f.band == HIGH]
        right = sum(our_people[f.record] == their_people[f.query] for f in found)
        right_high = sum(our_people[f.record] == their_people[f.query] for f in high)
        print(f"| {source} | {len(queries):,} | {len(found):,} | {right:,} | {len(high):,} | {right_high:,} |")


def main() -> None:
    """Set up both gateways, then time one query of 10,000 children against 100,000."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--peer-children", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--quality", action="store_true", help="measure the bands instead of the time")
    args = parser.parse_args()
    if args.quality:
        quality()
        return
    root = args.work or Path(tempfile.mkdtemp(prefix="tsunagu-federation-bench-"))
    secret = generate_linkage_secret()
    print(f"準備: 合成の町 {args.peer_children:,} 人を生成・符号化しています（{root}）")
    town = generate_town(n_children=args.peer_children, seed=11)
    children = [CanonicalRecord.from_mapping(r) for r in town.sources["residents"]]
    a, b = _home(root, A, secret.key_id), _home(root, B, secret.key_id)
    for gw, me, peer in ((a, A, B), (b, B, A)):
        cfg = _config.load(gw.settings.home)
        other = _config.signer(root / peer, peer).verifier.vkey()
        cfg.peers = [_config.Peer(code=peer, vkey=other)]
        _config.save(gw.settings.home, cfg)
    _store(a, children, secret, None, B)
    rng = np.random.default_rng(5)
    asked = [children[i] for i in rng.choice(len(children), args.queries, replace=False)]
    _store(b, asked, secret, A, None)
    user = User(0, "bench", "caseworker")
    started = time.perf_counter()
    exchange, query = service.start_query(b, user, A)
    built = time.perf_counter()
    answer = service.answer_query(a, query, "bench")
    answered = time.perf_counter()
    service.accept_answer(b, answer, "bench")
    done = time.perf_counter()
    items = service.results(b, exchange)["items"]
    found = sum(1 for i in items if i["match"])
    print(f"照会 {len(items):,} 件 × 相手方 {args.peer_children:,} 人: {done - started:.1f} 秒"
          f"（照会の作成 {built - started:.1f} 秒、相手方の照合と回答 {answered - built:.1f} 秒、回答の取込 {done - answered:.1f} 秒）、"
          f"一致 {found:,} 件（高 {sum(1 for i in items if i['band'] == '高'):,}）")


if __name__ == "__main__":
    main()
