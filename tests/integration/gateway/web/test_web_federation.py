"""The federation screens in real Chromium with real data: two gateways on loopback (real `tsunagu gateway serve`,
each with its own SQLite database and keys, set up through the CLI as in tests/integration/gateway/federation/), children who moved from
A to B. B's caseworker sends a transfer-in query from the screen, reads the answers, requests a handover; A's caseworker
answers it on A's screen with an attribute; B's screen shows the answer in words. Screenshots for the guide.

Order-independent: the two gateways are this module's own.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timezone
from typing import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from agents.core.token import RecordTokeniser
from synthetic.agents import SyntheticAgent
from keys.federation import FederationRecord, write_federation_submission
from keys.linkage_secret import LinkageSecret, generate_linkage_secret
from linkage.encode import encode_records
from linkage.record import CanonicalRecord
from synthetic import generate_town
from tests.support.federation import PASSWORD, Town  # the federation tests' gateway helper, reused
from tests.support.web import shot

A, B = "082201", "082210"
MOVED = 6  # children 0-5 moved from A to B; B also has children 10-12, whom A never had


def _submission(agent: SyntheticAgent, federation: LinkageSecret, rows: list[dict[str, str]], moves: list[tuple[str, str]],
                municipality: str) -> bytes:
    """A signed federation submission of ``rows`` (as a municipality's agent makes it), with each child's moved-in/out codes."""
    records = [dataclasses.replace(CanonicalRecord.from_mapping(r), postal_code="", address="") for r in rows]
    enc, index, errors = encode_records(records, federation.secret, federation.key_id)
    assert not errors and index.tolist() == list(range(len(rows)))
    tokeniser = RecordTokeniser(agent.linkage.secret, "residents")
    out = [FederationRecord(tokeniser.token(r["record_id"]), enc.bits[i].tobytes(), int(enc.present[i]), enc.blocks[i].tolist(), *moves[i])
           for i, r in enumerate(rows)]
    manifest = {"agent_id": agent.agent_id, "signing_key_id": agent.keys.public.signing_key_id, "municipality": municipality,
                "source": "residents", "schema_version": enc.schema_version, "federation_key_id": federation.key_id,
                "sequence": 1, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return write_federation_submission(manifest, out, agent.keys.signing_key)


@pytest.fixture(scope="module")
def towns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Town]]:
    """Gateways A and B, peers of each other, with the moved children's federation records submitted."""
    root = tmp_path_factory.mktemp("web-federation")
    federation = generate_linkage_secret()
    children = generate_town(n_children=30, seed=5).sources["residents"]
    towns = {code: Town(code, root / code) for code in (A, B)}
    agents = {}
    for code, town in towns.items():
        agent = SyntheticAgent(f"mynumber-{code}", "mynumber", generate_linkage_secret(), None, root / f"agent-{code}")  # type: ignore[arg-type]
        agents[code] = agent
        town.cli("gateway", "init", "--linkage-key-id", agent.linkage.key_id)
        town.cli("gateway", "user", "add", "--username", "caseworker", "--role", "caseworker", "--password-stdin", input=PASSWORD + "\n")
        town.cli("gateway", "agent", "register", "--agent-public", str(agent.public_file), "--network", "mynumber", "--source", "residents")
        town.cli("federation", "init", "--code", code, "--name", f"町{code}", "--contact", f"町{code} こども家庭センター 029-000-0000",
                 "--federation-key-id", federation.key_id, "--purpose", "early_support", "--share", "child_support_allowance")
        town.cli("federation", "identity", "--out", str(root / f"{code}.json"), "--url", town.url)
    towns[A].cli("federation", "peer", "add", "--code", B, "--identity", str(root / f"{B}.json"))
    towns[B].cli("federation", "peer", "add", "--code", A, "--identity", str(root / f"{A}.json"))
    rows = {A: [(i, ("", B)) for i in range(MOVED)], B: [(i, (A, "")) for i in [*range(MOVED), 10, 11, 12]]}
    for town in towns.values():
        town.start()
    try:
        for code, entries in rows.items():
            data = _submission(agents[code], federation, [children[i] for i, _ in entries], [m for _, m in entries], code)
            with towns[code].client() as c:
                r = c.post("/api/v1/federation/submissions", content=data, headers={"Content-Type": "application/x-ndjson"})
                assert r.status_code == 200, r.text
        yield towns
    finally:
        for town in towns.values():
            town.stop()


@pytest.fixture
def pages(browser: Browser, towns: dict[str, Town]) -> Iterator[dict[str, Page]]:
    """One signed-in caseworker page per town, each in its own browser profile."""
    contexts: list[BrowserContext] = []
    out = {}
    try:
        for code, town in towns.items():
            ctx = browser.new_context(base_url=town.url, locale="ja-JP", viewport={"width": 1280, "height": 900})
            ctx.set_default_timeout(60_000)
            contexts.append(ctx)
            page = ctx.new_page()
            page.goto("/ui/login")
            page.get_by_label("利用者名").fill("caseworker")
            page.get_by_label("パスワード").fill(PASSWORD)
            page.get_by_role("button", name="ログイン").click()
            page.wait_for_load_state()
            out[code] = page
        yield out
    finally:
        for ctx in contexts:
            ctx.close()


def test_transfer_in_query_handover_request_and_answer_in_the_browser(pages: dict[str, Page]) -> None:
    b, a = pages[B], pages[A]
    b.goto("/ui/federation")
    peers = b.get_by_role("table", name="連携先の自治体")
    expect(peers).to_contain_text(f"町{A}")
    b.get_by_role("button", name=f"町{A} から転入した子どもを照会する").click()
    expect(b).to_have_url(re.compile(r"/ui/federation/queries/[0-9a-f]+$"))
    answers = b.get_by_role("table", name=re.compile("照会した子ども"))
    rows = answers.locator("tbody tr")
    expect(rows).to_have_count(MOVED + 3)  # every child of B whose 転入 names A, none of the others
    found = rows.filter(has_text="見つかった")
    expect(found).to_have_count(MOVED)
    expect(rows.filter(has_text="見つからない")).to_have_count(3)
    expect(found.first).to_contain_text(f"町{A} こども家庭センター 029-000-0000")
    expect(b.locator("main")).to_contain_text(f"町{A}")  # the peer by its name
    shot(b, "federation-query-answers")

    # A handover request from the first found child's row; the form says what is missing first.
    row = found.first
    row.get_by_role("button", name="引継ぎを依頼する").click()
    expect(b.get_by_role("alert")).to_contain_text("案件番号と依頼の内容が必要です")
    b.go_back()
    row = b.get_by_role("table", name=re.compile("照会した子ども")).locator("tbody tr").filter(has_text="見つかった").first
    row.get_by_label("案件番号").fill("B-2026-0042")
    row.get_by_label("依頼の内容").fill("転入した児童の支援歴を確認したい")
    row.get_by_role("button", name="引継ぎを依頼する").click()
    expect(b.get_by_role("status")).to_contain_text("引継ぎの依頼を送りました。")
    outgoing = b.get_by_role("table", name="依頼と回答（新しい順）")
    expect(outgoing.locator("tbody tr").first).to_contain_text("B-2026-0042")
    expect(outgoing.locator("tbody tr").first).to_contain_text("回答待ち")
    expect(outgoing.locator("tbody tr").first).to_contain_text(f"町{A}（{A}）")
    queries = b.get_by_role("table", name="これまでの照会（新しい順）")
    expect(queries.locator("tbody tr").first).to_contain_text("回答あり")
    expect(queries.locator("tbody tr").first.locator("td.num").nth(0)).to_have_text(str(MOVED + 3))  # children asked about
    expect(queries.locator("tbody tr").first.locator("td.num").nth(1)).to_have_text(str(MOVED))  # found

    # A's caseworker sees the request on A's screen and answers it, sharing one attribute.
    a.goto("/ui/federation")
    card = a.locator("section[aria-labelledby=in-h] .card").filter(has_text="B-2026-0042")
    expect(card).to_contain_text("転入した児童の支援歴を確認したい")
    expect(card).to_contain_text(f"町{B}")
    card.get_by_role("button", name="回答を送る").click()
    expect(a.get_by_role("alert")).to_contain_text("回答の内容を書いてください。")
    card = a.locator("section[aria-labelledby=in-h] .card").filter(has_text="B-2026-0042")
    card.get_by_label("回答（氏名や住所は書かないでください）").fill("令和6年度に家庭訪問あり。担当へご連絡ください。")
    card.get_by_label("児童扶養手当").check()
    shot(a, "federation-handover-answer")
    card.get_by_role("button", name="回答を送る").click()
    expect(a.get_by_role("status")).to_contain_text("引継ぎの依頼に回答しました。")
    card = a.locator("section[aria-labelledby=in-h] .card").filter(has_text="B-2026-0042")
    expect(card).to_contain_text("回答あり")
    expect(card).to_contain_text("令和6年度に家庭訪問あり。")
    expect(card.get_by_role("button", name="回答を送る")).to_have_count(0)

    # B sees the answer, the shared attribute by its label, never its key.
    b.goto("/ui/federation")
    first = b.get_by_role("table", name="依頼と回答（新しい順）").locator("tbody tr").first
    expect(first).to_contain_text("回答あり")
    expect(first).to_contain_text("令和6年度に家庭訪問あり。")
    expect(first).to_contain_text("児童扶養手当")
    expect(first).not_to_contain_text("child_support_allowance")
    shot(b, "federation-handover-answered")
