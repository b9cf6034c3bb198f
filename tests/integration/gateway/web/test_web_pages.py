"""The web UI end to end: real headless Chromium against the real gateway server, one role at a time."""

from __future__ import annotations

import json
import re
import sqlite3

import httpx
from synthetic import Town
from policy import default_policy
from policy.attributes import default_catalog
from playwright.sync_api import BrowserContext, expect

from agents.core.token import RecordTokeniser
from tests.support.web import PASSWORD, Site, log_in, shot, wait_for_run


def test_login_errors_then_admin_dashboard_and_a_run(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    page.goto("/ui/admin")
    expect(page).to_have_url(re.compile(r"/ui/login\?"))
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.get_by_role("heading", name="ログイン")).to_be_visible()
    shot(page, "login")

    page.get_by_role("button", name="ログイン").click()
    expect(page.locator("#username-error")).to_have_text("利用者名を入力してください。")
    expect(page.get_by_label("利用者名")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#password-error")).to_have_text("パスワードを入力してください。")
    log_in(page, "admin", "wrong password, long enough")
    expect(page.get_by_role("alert")).to_contain_text("利用者名またはパスワードが違います。")
    shot(page, "login-error")

    log_in(page, "admin")
    expect(page).to_have_url(re.compile(r"/ui/admin$"))
    cookie = next(c for c in context.cookies() if c["name"] == "tsunagu_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert not cookie["secure"]  # plain HTTP on loopback; Secure is set whenever the request came over TLS
    agents = page.get_by_role("table", name=re.compile("登録済みのエージェント"))
    for agent in site.agents.values():
        expect(agents).to_contain_text(agent.agent_id)
    expect(page.get_by_role("table", name=re.compile("受け付けた提出"))).to_contain_text("school")
    expect(page.get_by_role("table", name=re.compile("最近の名寄せ"))).to_contain_text("完了")
    expect(page.get_by_role("link", name="人物")).to_have_count(0)  # the admin's role may not read persons
    shot(page, "admin-dashboard")

    with site.api("admin") as c:
        before = c.get("/api/v1/runs").json()[0]["id"]
    page.get_by_role("button", name="今すぐ名寄せを実行").click()
    expect(page.get_by_role("status")).to_contain_text("名寄せを予約しました")
    run = wait_for_run(site, before)
    assert run["trigger"] == "web:admin"

    page.get_by_role("button", name="ログアウト").click()
    expect(page.get_by_role("status")).to_have_text("ログアウトしました。")
    page.goto("/ui/admin")
    expect(page).to_have_url(re.compile(r"/ui/login\?"))


def test_caseworker_screening_person_and_timeline(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    log_in(page, "caseworker")
    expect(page).to_have_url(re.compile(r"/ui/screening$"))
    with site.api("caseworker") as c:
        listing = c.get("/api/v1/screening").json()
    expect(page.get_by_role("status")).to_contain_text(
        f"上限 {listing['capacity']} 人のうち {len(listing['entries'])} 人を表示しています（該当 {listing['flagged']} 人")
    top, first = listing["entries"][0], page.get_by_role("table", name=re.compile("支援候補")).locator("tbody tr").first
    expect(first).to_contain_text(top["person_id"])
    for flag in top["flags"]:
        expect(first).to_contain_text(flag["label"])
        for item in flag["items"]:
            # Labels of the attribute catalog, never keys (年間欠席日数 = 78日, 就学援助 = 受給なし).
            expect(first).to_contain_text(f"{item['attribute_label']} = {item['value_label']}")
            assert item["attribute"] not in first.inner_text()
    shot(page, "caseworker-screening")

    page.get_by_role("link", name="人物", exact=True).click()
    page.get_by_label("データ元の数（以上）").fill("3")
    page.get_by_role("button", name="絞り込む").click()
    shot(page, "caseworker-persons")
    page.get_by_role("table").get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("人物 P")
    person_id = page.get_by_role("heading", level=1).inner_text().split()[-1]
    with site.api("caseworker") as c:
        person = c.get(f"/api/v1/persons/{person_id}").json()
    assert len(person["sources"]) >= 3
    catalog, policy = default_catalog(), default_policy()
    source_label = {s: spec.label for n in policy.document.networks.values() for s, spec in n.sources.items()}
    for record in person["records"]:
        expect(page.get_by_role("heading", name=source_label[record["source"]], exact=True)).to_be_visible()
        expect(page.locator("main")).to_contain_text(record["token"])
        for name, value in record["attributes"].items():
            expect(page.locator("main")).to_contain_text(catalog.label(name))
    timeline = page.get_by_role("table", name=re.compile("古い順"))
    expect(timeline.locator("tbody tr")).to_have_count(len(person["records"]))
    shot(page, "caseworker-person")
    with site.api("auditor") as c:  # the page view is in the audit log (the web page shows records and timeline)
        export = c.get("/api/v1/audit/export").text
    views = [json.loads(line)["entry"] for line in export.strip().split("\n") if json.loads(line)["type"] == "entry"]
    assert any((e["actor"], e["action"], e["target"]) == ("caseworker", "persons.view", person_id) and "events=" in e["outcome"]
               for e in views)

    response = page.goto("/ui/persons/P0000000000000000")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_have_text("人物 P0000000000000000 は現在の名寄せ結果にありません。")
    response = page.goto("/ui/no-such-page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_have_text("そのページはありません。")


def test_timeline_shows_a_changed_attribute_across_submissions(context: BrowserContext, site: Site, town: Town) -> None:
    rows = [dict(r) for r in town.sources["school"]]
    rows[0]["absence_days"] = "45"
    with site.api("admin") as c:
        before = c.get("/api/v1/runs").json()[0]["id"]
    r = httpx.post(f"{site.base_url}/api/v1/submissions", content=site.agents["school"].submit("school", rows),
                   headers={"Content-Type": "application/x-ndjson"}, timeout=300)
    assert r.json()["status"] == "accepted", r.text
    wait_for_run(site, before)
    # The record's token, as the school's agent computes it from its own record id.
    secret = site.agents["school"].linkage.secret
    token = RecordTokeniser(secret, "school").token(rows[0]["record_id"])
    with site.api("caseworker") as c:
        person_id = c.get(f"/api/v1/records/school/{token}").json()["person_id"]

    page = context.new_page()
    log_in(page, "caseworker")
    page.goto(f"/ui/persons/{person_id}")
    timeline = page.get_by_role("table", name=re.compile("古い順"))
    school = timeline.get_by_role("row").filter(has_text="校務支援システム")
    expect(school).to_have_count(2)
    absence = 4  # columns: 受付, データ元, 記録トークン, 状態, then the attributes in name order
    expect(timeline.get_by_role("columnheader").nth(absence)).to_have_text("年間欠席日数")
    expect(school.nth(0).get_by_role("cell").nth(absence)).to_have_text(town.sources["school"][0]["absence_days"] + "日")
    expect(school.nth(1).get_by_role("cell").nth(absence)).to_have_text("45日")
    shot(page, "caseworker-timeline")


def test_keyboard_only(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    page.goto("/ui/login")
    expect(page.get_by_label("利用者名")).to_be_focused()  # autofocus
    page.keyboard.type("caseworker")
    page.keyboard.press("Tab")
    expect(page.get_by_label("パスワード")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/screening$"))
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="本文へ移動")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.goto("/ui/review")
    first = page.locator("section.card").first
    first.get_by_label("同一人物（結び付ける）").focus()
    page.keyboard.press("ArrowRight")  # radio group: arrows move the choice
    expect(first.get_by_label("別人（結び付けない）")).to_be_checked()


def test_review_decision_through_the_form(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    log_in(page, "caseworker")
    page.goto("/ui/review")
    pair = page.locator("section.card").first
    pair_id = pair.get_attribute("id").removeprefix("pair-")
    expect(pair.get_by_role("table", name="項目ごとの比較")).to_contain_text("生年月日・性別")
    pair.get_by_label("別人（結び付けない）").check()
    pair.get_by_role("button", name="判定を記録する").click()
    pair = page.locator(f"#pair-{pair_id}")
    expect(pair.locator(f"#reason-{pair_id}-error")).to_have_text("判定の理由を入力してください（監査のため必須です）。")
    expect(pair.get_by_label("別人（結び付けない）")).to_be_checked()
    shot(page, "caseworker-review-error")

    pair.get_by_label("理由（必須）").fill("生年月日は一致するが、住所も保護者も異なる（家庭訪問記録で確認）")
    pair.get_by_role("button", name="判定を記録する").click()
    expect(page.get_by_role("status")).to_contain_text(f"ペア {pair_id} の判定を記録しました")
    expect(page.locator(f"#pair-{pair_id}")).to_contain_text("判定済み")
    shot(page, "caseworker-review")
    with site.api("caseworker") as c:
        latest = c.get("/api/v1/review/decisions").json()["decisions"][0]
    assert latest["review_pair_id"] == int(pair_id) and latest["decision"] == "non_link"
    assert latest["decided_by"] == "caseworker" and latest["reason"].startswith("生年月日は一致する")


def test_reidentification_request_form_and_filing(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    log_in(page, "caseworker")
    page.goto("/ui/persons?min_sources=2")
    page.get_by_role("table").get_by_role("link").first.click()
    person_id = page.get_by_role("heading", level=1).inner_text().split()[-1]
    page.get_by_role("link", name="この人物の再識別を申請する").click()
    expect(page.get_by_label("人物 ID")).to_have_value(person_id)
    expect(page.locator("main")).to_contain_text("個人情報保護法第61条（所掌事務のための利用目的の特定）")
    page.get_by_label(re.compile("支援が必要なこどもの早期発見")).check()
    page.get_by_label("再識別が必要な理由").fill("長期欠席が続き、家庭訪問の前に世帯を確認する必要がある。")
    page.get_by_role("button", name="申請する").click()
    expect(page.locator("#case_ref-error")).to_contain_text("案件番号")
    expect(page.get_by_label("案件番号（要対協の番号など）")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("再識別が必要な理由")).to_have_value("長期欠席が続き、家庭訪問の前に世帯を確認する必要がある。")
    shot(page, "caseworker-reidentify-error")

    page.get_by_label("案件番号（要対協の番号など）").fill("支援-2026-042")
    page.get_by_role("button", name="申請する").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("再識別の申請を記録しました")
    shot(page, "caseworker-reidentify-filed")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("申請ファイル")).click()
    filing = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert set(filing) == {"manifest", "signature"}  # the file is the signed filing the escrow takes, as it is
    package = filing["manifest"]
    assert package["kind"] == "reidentification-filing" and "person_id" not in package
    assert package["case_ref"] == "支援-2026-042"
    assert package["purpose"] == "early_support" and package["legal_basis"] == "61" and package["requester"] == "caseworker"
    assert package["gateway_evidence"]["entry"]["action"] == "reidentify.request"
    assert package["records"] and all(set(r) == {"batch_header", "token", "ciphertext"} for r in package["records"])
    expect(page.locator("main")).to_contain_text(
        f"tsunagu casework release --escrow {site.escrow_url} --username caseworker --request {package['request_id']}")


def test_a_role_without_the_permission_gets_a_japanese_403(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    log_in(page, "custodian")
    for path, needed in (("/ui/persons", "仮名化された人物と記録の閲覧"), ("/ui/review", "要確認ペアの閲覧"),
                         ("/ui/admin", "提出履歴・取込エラーの閲覧")):
        response = page.goto(path)
        assert response is not None and response.status == 403
        expect(page.get_by_role("heading", level=1)).to_have_text("この画面は表示できません")
        expect(page.get_by_role("alert")).to_have_text(f"ロール「鍵管理者」には「{needed}」の権限がありません。")
    shot(page, "forbidden")
    response = page.request.post("/ui/admin/runs", form={"csrf_token": "x"})
    assert response.status == 403


def test_invalid_and_expired_sessions_go_to_login(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    context.add_cookies([{"name": "tsunagu_session", "value": "not-a-session", "url": f"{site.base_url}/ui/"}])
    page.goto("/ui/persons")
    expect(page).to_have_url(re.compile(r"/ui/login\?reason=invalid_token&next=%2Fui%2Fpersons"))
    expect(page.get_by_role("status")).to_contain_text("セッションが無効です")

    site.add_user("expiring", "caseworker")
    log_in(page, "expiring")
    page.goto("/ui/persons")
    with sqlite3.connect(site.home / "gateway.db") as db:
        db.execute("UPDATE sessions SET expires_at = '2000-01-01 00:00:00.000000' "
                   "WHERE user_id = (SELECT id FROM users WHERE username = 'expiring')")
    page.reload()
    expect(page).to_have_url(re.compile(r"/ui/login\?reason=token_expired"))
    expect(page.get_by_role("status")).to_have_text("セッションの有効期限が切れました。もう一度ログインしてください。")
    shot(page, "session-expired")
    page.get_by_label("利用者名").fill("expiring")
    page.get_by_label("パスワード").fill("correct horse battery staple")
    page.get_by_role("button", name="ログイン").click()
    expect(page).to_have_url(re.compile(r"/ui/persons$"))  # back where the session ran out


def test_a_post_without_the_csrf_token_is_refused(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    log_in(page, "caseworker")
    page.goto("/ui/review")
    pair_id = page.locator("section.card").first.get_attribute("id").removeprefix("pair-")
    with site.api("caseworker") as c:
        before = len(c.get("/api/v1/review/decisions").json()["decisions"])
    # The session cookie goes along (same browser profile); only the form's hidden token is missing or wrong.
    for form in ({"decision": "link", "reason": "偽造"}, {"decision": "link", "reason": "偽造", "csrf_token": "0" * 64}):
        response = page.request.post(f"/ui/review/{pair_id}", form=form)
        assert response.status == 403
        assert "フォームの確認用トークンがないか、一致しません" in response.text()
    response = page.request.post("/ui/logout", form={})
    assert response.status == 403
    with site.api("caseworker") as c:
        assert len(c.get("/api/v1/review/decisions").json()["decisions"]) == before
    page.goto("/ui/review")  # still signed in: the forged logout did nothing
    expect(page.get_by_role("heading", level=1)).to_have_text("要確認ペア")
