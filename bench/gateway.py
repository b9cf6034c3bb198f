"""Benchmarks of the gateway; each prints its figures (no pass/fail).

    python -m bench.gateway ingest [--children 50000]   records/s into SQLite (verify + store, one transaction per submission)
    python -m bench.gateway relink [--children 50000]   a full relink from and to the database, with its stages
    python -m bench.gateway incremental [--children 50000 --changes 1000]
                                                        a day's changed records linked into the linked gateway (incremental run)
    python -m bench.gateway load [--users 50 --requests 4000 --think-ms 0]
                                                        casework read latency (p50/p95/p99) of the real server on loopback

A synthetic town is encoded, sealed and signed once by stand-in agents
(``synthetic.agents``) into ``--work`` (default: a temporary folder); pass
the same ``--work`` to reuse the submissions and the ingested, linked gateway
across commands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from synthetic.agents import synthetic_agents
from linkage.schema import load_schema
from synthetic import generate_town

_PASSWORD = "bench-password-not-secret"


def prepare_submissions(work: Path, children: int, seed: int = 1) -> tuple[list[Path], Path, str]:
    """Submissions of a synthetic town (cached in ``work``): files, the public key files' folder, the linkage key id."""
    folder = work / f"submissions-{children}"
    manifest = folder / "bench.json"
    if manifest.exists():
        meta = json.loads(manifest.read_text())
        return [folder / f for f in meta["files"]], folder, meta["linkage_key_id"]
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    town = generate_town(n_children=children, seed=seed)
    agents = synthetic_agents(sorted(town.sources), folder / "agents")
    files, registry = [], []
    for source, agent in agents.items():
        path = folder / f"{source}.jsonl"
        path.write_bytes(agent.submit(source, town.sources[source]))
        files.append(path.name)
        registry.append({"public": str(agent.public_file), "network": agent.network, "source": source})
    linkage_key_id = next(iter(agents.values())).linkage.key_id
    manifest.write_text(json.dumps({"files": files, "agents": registry, "linkage_key_id": linkage_key_id}))
    print(f"町の生成・符号化・封緘・署名: {children} 人、{sum(len(v) for v in town.sources.values())} 件、"
          f"{time.perf_counter() - started:.1f} 秒（計測対象外）")
    return [folder / f for f in files], folder, linkage_key_id


def _fresh_gateway(work: Path, folder: Path, linkage_key_id: str):  # noqa: ANN202 - returns gateway.core.Gateway
    from gateway.agents import register_agent
    from gateway.core import Gateway
    from keys.enrolment import read_agent_public

    home = work / "gateway"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / "gateway.toml").write_text(f'linkage_key_id = "{linkage_key_id}"\n', encoding="utf-8")
    gw = Gateway.open(home)
    for agent in json.loads((folder / "bench.json").read_text())["agents"]:
        register_agent(gw, read_agent_public(Path(agent["public"])), agent["network"], [agent["source"]])
    return gw


def bench_ingest(work: Path, children: int) -> float:
    """Ingest every source's submission into a fresh SQLite gateway; prints and returns records per second."""
    from gateway.ingest import ingest

    files, folder, key_id = prepare_submissions(work, children)
    gw = _fresh_gateway(work, folder, key_id)
    load_schema()  # a running server has validated the schema at its first submission already
    total_records, total_seconds = 0, 0.0
    for path in files:
        data = path.read_bytes()
        started = time.perf_counter()
        result = ingest(gw, data, "import", path=path.name)
        seconds = time.perf_counter() - started
        total_records += result.accepted
        total_seconds += seconds
        print(f"  {path.stem:10s} {result.accepted:7d} 件 {len(data) / 2**20:7.1f} MiB {seconds:6.2f} 秒 {result.accepted / seconds:9,.0f} 件/秒")
    rate = total_records / total_seconds
    print(f"ingest: {total_records} 件を {total_seconds:.2f} 秒で取込、{rate:,.0f} 件/秒（SQLite WAL、署名検証・ポリシー検査・1 提出 1 トランザクション）")
    gw.close()
    return rate


def bench_relink(work: Path, children: int) -> dict:
    """Ingest the town, then time a full relink from and to the database (and a second, unchanged one)."""
    from gateway.link import run_linkage

    bench_ingest(work, children)
    from gateway.core import Gateway

    gw = Gateway.open(work / "gateway")
    for label in ("初回", "再実行（人物 ID の引き継ぎ）"):
        started = time.perf_counter()
        stats = run_linkage(gw, trigger="bench")
        seconds = time.perf_counter() - started
        print(f"relink {label}: {seconds:.1f} 秒 — 記録 {stats['records']}、候補ペア {stats['candidates']}、一致ペア {stats['matched_pairs']}、"
              f"要確認 {stats['review_pairs']}、人物 {stats['persons']}（新規 {stats['new_persons']}）；"
              f"読込 {stats['load_seconds']} 秒、名寄せ {stats['link_seconds']} 秒、書込 {stats['store_seconds']} 秒")
    gw.close()
    return stats


def bench_incremental(work: Path, children: int, changes: int) -> dict:
    """Ingest and link the town, then change ``changes`` residents' records and time the incremental run."""
    from gateway.agents import register_agent
    from gateway.core import Gateway
    from gateway.ingest import ingest
    from gateway.link import run_linkage
    from keys.enrolment import read_agent_public

    started = time.perf_counter()
    town = generate_town(n_children=children, seed=1)
    agents = synthetic_agents(sorted(town.sources), work / "agents")
    home = work / "gateway-incremental"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    key_id = next(iter(agents.values())).linkage.key_id
    (home / "gateway.toml").write_text(f'linkage_key_id = "{key_id}"\n', encoding="utf-8")
    gw = Gateway.open(home)
    for source, agent in agents.items():
        register_agent(gw, read_agent_public(agent.public_file), agent.network, [source])
        ingest(gw, agent.submit(source, town.sources[source]), "import")
    print(f"町の生成・符号化・取込: {children} 人、{time.perf_counter() - started:.1f} 秒（計測対象外）")
    started = time.perf_counter()
    first = run_linkage(gw, trigger="bench", full=True)
    print(f"full run: {time.perf_counter() - started:.1f} 秒 — 記録 {first['records']}、人物 {first['persons']}")
    # The residents' agent sends its next snapshot with ``changes`` records changed (a move within town).
    rows = [dict(r) for r in town.sources["residents"]]
    for i in random.Random(5).sample(range(len(rows)), changes):
        rows[i]["address"] = (rows[i].get("address") or "") + "1"
    data = agents["residents"].submit("residents", rows)
    t = time.perf_counter()
    ingest(gw, data, "import")
    ingest_s = time.perf_counter() - t
    # The same run a second time, from a copy of the gateway, the way the server runs it: in a fresh
    # process of its own (gateway.link.run_in_subprocess), not in this one that holds the whole town.
    gw.close()
    twin_home = work / "gateway-incremental-fresh"
    shutil.rmtree(twin_home, ignore_errors=True)
    shutil.copytree(home, twin_home)
    gw = Gateway.open(home)
    t = time.perf_counter()
    stats = run_linkage(gw, trigger="bench")
    seconds = time.perf_counter() - t
    gw.close()
    print(f"incremental run: {changes:,} 件の変更を {seconds:.2f} 秒で名寄せ（{stats['mode']}、変更 {stats.get('changed_records')} 件、"
          f"新しい候補ペア {stats.get('new_candidate_pairs')}、解き直した連結成分 {stats.get('components_resolved')}）；"
          f"読込 {stats['load_seconds']} 秒、名寄せ {stats['link_seconds']} 秒、書込 {stats['store_seconds']} 秒；取込 {ingest_s:.2f} 秒（別計測）")
    from gateway.link import run_in_subprocess, runs

    t = time.perf_counter()
    code = run_in_subprocess(twin_home, "bench")
    fresh_s = time.perf_counter() - t
    twin = Gateway.open(twin_home)
    last = runs(twin, limit=1)[0]
    twin.close()
    print(f"same run in a fresh process (as the server runs it; exit {code}): {fresh_s:.2f} 秒（起動・import 込み）；"
          f"読込 {last['load_seconds']} 秒、名寄せ {last['link_seconds']} 秒、書込 {last['store_seconds']} 秒")
    shutil.rmtree(twin_home, ignore_errors=True)
    return stats


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_load(work: Path, children: int, users: int, requests: int, think_ms: float = 0.0) -> dict:
    """p50/p95/p99 of casework reads by ``users`` concurrent clients (``requests`` in all, ``think_ms`` between a user's requests) against the real server."""
    from gateway.core import Gateway
    from gateway.identity import add_user
    from gateway.link import current_run_id

    if (work / "gateway" / "gateway.db").exists():
        # The ingest benchmark leaves a gateway without a linkage run: relink then.
        gw = Gateway.open(work / "gateway")
        with gw.engine.connect() as conn:
            linked = current_run_id(conn) is not None
        gw.close()
    else:
        linked = False
    if not linked:
        bench_relink(work, children)
    gw = Gateway.open(work / "gateway")
    try:
        add_user(gw, "bench-caseworker", "caseworker", _PASSWORD)
    except Exception:  # noqa: BLE001 - the user exists from an earlier run
        pass
    gw.close()
    port = _free_port()
    tsunagu = str(Path(sys.executable).with_name("tsunagu"))
    server = subprocess.Popen([tsunagu, "gateway", "serve", "--home", str(work / "gateway"), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return asyncio.run(_load(f"http://127.0.0.1:{port}", users, requests, think_ms))
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _load(base: str, users: int, requests: int, think_ms: float = 0.0) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        deadline = time.monotonic() + 180  # a 50,000-children database on a busy machine takes a while to open
        while time.monotonic() < deadline:
            try:
                if (await client.get("/api/v1/health")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.2)
        token = (await client.post("/api/v1/auth/login", json={"username": "bench-caseworker", "password": _PASSWORD})).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        # The first page after the server opened the published run: nothing is cached, the run's summary is read as is.
        started = time.perf_counter()
        (await client.get("/api/v1/persons", params={"limit": 50, "source": "school", "sort": "records"}, headers=headers)).raise_for_status()
        cold = (time.perf_counter() - started) * 1000
        print(f"list: 起動直後の最初の 1 ページ（校務支援システムあり・記録の多い順、50 人）{cold:.1f} ms")
        persons = [p["person_id"] for p in (await client.get("/api/v1/persons", params={"limit": 1000, "min_sources": 2},
                                                             headers=headers)).json()["persons"]]
    paths = [f"/api/v1/persons/{p}" for p in persons] + [f"/api/v1/persons/{p}/timeline" for p in persons]
    latencies: list[float] = []
    errors = 0
    per_user = requests // users

    async def user(n: int) -> None:
        nonlocal errors
        rng = random.Random(n)
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers, limits=limits) as c:
            for _ in range(per_user):
                path = rng.choice(paths)
                started = time.perf_counter()
                r = await c.get(path)
                latencies.append(time.perf_counter() - started)
                errors += r.status_code != 200
                if think_ms:
                    await asyncio.sleep(rng.uniform(0.5, 1.5) * think_ms / 1000)

    started = time.perf_counter()
    await asyncio.gather(*(user(n) for n in range(users)))
    elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    figures = {"requests": len(latencies), "errors": errors, "users": users, "seconds": round(elapsed, 2),
               "per_second": round(len(latencies) / elapsed), "p50_ms": round(q[49] * 1000, 1), "p95_ms": round(q[94] * 1000, 1),
               "p99_ms": round(q[98] * 1000, 1)}
    figures["lists"] = await _lists(base, headers)
    pause = f"、操作間隔 平均 {think_ms:.0f} ms" if think_ms else "、操作間隔なし（連続要求）"
    print(f"load: 同時 {users} 利用者{pause}、{figures['requests']} 要求（人物・経年変化、エラー {errors}）、{figures['per_second']} 要求/秒；"
          f"p50 {figures['p50_ms']} ms、p95 {figures['p95_ms']} ms、p99 {figures['p99_ms']} ms")
    return figures


#: Pages of the persons list a caseworker asks for: filters, sorts, an id search, and pages deep into the list.
_LIST_PAGES = (
    ("絞り込みなし・1 ページ目", {}),
    ("2 データ元以上・100 ページ目", {"min_sources": 2, "offset": 4950}),
    ("校務支援システムあり・記録の多い順", {"source": "school", "sort": "records"}),
    ("データ元の多い順・最終ページ付近", {"sort": "sources", "offset": 40_000}),
    ("人物 ID の先頭で検索", {"q": "P0a"}),
)


async def _lists(base: str, headers: dict[str, str], repeats: int = 10) -> dict[str, float]:
    """Server-side filtered, sorted, paged persons lists (50 per page), one request at a time, through the API and as
    the caseworker's screen (``/ui/persons``, rendered HTML); prints ms per page."""
    out: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as api, httpx.AsyncClient(base_url=base, timeout=60, follow_redirects=True) as ui:
        total = (await api.get("/api/v1/persons", params={"limit": 1})).json()["total"]
        form = await ui.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
        (await ui.post("/ui/login", data={"username": "bench-caseworker", "password": _PASSWORD, "nonce": nonce.group(1) if nonce else ""})
         ).raise_for_status()
        for where, client, path in (("API", api, "/api/v1/persons"), ("画面", ui, "/ui/persons")):
            for label, params in _LIST_PAGES:
                if where == "画面":
                    params = {k: v for k, v in params.items() if k != "limit"}  # the screen's page is 50 persons
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    r = await client.get(path, params={"limit": 50, **params} if where == "API" else params)
                    times.append((time.perf_counter() - started) * 1000)
                    r.raise_for_status()
                    if where == "画面" and "/ui/login" in str(r.url):
                        raise RuntimeError("the benchmark's caseworker could not log in to the screens")
                key = f"{where}: {label}"
                out[key] = round(statistics.median(times), 1)
                print(f"list: 人物 {total:,} 人の一覧（{where}）— {label}: 1 ページ（50 人）{out[key]} ms（中央値、最大 {max(times):.1f} ms）")
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line of the benchmarks."""
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description="ゲートウェイの性能測定")
    parser.add_argument("what", choices=["ingest", "relink", "incremental", "load"])
    parser.add_argument("--changes", type=int, default=1_000, help="incremental: 変更する記録の数")
    parser.add_argument("--children", type=int, default=50_000)
    parser.add_argument("--work", type=Path, help="作業フォルダ（提出データとゲートウェイを再利用）")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--think-ms", type=float, default=0.0, help="利用者ごとの操作間隔の平均（ミリ秒、0 で連続要求）")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="tsunagu-gateway-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"作業フォルダ: {work}（CPU {os.cpu_count()} コア）")
    if args.what == "ingest":
        bench_ingest(work, args.children)
    elif args.what == "relink":
        bench_relink(work, args.children)
    elif args.what == "incremental":
        bench_incremental(work, args.children, args.changes)
    else:
        bench_load(work, args.children, args.users, args.requests, args.think_ms)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
