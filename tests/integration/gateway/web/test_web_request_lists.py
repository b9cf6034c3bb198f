"""The approver's and the auditor's re-identification request lists in real Chromium: server-side filter, search, sort
and paging, CSV (UTF-8 with BOM) and Excel with Japanese headers, A4 print, anomaly kinds in words.

Order-independent: the requests are this test's own (a case reference no other test uses), and every assertion is about
them or about what a filter leaves, whatever other tests have filed on the shared site.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid

from openpyxl import load_workbook
from playwright.sync_api import BrowserContext, expect

from tests.support.web import Site, log_in, shot

HEADERS = ["申請番号", "状態", "申請者", "日時（日本時間）", "利用目的", "法的根拠", "案件番号", "承認", "却下", "開示"]


def _file_requests(site: Site, case: str, n: int) -> list[str]:
    """``n`` requests by the caseworker through the gateway's API (logged, not filed at the escrow)."""
    with site.api("caseworker") as c:
        persons = [p["person_id"] for p in c.get("/api/v1/persons", params={"min_sources": 2, "limit": n}).json()["persons"]]
        ids = []
        for i, person in enumerate(persons):
            r = c.post("/api/v1/reidentification", json={"person_id": person, "purpose": "early_support", "case_ref": f"{case}-{i}",
                                                          "justification": "健診未受診が続き、訪問前に世帯を確認する。"})
            assert r.status_code == 200, r.text
            ids.append(r.json()["request_id"])
    return ids


def _download(page, name: str) -> bytes:
    with page.expect_download() as got:
        page.get_by_role("link", name=name).click()
    return open(got.value.path(), "rb").read()


def test_approver_and_auditor_lists_filter_export_and_print(context: BrowserContext, site: Site) -> None:
    case = f"一覧-{uuid.uuid4().int % 900_000 + 100_000}"
    ids = _file_requests(site, case, 3)

    approver = context.new_page()
    log_in(approver, "approver")
    approver.get_by_label("検索（申請番号・申請者・案件番号）").fill(case)
    approver.get_by_label("並び順").select_option("old")
    approver.get_by_role("button", name="絞り込む").click()
    table = approver.get_by_role("table", name=re.compile("ゲートウェイの監査ログにある申請（古い順、3 件"))
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).locator("code").inner_text() for i in range(3)] == ids  # oldest first
    for i in range(3):
        expect(rows.nth(i)).to_contain_text("エスクローに未提出")  # the real status, asked of the escrow
    approver.get_by_label("エスクローでの状態").select_option("pending")
    approver.get_by_role("button", name="絞り込む").click()
    expect(approver.locator("main")).to_contain_text("条件に合う申請はありません。")
    approver.get_by_label("エスクローでの状態").select_option("not_filed")
    approver.get_by_role("button", name="絞り込む").click()
    expect(rows).to_have_count(3)
    shot(approver, "lists-approvals-filtered")

    data = _download(approver, "CSV で書き出す")
    assert data.startswith(b"\xef\xbb\xbf")
    table_rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table_rows[0] == HEADERS and [r[0] for r in table_rows[1:]] == ids
    assert all(r[1] == "エスクローに未提出" and r[4].startswith("支援が必要なこどもの早期発見") and r[6].startswith(case)
               for r in table_rows[1:])
    assert all("early_support" not in cell for r in table_rows for cell in r)  # words, never keys
    sheet = load_workbook(io.BytesIO(_download(approver, "Excel で書き出す"))).active
    assert sheet.title == "再識別の申請" and [c.value for c in sheet[1]] == HEADERS and sheet.max_row == 4
    approver.emulate_media(media="print")
    expect(approver.get_by_role("button", name="絞り込む")).to_be_hidden()
    expect(approver.locator("p.print-only")).to_be_visible()
    assert approver.pdf(format="A4").startswith(b"%PDF")
    approver.emulate_media(media="screen")

    auditor = context.browser.new_context(base_url=site.base_url, locale="ja-JP", viewport={"width": 1280, "height": 900},
                                          accept_downloads=True)
    try:
        page = auditor.new_page()
        log_in(page, "auditor")
        page.get_by_label("検索（申請番号・申請者・案件番号）").fill(f"{case}-1")
        page.get_by_role("button", name="絞り込む").click()
        listed = page.get_by_role("table", name=re.compile(r"申請（古い順、1 件"))
        expect(listed.locator("tbody tr")).to_have_count(1)
        expect(listed.locator("tbody tr")).to_contain_text(ids[1])
        page.get_by_label("検索（申請番号・申請者・案件番号）").fill(case)
        page.get_by_label("結果").select_option("escrow_unknown")  # the escrow's log is not joined in
        page.get_by_label("並び順").select_option("new")
        page.get_by_role("button", name="絞り込む").click()
        listed = page.get_by_role("table", name=re.compile(r"申請（新しい順、3 件"))
        assert [c.strip() for c in listed.locator("tbody tr td:first-child code").all_inner_texts()] == ids[::-1]
        data = _download(page, "申請の一覧を CSV で書き出す")
        exported = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert exported[0] == HEADERS and [r[0] for r in exported[1:]] == ids[::-1]
        assert {r[1] for r in exported[1:]} == {"エスクローでの状態は不明（エスクローの監査ログ未読込）"}
        sheet = load_workbook(io.BytesIO(_download(page, "申請の一覧を Excel で書き出す"))).active
        assert [c.value for c in sheet[1]] == HEADERS and sheet.max_row == 4
        # Anomalies are named in words (not `off_hours`, `no_case_ref`).
        kinds = page.get_by_role("table", name=re.compile("案件番号のない申請")).locator("tbody tr td:first-child").all_inner_texts()
        assert all(not re.fullmatch(r"[a-z_]+", k.strip()) for k in kinds)
        page.emulate_media(media="print")
        expect(page.get_by_role("button", name="絞り込む")).to_be_hidden()
        assert page.pdf(format="A4").startswith(b"%PDF")
        shot(page, "lists-audit-requests-print")
        page.emulate_media(media="screen")
        with site.api("auditor") as c:
            actions = [json.loads(line)["entry"]["action"] for line in c.get("/api/v1/audit/export").text.splitlines()
                       if line.strip() and json.loads(line)["type"] == "entry"]
        assert actions.count("approvals.export") >= 2 and actions.count("audit.requests_export") >= 2
    finally:
        auditor.close()
