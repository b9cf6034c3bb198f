"""Lists, the review screen and the person page in real Chromium: filters, sorting, paging, exports with Japanese headers,
print layout, the view past the capacity (logged), rule problems on the dashboard, the waterfall, keyboard shortcuts,
the split (別人) action and the child's history.

Runs after test_web_pages.py (file order): the decisions recorded here would otherwise leave that file's review tests
without an undecided pair in the small town."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from openpyxl import load_workbook
from playwright.sync_api import BrowserContext, expect

from tests.support.web import Site, log_in, shot


def _audit_actions(site: Site) -> list[tuple[str, str]]:
    """(action, outcome) of every entry in the gateway's audit log, from its export."""
    with site.api("auditor") as c:
        lines = [json.loads(line) for line in c.get("/api/v1/audit/export").text.splitlines() if line.strip()]
    return [(x["entry"]["action"], x["entry"]["outcome"]) for x in lines if x["type"] == "entry"]


def test_screening_filters_exports_print_and_beyond_capacity(context: BrowserContext, site: Site) -> None:
    rules_file = site.home / "screening.toml"
    text = (Path(__file__).resolve().parents[4] / "policy" / "default_screening.toml").read_text(encoding="utf-8")
    rules_file.write_text(text.replace("capacity = 200", "capacity = 3"), encoding="utf-8")
    try:
        page = context.new_page()
        log_in(page, "caseworker")
        expect(page.get_by_role("status")).to_contain_text("上限 3 人のうち 3 人を表示しています")
        expect(page.get_by_role("status")).to_contain_text("上限を超えた")
        page.get_by_label(re.compile("上限を超えた人も表示する")).check()
        page.get_by_role("button", name="絞り込む").click()
        expect(page.get_by_role("status")).to_contain_text("すべてを表示しています（上限を超えた表示として監査ログに記録しました）")
        assert any(a == "screening.view" and o.endswith("beyond_capacity") for a, o in _audit_actions(site))
        rows = page.get_by_role("table", name=re.compile("支援候補")).locator("tbody tr")
        assert rows.count() > 3
        page.get_by_label("規則").select_option("long_absence")
        page.get_by_label("並び順").select_option("person")
        page.get_by_role("button", name="絞り込む").click()
        ids = [t.strip() for t in rows.locator("td:nth-child(2) code").all_inner_texts()]
        assert ids == sorted(ids) and ids
        for row in rows.all():
            expect(row).to_contain_text("年間欠席30日以上")
        shot(page, "lists-screening-filtered")

        with page.expect_download() as got:
            page.get_by_role("link", name="CSV で書き出す").click()
        data = open(got.value.path(), "rb").read()
        assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, for Excel
        table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert table[0] == ["順位", "人物ID", "点数", "該当した規則", "根拠のデータ"]
        assert [r[1] for r in table[1:]] == ids and all("年間欠席日数" in r[4] and "absence_days" not in r[4] for r in table[1:])
        with page.expect_download() as got:
            page.get_by_role("link", name="Excel で書き出す").click()
        sheet = load_workbook(io.BytesIO(open(got.value.path(), "rb").read())).active
        assert sheet.title == "スクリーニング" and [c.value for c in sheet[1]] == ["順位", "人物ID", "点数", "該当した規則", "根拠のデータ"]
        assert sheet.max_row == len(ids) + 1
        assert sum(a == "screening.export" for a, _ in _audit_actions(site)) >= 2

        page.emulate_media(media="print")
        expect(page.locator("nav").first).to_be_hidden()
        expect(page.get_by_role("button", name="絞り込む")).to_be_hidden()
        shot(page, "lists-screening-print")
        page.emulate_media(media="screen")
    finally:
        rules_file.unlink()


def test_rule_problems_are_shown_on_the_admin_dashboard(context: BrowserContext, site: Site) -> None:
    rules_file = site.home / "screening.toml"
    rules_file.write_text('version = 1\ncapacity = 10\n[[rules]]\nid = "old"\nlabel = "健診未受診（旧い規則）"\nweight = 1\n'
                          'all = [{ source = "maternal", attribute = "checkup_missed", op = "==", value = "1" }]\n', encoding="utf-8")
    try:
        page = context.new_page()
        log_in(page, "admin")
        panel = page.get_by_role("table", name=re.compile("属性の定義と、届いているデータに照らした点検"))
        expect(panel).to_contain_text("健診未受診（旧い規則）")
        expect(panel).to_contain_text("「乳幼児健診」に値「1」はありません")
        expect(page.get_by_role("alert")).to_contain_text("規則に")
        shot(page, "admin-rule-problems")
    finally:
        rules_file.unlink()
    page.reload()
    expect(page.locator("main")).to_contain_text("すべての規則が属性の定義に合っており")


def test_persons_sort_search_and_export(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    log_in(page, "caseworker")
    page.goto("/ui/persons")
    page.get_by_label("並び順").select_option("sources")
    page.get_by_role("button", name="絞り込む").click()
    counts = [int(t) for t in page.get_by_role("table").locator("tbody tr td:nth-child(3)").all_inner_texts()]
    assert counts == sorted(counts, reverse=True) and len(counts) == 50
    first_id = page.get_by_role("table").locator("tbody tr code").first.inner_text()
    page.get_by_label("人物 ID（先頭の文字）").fill(first_id[:4])
    page.get_by_role("button", name="絞り込む").click()
    ids = page.get_by_role("table").locator("tbody tr code").all_inner_texts()
    assert ids and all(i.startswith(first_id[:4]) for i in ids) and first_id in ids
    with page.expect_download() as got:
        page.get_by_role("link", name="CSV で書き出す").click()
    table = list(csv.reader(io.StringIO(open(got.value.path(), "rb").read().decode("utf-8-sig"))))
    assert table[0] == ["人物ID", "記録の数", "データ元の数"] and sorted(r[0] for r in table[1:]) == sorted(ids)
    page.get_by_label("人物 ID（先頭の文字）").fill("x1")
    page.get_by_role("button", name="絞り込む").click()
    expect(page.locator("#q-error")).to_contain_text("人物 ID の先頭は P")
    shot(page, "lists-persons")


def test_review_screen_waterfall_shortcuts_and_rivals(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    log_in(page, "caseworker")
    page.goto("/ui/review?decided=undecided")
    card = page.locator("section.pair").first
    pair_id = card.get_attribute("id").removeprefix("pair-")
    expect(card.locator(".reason")).to_contain_text("確認が必要な理由")
    expect(card.locator(".side-by-side .card")).to_have_count(2)
    expect(card.get_by_role("img", name=re.compile(f"ペア {pair_id} の重みの積み上げ"))).to_be_visible()
    weights = card.get_by_role("table", name="項目ごとの比較").locator("tbody td.num").all_inner_texts()
    assert len(weights) == 6 and any(re.match(r"^[+-]\d", w) for w in weights)
    person_link = card.locator(".side-by-side a").first
    expect(person_link).to_have_attribute("href", re.compile(r"^/ui/persons/P[0-9a-f]{16}$"))
    shot(page, "review-pair")

    card.focus()
    page.keyboard.press("d")
    expect(card.get_by_label("別人（結び付けない）")).to_be_checked()
    expect(card.get_by_label("理由（必須）")).to_be_focused()
    page.keyboard.press("Escape")
    card.focus()
    page.keyboard.press("s")
    expect(card.get_by_label("同一人物（結び付ける）")).to_be_checked()
    page.keyboard.type("生年月日と住所の一致を学校に確認")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_role("status")).to_contain_text(f"ペア {pair_id} の判定を記録しました")

    shot(page, "review-decided")


def test_review_list_in_queue_order_exports_and_prints(context: BrowserContext, site: Site) -> None:
    """The review list follows the review queue (expected gain), not the weight; exported with Japanese headers; A4 print."""
    page = context.new_page()
    log_in(page, "caseworker")
    page.goto("/ui/review")
    expect(page.get_by_label("並び順")).to_have_value("gain")
    headings = page.locator("section.pair h2").all_inner_texts()
    ranks = [int(re.search(r"確認の優先順 (\d+) 番目", h).group(1)) for h in headings]
    assert ranks and ranks[0] == 1
    firsts = [int(re.search(r"確認の優先順 (\d+) 番目", t).group(1))
              for t in page.locator("div.group").evaluate_all("gs => gs.map(g => g.querySelector('section.pair h2').textContent)")]
    assert firsts == sorted(firsts)  # each group stands where its most useful pair stands
    with site.api("caseworker") as c:
        queue = c.get("/api/v1/review/pairs", params={"limit": 1000}).json()["pairs"]

    page.get_by_label("並び順").select_option("weight")
    page.get_by_role("button", name="絞り込む").click()
    weights = [float(re.search(r"重み (-?[\d.]+)", h).group(1)) for h in page.locator("div.group section.pair:first-of-type h2").all_inner_texts()]
    assert weights == sorted(weights, reverse=True)
    page.get_by_label("並び順").select_option("gain")
    page.get_by_label("判定").select_option("")
    page.get_by_role("button", name="絞り込む").click()

    with page.expect_download() as got:
        page.get_by_role("link", name="CSV で書き出す").click()
    data = open(got.value.path(), "rb").read()
    assert data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0][:3] == ["確認の優先順", "グループ", "ペア番号"] and "確認が必要な理由" in table[0]
    assert len(table) - 1 == len(queue)  # every pair, not one page
    assert int(table[1][0]) == 1  # the queue's first pair leads the export too
    assert all(r[3] and r[3] not in ("residents", "school", "maternal", "npo") for r in table[1:])  # source labels, not keys
    assert all(r[-1] in ("未判定", "同一人物", "別人") for r in table[1:])
    with page.expect_download() as got:
        page.get_by_role("link", name="Excel で書き出す").click()
    sheet = load_workbook(io.BytesIO(open(got.value.path(), "rb").read())).active
    assert sheet.title == "要確認ペア" and [c.value for c in sheet[1]] == table[0] and sheet.max_row == len(table)
    assert sum(a == "review.export" for a, _ in _audit_actions(site)) >= 2

    page.emulate_media(media="print")
    expect(page.locator("nav").first).to_be_hidden()
    expect(page.locator("form.decide").first).to_be_hidden()
    expect(page.locator("p.print-only")).to_be_visible()
    pdf = page.pdf(format="A4")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    shown = page.locator("section.pair").count()
    assert pdf.startswith(b"%PDF") and 0 < pages <= shown  # at least one pair per A4 page, forms and navigation left out
    shot(page, "review-print")
    page.emulate_media(media="screen")


def test_person_history_and_split(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    log_in(page, "caseworker")
    page.goto("/ui/persons?min_sources=3")
    page.get_by_role("table").get_by_role("link").first.click()
    person_id = page.get_by_role("heading", level=1).inner_text().split()[-1]
    story = page.get_by_role("table", name=re.compile("出来事（日付順"))
    expect(story.locator("tbody tr").first).to_contain_text("記録が現れた")
    page.get_by_role("button", name="別人として記録する").click()
    expect(page.locator("#split-error")).to_contain_text("2 件を選んでください")
    options = page.get_by_label("記録 1").locator("option").all()
    values = [o.get_attribute("value") for o in options if o.get_attribute("value")]
    page.get_by_label("記録 1").select_option(values[0])
    page.get_by_label("記録 2").select_option(next(v for v in values if v.split(":")[0] != values[0].split(":")[0]))
    page.get_by_label("理由（必須）").fill("母子保健の記録は同姓同名の別の子（保健師に確認）")
    page.get_by_role("button", name="別人として記録する").click()
    expect(page).to_have_url(re.compile(rf"/ui/persons/{person_id}\?split=done"))
    expect(page.get_by_role("status")).to_contain_text("「別人」の判定を記録しました")
    with site.api("caseworker") as c:
        latest = c.get("/api/v1/review/decisions").json()["decisions"][0]
    assert latest["decision"] == "non_link" and latest["reason"].startswith("母子保健の記録は")
    shot(page, "person-history-split")


def test_federation_screen_without_a_federation_says_so(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    log_in(page, "caseworker")
    page.get_by_role("link", name="自治体間連携").click()
    expect(page.get_by_role("alert")).to_contain_text("連携圏の設定がありません")


def test_analyst_exports_with_japanese_column_names(context: BrowserContext, site: Site) -> None:
    """The analysts' pseudonymous export from the browser: attribute labels as column names, never keys; logged."""
    page = context.new_page()
    log_in(page, "analyst")
    page.goto("/ui/evaluation")
    section = page.get_by_role("region", name="仮名化データの書き出し（分析用）")
    with page.expect_download() as got:
        section.get_by_role("link", name="CSV で書き出す").click()
    data = open(got.value.path(), "rb").read()
    assert data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0][:3] == ["人物ID", "データ元", "記録トークン"] and "年間欠席日数" in table[0]
    assert not {"absence_days", "school_aid", "checkup_missed", "person_id", "source"} & set(table[0])
    assert len(table) > 300 and all(re.fullmatch(r"P[0-9a-f]{16}", r[0]) for r in table[1:])
    with page.expect_download() as got:
        section.get_by_role("link", name="Excel で書き出す").click()
    sheet = load_workbook(io.BytesIO(open(got.value.path(), "rb").read())).active
    assert [c.value for c in sheet[1]] == table[0] and sheet.max_row == len(table)
    assert sum(a in ("export.csv", "export.xlsx") for a, _ in _audit_actions(site)) >= 2
    with site.api("caseworker") as c:  # a caseworker may not take the analysts' export
        assert c.get("/api/v1/exports/persons.csv").status_code == 403
    caseworker = context.browser.new_context(base_url=site.base_url, locale="ja-JP")
    try:
        other = caseworker.new_page()
        log_in(other, "caseworker")
        assert other.goto("/ui/exports/persons.csv").status == 403
    finally:
        caseworker.close()
