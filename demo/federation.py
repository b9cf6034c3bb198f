"""The demo's second town: children who moved out of the demo town are found from across the border and handed over.

:func:`run` is called after ``make demo`` has set up ``.demo/`` (``keys``,
``gateway``, ``agent-mynumber`` and ``secrets.json``). It adds the prefecture
(``prefecture``: the federation's coordinator), a second town B — whose code
is the one most of the demo town's 転出 records name — with its own key
administrator (``keys-b``), My Number agent (``agent-mynumber-b``, whose
住民記録 holds the children who moved in from the demo town) and gateway
(``gateway-b``), hands the federation secret to both towns and their agents,
serves both gateways on loopback, and lets town B's caseworker query the demo
town and file a handover that the demo town's caseworker answers. Everything
goes through the real `tsunagu` commands and HTTP APIs; new passphrases are
kept in ``secrets-federation.json`` (0600) and given on standard input.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from demo._servers import free_port, serve, stop

KDF_KIB = "1024"  # demo only: 1 MiB Argon2id; production keeps the 64 MiB default
_REPO = Path(__file__).resolve().parents[1]
_RESIDENTS = ("mappings/residents.toml", "data/residents.csv")


def _tsunagu(*args: str, stdin: str | None = None) -> str:
    print("$ tsunagu " + " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "tsunagu.cli", *args], input=stdin, capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip()
    if output:
        print("  " + output.replace("\n", "\n  "), flush=True)
    if done.returncode != 0:
        raise SystemExit(f"デモを中断します: tsunagu {' '.join(args[:2])} が失敗しました。")
    return done.stdout


def _port(preferred: int) -> int:
    """``preferred`` if nothing listens on it, else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


def _serve(home: Path, port: int) -> subprocess.Popen:
    return serve(["gateway", "serve", "--home", str(home)], port, "/api/v1/health", home / "logs" / "federation-demo-serve.log",
                 env={"TSUNAGU_LINK_DEBOUNCE_SECONDS": "86400", "TSUNAGU_LINK_INTERVAL_MINUTES": "0"})


def _client(port: int, username: str, password: str) -> httpx.Client:
    url = f"http://127.0.0.1:{port}"
    r = httpx.post(f"{url}/api/v1/auth/login", json={"username": username, "password": password}, timeout=30)
    r.raise_for_status()
    return httpx.Client(base_url=url, timeout=300, headers={"Authorization": f"Bearer {r.json()['access_token']}"})


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (mode 0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _policy_for(source: Path, code: str, name: str, out: Path) -> None:
    """The demo town's gateway policy, as town B's own (its municipality code and name)."""
    import tomllib

    import tomli_w

    document = tomllib.loads(source.read_text(encoding="utf-8"))
    document["municipality"] = {"code": code, "name": name}
    out.write_text(tomli_w.dumps(document), encoding="utf-8")


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="cp932", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _town_b_residents(demo: Path, code_a: str, code_b: str, out: Path) -> int:
    """Town B's 住民記録: the demo town's children who moved to B (new 宛名番号 and address, 転入元 = A), and B's own children."""
    header, rows = _read_rows(demo / "agent-mynumber" / _RESIDENTS[1])
    moved = [r for r in rows if r["転出先市区町村コード"] == code_b]
    with tempfile.TemporaryDirectory() as tmp:
        from synthetic.samples import write_samples

        _, others = _read_rows(write_samples(Path(tmp), children=300, seed=4242)["residents"])
    for n, r in enumerate(moved):
        r.update({"宛名番号": f"9{n:09d}", "郵便番号": "600-8001", "住所": f"京都府みなみ市中町{n + 1}番地",
                  "異動事由": "転入", "転入元市区町村コード": code_a, "転出先市区町村コード": ""})
    for r in others:
        r.update({"転入元市区町村コード": "", "転出先市区町村コード": ""})
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="cp932", newline="", errors="replace") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows([*moved, *others])
    return len(moved)


def _import_bundles(gateway: Path, bundles: Path) -> None:
    for bundle in sorted(bundles.glob("*.jsonl")):
        if bundle.name.endswith("-federation.jsonl"):
            _tsunagu("federation", "ingest", str(bundle), "--home", str(gateway))
        else:
            _tsunagu("gateway", "import", "--home", str(gateway), str(bundle))
        bundle.unlink()


def run(demo_dir: Path, preferred_ports: tuple[int, int] | None = None) -> dict[str, Any]:
    """Set up town B (``<demo_dir>/gateway-b`` and its keys and agent) and show a child found across the border.

    ``preferred_ports``: the ports the two towns' gateways take if free (``make demo`` passes the ones it tells staff to open in a
    browser, so the peer addresses each town registered still work when both are served again); else any free ports.
    """
    from keys.keyring import Keyring

    demo = Path(demo_dir)
    pw = json.loads((demo / "secrets.json").read_text(encoding="utf-8"))
    keys_a, agent_a, gateway_a = demo / "keys", demo / "agent-mynumber", demo / "gateway"
    code_a = Keyring(keys_a).municipality
    _, rows = _read_rows(agent_a / _RESIDENTS[1])
    moves = collections.Counter(r["転出先市区町村コード"] for r in rows if r["転出先市区町村コード"])
    if not moves:
        raise SystemExit("デモを中断します: 見本市の住民記録に転出の記録がありません。")
    code_b = moves.most_common(1)[0][0]
    for name in ("prefecture", "keys-b", "agent-mynumber-b", "gateway-b", "federation"):
        shutil.rmtree(demo / name, ignore_errors=True)
    for name in ("federation-state.json", "federation-receiving.json", "federation-member.json"):
        (keys_a / "keys" / name).unlink(missing_ok=True)
        (agent_a / "keys" / name).unlink(missing_ok=True)
    fresh = {n: secrets.token_urlsafe(18) for n in ("coordinator", "operator-b", "custodian-b1", "custodian-b2", "agent-b", "gateway-b:yamada")}
    _write_private(demo / "secrets-federation.json", json.dumps(fresh, ensure_ascii=False, indent=1))
    work = demo / "federation"
    work.mkdir()

    print(f"\n== 自治体をまたぐ連携: 見本市（{code_a}）から転出先 {code_b} の町へ移ったこどもを、転入先の町から照会します", flush=True)
    print("\n== 都道府県（調整者）が連携圏の鍵を作ります", flush=True)
    out = _tsunagu("federation", "coordinator-init", "--home", str(demo / "prefecture"), "--federation", "demo-prefecture",
                   "--passphrase-stdin", "--kdf-memory-kib", KDF_KIB, stdin=fresh["coordinator"] + "\n")
    federation_key_id = out.split("鍵 ID: ")[1].split()[0]
    coordinator_vkey = out.split("検証鍵（参加自治体に別経路で渡してください）: ")[1].split()[0]

    print(f"\n== 転入先の町（{code_b}）の鍵の生成式", flush=True)
    keys_b = demo / "keys-b"
    _tsunagu("keys", "init", "--home", str(keys_b), "--municipality", code_b, "--custodian", "b-custodian-1", "--custodian", "b-custodian-2",
             "--threshold", "2", "--passphrase-stdin", "--kdf-memory-kib", KDF_KIB,
             stdin="\n".join([fresh["operator-b"], fresh["custodian-b1"], fresh["custodian-b2"]]) + "\n")

    print("\n== 両方の町が参加を申請し、都道府県がそれぞれの町宛てに鍵を配ります", flush=True)
    for keys, operator in ((keys_a, pw["operator"]), (keys_b, fresh["operator-b"])):
        _tsunagu("federation", "member-identity", "--home", str(keys), "--passphrase-stdin", "--kdf-memory-kib", KDF_KIB, stdin=operator + "\n")
        issued = _tsunagu("federation", "issue", "--home", str(demo / "prefecture"), "--member-identity",
                          str(keys / "keys" / "federation-member.json"), "--out", str(work), "--passphrase-stdin",
                          stdin=fresh["coordinator"] + "\n")
        wrapped = issued.split("配布ファイル: ")[1].split("（")[0]
        _tsunagu("federation", "install", "--home", str(keys), "--file", wrapped, "--coordinator-key", coordinator_vkey,
                 "--passphrase-stdin", "--kdf-memory-kib", KDF_KIB, stdin=operator + "\n")

    print(f"\n== 転入先の町のマイナンバー利用事務系エージェント（住民記録に見本市からの転入 {code_a} が載っています）", flush=True)
    agent_b = demo / "agent-mynumber-b"
    moved = _town_b_residents(demo, code_a, code_b, agent_b / _RESIDENTS[1])
    (agent_b / "mappings").mkdir(parents=True)
    shutil.copy(_REPO / "agents" / "mynumber_network" / "mappings" / "residents.toml", agent_b / _RESIDENTS[0])
    shutil.copy(_REPO / "agents" / "mynumber_network" / "policy.toml", agent_b / "policy.toml")
    shutil.copy(keys_b / "keys" / "escrow-public.json", agent_b / "escrow-public.json")
    _write_private(agent_b / "passphrase.txt", fresh["agent-b"] + "\n")
    (agent_b / "issuer-key.txt").write_text(Keyring(keys_b).federation_vkey + "\n", encoding="utf-8")
    (agent_b / "agent.toml").write_text("\n".join([
        "[agent]", 'id = "mynumber-b"', f'municipality = "{code_b}"', 'network = "mynumber"', 'passphrase_file = "passphrase.txt"',
        'escrow_public_key = "escrow-public.json"', 'policy = "policy.toml"', "", "[[sources]]",
        f'mapping = "{_RESIDENTS[0]}"', f'file = "{_RESIDENTS[1]}"']) + "\n", encoding="utf-8")
    _tsunagu("keys", "agent-init", "--home", str(agent_b), "--agent-id", "mynumber-b", "--passphrase-stdin", "--kdf-memory-kib", KDF_KIB,
             stdin=fresh["agent-b"] + "\n")
    _tsunagu("keys", "enrol", "--home", str(keys_b), "--agent-public", str(agent_b / "keys" / "agent-public.json"), "--passphrase-stdin",
             stdin=fresh["operator-b"] + "\n")
    _tsunagu("keys", "agent-install", "--home", str(agent_b), "--wrapped", str(next((keys_b / "enrolments").glob("mynumber-b-*.json"))),
             "--issuer-key", str(agent_b / "issuer-key.txt"), "--passphrase-stdin", "--kdf-memory-kib", KDF_KIB, stdin=fresh["agent-b"] + "\n")

    print("\n== 各町の鍵管理者が、連携圏の鍵を自分の町のマイナンバー利用事務系エージェント宛てに配ります", flush=True)
    for keys, agent, operator, passphrase in ((keys_a, agent_a, pw["operator"], pw["agent"]), (keys_b, agent_b, fresh["operator-b"], fresh["agent-b"])):
        enrolled = _tsunagu("federation", "enrol-agent", "--home", str(keys), "--agent-public", str(agent / "keys" / "agent-public.json"),
                            "--out", str(work), "--passphrase-stdin", stdin=operator + "\n")
        _tsunagu("federation", "agent-install", "--home", str(agent), "--file", enrolled.split("配布ファイル: ")[1].strip(),
                 "--passphrase-stdin", "--kdf-memory-kib", KDF_KIB, stdin=passphrase + "\n")

    print("\n== 転入先の町のゲートウェイ（gateway-b）", flush=True)
    gateway_b = demo / "gateway-b"
    names = {code_a: "見本市", code_b: "みなみ町"}
    policy_b = work / "policy-b.toml"
    _policy_for(gateway_a / "policy.toml" if (gateway_a / "policy.toml").exists() else _REPO / "policy" / "default_policy.toml",
                code_b, names[code_b], policy_b)
    out = _tsunagu("gateway", "init", "--home", str(gateway_b), "--linkage-key-id", Keyring(keys_b).current_linkage_key_id,
                   "--policy", str(policy_b))
    # Kept apart from the log, as an auditor would keep it, to verify town B's audit log later.
    verifier = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("監査ログの検証鍵"))
    (gateway_b / "audit-verifier.txt").write_text(verifier + "\n", encoding="utf-8")
    _tsunagu("gateway", "user", "add", "--home", str(gateway_b), "--username", "yamada", "--role", "caseworker", "--password-stdin",
             stdin=fresh["gateway-b:yamada"] + "\n")
    _tsunagu("gateway", "agent", "register", "--home", str(gateway_b), "--agent-public", str(agent_b / "keys" / "agent-public.json"),
             "--network", "mynumber", "--source", "residents")

    print("\n== ゲートウェイどうしを連携先として登録します（互いの検証鍵を固定）", flush=True)
    ports = {code_a: _port(preferred_ports[0]), code_b: _port(preferred_ports[1])} if preferred_ports else {code_a: free_port(), code_b: free_port()}
    homes = {code_a: gateway_a, code_b: gateway_b}
    for code, home in homes.items():
        (home / "federation.toml").unlink(missing_ok=True)
        _tsunagu("federation", "init", "--home", str(home), "--code", code, "--name", names[code],
                 "--contact", f"{names[code]} こども家庭センター（内線 1234）", "--federation-key-id", federation_key_id,
                 "--purpose", "early_support", "--share", "child_support_allowance")
        _tsunagu("federation", "identity", "--home", str(home), "--url", f"http://127.0.0.1:{ports[code]}", "--out", str(work / f"{code}.json"))
    for code, home in homes.items():
        other = code_b if code == code_a else code_a
        _tsunagu("federation", "peer", "add", "--home", str(home), "--code", other, "--identity", str(work / f"{other}.json"))

    print("\n== 両方のエージェントが提出します（転入・転出のあるこどもだけ、連携圏用の符号も作ります。住所は含めません）", flush=True)
    for agent, gateway, extra in ((agent_a, gateway_a, ["--force"]), (agent_b, gateway_b, [])):
        _tsunagu("agent", "run", "--home", str(agent), "--bundle-out", str(agent / "bundles-federation"), *extra)
        _import_bundles(gateway, agent / "bundles-federation")

    story: dict[str, Any] = {"town_a": code_a, "town_b": code_b, "moved": moved}
    with ExitStack() as servers:
        for code, home in homes.items():
            servers.callback(stop, _serve(home, ports[code]))
        print(f"\n== 転入先の町のケースワーカー yamada が、見本市からの転入 {moved} 人を照会します", flush=True)
        with _client(ports[code_b], "yamada", fresh["gateway-b:yamada"]) as yamada:
            answer = yamada.post("/api/v1/federation/queries", json={"peer": code_a})
            if answer.status_code != 200:
                raise SystemExit(f"デモを中断します: 照会が受け付けられませんでした（{answer.json().get('detail')}）。")
            items = answer.json()["items"]
            for item in items:
                shown = f"類似度 {item['band']}、ハンドル {item['handle'][:10]}…、連絡先 {item['contact']}" if item["match"] else "一致なし"
                print(f"  転入者 {item['token'][:12]}…: {shown}")
            found = [i for i in items if i["match"]]
            story["found"] = len(found)
            if not found:
                raise SystemExit("デモを中断します: 国境を越えた一致がありませんでした。")
            print("\n== ハンドルで引継ぎを依頼します", flush=True)
            request = yamada.post("/api/v1/federation/handovers", json={
                "handle": found[0]["handle"], "case_ref": "みなみ町-2026-007",
                "message": "転入した児童について、前住所地での支援の経過を引き継ぎたい。"}).json()
            print(f"  依頼 {request['id']} → 見本市に届きました" if request.get("delivered") else f"  依頼 {request}")
        with _client(ports[code_a], "tanaka", pw["gateway:tanaka"]) as tanaka:
            inbox = tanaka.get("/api/v1/federation/handovers", params={"direction": "in"}).json()
            print(f"\n== 見本市のケースワーカー tanaka の受信箱: {len(inbox)} 件（記録 {inbox[0]['token'][:12]}… 案件 {inbox[0]['case_ref']}）", flush=True)
            tanaka.post(f"/api/v1/federation/handovers/{inbox[0]['id']}/answer", json={
                "message": "令和6年度に家庭訪問の記録があります。担当者からお電話します。", "attributes": ["child_support_allowance"]})
        with _client(ports[code_b], "yamada", fresh["gateway-b:yamada"]) as yamada:
            done = [h for h in yamada.get("/api/v1/federation/handovers", params={"direction": "out"}).json() if h["status"] == "answered"]
            print(f"  回答: {done[0]['answer_message']}（提供された属性: {done[0]['answer_attributes']}）")
            story["answered"] = len(done)
    print(f"""\n== まとめ（自治体をまたぐ連携）
- 都道府県が作った連携圏の鍵は、各町の鍵管理者とマイナンバー利用事務系エージェントだけが持ちます（ゲートウェイは鍵 ID だけ）。
- みなみ町（{code_b}）は見本市からの転入 {moved} 人だけを照会でき、見本市はみなみ町へ転出したこどもとだけ照合しました。
- 回答は一致・類似度の帯・一時的なハンドル・連絡先だけで、氏名も見本市の内部の仮名も渡っていません。一致 {story['found']} 人。
- 引継ぎの依頼と回答は、両方のゲートウェイの監査ログに記録されています（.demo/gateway と .demo/gateway-b）。""")
    return story
