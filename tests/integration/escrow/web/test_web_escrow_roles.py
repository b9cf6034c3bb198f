"""The roles around the escrow, end to end in Chromium: custodian, approver and auditor, with the real escrow server.

What happens at the escrow (filing, approving, unsealing) is done the way
staff do it — the `tsunagu escrow` / `tsunagu casework` commands or the
escrow's own API, with escrow accounts — never through the gateway's pages.
"""

from __future__ import annotations

import json
import re

from playwright.sync_api import BrowserContext, expect

from tests.support.web import CUSTODIANS, PASSWORD, Site, cli, log_in, shot


def test_custodian_sees_the_escrow_status_and_unseals_at_the_escrow(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    log_in(page, "custodian")
    expect(page).to_have_url(re.compile(r"/ui/custodian$"))
    status = page.get_by_role("status")
    expect(status).to_contain_text("エスクローは封印されています（開封には 3 人の鍵管理者が必要です）。")
    expect(page.get_by_label("開封の進み具合")).to_have_attribute("value", "0")
    expect(page.locator("main")).to_contain_text(f"tsunagu escrow unseal --url {site.escrow_url}")
    # Nothing on this page takes a share or a passphrase: they go to the escrow only.
    expect(page.locator("main input, main textarea")).to_have_count(0)
    shot(page, "custodian-sealed")

    cli(["escrow", "unseal", "--url", site.escrow_url, "--username", "custodian", "--share", str(site.share_files[0]),
         "--passphrase-stdin"], input=f"{PASSWORD}\n{CUSTODIANS[0].passphrase}\n")
    page.reload()
    expect(page.get_by_role("status")).to_contain_text("1/3 人の鍵管理者が開封しました。あと 2 人の鍵管理者の開封が必要です。")
    expect(page.get_by_label("開封の進み具合")).to_have_attribute("value", "1")
    shot(page, "custodian-progress")


def test_request_approval_and_audit_across_roles(context: BrowserContext, site: Site) -> None:
    caseworker = context.new_page()
    log_in(caseworker, "caseworker")
    caseworker.goto("/ui/persons?min_sources=2&offset=5")
    caseworker.get_by_role("table").get_by_role("link").first.click()
    caseworker.get_by_role("link", name="この人物の再識別を申請する").click()
    caseworker.get_by_label(re.compile("支援が必要なこどもの早期発見")).check()
    caseworker.get_by_label("案件番号（要対協の番号など）").fill("支援-2026-077")
    caseworker.get_by_label("再識別が必要な理由").fill("健診未受診が続き、保健師の訪問前に世帯を確認する。")
    caseworker.get_by_role("button", name="申請する").click()
    with caseworker.expect_download() as download:
        caseworker.get_by_role("link", name=re.compile("申請ファイル")).click()
    package = json.loads(open(download.value.path(), encoding="utf-8").read())
    request_id = package["manifest"]["request_id"]
    with site.escrow("caseworker") as escrow:  # the caseworker's own client files it with the escrow
        filed = escrow.post("/api/v1/requests", json=package)
    assert filed.status_code == 201, filed.text

    approver = context.browser.new_context(base_url=site.base_url, locale="ja-JP", viewport={"width": 1280, "height": 900})
    try:
        page = approver.new_page()
        log_in(page, "approver")
        expect(page).to_have_url(re.compile(r"/ui/approvals$"))
        row = page.get_by_role("row").filter(has_text=request_id)
        expect(row).to_contain_text("caseworker")
        expect(row).to_contain_text("支援が必要なこどもの早期発見")
        expect(row).to_contain_text("個人情報保護法第61条")
        expect(row).to_contain_text("支援-2026-077")
        expect(page.locator("main")).to_contain_text(f"tsunagu casework approve --escrow {site.escrow_url} --username approver")
        shot(page, "approver-queue")
    finally:
        approver.close()
    # Approval is given at the escrow, with the approver's escrow account, as the page says.
    cli(["casework", "approve", "--escrow", site.escrow_url, "--username", "approver", "--request", request_id,
         "--reason", "訪問計画を確認", "--password-stdin"], input=PASSWORD + "\n")
    with site.escrow("auditor") as escrow:
        escrow_export = escrow.get("/api/v1/audit/export").text

    auditor = context.browser.new_context(base_url=site.base_url, locale="ja-JP", viewport={"width": 1280, "height": 900},
                                          accept_downloads=True)
    try:
        page = auditor.new_page()
        log_in(page, "auditor")
        expect(page).to_have_url(re.compile(r"/ui/audit$"))
        requests = page.get_by_role("table", name=re.compile(r"申請（古い順"))
        # Filed and approved at the escrow, but the escrow's log is not at hand yet: unknown, never "not filed".
        expect(requests.get_by_role("row").filter(has_text=request_id)).to_contain_text("エスクローでの状態は不明")
        with page.expect_download() as saved:
            page.get_by_role("link", name="現在のチェックポイントを保存").click()
        kept = open(saved.value.path(), encoding="utf-8").read()

        page.get_by_label("エスクローの監査ログの書き出し（JSON lines）").set_input_files(
            files=[{"name": "escrow-audit.jsonl", "mimeType": "text/plain", "buffer": escrow_export.encode()}])
        page.get_by_role("button", name="突き合わせる").click()
        row = requests.get_by_role("row").filter(has_text=request_id)
        expect(row).to_contain_text("approver")
        expect(row).to_contain_text("承認済み（未受取）")
        shot(page, "auditor-report")

        caseworker.goto("/ui/screening")  # the log grows: the view is logged
        page.get_by_label("以前のチェックポイント（貼り付け）").fill(kept)
        page.get_by_role("button", name="検証する").click()
        expect(page.get_by_role("status")).to_contain_text(re.compile(r"以前のチェックポイント（\d+ 件）は、現在のログ（\d+ 件）の先頭部分と一致します"))
        shot(page, "auditor-verified")

        forged = kept.replace(kept.splitlines()[2], "A" * len(kept.splitlines()[2]), 1)  # another root hash
        page.get_by_label("以前のチェックポイント（貼り付け）").fill(forged)
        page.get_by_role("button", name="検証する").click()
        expect(page.locator("#checkpoint-error")).to_contain_text("以前のチェックポイントを検証できません")
        expect(page.get_by_label("以前のチェックポイント（貼り付け）")).to_have_attribute("aria-invalid", "true")
        shot(page, "auditor-verify-error")
    finally:
        auditor.close()
