"""利用者の管理 in real Chromium: an administrator creates a user, issues a temporary password, the user must choose their
own at the first sign-in; role change, disable and delete through the page; every step in the audit log."""

from __future__ import annotations

import json
import re

from playwright.sync_api import BrowserContext, expect

from tests.support.web import Site, log_in, shot

NEW = "amber meadow falcon ribbon"
OWN = "quartz orchard pelican lagoon"


def test_account_lifecycle_in_the_browser(context: BrowserContext, site: Site) -> None:
    admin = context.new_page()
    log_in(admin, "admin")
    admin.get_by_role("link", name="利用者の管理").click()
    expect(admin.get_by_role("heading", name="利用者の管理")).to_be_visible()

    admin.get_by_label("利用者名", exact=True).fill("web.newcomer")
    admin.get_by_label("ロール", exact=True).select_option("caseworker")
    admin.get_by_label("最初のパスワード").fill("web.newcomer1")
    admin.get_by_role("button", name="作成").click()
    expect(admin.locator("#create-error")).to_contain_text("利用者名")  # the password rule, in Japanese
    admin.get_by_label("最初のパスワード").fill(NEW)
    admin.get_by_role("button", name="作成").click()
    expect(admin.get_by_role("status")).to_have_text("利用者を作りました。")
    row = admin.locator("#user-web\\.newcomer")
    expect(row).to_contain_text("有効")
    shot(admin, "users")

    row.get_by_role("button", name="仮パスワードを発行").click()
    expect(admin.get_by_role("heading", name="仮パスワードを発行しました")).to_be_visible()
    temporary = admin.locator("#temporary-password").inner_text().strip()
    assert len(temporary) >= 20

    other = context.browser.new_context(base_url=site.base_url, locale="ja-JP")
    user = other.new_page()
    log_in(user, "web.newcomer", temporary)
    expect(user).to_have_url(re.compile(r"/ui/password\?reason=temporary"))
    expect(user.get_by_role("status")).to_contain_text("仮パスワード")
    user.goto("/ui/screening")  # nothing else opens before the password is changed
    expect(user).to_have_url(re.compile(r"/ui/password"))
    user.get_by_label("現在のパスワード").fill(temporary)
    user.get_by_label("新しいパスワード", exact=True).fill("password1234")
    user.get_by_label("新しいパスワード（確認）").fill("password1234")
    user.get_by_role("button", name="変更").click()
    expect(user.locator("#new_password-error")).to_contain_text("推測されやすい")
    user.get_by_label("現在のパスワード").fill(temporary)
    user.get_by_label("新しいパスワード", exact=True).fill(OWN)
    user.get_by_label("新しいパスワード（確認）").fill(OWN)
    user.get_by_role("button", name="変更").click()
    expect(user.get_by_role("status")).to_have_text("パスワードを変更しました。")
    user.goto("/ui/screening")
    expect(user.get_by_role("heading", name=re.compile("スクリーニング"))).to_be_visible()
    shot(user, "password-changed")

    admin.goto("/ui/users")
    row = admin.locator("#user-web\\.newcomer")
    row.get_by_label("web.newcomer のロール").select_option("auditor")
    row.get_by_role("button", name="ロールを変更").click()
    expect(admin.get_by_role("status")).to_have_text("ロールを変更しました。")
    admin.locator("#user-web\\.newcomer").get_by_role("button", name="無効にする").click()
    expect(admin.get_by_role("status")).to_contain_text("無効にしました")
    user.goto("/ui/audit")
    expect(user).to_have_url(re.compile(r"/ui/login\?"))  # the session ended with the disable
    row = admin.locator("#user-web\\.newcomer")
    row.get_by_label("削除の確認（利用者名を入力）").fill("web.newcomer")
    row.get_by_role("button", name="削除").click()
    expect(admin.get_by_role("status")).to_have_text("利用者を削除しました。")
    expect(admin.locator("#user-web\\.newcomer")).to_have_count(0)
    other.close()

    with site.api("auditor") as c:
        export = c.get("/api/v1/audit/export").text
    entries = [json.loads(line).get("entry") for line in export.split("\n") if line.strip()]
    actions = [e["action"] for e in entries if e and e["target"].startswith("web.newcomer")]
    assert actions == ["user.add", "user.reset_password", "user.change_password", "user.role", "user.disable", "user.delete"], actions
