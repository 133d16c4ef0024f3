"""Browser tests: one real node (started exactly as the launcher's own test starts it), Debian's
chromium driven by Playwright, and a folder for the screenshots.

Screenshots go to a temporary folder; only with KVS_UPDATE_SCREENSHOTS=1 do they replace the
README's in docs/screenshots/. Under CI (CI=true) a missing chromium or Playwright fails the run
instead of skipping it, so the admin is never left untested there by accident.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import Launch, kvs_up

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
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
UPDATE_SCREENSHOTS = "KVS_UPDATE_SCREENSHOTS"  # test-only: 1 rewrites docs/screenshots/
ROOT_PASSWORD = re.compile(r"root password \([^)]*\): (\S+)")


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} (CI must run the browser tests)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[Launch]:
    """A one-node `kvs up`, shared by a module's tests; killed with everything it started."""
    with kvs_up(tmp_path_factory.mktemp("browser-node"), nodes=1) as launched:
        yield launched


@pytest.fixture(scope="module")
def root_password(node: Launch) -> str:
    found = ROOT_PASSWORD.search(node.output())
    assert found, f"the launcher printed no root password:\n{node.output()}"
    return found.group(1)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        _unavailable(f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("needs the playwright package (requirements.txt)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go: a temporary folder, or docs/screenshots/ when asked to update."""
    if os.environ.get(UPDATE_SCREENSHOTS) == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")
