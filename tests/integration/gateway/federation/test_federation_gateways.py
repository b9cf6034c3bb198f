"""Three gateways on loopback (real `tsunagu gateway serve`, each with its own database and keys) linking transferred children.

A = 082201 (PostgreSQL), B = 082210 and C = 082228 (SQLite). Children moved A → B, and one of them on to C.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from tests.support import postgres as _postgres
import pytest
from tests.support.federation import PASSWORD, Town, cli
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from agents.core.token import RecordTokeniser
from gateway.federation.config import signer
from gateway.federation.service import matched_digest
from synthetic.agents import SyntheticAgent
from keys import envelope
from keys.federation import FederationRecord, write_federation_submission
from keys.linkage_secret import LinkageSecret, generate_linkage_secret
from linkage.encode import encode_records
from linkage.record import CanonicalRecord
from synthetic import generate_town
from tsunagu.cli import app

A, B, C = "082201", "082210", "082228"


def _submission(agent: SyntheticAgent, federation: LinkageSecret, rows: list[dict[str, str]], moves: list[tuple[str, str]],
                municipality: str, sequence: int) -> bytes:
    records = [dataclasses.replace(CanonicalRecord.from_mapping(r), postal_code="", address="") for r in rows]
    enc, index, errors = encode_records(records, federation.secret, federation.key_id)
    assert not errors and index.tolist() == list(range(len(rows)))
    tokeniser = RecordTokeniser(agent.linkage.secret, "residents")
    out = [FederationRecord(tokeniser.token(r["record_id"]), enc.bits[i].tobytes(), int(enc.present[i]), enc.blocks[i].tolist(), *moves[i])
           for i, r in enumerate(rows)]
    manifest = {"agent_id": agent.agent_id, "signing_key_id": agent.keys.public.signing_key_id, "municipality": municipality,
                "source": "residents", "schema_version": enc.schema_version, "federation_key_id": federation.key_id,
                "sequence": sequence, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return write_federation_submission(manifest, out, agent.keys.signing_key)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, postgres_url: URL) -> Iterator[dict]:
    """A on PostgreSQL, B and C on SQLite; every gateway set up through the real CLI."""
    root = tmp_path_factory.mktemp("federation")
    federation = generate_linkage_secret()
    children = generate_town(n_children=60, seed=3).sources["residents"]
    towns = {code: Town(code, root / code) for code in (A, B, C)}
    towns[A].env["TSUNAGU_DATABASE_URL"] = _postgres.create_database(postgres_url, "federation_a").render_as_string(hide_password=False)
    agents = {}
    for code, town in towns.items():
        agent = SyntheticAgent(f"mynumber-{code}", "mynumber", generate_linkage_secret(), None, root / f"agent-{code}")  # type: ignore[arg-type]
        agents[code] = agent
        town.cli("gateway", "init", "--linkage-key-id", agent.linkage.key_id)
        for role in ("admin", "caseworker", "custodian"):
            town.cli("gateway", "user", "add", "--username", role, "--role", role, "--password-stdin", input=PASSWORD + "\n")
        town.cli("gateway", "agent", "register", "--agent-public", str(agent.public_file), "--network", "mynumber", "--source", "residents")
        town.cli("federation", "init", "--code", code, "--name", f"町{code}", "--contact", f"町{code} こども家庭センター 029-000-0000",
                 "--federation-key-id", federation.key_id, "--purpose", "early_support", "--share", "child_support_allowance")
        town.cli("federation", "identity", "--out", str(root / f"{code}.json"), "--url", town.url)
    # A knows B; B knows A and C; C knows B (A and C are not peers)
    for me, peers in ((A, (B,)), (B, (A, C)), (C, (B,))):
        for peer in peers:
            towns[me].cli("federation", "peer", "add", "--code", peer, "--identity", str(root / f"{peer}.json"))
    config = (towns[A].home / "federation.toml")
    config.write_text(config.read_text(encoding="utf-8").replace("max_items_per_day = 20000", "max_items_per_day = 40"), encoding="utf-8")
    # A: children 0-9 moved out to B, 10-14 to C. B: 0-9 and 20-24 moved in from A (20-24 unknown to A), 0 moved on to C,
    # 25-29 moved in from C. C: child 0 moved in from B.
    rows = {A: [(i, ("", B if i < 10 else C)) for i in range(15)],
            B: [(i, (A, C if i == 0 else "")) for i in [*range(10), *range(20, 25)]] + [(i, (C, "")) for i in range(25, 30)],
            C: [(0, (B, ""))]}
    for town in towns.values():
        town.start()
    try:
        for code, entries in rows.items():
            data = _submission(agents[code], federation, [children[i] for i, _ in entries], [m for _, m in entries], code, 1)
            with towns[code].client() as c:
                r = c.post("/api/v1/federation/submissions", content=data, headers={"Content-Type": "application/x-ndjson"})
                assert r.status_code == 200, r.text
                assert r.json()["records"] == len(entries)
        tokens = {code: {i: RecordTokeniser(agents[code].linkage.secret, "residents").token(children[i]["record_id"]) for i, _ in entries}
                  for code, entries in rows.items()}
        yield {"towns": towns, "tokens": tokens, "root": root, "agents": agents, "federation": federation, "children": children}
    finally:
        for town in towns.values():
            town.stop()


def test_child_moved_from_a_to_b_is_found_and_handed_over(world: dict) -> None:
    towns, tokens = world["towns"], world["tokens"]
    with towns[B].client("caseworker") as b:
        r = b.post("/api/v1/federation/queries", json={"peer": A})
        assert r.status_code == 200, r.text
        answer = r.json()
    by_token = {item["token"]: item for item in answer["items"]}
    assert len(by_token) == 15  # only B's children whose 転入 names A
    for i in range(10):
        item = by_token[tokens[B][i]]
        assert item["match"] is True and item["band"] in ("高", "中") and item["handle"], item
        assert item["contact"] == f"町{A} こども家庭センター 029-000-0000"
    assert sum(by_token[tokens[B][i]]["band"] == "高" for i in range(10)) >= 9
    for i in range(20, 25):  # A never had these children: a non-match says nothing more
        assert by_token[tokens[B][i]] == {"source": "residents", "token": tokens[B][i], "match": False, "band": None,
                                          "handle": None, "contact": None}
    handle = by_token[tokens[B][3]]["handle"]
    with towns[B].client("caseworker") as b:
        r = b.post("/api/v1/federation/handovers", json={"handle": handle, "case_ref": "B-2026-0042", "message": "転入した児童の支援歴を確認したい"})
        assert r.status_code == 200, r.text
        request_id = r.json()["id"]
    with towns[A].client("caseworker") as a:
        inbox = a.get("/api/v1/federation/handovers", params={"direction": "in"}).json()
        assert len(inbox) == 1
        assert inbox[0]["token"] == tokens[A][3] and inbox[0]["case_ref"] == "B-2026-0042" and inbox[0]["peer"] == B
        r = a.post(f"/api/v1/federation/handovers/{inbox[0]['id']}/answer",
                   json={"message": "令和6年度に家庭訪問あり。担当へご連絡ください。", "attributes": ["child_support_allowance"]})
        assert r.status_code == 200, r.text
        refused = a.post(f"/api/v1/federation/handovers/{inbox[0]['id']}/answer", json={"message": "再回答", "attributes": []})
        assert refused.status_code == 409
    with towns[B].client("caseworker") as b:
        out = b.get("/api/v1/federation/handovers", params={"direction": "out"}).json()
    assert out[0]["id"] == request_id and out[0]["status"] == "answered"
    assert out[0]["answer_message"].startswith("令和6年度") and out[0]["answer_attributes"] == {"child_support_allowance": ""}
    # a custodian may do none of this
    with towns[B].client("custodian") as b:
        assert b.post("/api/v1/federation/queries", json={"peer": A}).status_code == 403


def test_child_moved_a_to_b_to_c(world: dict) -> None:
    towns, tokens = world["towns"], world["tokens"]
    with towns[C].client("caseworker") as c:
        r = c.post("/api/v1/federation/queries", json={"peer": B})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
    assert len(items) == 1 and items[0]["token"] == tokens[C][0] and items[0]["match"] is True
    # C and A are not peers: C cannot ask A, and A refuses a message from C
    with towns[C].client("caseworker") as c:
        assert c.post("/api/v1/federation/queries", json={"peer": A}).status_code == 403


def test_enumeration_is_refused(world: dict) -> None:
    towns, tokens = world["towns"], world["tokens"]
    with towns[B].client("caseworker") as b:
        # children whose 転入 names C, not A
        r = b.post("/api/v1/federation/queries", json={"peer": A, "tokens": [tokens[B][25], tokens[B][26]]})
        assert r.status_code == 403 and r.json()["error"] == "no_transfer_record"
        # A answers at most 40 items a day to B: the first test used 15, this one 15, the next one is refused
        assert b.post("/api/v1/federation/queries", json={"peer": A}).status_code == 200
        r = b.post("/api/v1/federation/queries", json={"peer": A})
        assert r.status_code == 502 and "429" in r.json()["detail"], r.text
    with towns[A].client("admin") as a:
        events = a.get("/api/v1/ingest-events").json()
    assert any(e["code"] == "rate_limited" for e in events)


def test_signed_messages_replay_and_forgery_are_refused(world: dict, tmp_path: Path) -> None:
    towns = world["towns"]
    query = tmp_path / "q.json"
    cli("federation", "export-query", "--home", str(towns[C].home), "--peer", B, "--out", str(query))
    data = query.read_bytes()
    forged = json.loads(data)
    forged["manifest"]["body"]["items"] = forged["manifest"]["body"]["items"] * 2
    forged["manifest"]["nonce"] = "0" * 32
    with towns[B].client() as b:
        r = b.post("/api/v1/federation/peer/query", content=json.dumps(forged))
        assert r.status_code == 401 and r.json()["error"] == "bad_signature"
        assert b.post("/api/v1/federation/peer/query", content=data).status_code == 200
        r = b.post("/api/v1/federation/peer/query", content=data)
        assert r.status_code == 409 and r.json()["error"] == "replay"
    with towns[A].client() as a:  # C is not A's peer
        r = a.post("/api/v1/federation/peer/query", content=data)
        assert r.status_code == 403 and r.json()["error"] == "unknown_peer"


def test_bundle_path(world: dict, tmp_path: Path) -> None:
    towns, tokens = world["towns"], world["tokens"]
    query, answer = tmp_path / "query.json", tmp_path / "answer.json"
    cli("federation", "export-query", "--home", str(towns[C].home), "--peer", B, "--out", str(query))
    out = cli("federation", "import-query", "--home", str(towns[B].home), "--file", str(query))
    exchange = out.split("回答 ")[1].split("）")[0]
    cli("federation", "export-answer", "--home", str(towns[B].home), "--exchange", exchange, "--out", str(answer))
    shown = cli("federation", "import-answer", "--home", str(towns[C].home), "--file", str(answer))
    assert "1 件中 1 件が一致" in shown and tokens[C][0] in shown
    # the same answer again is refused (replay)
    again = CliRunner().invoke(app, ["federation", "import-answer", "--home", str(towns[C].home), "--file", str(answer)])
    assert again.exit_code != 0


def _forge(home: Path, code: str, message: dict) -> bytes:
    """A message signed with a gateway's real federation key (to test the receiver's checks past the signature)."""
    key = signer(home, code)
    return envelope.seal(f"federation.{message['kind']}", {k: v for k, v in message.items() if k != "kind"}, (), key.private_key)


def test_expired_misaddressed_and_wrong_purpose_messages_are_refused(world: dict) -> None:
    towns, federation = world["towns"], world["federation"]
    base = {"kind": "query", "from": B, "to": A, "purpose": "early_support", "federation_key_id": federation.key_id,
            "body": {"exchange": "x", "schema_version": "tsunagu-jp/1", "items": []}}
    now = datetime.now(timezone.utc)
    cases = {
        "expired": {"issued_at": (now.replace(year=now.year - 1)).isoformat(), "expires_at": (now.replace(year=now.year - 1)).isoformat()},
        "not_yet_valid": {"issued_at": (now.replace(year=now.year + 1)).isoformat(), "expires_at": (now.replace(year=now.year + 1)).isoformat()},
        "wrong_recipient": {"to": C},
        "purpose_refused": {"purpose": "child_protection"},
        "key_id_mismatch": {"federation_key_id": "lk_0123456789abcdef"},
    }
    with towns[A].client() as a:
        for n, (code, change) in enumerate(cases.items()):
            message = {**base, "nonce": f"{n:032x}", "issued_at": now.isoformat(), "expires_at": now.isoformat(), **change}
            r = a.post("/api/v1/federation/peer/query", content=_forge(towns[B].home, B, message))
            assert r.json()["error"] == code, (code, r.text)
    with towns[A].client("admin") as a:
        codes = {e["code"] for e in a.get("/api/v1/ingest-events").json()}
    assert set(cases) <= codes


def test_handover_through_bundle_files_and_expired_handle(world: dict, tmp_path: Path) -> None:
    towns, tokens = world["towns"], world["tokens"]
    query, answer = tmp_path / "query.json", tmp_path / "answer.json"
    cli("federation", "export-query", "--home", str(towns[C].home), "--peer", B, "--out", str(query))
    out = cli("federation", "import-query", "--home", str(towns[B].home), "--file", str(query), "--out", str(answer))
    shown = cli("federation", "import-answer", "--home", str(towns[C].home), "--file", str(answer))
    handle = shown.split("ハンドル ")[1].split()[0]
    request, reply = tmp_path / "request.json", tmp_path / "reply.json"
    (tmp_path / "ask.txt").write_text("転入児童の乳幼児健診の受診状況を教えてください。", encoding="utf-8")
    (tmp_path / "reply.txt").write_text("健診は受診済みです。", encoding="utf-8")
    cli("federation", "export-handover", "--home", str(towns[C].home), "--username", "caseworker", "--handle", handle,
        "--case-ref", "C-17", "--message-file", str(tmp_path / "ask.txt"), "--out", str(request))
    out = cli("federation", "import-handover", "--home", str(towns[B].home), "--file", str(request))
    handover_id = out.split("引継ぎの依頼 ")[1].split()[0]
    cli("federation", "answer-handover", "--home", str(towns[B].home), "--username", "caseworker", "--id", handover_id,
        "--message-file", str(tmp_path / "reply.txt"), "--share", "child_support_allowance", "--out", str(reply))
    cli("federation", "import-handover-answer", "--home", str(towns[C].home), "--file", str(reply))
    with towns[C].client("caseworker") as c:
        mine = [h for h in c.get("/api/v1/federation/handovers", params={"direction": "out"}).json() if h["case_ref"] == "C-17"]
    assert mine[0]["status"] == "answered" and mine[0]["answer_message"] == "健診は受診済みです。" and mine[0]["token"] == tokens[C][0]
    # a handle past its expiry is refused by the gateway that issued it
    with sqlite3.connect(towns[B].home / "gateway.db") as db:
        db.execute("UPDATE federation_handles SET expires_at = '2000-01-01 00:00:00'")
    cli("federation", "export-handover", "--home", str(towns[C].home), "--username", "caseworker", "--handle", handle,
        "--case-ref", "C-18", "--message-file", str(tmp_path / "ask.txt"), "--out", str(request))
    refused = CliRunner().invoke(app, ["federation", "import-handover", "--home", str(towns[B].home), "--file", str(request)])
    assert refused.exit_code != 0 and "有効期限" in str(refused.exception)


def test_both_sides_audit_every_step_and_hold_no_identity(world: dict, tmp_path: Path) -> None:
    towns, children = world["towns"], world["children"]
    logs = {}
    for code in (A, B):
        path = tmp_path / f"audit-{code}.jsonl"
        towns[code].cli("gateway", "audit-export", "--out", str(path))
        logs[code] = path.read_text(encoding="utf-8")
    for action in ("federation.query.answer", "federation.handover.receive", "federation.handover.answer",
                   "federation.submission.accept", "refused:rate_limited", "refused:expired"):
        assert action in logs[A], action
    for action in ("federation.query.send", "federation.answer.receive", "federation.handover.request",
                   "federation.handover.answer.receive", "refused:no_transfer_record", "refused:replay"):
        assert action in logs[B], action
    # A message whose signature did not verify has no known sender: counted in the refusal log, not signed
    # into the audit log (anyone could grow it); the counts reach the audit log as one summary per period.
    for code, refusal in ((A, "unknown_peer"), (B, "bad_signature")):
        assert f"refused:{refusal}" not in logs[code]
        with towns[code].client("admin") as c:
            assert refusal in {e["code"] for e in c.get("/api/v1/ingest-events", params={"limit": 1000}).json()}
    # the answer's audit entry commits to exactly the records reported as matches
    engine = create_engine(towns[A].env["TSUNAGU_DATABASE_URL"])
    with engine.connect() as db:
        exchanges = db.execute(text("SELECT id FROM federation_exchanges WHERE direction = 'in'")).scalars().all()
        for exchange in exchanges:
            handles = [{"source": s, "token": t} for s, t in db.execute(
                text("SELECT source, token FROM federation_handles WHERE exchange_id = :x"), {"x": exchange}).all()]
            assert f"{exchange}:" in logs[A] and f"sha256:{matched_digest(handles)}" in logs[A]
    engine.dispose()
    names = [(r["family_name"] + r["given_name"]).encode() for r in children[:30]] + \
            [(r["family_name_kana"] + r["given_name_kana"]).encode() for r in children[:30]]
    for town in towns.values():
        for path in town.home.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not [n for n in names if n in data], path
    # A's database lives in PostgreSQL: every row of every table
    engine = create_engine(towns[A].env["TSUNAGU_DATABASE_URL"])
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as db:
        for table in tables.sorted_tables:
            for row in db.execute(table.select()):
                data = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
                assert not [n for n in names if n in data], table.name
    engine.dispose()
