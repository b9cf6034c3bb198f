"""Every role's whole task in real Chromium, with no CLI step: from the screening list to the printed identity.

caseworker: screening → person → request at the gateway → 「エスクローに提出する」 (the browser carries the filing)
→ signs in at the escrow and files; approver: the escrow's queue, the filing beside the gateway's log entry, approves
with a reason; custodians: unseal at the escrow's page, one share each; caseworker: receives the identity once, in
Japanese, and prints it; the approver's gateway screen shows the real status; auditor: exports the escrow's log at the
escrow and reconciles both logs at the gateway. Screenshots go to test-artifacts/screenshots/workflow-*.png.

This file runs after test_web_escrow_roles.py (which unseals with share 1 through the CLI); it offers shares until the
escrow is open, so it passes whichever ran first.
"""

from __future__ import annotations

import csv
import io
import re

import httpx
from openpyxl import load_workbook
from playwright.sync_api import BrowserContext, Page, expect

from linkage.normalise.dates import parse_birth_date, to_wareki
from tests.support.web import CUSTODIANS, PASSWORD, Site, cli, log_in, shot


def _escrow_page(context: BrowserContext, site: Site, username: str, path: str = "/ui/") -> Page:
    page = context.new_page()
    page.goto(f"{site.escrow_url}/ui/login")
    page.get_by_label("利用者名").fill(username)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_load_state()
    if path != "/ui/":
        page.goto(f"{site.escrow_url}{path}")
    return page


def _new_context(context: BrowserContext, site: Site) -> BrowserContext:
    ctx = context.browser.new_context(base_url=site.base_url, locale="ja-JP", viewport={"width": 1280, "height": 900},
                                      accept_downloads=True)
    ctx.set_default_timeout(60_000)
    return ctx


def test_whole_reidentification_in_the_browser(context: BrowserContext, site: Site) -> None:
    escrow_home = site.home.parent / "escrow"
    # A share opens only for its own custodian's login, so each custodian's escrow account has the share's name.
    for n in (2, 3, 4):
        cli(["escrow", "user", "add", "--home", str(escrow_home), "--username", CUSTODIANS[n - 1].name, "--role", "custodian",
             "--password-stdin"], input=PASSWORD + "\n")

    # Caseworker: the screening list (labels, never keys) → a flagged child → the request form.
    caseworker = context.new_page()
    log_in(caseworker, "caseworker")
    caseworker.goto("/ui/screening")
    main = caseworker.locator("main")
    expect(main).to_contain_text("年間欠席日数")
    assert "absence_days" not in main.inner_text() and "checkup_missed" not in main.inner_text()
    shot(caseworker, "workflow-1-screening")
    caseworker.get_by_role("table").get_by_role("link", name=re.compile(r"^P[0-9a-f]{16}$")).first.click()
    person_id = caseworker.get_by_role("heading", level=1).inner_text().split()[-1]
    caseworker.get_by_role("link", name="この人物の再識別を申請する").click()
    caseworker.get_by_label(re.compile("支援が必要なこどもの早期発見")).check()
    caseworker.get_by_label("案件番号（要対協の番号など）").fill("支援-2026-101")
    caseworker.get_by_label("再識別が必要な理由").fill("長期欠席が続き、家庭訪問の前に世帯を確認する必要がある。")
    caseworker.get_by_role("button", name="申請する").click()
    expect(caseworker.get_by_role("heading", level=1)).to_have_text("再識別の申請を記録しました")
    request_id = caseworker.locator("dl.facts dd code").first.inner_text()
    shot(caseworker, "workflow-2-gateway-filed")

    # The browser takes the filing to the escrow; the caseworker confirms with their escrow account.
    caseworker.get_by_role("button", name="エスクローに提出する").click()
    expect(caseworker).to_have_url(f"{site.escrow_url}/ui/file")
    expect(caseworker.locator("main")).to_contain_text(request_id)
    expect(caseworker.get_by_label("エスクローの利用者名")).to_have_value("caseworker")
    shot(caseworker, "workflow-3-escrow-file")
    caseworker.get_by_label("エスクローのパスワード").fill(PASSWORD)
    caseworker.get_by_role("button", name="ログインして提出する").click()
    expect(caseworker).to_have_url(re.compile(rf"/ui/requests/{request_id}\?filed=true$"))
    expect(caseworker.get_by_role("status")).to_contain_text("申請を受け付けました")
    expect(caseworker.locator("main")).to_contain_text("承認待ち")

    # Approver at the gateway sees the real status across both services.
    approver_ctx = _new_context(context, site)
    try:
        gw_page = approver_ctx.new_page()
        log_in(gw_page, "approver")
        row = gw_page.get_by_role("row").filter(has_text=request_id)
        expect(row).to_contain_text("承認待ち")

        # Approver at the escrow: the queue, the filing beside the gateway's log entry, approve with a reason.
        page = _escrow_page(approver_ctx, site, "approver")
        expect(page).to_have_url(re.compile(r"/ui/requests$"))
        page.get_by_label("状態").select_option("pending")
        page.get_by_role("button", name="絞り込む").click()
        shot(page, "workflow-4-escrow-queue")
        # The queue as the approver takes it away: the filtered rows, Japanese headers and words, logged at the escrow.
        with page.expect_download() as got:
            page.get_by_role("link", name="CSV で書き出す").click()
        exported = open(got.value.path(), "rb").read()
        assert exported.startswith(b"\xef\xbb\xbf")
        lines = list(csv.reader(io.StringIO(exported.decode("utf-8-sig"))))
        assert lines[0][:3] == ["申請番号", "状態", "申請者"]
        mine = [line for line in lines[1:] if line[0] == request_id]
        assert len(mine) == 1 and mine[0][1] == "承認待ち" and all(line[1] == "承認待ち" for line in lines[1:])
        assert "early_support" not in exported.decode("utf-8-sig")
        with page.expect_download() as got:
            page.get_by_role("link", name="Excel で書き出す").click()
        sheet = load_workbook(io.BytesIO(open(got.value.path(), "rb").read())).active
        assert sheet.title == "再識別の申請" and sheet.max_row == len(lines)
        page.get_by_role("link", name=request_id).click()
        expect(page.locator("main")).to_contain_text("ゲートウェイの監査ログの記録")
        expect(page.locator(".side-by-side .match")).to_have_count(3)
        expect(page.locator(".side-by-side .mismatch")).to_have_count(0)
        expect(page.locator("main")).to_contain_text("長期欠席が続き")
        shot(page, "workflow-5-escrow-request")
        page.get_by_role("button", name="却下する").click()  # a rejection needs a reason: refused, nothing decided
        expect(page.get_by_role("alert")).to_contain_text("却下の理由を書いてください")
        page.get_by_label("判断の理由").fill("訪問計画を確認した。")
        page.get_by_role("button", name="承認する").click()
        expect(page.get_by_role("status")).to_contain_text("承認しました。")
        expect(page.locator("main")).to_contain_text("承認済み（未受取）")
        gw_page.reload()
        expect(gw_page.get_by_role("row").filter(has_text=request_id)).to_contain_text("承認済み（未受取）")
    finally:
        approver_ctx.close()

    # Custodians, one share each, at the escrow's own page.
    for n in (2, 3, 4):
        keeper_ctx = _new_context(context, site)
        try:
            page = _escrow_page(keeper_ctx, site, CUSTODIANS[n - 1].name)
            expect(page).to_have_url(re.compile(r"/ui/unseal$"))
            if "開封されています" in page.locator("#vault-status").inner_text():
                break
            page.get_by_label("持分ファイル").set_input_files(str(site.share_files[n - 1]))
            page.get_by_label("持分のパスフレーズ").fill(CUSTODIANS[n - 1].passphrase)
            page.get_by_role("button", name="開封する").click()
            expect(page.locator("#notice")).to_have_text("持分を受け付けました。")
            expect(page.get_by_label("開封の進み具合")).not_to_have_attribute("value", "0")
            shot(page, f"workflow-6-unseal-{n}")
        finally:
            keeper_ctx.close()
    assert httpx.get(f"{site.escrow_url}/api/v1/status").json()["sealed"] is False

    # Caseworker receives once, in Japanese, with a countdown, and prints.
    caseworker.goto(f"{site.escrow_url}/ui/mine")
    row = caseworker.get_by_role("row").filter(has_text=request_id)
    expect(row).to_contain_text("承認済み（未受取）")
    expect(row.locator("[data-deadline]")).to_contain_text(re.compile(r"あと \d+ 時間"))
    row.get_by_role("link", name=request_id).click()
    shot(caseworker, "workflow-7-escrow-approved")
    caseworker.get_by_role("button", name="本人情報を表示する（1 回限り）").click()
    expect(caseworker.get_by_role("heading", level=1)).to_have_text("本人情報の開示")
    identity = caseworker.locator("section.identity").first
    for label in ("氏名", "よみ", "生年月日", "性別", "住所"):
        expect(identity.locator("dt", has_text=label)).to_have_count(1)
    text = identity.inner_text()
    assert "batch_id" not in caseworker.locator("main").inner_text() and '"sex"' not in text
    birth = identity.locator("dt:text-is('生年月日') + dd").inner_text()
    # A department may hold only the year and month of a birth (the town generator writes some so); the receipt then
    # shows the month in both calendars and no day in either.
    shown = re.match(r"^(令和|平成)(元|\d+)年\d+月(\d+日)?（\d{4}年\d+月(\d+日)?）$", birth)
    assert shown and bool(shown.group(3)) == bool(shown.group(4)), birth
    year, month, day = parse_birth_date(re.search(r"（(.+)）", birth).group(1))
    assert birth.startswith(to_wareki(year, month, day))
    assert identity.locator("dt:text-is('性別') + dd").inner_text() in ("男", "女", "記録なし")
    expect(caseworker.locator("#receipt-left")).to_contain_text(re.compile(r"あと \d+ 分"))
    shot(caseworker, "workflow-8-receipt")
    caseworker.emulate_media(media="print")
    expect(caseworker.locator("nav")).to_be_hidden()
    expect(caseworker.get_by_role("button", name="印刷する（A4）")).to_be_hidden()
    shot(caseworker, "workflow-9-receipt-print")
    pdf = caseworker.pdf(format="A4")
    assert pdf.startswith(b"%PDF")
    caseworker.emulate_media(media="screen")

    # Once only: the request page has no receive button any more, and the API says it was released.
    caseworker.goto(f"{site.escrow_url}/ui/requests/{request_id}")
    expect(caseworker.locator("main")).to_contain_text("開示済み")
    expect(caseworker.get_by_role("button", name=re.compile("本人情報を表示する"))).to_have_count(0)
    with site.escrow("caseworker") as api:
        assert api.post(f"/api/v1/requests/{request_id}/release").status_code == 410

    # Auditor: the escrow's export from the escrow's page, reconciled at the gateway's audit screen.
    auditor_ctx = _new_context(context, site)
    try:
        page = _escrow_page(auditor_ctx, site, "auditor", "/ui/audit")
        with page.expect_download() as saved:
            page.get_by_role("link", name="監査ログを書き出す（JSON lines）").click()
        export = open(saved.value.path(), encoding="utf-8").read()
        shot(page, "workflow-10-escrow-audit")
        gw = auditor_ctx.new_page()
        log_in(gw, "auditor")
        gw.get_by_label("エスクローの監査ログの書き出し（JSON lines）").set_input_files(
            files=[{"name": "escrow-audit.jsonl", "mimeType": "text/plain", "buffer": export.encode()}])
        gw.get_by_role("button", name="突き合わせる").click()
        row = gw.get_by_role("table", name=re.compile(r"申請（古い順")).get_by_role("row").filter(has_text=request_id)
        expect(row).to_contain_text("開示済み")
        expect(row).to_contain_text("approver")
        shot(gw, "workflow-11-auditor-report")
    finally:
        auditor_ctx.close()
    assert person_id.startswith("P")
