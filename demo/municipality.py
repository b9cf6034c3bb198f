"""`make demo`: a generated town linked with `tsunagu link`, then the whole deployed flow over loopback.

Part 1 links a town's four department files in one process and prints the
quality table. Part 2 runs every party as its own deployment under `.demo/`
(`keys`, `gateway`, `escrow`, `agent-edu`, `agent-mynumber`,
`agent-internet`, each agent home holding its department files): the key
ceremony, three agents delivering, linkage, screening, a review decision, a
re-identification requested at the gateway, approved at the escrow, unsealed
by custodians and released once to the caseworker, and both audit logs
exported and verified by an auditor who trusts only the services' log keys
and the witnesses' keys: the escrow witnesses the gateway's log, the gateway
the escrow's, and the auditor runs a witness of their own (`audit-witness`);
a history the gateway's operator rewrites and re-signs is then shown to fail.
Support is recorded for part of two frozen lists, the evaluation report
written to `.demo/evaluation`, and one return list resolved by the My Number
agent. Part 4 sets up a second town (`.demo/gateway-b`,
its own keys and database, a federation secret from the prefecture) that finds
a child who moved from the first town, and verifies both towns' audit logs.
Everything goes through the real `tsunagu` commands
and HTTP APIs; passwords and passphrases are generated here, kept in
`.demo/secrets.json` (mode 0600) and given on standard input, never on a
command line. The key derivation uses small Argon2id parameters
(1 MiB) so the demo runs in minutes; real deployments keep the default (64 MiB).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import tomllib
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from demo._servers import free_port, serve, stop

DEMO = Path(".demo")
REPO = Path(__file__).resolve().parents[1]
DEMO_KDF_KIB = "1024"  # demo only: 1 MiB Argon2id; production keeps the 64 MiB default
CUSTODIANS = ("sato-k", "suzuki-k", "takahashi-k")
#: The demo's accounts, by service: (user name, role). The same person has one account at each service.
GATEWAY_ACCOUNTS = (("admin", "admin"), ("tanaka", "caseworker"), ("sato", "approver"), (CUSTODIANS[0], "custodian"), ("kato", "auditor"),
                    ("ito", "analyst"))
ESCROW_ACCOUNTS = (("escrow-admin", "admin"), ("tanaka", "caseworker"), ("sato", "approver"), ("kato", "auditor"),
                   *[(c, "custodian") for c in CUSTODIANS])
GATEWAY_PORT, ESCROW_PORT = 8443, 8600
_ROLE_NAMES = {"admin": "管理者（情報政策課）", "caseworker": "ケースワーカー", "approver": "承認者", "custodian": "鍵管理者",
               "auditor": "監査担当", "analyst": "分析担当"}
HOMES = ("keys", "gateway", "escrow", "agent-edu", "agent-mynumber", "agent-internet", "audit", "audit-witness")
AGENTS = {  # home: (agent id, network, preset, [(mapping, department file)], gaiji, push)
    "agent-edu": ("edu-1", "edu", "edu_network", [("school.toml", "school.csv")], None, True),
    "agent-mynumber": ("mynumber-1", "mynumber", "mynumber_network", [("residents.toml", "residents.csv"), ("maternal.toml", "maternal.tsv")],
                       "gaiji.toml", False),
    "agent-internet": ("internet-1", "internet", "internet_network", [("npo.toml", "npo.csv"), ("csw.toml", "csw.xlsx")], None, True),
}


def _tsunagu(*args: str, stdin: str | None = None, env: dict[str, str] | None = None, check: bool = True, quiet: bool = False,
             stream: bool = False) -> str:
    """Run a `tsunagu` command (secrets only on ``stdin``); echo it and its output (``stream``: straight to the terminal)."""
    print("$ tsunagu " + " ".join(args), flush=True)
    if stream:
        if subprocess.run([sys.executable, "-m", "tsunagu.cli", *args]).returncode != 0 and check:
            raise SystemExit(f"デモを中断します: tsunagu {args[0]} が失敗しました。")
        return ""
    done = subprocess.run([sys.executable, "-m", "tsunagu.cli", *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    output = done.stdout + done.stderr
    if not quiet and output.strip():
        print("  " + output.strip().replace("\n", "\n  "), flush=True)
    if check and done.returncode != 0:
        raise SystemExit(f"デモを中断します: tsunagu {args[0]} {args[1] if len(args) > 1 else ''} が失敗しました。")
    return done.stdout


def _part1_link() -> None:
    from synthetic import generate_town

    town_dir = DEMO / "town"
    town_dir.mkdir(parents=True, exist_ok=True)
    children = int(os.environ.get("TSUNAGU_DEMO_CHILDREN", "10000"))
    print(f"== 合成自治体（子ども {children:,} 人）の各部署のファイルを作成します: {town_dir}", flush=True)
    town = generate_town(n_children=children, seed=2026)
    town.write(town_dir, encodings={"school": "cp932"})
    secret = DEMO / "linkage-secret.bin"
    if not secret.exists():
        secret.write_bytes(os.urandom(32))
        secret.chmod(0o600)
    files = [str(town_dir / f"{s}.csv") for s in ("residents", "school", "maternal", "npo")]
    print("== 4 部署のファイルを符号化して名寄せします（氏名はこのプロセスの外に出ません）", flush=True)
    _tsunagu("link", *files, "--out", str(DEMO / "clusters.csv"), "--secret-file", str(secret), "--truth", str(town_dir / "truth.csv"),
             stream=True)
    print(f"\n結果: {DEMO / 'clusters.csv'}（source,record_id,cluster_id）")


def _secrets() -> dict[str, str]:
    """Fresh passwords and passphrases for this run, written to .demo/secrets.json (0600)."""
    names = ["operator", *[f"custodian:{c}" for c in CUSTODIANS], "agent", *[f"gateway:{u}" for u, _ in GATEWAY_ACCOUNTS],
             *[f"escrow:{u}" for u, _ in ESCROW_ACCOUNTS]]
    values = {n: secrets.token_urlsafe(18) for n in names}
    path = DEMO / "secrets.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(values, f, ensure_ascii=False, indent=1)
    return values


def _serve(args: list[str], health: str, log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    return serve(args, port, health, log, env), f"http://127.0.0.1:{port}"


def _client(url: str, username: str, password: str) -> Any:
    import httpx

    r = httpx.post(f"{url}/api/v1/auth/login", json={"username": username, "password": password}, timeout=30)
    r.raise_for_status()
    return httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {r.json()['access_token']}"})


def _municipal_policy(path: Path) -> None:
    """The gateway's policy: the shipped default, with the agent presets' sources and attributes."""
    import tomli_w

    document = tomllib.loads((REPO / "policy" / "default_policy.toml").read_text(encoding="utf-8"))
    for _, _, preset, _, _, _ in AGENTS.values():
        for network, spec in tomllib.loads((REPO / "agents" / preset / "policy.toml").read_text(encoding="utf-8"))["networks"].items():
            document["networks"].setdefault(network, {"label": spec["label"], "sources": {}})["sources"].update(spec["sources"])
    path.write_text(tomli_w.dumps(document), encoding="utf-8")


def _part2_deployment() -> dict[str, Any]:
    from synthetic.samples import write_samples
    from keys.keyring import Keyring

    for name in HOMES:
        shutil.rmtree(DEMO / name, ignore_errors=True)
    pw = _secrets()
    story: dict[str, Any] = {}
    print("\n== 第 2 部: 各部署・ゲートウェイ・エスクローを別々の配置として動かします（.demo/ の下）", flush=True)

    print("\n== 鍵の生成式（デモなので Argon2id は 1 MiB。本番は既定の 64 MiB）", flush=True)
    keys = DEMO / "keys"
    _tsunagu("keys", "init", "--home", str(keys), "--municipality", "000000", *[a for c in CUSTODIANS for a in ("--custodian", c)],
             "--threshold", "2", "--passphrase-stdin", "--kdf-memory-kib", DEMO_KDF_KIB,
             stdin="\n".join([pw["operator"], *[pw[f"custodian:{c}"] for c in CUSTODIANS]]) + "\n")
    ring = Keyring(keys)
    issuer = keys / "issuer-key.txt"
    issuer.write_text(ring.federation_vkey + "\n", encoding="utf-8")
    shares = sorted((keys / "shares").glob("*/custodian-*.json"))

    print("\n== ゲートウェイ（連携鍵の ID だけを持ち、鍵そのものは持ちません）", flush=True)
    gateway = DEMO / "gateway"
    gateway.mkdir(mode=0o700)
    _municipal_policy(DEMO / "policy.toml")
    out = _tsunagu("gateway", "init", "--home", str(gateway), "--linkage-key-id", ring.current_linkage_key_id, "--policy", str(DEMO / "policy.toml"))
    verifier = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("監査ログの検証鍵"))
    (gateway / "audit-verifier.txt").write_text(verifier + "\n", encoding="utf-8")
    (DEMO / "policy.toml").unlink()
    for username, role in GATEWAY_ACCOUNTS:
        _tsunagu("gateway", "user", "add", "--home", str(gateway), "--username", username, "--role", role, "--password-stdin",
                 stdin=pw[f"gateway:{username}"] + "\n")

    print("\n== エスクロー（封緘されたエスクロー鍵だけを写します。持分もパスフレーズも写しません）", flush=True)
    escrow = DEMO / "escrow"
    _tsunagu("escrow", "init", "--home", str(escrow), "--from-keys", str(keys), "--gateway-verifier", str(gateway / "audit-verifier.txt"),
             "--policy", str(gateway / "policy.toml"))
    for username, role in ESCROW_ACCOUNTS:
        _tsunagu("escrow", "user", "add", "--home", str(escrow), "--username", username, "--role", role, "--password-stdin",
                 stdin=pw[f"escrow:{username}"] + "\n", quiet=True)

    print("\n== 証人: エスクローはゲートウェイの監査ログに、ゲートウェイはエスクローの監査ログに連署します。監査担当者も自分の証人を置きます", flush=True)
    _tsunagu("audit", "witness", "trust", "--home", str(gateway), "--origin", "tsunagu.escrow/000000",
             "--log-key", str(escrow / "audit-verifier.txt"))
    _tsunagu("audit", "witness", "show", "--home", str(escrow))
    auditor = DEMO / "audit-witness"
    _tsunagu("audit", "witness", "init", "--home", str(auditor), "--name", "kansa.demo/witness")
    _tsunagu("audit", "witness", "trust", "--home", str(auditor), "--origin", "tsunagu.gateway/000000",
             "--log-key", str(gateway / "audit-verifier.txt"))

    print("\n== 3 つのエージェント（校務系・マイナンバー利用事務系・インターネット接続系）の登録", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_samples(Path(tmp), children=int(os.environ.get("TSUNAGU_DEMO_AGENT_CHILDREN", "2000")), seed=2026)
        for home_name, (agent_id, network, preset, sources, gaiji, _push) in AGENTS.items():
            home = DEMO / home_name
            (home / "data").mkdir(parents=True)
            (home / "mappings").mkdir()
            for mapping, data in sources:
                shutil.copy(REPO / "agents" / preset / "mappings" / mapping, home / "mappings" / mapping)
                shutil.move(str(Path(tmp) / preset / data), home / "data" / data)
            if gaiji:
                shutil.move(str(Path(tmp) / preset / gaiji), home / gaiji)
            shutil.copy(REPO / "agents" / preset / "policy.toml", home / "policy.toml")
        shutil.move(str(files["truth"]), DEMO / "agent-truth.csv")
    for home_name, (agent_id, network, preset, sources, gaiji, _push) in AGENTS.items():
        home = DEMO / home_name
        _tsunagu("keys", "agent-init", "--home", str(home), "--agent-id", agent_id, "--passphrase-stdin", "--kdf-memory-kib", DEMO_KDF_KIB,
                 stdin=pw["agent"] + "\n")
        _tsunagu("keys", "enrol", "--home", str(keys), "--agent-public", str(home / "keys" / "agent-public.json"), "--passphrase-stdin",
                 stdin=pw["operator"] + "\n")
        wrapped = next((keys / "enrolments").glob(f"{agent_id}-*.json"))
        _tsunagu("keys", "agent-install", "--home", str(home), "--wrapped", str(wrapped), "--issuer-key", str(issuer),
                 "--passphrase-stdin", "--kdf-memory-kib", DEMO_KDF_KIB, stdin=pw["agent"] + "\n")
        shutil.copy(keys / "keys" / "escrow-public.json", home / "escrow-public.json")
        fd = os.open(home / "passphrase.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(pw["agent"] + "\n")
        source_names = [tomllib.loads((home / "mappings" / m).read_text(encoding="utf-8"))["source"] for m, _ in sources]
        _tsunagu("gateway", "agent", "register", "--home", str(gateway), "--agent-public", str(home / "keys" / "agent-public.json"),
                 "--network", network, *[a for s in source_names for a in ("--source", s)])
    story["shares"] = shares
    story["pw"] = pw
    return story


def _agent_toml(home: Path, agent_id: str, network: str, sources: list[tuple[str, str]], gaiji: str | None, gateway_url: str | None) -> None:
    lines = ["[agent]", f'id = "{agent_id}"', 'municipality = "000000"', f'network = "{network}"', 'passphrase_file = "passphrase.txt"',
             'escrow_public_key = "escrow-public.json"', 'policy = "policy.toml"'] + ([f'gaiji = "{gaiji}"'] if gaiji else [])
    if gateway_url:
        lines += ["", "[gateway]", f'url = "{gateway_url}"']
    for mapping, data in sources:
        lines += ["", "[[sources]]", f'mapping = "mappings/{mapping}"', f'file = "data/{data}"']
    (home / "agent.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _part3_flow(story: dict[str, Any]) -> None:
    pw, shares = story["pw"], story["shares"]
    gateway, escrow = DEMO / "gateway", DEMO / "escrow"
    with ExitStack() as servers:
        # Linkage runs when the demo asks for it (tsunagu gateway link), not on the server's timer.
        gw_process, gw_url = _serve(["gateway", "serve", "--home", str(gateway)], "/api/v1/health", DEMO / "gateway-serve.log",
                                    env={"TSUNAGU_LINK_DEBOUNCE_SECONDS": "86400", "TSUNAGU_LINK_INTERVAL_MINUTES": "0"})
        servers.callback(stop, gw_process)
        es_process, es_url = _serve(["escrow", "serve", "--home", str(escrow)], "/api/v1/status", DEMO / "escrow-serve.log")
        servers.callback(stop, es_process)
        auditor = DEMO / "audit-witness"
        wi_process, wi_url = _serve(["audit", "witness", "serve", "--home", str(auditor)], "/health", DEMO / "witness-serve.log")
        servers.callback(stop, wi_process)
        print("\n== 各ログが連署を求める証人（ループバックの HTTP、C2SP tlog-witness の add-checkpoint）", flush=True)
        for home, url, key in ((gateway, f"{es_url}/api/v1/witness", escrow / "witness" / "witness-verifier.txt"),
                               (gateway, f"{wi_url}/witness", auditor / "witness" / "witness-verifier.txt"),
                               (escrow, f"{gw_url}/api/v1/witness", gateway / "witness" / "witness-verifier.txt")):
            _tsunagu("audit", "witness", "use", "--home", str(home), "--url", url, "--witness-key", str(key))

        print("\n== エージェントが提出します（校務系・インターネット接続系はプッシュ〈ループバックなので HTTP、本番は HTTPS〉、マイナンバー系は持ち出しファイル）", flush=True)
        for home_name, (agent_id, network, _preset, sources, gaiji, push) in AGENTS.items():
            home = DEMO / home_name
            _agent_toml(home, agent_id, network, sources, gaiji, gw_url if push else None)
            if push:
                _tsunagu("agent", "run", "--home", str(home))
            else:
                _tsunagu("agent", "run", "--home", str(home), "--bundle-out", str(home / "bundles"))
                for bundle in sorted((home / "bundles").glob("*.jsonl")):
                    _tsunagu("gateway", "import", "--home", str(gateway), str(bundle))

        print("\n== 名寄せ", flush=True)
        _tsunagu("gateway", "link", "--home", str(gateway))

        with _client(gw_url, "tanaka", pw["gateway:tanaka"]) as caseworker:
            print("\n== スクリーニング（ケースワーカー tanaka、仮名のみ）", flush=True)
            listing = caseworker.get("/api/v1/screening").json()
            print(f"  該当 {listing['flagged']} 人、一覧 {len(listing['entries'])} 人（上限 {listing['capacity']} 人、上限で外れた {listing['left_out']} 人）")
            for entry in listing["entries"][:5]:
                reasons = "／".join(f"{f['label']}（" + "、".join(f"{i['attribute_label']} = {i['value_label']}" for i in f["items"]) + "）"
                                   for f in entry["flags"])
                print(f"  {entry['rank']:>2}. {entry['person_id']}  点数 {entry['score']:g}  {reasons}")
            per_rule: dict[str, int] = {}
            for entry in listing["entries"]:
                for f in entry["flags"]:
                    per_rule[f["label"]] = per_rule.get(f["label"], 0) + 1
            print("  規則ごとの該当人数: " + "、".join(f"{label} {n} 人" for label, n in per_rule.items()))
            flagged = listing["entries"][0]["person_id"]
            story["flagged"] = flagged

            print("\n== 要確認ペアの判定（項目ごとの一致の度合いだけを見て判断します。氏名は表示されません）", flush=True)
            pairs = caseworker.get("/api/v1/review/pairs").json()
            print(f"  要確認ペア {pairs['total']} 組")
            if pairs["pairs"]:
                pair = pairs["pairs"][0]
                print(f"  ペア {pair['id']}: {pair['a']['source']} × {pair['b']['source']}  重み {pair['weight']}  {pair['summary']}")
                decided = caseworker.post(f"/api/v1/review/{pair['id']}/decision", json={
                    "decision": "link", "reason": "デモ: カナと生年月日の一致を確認し、同一人物と判断した想定"}).json()
                print(f"  判定: {decided['label']}（{decided['applies']}）")
                story["decided"] = pair
        if "decided" in story:
            _tsunagu("gateway", "link", "--home", str(gateway))
            with _client(gw_url, "tanaka", pw["gateway:tanaka"]) as caseworker:
                a, b = story["decided"]["a"], story["decided"]["b"]
                pa = caseworker.get(f"/api/v1/records/{a['source']}/{a['token']}").json()["person_id"]
                pb = caseworker.get(f"/api/v1/records/{b['source']}/{b['token']}").json()["person_id"]
                print(f"  次の名寄せで、判定したペアは {'同じ人物 ' + pa + ' になりました' if pa == pb else '別々のままです（想定外）'}。")

        print(f"\n== 再識別の申請（ケースワーカー tanaka → ゲートウェイが記録 → tanaka の端末からエスクローへ提出）: 人物 {flagged}", flush=True)
        out = _tsunagu("casework", "request", "--gateway", gw_url, "--escrow", es_url, "--username", "tanaka", "--person", flagged,
                       "--purpose", "early_support", "--case-ref", "こども家庭センター-2026-101",
                       "--justification", "スクリーニングで長期欠席が判明。家庭訪問のため世帯を特定する必要がある。",
                       "--password-stdin", stdin=f"{pw['gateway:tanaka']}\n{pw['escrow:tanaka']}\n")
        request_id = out.strip().splitlines()[-1]
        story["request_id"] = request_id

        print("\n== 申請者本人は承認できません", flush=True)
        with _client(es_url, "tanaka", pw["escrow:tanaka"]) as tanaka:
            refused = tanaka.post(f"/api/v1/requests/{request_id}/approve")
            print(f"  tanaka の承認 → {refused.status_code}: {refused.json()['detail']}")
        print("\n== 承認者 sato がエスクローで申請を確認して承認（エスクロー自身の利用者として）", flush=True)
        _tsunagu("casework", "list", "--escrow", es_url, "--username", "sato", "--password-stdin", stdin=pw["escrow:sato"] + "\n")
        _tsunagu("casework", "approve", "--escrow", es_url, "--username", "sato", "--request", request_id,
                 "--reason", "ケース会議で必要性を確認", "--password-stdin", stdin=pw["escrow:sato"] + "\n")

        print("\n== エスクローは起動直後は封印されています。開封前の受け取りは断られます", flush=True)
        _tsunagu("casework", "release", "--escrow", es_url, "--username", "tanaka", "--request", request_id, "--password-stdin",
                 stdin=pw["escrow:tanaka"] + "\n", check=False)
        print("\n== 鍵管理者 2 人（3 人中）が自分の持分で開封", flush=True)
        for custodian, share in list(zip(CUSTODIANS, shares))[:2]:
            _tsunagu("escrow", "unseal", "--url", es_url, "--username", custodian, "--share", str(share), "--passphrase-stdin",
                     stdin=f"{pw['escrow:' + custodian]}\n{pw['custodian:' + custodian]}\n")

        print("\n== ケースワーカーが本人情報を 1 度だけ受け取ります（ゲートウェイを経由しません）", flush=True)
        released = _tsunagu("casework", "release", "--escrow", es_url, "--username", "tanaka", "--request", request_id, "--password-stdin",
                            stdin=pw["escrow:tanaka"] + "\n", quiet=True)
        records = [json.loads(line) for line in released.splitlines() if line.startswith("{")]
        for r in records:
            identity = r["identity"]
            name = " ".join(filter(None, [identity.get("family_name") or identity.get("full_name"), identity.get("given_name")]))
            print(f"  {r['source']}: {name}（{identity.get('birth_date', '')}）")
        story["released"] = len(records)
        print("\n== 2 回目の受け取りは断られます", flush=True)
        _tsunagu("casework", "release", "--escrow", es_url, "--username", "tanaka", "--request", request_id, "--password-stdin",
                 stdin=pw["escrow:tanaka"] + "\n", check=False)

        _support_flow(gw_url, pw)

        print("\n== 監査: 両方の監査ログを書き出し、信頼する鍵（ログの鍵と証人の鍵）だけで検証し、申請を照合します", flush=True)
        audit = DEMO / "audit"
        audit.mkdir()
        with _client(gw_url, "kato", pw["gateway:kato"]) as kato:
            (audit / "gateway.jsonl").write_text(kato.get("/api/v1/audit/export").text, encoding="utf-8")
        with _client(es_url, "kato", pw["escrow:kato"]) as kato:
            (audit / "escrow.jsonl").write_text(kato.get("/api/v1/audit/export").text, encoding="utf-8")
        shutil.copy(escrow / "audit-verifier.txt", audit / "escrow-verifier.txt")
        shutil.copy(gateway / "audit-verifier.txt", audit / "gateway-verifier.txt")
        for name, home in (("gateway", gateway), ("escrow", escrow), ("auditor", auditor)):
            shutil.copy(home / "witness" / "witness-verifier.txt", audit / f"{name}-witness.txt")
        _tsunagu("audit", "verify", str(audit / "gateway.jsonl"), "--public-key", str(audit / "gateway-verifier.txt"),
                 "--witness-key", str(audit / "escrow-witness.txt"), "--witness-key", str(audit / "auditor-witness.txt"),
                 "--witness-quorum", "2", "--witness-url", f"{wi_url}/witness", "--save-checkpoint", str(audit / "gateway-checkpoint.txt"))
        _tsunagu("audit", "verify", str(audit / "escrow.jsonl"), "--public-key", str(audit / "escrow-verifier.txt"),
                 "--witness-key", str(audit / "gateway-witness.txt"), "--save-checkpoint", str(audit / "escrow-checkpoint.txt"))
        _rewritten_history(gateway, audit)
        exports = ["--gateway-export", str(audit / "gateway.jsonl"), "--escrow-export", str(audit / "escrow.jsonl"),
                   "--gateway-key", str(audit / "gateway-verifier.txt"), "--escrow-key", str(audit / "escrow-verifier.txt"),
                   "--gateway-witness-key", str(audit / "escrow-witness.txt"), "--escrow-witness-key", str(audit / "gateway-witness.txt")]
        _tsunagu("audit", "requests", *exports)
        _tsunagu("audit", "anomalies", *exports, check=False)


def _judge(entry: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A stand-in for staff's judgement in the demo (random, weighted by the rules that fired): not a model of real cases."""
    rules = {f["rule_id"] for f in entry["flags"]}
    chance = 0.15 + 0.35 * ("absence_without_school_aid" in rules) + 0.3 * ("checkup_missed_with_allowance" in rules) + 0.1 * ("long_absence" in rules)
    roll = rng.random()
    if roll < chance:
        kinds = ["school_refusal"] if "long_absence" in rules else ["postnatal_depression"] if "checkup_missed" in rules else ["poverty"]
        if "absence_without_school_aid" in rules or "checkup_missed_with_allowance" in rules:
            kinds.append("poverty")
        supports = rng.sample(["financial", "counselling", "health", "childcare_education", "referral"], k=rng.randint(1, 2))
        return {"assessment": "needs_support", "difficulties": kinds, "supports": supports, "status": "supporting",
                "department": "kodomo_center"}
    if roll < chance + 0.2:
        return {"assessment": "watch", "difficulties": ["other"], "status": "checking", "department": "kodomo_center"}
    reason = rng.choice(["already_supported", "data_error", "resolved", "no_concern", "no_concern"])
    return {"assessment": "not_needed", "not_needed_reason": reason, "status": "closed"}


def _support_flow(gw_url: str, pw: dict[str, str]) -> None:
    """Record support for part of two frozen lists, evaluate, and return one list to the My Number agent."""
    rng = random.Random(14)
    gateway, agent = DEMO / "gateway", DEMO / "agent-mynumber"
    print("\n== 支援記録: スクリーニングの一覧から、確認した子どもの判断・困難の種類・支援の内容をコードで記録します", flush=True)
    print("  （デモの判断は乱数による想定です。氏名・住所・電話番号のようなメモはゲートウェイが断ります）", flush=True)
    recorded: list[dict[str, Any]] = []
    with _client(gw_url, "tanaka", pw["gateway:tanaka"]) as caseworker:
        for batch in range(2):
            if batch:
                print("  次の名寄せの一覧（凍結される 2 回目の一覧）でも確認を続けます", flush=True)
                _tsunagu("gateway", "link", "--home", str(gateway), quiet=True)
            listing = caseworker.get("/api/v1/screening").json()
            done = {c["person_id"] for c in recorded}
            todo = [e for e in listing["entries"] if e["person_id"] not in done][:40]
            for entry in todo:
                case = caseworker.post("/api/v1/support/cases", json={"person_id": entry["person_id"], "status": "checking"}).json()
                judged = caseworker.patch(f"/api/v1/support/cases/{case['id']}", json={**_judge(entry, rng), "version": case["version"]}).json()
                recorded.append({**judged, "flags": entry["flags"]})
            print(f"  一覧 {batch + 1} 回目: {len(todo)} 人を記録", flush=True)
        refused = caseworker.patch(f"/api/v1/support/cases/{recorded[0]['id']}", json={"note": "田中さん宅 090-1234-5678"})
        print(f"  氏名・電話番号を含むメモ → {refused.status_code}: {refused.json()['detail']}", flush=True)
        listed = {e["person_id"] for e in caseworker.get("/api/v1/screening").json()["entries"]}
        others = [p["person_id"] for p in caseworker.get("/api/v1/persons", params={"min_sources": 2, "limit": 200}).json()["persons"]
                  if p["person_id"] not in listed][:3]
        for person in others:  # found by another route (相談・学校からの連絡): the recall proxy counts them
            caseworker.post("/api/v1/support/cases", json={"person_id": person, "assessment": "needs_support", "difficulties": ["abuse"],
                                                            "supports": ["referral"], "status": "supporting", "department": "kodomo_center"})
        print(f"  一覧以外の経路（相談など）で見つかった子ども {len(others)} 人も記録", flush=True)

        print("\n== 抽出方法の評価（tsunagu evaluate report）", flush=True)
        _tsunagu("evaluate", "report", "--home", str(gateway), "--out", str(DEMO / "evaluation"), "--period", "snapshot", stream=True)

        chosen = [c for c in recorded if c["assessment"] == "needs_support" and any(f["rule_id"].startswith("checkup_missed") for f in c["flags"])]
        if chosen:
            print("\n== 部署への依頼: 乳幼児健診が未受診で支援が必要とされた子どもの母子保健の記録トークンを、家庭訪問の依頼として返します", flush=True)
            source, action = "maternal", "home_visit"
        else:
            print("\n== 部署への依頼: 支援が必要とされた子どもの住民記録の記録トークンを、公式 LINE による案内の依頼として返します", flush=True)
            source, action = "residents", "line_notice"
            chosen = [c for c in recorded if c["assessment"] == "needs_support"]
        made = caseworker.post("/api/v1/returns", json={"source": source, "action": action, "purpose": "early_support",
                                                         "case_ids": [c["id"] for c in chosen]}).json()
        print(f"  対象者リスト {made['id']}: {made['records']} 件（{source}、{action}、利用目的 early_support）", flush=True)
        carried = agent / "incoming-returns"
        carried.mkdir(exist_ok=True)
        list_file = carried / f"{made['id']}.jsonl"
        list_file.write_bytes(caseworker.get(f"/api/v1/returns/{made['id']}/file").content)
    key = agent / "gateway-return-key.txt"
    key.write_text(_tsunagu("returns", "key", "--home", str(gateway), quiet=True).strip() + "\n", encoding="utf-8")
    print("  リストを持ち出し媒体でマイナンバー利用事務系へ運び、エージェントが自分の記録に照合します", flush=True)
    _tsunagu("returns", "resolve", "--home", str(agent), "--list", str(list_file), "--gateway-key", str(key))
def _rewritten_history(gateway: Path, audit: Path) -> None:
    """The gateway's operator rewrites one entry and re-signs the whole log with the gateway's own key: the auditor still sees it."""
    from cryptography.hazmat.primitives import serialization

    from keys.audit import AuditEntry, split_export
    from transparency.tlog_checkpoint import Signer
    from service.audit_store import open_log
    from service.db import sqlite_engine

    print("\n== 運用者がゲートウェイの監査ログの 1 件を書き換え、ゲートウェイ自身の鍵で全チェックポイントを署名し直しても、証人の連署が合いません", flush=True)
    lines = split_export((audit / "gateway.jsonl").read_text(encoding="utf-8"))
    header = json.loads(lines[0])
    entries = [AuditEntry.from_json(json.loads(line)["entry"]) for line in lines if line and json.loads(line)["type"] == "entry"]
    target = next(i for i, e in enumerate(entries) if e.action == "reidentify.request")
    entries[target] = AuditEntry(**{**entries[target].to_json(), "actor": "(書き換え)"})
    key = serialization.load_pem_private_key((gateway / "keys" / "audit-signing.pem").read_bytes(), password=None)
    with tempfile.TemporaryDirectory() as tmp:
        forged = open_log(sqlite_engine(str(Path(tmp) / "forged.db")), Signer("tsunagu-gateway", key), header["origin"])
        for entry in entries:
            forged.append(entry)
        rewritten = forged.export(header["public_key"])
        forged._engine.dispose()
    # The operator keeps the witnesses' old cosignature lines on the re-signed checkpoints.
    genuine = [json.loads(line) for line in lines if line and json.loads(line)["type"] == "checkpoint"]
    out, notes = [], iter(genuine)
    for line in rewritten:
        item = json.loads(line)
        if item["type"] == "checkpoint":
            old = next(notes)["note"]
            item["note"] += "".join(l for l in old.splitlines(keepends=True) if "/witness " in l)
        out.append(json.dumps(item, ensure_ascii=False))
    (audit / "gateway-rewritten.jsonl").write_text("\n".join(out) + "\n", encoding="utf-8")
    _tsunagu("audit", "verify", str(audit / "gateway-rewritten.jsonl"), "--public-key", str(audit / "gateway-verifier.txt"),
             "--witness-key", str(audit / "escrow-witness.txt"), check=False)


def _summary(story: dict[str, Any]) -> None:
    print("\n== まとめ", flush=True)
    print(f"""- 3 つのネットワークのエージェントが、氏名を暗号化（CLK）と封印だけで送り、ゲートウェイが名寄せしました。
- スクリーニングで支援候補を仮名のまま抽出し、要確認ペアの判定は次の名寄せに反映されました。
- 人物 {story['flagged']} の再識別は、ゲートウェイの監査ログに記録されてからエスクローに提出され（申請 {story['request_id']}）、
  申請者以外の承認者が承認し、鍵管理者 2 人が開封した後、申請者本人が {story['released']} 件を 1 度だけ受け取りました。
- 確認した子どもの支援記録（コードのみ）から抽出方法を評価し、グラフと表を .demo/evaluation に書きました。
- 支援を決めた子どもの母子保健（または住民記録）の記録トークンを署名付きで返し、マイナンバー系のエージェントが
  自分の記録に照合して .demo/agent-mynumber/returns/ に書き出しました（本人情報はゲートウェイを通っていません）。
- ゲートウェイとエスクローの監査ログはどちらも署名を検証でき、申請・承認・開示が照合できました。
  ゲートウェイのログにはエスクローと監査担当者の証人が、エスクローのログにはゲートウェイの証人が連署しており、
  運用者が書き換えて自分の鍵で署名し直したログは、チェックポイントを保存していない監査担当者にも見抜けました。
- 各当事者が持つものは .demo/ の下で確かめられます（ゲートウェイには氏名も連携鍵もエスクロー秘密鍵もありません）。
  このデモのパスワードとパスフレーズは .demo/secrets.json（所有者だけが読める）にあります。""")


def _peers(home: Path) -> list[Any]:
    """The federation peers ``home`` registered with an address (none without a federation)."""
    from gateway.errors import GatewayError
    from gateway.federation import config as federation_config

    try:
        return [p for p in federation_config.load(home).peers if p.url]
    except GatewayError:
        return []


def _browser_guide() -> None:
    """How to open every role's screens on the demo's homes: the commands that start the services, URLs and accounts."""
    # The second town knows the demo town at the port the federation part served it on (8443 unless it was taken).
    known = _peers(DEMO / "gateway-b") if (DEMO / "gateway-b").exists() else []
    port = int(known[0].url.rsplit(":", 1)[-1]) if known else GATEWAY_PORT
    gateway_url, escrow_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ESCROW_PORT}"
    print("\n== ブラウザで各ロールの画面を開くには（デモの配置をそのまま使います）", flush=True)
    print(f"""  1. エスクローを起動:   tsunagu escrow serve --home {DEMO / 'escrow'} --port {ESCROW_PORT}
  2. ゲートウェイを起動: TSUNAGU_ESCROW_URL={escrow_url} tsunagu gateway serve --home {DEMO / 'gateway'} --port {port}
  3. 開く URL:
       ゲートウェイ  {gateway_url}/ui/   （スクリーニング・人物・要確認ペア・再識別の申請・承認待ちの状態・自治体間連携・監査・評価と書き出し・利用者の管理）
       エスクロー    {escrow_url}/ui/   （承認・開封・本人情報の受け取りと印刷・監査ログの書き出し・利用者の管理）
     起動直後のエスクローは封印されています。鍵管理者 2 人がエスクローの「開封」画面で持分
     （{DEMO / 'keys' / 'shares'}/…/custodian-*.json）を選んで開封してください。
  4. デモの利用者（パスワードは {DEMO / 'secrets.json'} の「サービス:利用者名」の項目、持分のパスフレーズは「custodian:利用者名」）:""")
    for service, accounts in (("ゲートウェイ", GATEWAY_ACCOUNTS), ("エスクロー", ESCROW_ACCOUNTS)):
        key = "gateway" if service == "ゲートウェイ" else "escrow"
        for username, role in accounts:
            print(f"       {service:<6} {_ROLE_NAMES[role]:<16} {username:<12} パスワード: secrets.json の \"{key}:{username}\"")
    _federation_guide(gateway_url)
    print("  手順はロール別のガイドにあります: docs/guide-caseworker.md、guide-approver.md、guide-custodian.md、guide-auditor.md、"
          "guide-evaluation.md")


def _federation_guide(gateway_url: str) -> None:
    """The second town's gateway for the federation screens (at the port the demo town's peer entry names)."""
    peers = _peers(DEMO / "gateway")
    if not peers or not (DEMO / "gateway-b").exists():
        return
    port = peers[0].url.rsplit(":", 1)[-1]
    print(f"""  5. 自治体間連携の相手（{peers[0].name or peers[0].code}）の画面も開くには、もう 1 つゲートウェイを起動します:
       tsunagu gateway serve --home {DEMO / 'gateway-b'} --port {port}
       ゲートウェイB  http://127.0.0.1:{port}/ui/federation   （照会・引継ぎの依頼と回答）
       ゲートウェイB  ケースワーカー          yamada       パスワード: {DEMO / 'secrets-federation.json'} の "gateway-b:yamada"
       デモの町の {gateway_url}/ui/federation では tanaka が同じ照会と引継ぎを見て、新しい照会も送れます。""")


def _part4_federation() -> None:
    """A second town's gateway (.demo/gateway-b) finds a child who moved from this town; both logs verify."""
    from demo.federation import run

    run(DEMO, preferred_ports=(GATEWAY_PORT, GATEWAY_PORT + 1))
    audit = DEMO / "audit"
    audit.mkdir(exist_ok=True)
    print("\n== 両方の町の監査ログを、監査担当者の証人が手元で連署してから検証します（サーバは止まっています）", flush=True)
    auditor = DEMO / "audit-witness"
    for name in ("gateway", "gateway-b"):
        export = audit / f"{name}-after-federation.jsonl"
        _tsunagu("gateway", "audit-export", "--home", str(DEMO / name), "--out", str(export), quiet=True)
        origin = json.loads(export.read_text(encoding="utf-8").split("\n", 1)[0])["origin"]
        _tsunagu("audit", "witness", "trust", "--home", str(auditor), "--origin", origin, "--log-key", str(DEMO / name / "audit-verifier.txt"))
        _tsunagu("audit", "witness", "cosign", "--home", str(auditor), str(export))
        _tsunagu("audit", "verify", str(export), "--public-key", str(DEMO / name / "audit-verifier.txt"),
                 "--witness-key", str(auditor / "witness" / "witness-verifier.txt"))


def main() -> None:
    """Part 1 (tsunagu link and its quality table), the deployed flow over loopback, then a second town."""
    DEMO.mkdir(exist_ok=True)
    _part1_link()
    story = _part2_deployment()
    _part3_flow(story)
    _summary(story)
    _part4_federation()
    _browser_guide()


if __name__ == "__main__":
    main()
