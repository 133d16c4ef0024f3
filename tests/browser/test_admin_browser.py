"""The admin in a real browser against a real node.

As root: create a key, set its mode with the grid (whose c column an existing key cannot change),
browse a folder whose list keeps every column on screen beside a very long key, watch live
changes, and confirm it all through the REST API. As a staff user who is no superuser (made staff
through the API): browse the keys, be refused what the ACL forbids with the admin's own messages
and pages, and add a key where a rule allows it. Screenshots go to a temporary folder, or with
KVS_UPDATE_SCREENSHOTS=1 to the README's docs/screenshots/.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from kv.acl import mode_parse

pytestmark = pytest.mark.integration

VIEWPORT = {"width": 1280, "height": 800}
NARROW = {"width": 480, "height": 900}
ADMIN_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")

KEY = "app/feature-flags"
VALUE = {"checkout": {"enabled": True, "rollout": 0.25}, "beta": ["search", "export"]}
GRID_CLICKS = ("#id_mode_group_d", "#id_mode_others_r")  # cdwr--wr---r -> cdwr-dwr----
MODE = "cdwr-dwr----"
LONG_KEY = "app/checkout-experiment-rollout-percentage-by-region-and-customer-tier-2026-q4-holiday"
SAMPLE = {  # keys in a few folders, so the list has something to browse
    "app/name": ("kvsite demo", None),
    "app/limits": ({"rps": 500, "burst": 50}, "1d"),
    LONG_KEY: ({"eu-west": 0.1, "us-east": 0.25, "ap-south": 0.05}, None),
    "app/config/db": ({"host": "db.internal", "port": 5432}, None),
    "app/config/cache": ({"backend": "redis", "ttl": 300}, None),
    "app/features/dark-mode": (True, None),
    "users/alice": ({"name": "Alice", "team": "ops"}, None),
}
COLUMNS = ["Key", "Value", "Owner", "Group", "Mode", "Updated", "Expires"]
STAFF, STAFF_PASSWORD = "dana", "dana-Staff-2026-x"


def api_client(node) -> httpx.Client:
    return httpx.Client(
        base_url=node.url, headers={"Authorization": f"Bearer {node.token}"}, timeout=10.0
    )


def log_in(browser, node, username: str, password: str):
    from playwright.sync_api import expect

    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{node.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(username.upper(), ignore_case=True)
    return page


def assert_fits(page, selector: str, width: int) -> None:
    """Nothing in `selector` reaches past the right edge of a `width`-pixel window."""
    right = page.eval_on_selector(selector, "e => e.getBoundingClientRect().right")
    scrolls = page.eval_on_selector(selector, "e => e.scrollWidth > e.clientWidth + 1")
    assert right <= width and not scrolls, (selector, right, scrolls)


def test_root_edits_a_key_with_the_grid_and_browses_a_folder(browser, node, root_password, shots):
    from playwright.sync_api import expect

    api = api_client(node)
    for key, (value, ttl) in SAMPLE.items():
        params = {"ttl": ttl} if ttl else {}
        assert api.put(f"/api/v1/kv/{key}", json=value, params=params).status_code == 201
    icon = httpx.get(f"{node.url}/favicon.ico", timeout=10.0)
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"

    page = log_in(browser, node, "root", root_password)
    accounts = page.locator(".app-accounts")  # groups sit with users and tokens
    expect(accounts.locator("th[scope=row]")).to_have_text(["API tokens", "Groups", "Users"])
    expect(page.locator("#content-main")).not_to_contain_text("Authentication and authorization")

    # Add: key and value; the admin continues to the full form.
    page.goto(f"{node.url}/admin/kv/entry/add/?key=app/")
    expect(page.locator("#id_key")).to_have_value("app/")
    page.fill("#id_key", KEY)
    page.fill("#id_value", json.dumps(VALUE, indent=2))
    page.click("input[name=_save]")
    page.wait_for_url(re.compile(r"/admin/kv/entry/\d+/change/$"))
    preview = page.locator("[data-kv-mode-text]")
    expect(preview).to_have_text("cdwr--wr---r")
    # The c column of an existing key is shown, disabled, and says where creation rights live.
    for who in ("owner", "group", "others"):
        expect(page.locator(f"#id_mode_{who}_c")).to_be_disabled()
    expect(page.locator("#id_mode_owner_c")).to_have_attribute("title", re.compile("ACL rule"))
    expect(page.locator(".kv-mode-fixed-note")).to_be_visible()
    expect(page.locator("a.historylink")).to_have_count(0)  # the store's history is below

    # Change the mode with the grid; the preview follows the boxes.
    for box in GRID_CLICKS:
        page.click(box)
    expect(preview).to_have_text(MODE)
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist .success")).to_contain_text("changed successfully")
    expect(preview).to_have_text(MODE)
    rows = page.locator(".kv-history tbody tr")
    expect(rows).to_have_count(2)
    for written in page.locator(".kv-history tbody tr td:nth-child(2)").all_inner_texts():
        assert ADMIN_TIME.match(written), written
    page.screenshot(path=str(shots / "admin-entry-form.png"))

    # On a narrow screen the history table scrolls inside its box; the page does not.
    page.set_viewport_size(NARROW)
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    assert page.eval_on_selector(".kv-scroll", "e => e.scrollWidth > e.clientWidth")
    page.set_viewport_size(VIEWPORT)

    # The folder view of app/, with its breadcrumb and subfolders; every column on screen.
    page.click(".breadcrumbs a:has-text('app/')")
    expect(page.locator(".kv-path")).to_contain_text("app")
    expect(page.locator("a.kv-folder")).to_have_text(["config/", "features/"])
    expect(page.locator("#result_list")).to_contain_text(KEY)
    expect(page.locator("#result_list thead th:not(.action-checkbox-column)")).to_have_text(COLUMNS)
    assert_fits(page, "#changelist .results", VIEWPORT["width"])
    long_row = page.locator("#result_list tr", has_text=LONG_KEY[:30])
    key_box = long_row.locator("th.field-key_link").bounding_box()
    assert key_box["height"] > 30, key_box  # the long key wraps onto several lines
    modes = page.locator("#result_list td.field-mode_short code")
    heights = [modes.nth(i).bounding_box()["height"] for i in range(modes.count())]
    assert max(heights) < 30, heights  # the mode strings stay on one line
    updated = page.locator("#result_list td.field-updated").all_inner_texts()
    assert updated and all(ADMIN_TIME.match(text) for text in updated), updated

    # The live panel follows changes in the folder as they happen.
    expect(page.locator("[data-kv-live-ready]")).to_have_count(1)
    assert api.put("/api/v1/kv/app/live", json={"n": 1}).status_code == 201
    events = page.locator(".kv-live-events li")
    expect(events).to_have_count(1)  # (a put and a delete in one batch show the delete)
    assert api.delete("/api/v1/kv/app/live").status_code == 204
    expect(events).to_have_count(2)
    expect(events.nth(0)).to_contain_text("delete  app/live")
    expect(events.nth(1)).to_contain_text('put  app/live = {"n":1}')
    page.screenshot(path=str(shots / "admin-entries.png"))
    page.context.close()

    got = api.get(f"/api/v1/kv/{KEY}")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["value"] == VALUE
    assert (body["mode"], body["mode_string"], body["owner"]) == (mode_parse(MODE), MODE, "root")
    history = api.get(f"/api/v1/history/{KEY}").json()["versions"]
    assert len(history) == 2 and history[1]["value"] == VALUE  # value write, then the meta write


def test_a_staff_user_works_by_the_acl_and_is_refused_in_the_admins_own_words(browser, node, shots):
    from playwright.sync_api import expect

    api = api_client(node)
    made = api.post(
        "/api/v1/users", json={"username": STAFF, "password": STAFF_PASSWORD, "is_staff": True}
    )
    assert made.status_code == 201 and made.json()["is_staff"] is True, made.text
    for prefix, mode in (("ops/", "cdwr--wr---r"), ("team/", "cdwrcdwrcdwr")):
        rule = api.put(f"/api/v1/acl/{prefix}", json={"owner": "root", "mode": mode})
        assert rule.status_code in (200, 201), rule.text
    for key, value in (("ops/runbook", {"steps": 3}), ("team/board", ["plan"])):
        assert api.put(f"/api/v1/kv/{key}", json=value).status_code == 201

    page = log_in(browser, node, STAFF, STAFF_PASSWORD)
    main = page.locator("#content-main")
    expect(main).not_to_contain_text("permission to view or edit anything")
    expect(main.locator("a", has_text="Entries")).to_have_count(1)
    expect(main.locator("a", has_text="Users")).to_have_count(0)  # no admin:users scope

    page.click("#content-main a:has-text('Entries')")
    expect(page.locator("a.kv-folder")).to_contain_text(["ops/", "team/"])

    # A key they may only read opens read-only, saying why.
    page.goto(f"{node.url}/admin/kv/entry/?prefix=ops/")
    page.click("#result_list a:has-text('ops/runbook')")
    expect(page.locator("#content-main")).to_contain_text("its mode lets you change nothing")
    expect(page.locator("#id_value")).to_have_count(0)

    # Creating where the rule gives others no c: refused next to the key, nothing saved.
    page.goto(f"{node.url}/admin/kv/entry/add/?key=ops/")
    page.fill("#id_key", "ops/dana-notes")
    page.fill("#id_value", '{"note": "mine"}')
    page.click("input[name=_save]")
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".field-key .errorlist")).to_contain_text("does not let you create")
    page.screenshot(path=str(shots / "admin-staff-refused.png"))

    # Where the rule allows it, the key is theirs.
    page.fill("#id_key", "team/dana-notes")
    page.click("input[name=_save]")
    page.wait_for_url(re.compile(r"/admin/kv/entry/\d+/change/$"))
    expect(page.locator(".messagelist .success")).to_contain_text("was added successfully")
    expect(page.locator("#id_owner")).to_have_value(STAFF)

    # A page their scopes do not allow is an admin page, not the API's JSON.
    refused = page.goto(f"{node.url}/admin/accounts/user/")
    assert refused.status == 403 and refused.headers["content-type"].startswith("text/html")
    expect(page.locator("h1")).to_have_text("Permission denied")
    expect(page.locator("#site-name")).to_contain_text("kvsite")
    page.context.close()

    assert api.get("/api/v1/kv/ops/dana-notes").status_code == 404
    mine = api.get("/api/v1/kv/team/dana-notes").json()
    assert (mine["owner"], mine["value"]) == (STAFF, {"note": "mine"})
