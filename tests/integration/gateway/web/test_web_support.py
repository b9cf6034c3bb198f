"""The recording screens in real Chromium: from the screening list to a support record, a refused note, an update,
the person page's link, the evaluation page with its charts, and a return list."""

from __future__ import annotations

import csv
import io
import re

from openpyxl import load_workbook
from playwright.sync_api import BrowserContext, expect

from tests.support.web import Site, log_in, shot


def test_record_support_from_the_screening_list(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    log_in(page, "caseworker")
    page.goto("/ui/screening")
    first = page.get_by_role("link", name="支援記録を作成").first
    person = re.search(r"person=(P[0-9a-f]{16})", first.get_attribute("href") or "").group(1)
    first.click()
    expect(page.get_by_role("heading", name="支援記録の作成")).to_be_visible()
    page.get_by_label("支援が必要").check()
    page.get_by_label("不登校").check()
    page.get_by_label("相談").check()
    page.get_by_label("担当部署").select_option("kodomo_center")
    page.get_by_label(re.compile("^メモ")).fill("母の携帯 090-1234-5678")
    page.get_by_role("button", name="支援記録を作成する").click()
    expect(page.get_by_role("alert")).to_contain_text("電話番号")
    expect(page.get_by_label("相談")).to_be_checked()  # what was entered is kept
    shot(page, "support-note-refused")
    page.get_by_label(re.compile("^メモ")).fill("学校と連携して見守る")
    page.get_by_role("button", name="支援記録を作成する").click()
    expect(page.get_by_role("status")).to_contain_text("支援記録を作成しました")
    case_id = int(page.url.split("/ui/support/")[1].split("?")[0])
    shot(page, "support-case")

    page.get_by_label("対応状況").select_option("supporting")
    page.get_by_label("保健").check()
    page.get_by_role("button", name="記録を更新する").click()
    expect(page.get_by_role("status")).to_contain_text("更新しました")
    expect(page.get_by_role("table", name=re.compile("変更の履歴"))).to_contain_text("支援中")

    with site.api("caseworker") as api:
        case = api.get(f"/api/v1/support/cases/{case_id}").json()
    assert case["person_id"] == person and case["origin"] == "screening"
    assert (case["assessment"], case["status"], sorted(case["supports"]), case["difficulties"]) == (
        "needs_support", "supporting", ["counselling", "health"], ["school_refusal"])
    assert case["note"] == "学校と連携して見守る" and case["version"] == 2

    page.goto(f"/ui/persons/{person}")
    expect(page.get_by_role("link", name=f"支援記録 {case_id}")).to_be_visible()
    page.goto("/ui/support")
    expect(page.get_by_role("table", name=re.compile("支援記録"))).to_contain_text(person)
    # Search by the person id, sort, then take the list away: Japanese headers and labels, never codes.
    page.get_by_label("検索（番号・人物 ID・担当）").fill(person)
    page.get_by_label("並び順").select_option("updated")
    page.get_by_role("button", name="絞り込む").click()
    rows = page.get_by_role("table", name=re.compile("支援記録（更新の新しい順")).locator("tbody tr")
    expect(rows.first).to_contain_text(person)
    assert all(person in rows.nth(i).inner_text() for i in range(rows.count()))
    page.get_by_label("検索（番号・人物 ID・担当）").fill("P0000000000000000")
    page.get_by_role("button", name="絞り込む").click()
    expect(page.get_by_role("table", name=re.compile("全 0 件"))).to_be_visible()
    page.get_by_label("検索（番号・人物 ID・担当）").fill(str(case_id))
    page.get_by_role("button", name="絞り込む").click()
    with page.expect_download() as got:
        page.get_by_role("link", name="CSV で書き出す").click()
    exported = open(got.value.path(), "rb").read()
    assert exported.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(exported.decode("utf-8-sig"))))
    assert lines[0][:4] == ["番号", "人物ID", "経路", "判断"]
    mine = [line for line in lines[1:] if line[0] == str(case_id)]
    assert len(mine) == 1 and mine[0][1] == person and mine[0][3] == "支援が必要" and mine[0][7] == "支援中"
    assert "needs_support" not in exported.decode("utf-8-sig") and "kodomo_center" not in exported.decode("utf-8-sig")
    with page.expect_download() as got:
        page.get_by_role("link", name="Excel で書き出す").click()
    sheet = load_workbook(io.BytesIO(open(got.value.path(), "rb").read())).active
    assert sheet.title == "支援記録" and sheet.max_row == len(lines)
    page.emulate_media(media="print")
    expect(page.get_by_role("button", name="絞り込む")).to_be_hidden()
    expect(page.locator("p.print-only")).to_be_visible()
    page.emulate_media(media="screen")

    page.goto("/ui/returns")
    page.get_by_label("部署のデータ元").select_option("residents")
    page.get_by_label("依頼すること").select_option("home_visit")
    page.get_by_label(re.compile(f"支援記録 {case_id}（")).check()
    page.get_by_role("button", name="対象者リストを作成する").click()
    expect(page.get_by_role("status")).to_contain_text("対象者リスト")
    expect(page.get_by_role("table", name="作成した対象者リスト")).to_contain_text("家庭訪問")
    shot(page, "support-returns")

    analyst = context.new_page()
    analyst.context.clear_cookies()
    log_in(analyst, "analyst")
    analyst.goto("/ui/evaluation?period=snapshot")
    expect(analyst.get_by_role("heading", name="抽出方法の評価")).to_be_visible()
    expect(analyst.get_by_role("table", name="規則ごと")).to_be_visible()
    charts = analyst.locator("img[src*='/ui/evaluation/charts/']")
    expect(charts).to_have_count(6)
    for src in [charts.nth(i).get_attribute("src") for i in range(6)]:
        png = analyst.request.get(src or "", timeout=120_000)
        assert png.status == 200 and png.body()[:8] == b"\x89PNG\r\n\x1a\n"
    shot(analyst, "evaluation")
    analyst.goto("/ui/support/new?person=" + person)
    expect(analyst.get_by_role("heading", name="この画面は表示できません")).to_be_visible()  # the analyst may not record
