"""Insight in a real browser: the "who can do what" panel of an entry's page (root picks a user),
the replica health page, and the folder view's count of watchers. Screenshots as in
test_admin_browser."""

from __future__ import annotations

import re

import httpx
import pytest

from .test_admin_browser import log_in

pytestmark = pytest.mark.integration


def test_explain_panel_health_page_and_watchers(browser, node, root_password, shots):
    from playwright.sync_api import expect

    api = httpx.Client(
        base_url=node.url, headers={"Authorization": f"Bearer {node.token}"}, timeout=10.0
    )
    assert api.post("/api/v1/users", json={"username": "viewer"}).status_code == 201
    assert api.put("/api/v1/kv/insight/flag", json=True).status_code == 201

    page = log_in(browser, node, "root", root_password)
    page.goto(f"{node.url}/admin/kv/entry/?prefix=insight/")
    page.locator("#result_list a", has_text="insight/flag").first.click()
    page.wait_for_url(re.compile(r"/admin/kv/entry/.+/change/"))
    panel = page.locator("#kv-explain")
    expect(panel).to_contain_text("Who can do what")
    expect(panel.locator(".kv-explain-write")).to_contain_text("Superuser: the ACL is bypassed.")
    page.select_option("#kv-explain-user", "viewer")
    page.click("#kv-explain button")
    page.wait_for_url(re.compile(r"explain=viewer"))
    expect(panel.locator("caption")).to_have_text("viewer")
    expect(panel.locator(".kv-explain-read")).to_contain_text("allowed")  # others: r
    expect(panel.locator(".kv-explain-write")).to_contain_text("denied")
    expect(panel.locator(".kv-explain-write")).to_contain_text("others")
    page.screenshot(path=str(shots / "admin-explain.png"), full_page=True)

    page.goto(f"{node.url}/admin/cluster/member/")
    page.click("a.kv-health-link")
    expect(page.locator(".kv-converged")).to_have_attribute("data-converged", "true")
    expect(page.locator("#kv-health-table tbody tr")).to_have_count(1)
    page.screenshot(path=str(shots / "admin-replica-health.png"))

    # The folder page watches its folder live; another page of it counts that watch.
    watcher = page.context.new_page()
    watcher.goto(f"{node.url}/admin/kv/entry/?prefix=insight/")
    page.wait_for_timeout(500)  # the first page's stream is registered within a refresh
    for _ in range(40):
        page.goto(f"{node.url}/admin/kv/entry/?prefix=insight/")
        if page.locator(".kv-watching").count():
            break
        page.wait_for_timeout(250)
    expect(page.locator(".kv-watching")).to_contain_text(re.compile(r"\d+ watching: root"))
    page.screenshot(path=str(shots / "admin-folder-watching.png"))


def test_history_diff_compare_and_revert(browser, node, root_password, shots):
    from playwright.sync_api import expect

    api = httpx.Client(
        base_url=node.url, headers={"Authorization": f"Bearer {node.token}"}, timeout=10.0
    )
    assert api.put("/api/v1/kv/insight/config", json={"replicas": 3, "debug": False}).is_success
    assert api.put("/api/v1/kv/insight/config", json={"replicas": 5, "debug": False}).is_success
    assert api.put("/api/v1/kv/insight/config", json={"replicas": 5, "debug": True}).is_success
    first = api.get("/api/v1/history/insight/config").json()["versions"][-1]

    page = log_in(browser, node, "root", root_password)
    page.goto(f"{node.url}/admin/kv/entry/?prefix=insight/")
    page.locator("#result_list a", has_text="insight/config").first.click()
    page.wait_for_url(re.compile(r"/admin/kv/entry/.+/change/"))
    rows = page.locator("#kv-history tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0).locator(".kv-actor")).to_have_text("root")
    rows.nth(0).locator("details.kv-diff summary").click()
    expect(rows.nth(0).locator(".kv-diff-add")).to_contain_text('"debug": true')

    # Compare the oldest version with the current one.
    page.select_option("#kv-compare select[name=compare]", first["version"])
    page.click("#kv-compare button")
    expect(page.locator(".kv-compare-result .kv-diff-del")).to_contain_text(['"debug": false'])
    page.screenshot(path=str(shots / "admin-history-diff.png"), full_page=True)

    # Revert to the oldest: the service writes its value as the newest version.
    page.locator(f"button.kv-revert[value='{first['version']}']").click()
    expect(page.locator(".messagelist")).to_contain_text("Reverted insight/config")
    expect(page.locator("#kv-history tbody tr")).to_have_count(4)
    page.screenshot(path=str(shots / "admin-history-reverted.png"), full_page=True)
    answer = api.get("/api/v1/kv/insight/config").json()
    assert answer["value"] == {"replicas": 3, "debug": False}
