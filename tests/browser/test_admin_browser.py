"""The admin in a real browser against a real node: log in as root, create a key, set its mode
with the grid, and confirm both through the REST API. Saves the docs' screenshots on the way."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from kv.acl import mode_parse

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
    ),
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ROOT_PASSWORD = re.compile(r"root password \([^)]*\): (\S+)")

KEY = "app/feature-flags"
VALUE = {"checkout": {"enabled": True, "rollout": 0.25}, "beta": ["search", "export"]}
GRID_CLICKS = ("#id_mode_group_d", "#id_mode_others_r")  # cdwr--wr---r -> cdwr-dwr----
MODE = "cdwr-dwr----"
SAMPLE = {  # keys in a few folders, so the list has something to browse
    "app/name": ("kvsite demo", None),
    "app/limits": ({"rps": 500, "burst": 50}, "1d"),
    "app/config/db": ({"host": "db.internal", "port": 5432}, None),
    "app/config/cache": ({"backend": "redis", "ttl": 300}, None),
    "app/features/dark-mode": (True, None),
    "users/alice": ({"name": "Alice", "team": "ops"}, None),
}


def test_admin_creates_a_key_and_sets_its_mode_with_the_grid(launch) -> None:
    password = ROOT_PASSWORD.search(launch.output())
    assert password, f"the launcher printed no root password:\n{launch.output()}"
    api = httpx.Client(
        base_url=launch.url, headers={"Authorization": f"Bearer {launch.token}"}, timeout=10.0
    )
    for key, (value, ttl) in SAMPLE.items():
        params = {"ttl": ttl} if ttl else {}
        assert api.put(f"/api/v1/kv/{key}", json=value, params=params).status_code == 201

    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(20_000)

            page.goto(f"{launch.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "root")
            page.fill("#id_password", password.group(1))
            page.click("input[type=submit]")
            expect(page.locator("#site-name")).to_contain_text("kvsite")

            # Add: key and value; the admin continues to the full form.
            page.goto(f"{launch.url}/admin/kv/entry/add/?key=app/")
            expect(page.locator("#id_key")).to_have_value("app/")
            page.fill("#id_key", KEY)
            page.fill("#id_value", json.dumps(VALUE, indent=2))
            page.click("input[name=_save]")
            page.wait_for_url(re.compile(r"/admin/kv/entry/\d+/change/$"))
            preview = page.locator("[data-kv-mode-text]")
            expect(preview).to_have_text("cdwr--wr---r")

            # Change the mode with the grid; the preview follows the boxes.
            for box in GRID_CLICKS:
                page.click(box)
            expect(preview).to_have_text(MODE)
            page.click("input[name=_continue]")
            expect(page.locator(".messagelist .success")).to_contain_text("changed successfully")
            expect(preview).to_have_text(MODE)
            expect(page.locator(".kv-history tbody tr")).to_have_count(2)
            page.screenshot(path=str(SCREENSHOTS / "admin-entry-form.png"))

            # The folder view of app/, with its breadcrumb and subfolders.
            page.click(".breadcrumbs a:has-text('app/')")
            expect(page.locator(".kv-path")).to_contain_text("app")
            expect(page.locator("a.kv-folder")).to_have_text(["config/", "features/"])
            expect(page.locator("#result_list")).to_contain_text(KEY)

            # The live panel follows changes in the folder as they happen.
            expect(page.locator("[data-kv-live-ready]")).to_have_count(1)
            assert api.put("/api/v1/kv/app/live", json={"n": 1}).status_code == 201
            events = page.locator(".kv-live-events li")
            expect(events).to_have_count(1)  # (a put and a delete in one batch show the delete)
            assert api.delete("/api/v1/kv/app/live").status_code == 204
            expect(events).to_have_count(2)
            expect(events.nth(0)).to_contain_text("delete  app/live")
            expect(events.nth(1)).to_contain_text('put  app/live = {"n":1}')
            page.screenshot(path=str(SCREENSHOTS / "admin-entries.png"))
        finally:
            browser.close()

    got = api.get(f"/api/v1/kv/{KEY}")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["value"] == VALUE
    assert (body["mode"], body["mode_string"], body["owner"]) == (mode_parse(MODE), MODE, "root")
    history = api.get(f"/api/v1/history/{KEY}").json()["versions"]
    assert len(history) == 2 and history[1]["value"] == VALUE  # value write, then the meta write
