"""Under CI (CI=true) nothing is skipped silently: a skipped test fails, with its reason.

A test that needs something missing here (PostgreSQL, Chromium) skips on a developer's machine
and says why; on CI, which installs everything, the same skip means the suite did not run what it
claims to.
"""

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which must run everything: {reason}"
