"""The suite's CI guard: a skip fails the run when CI=true, and stays a skip otherwise."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("ci", "exit_code", "summary"), [("true", 1, "1 failed"), ("", 0, "1 skipped")]
)
def test_a_skip_fails_only_under_ci(tmp_path, ci, exit_code, summary):
    (tmp_path / "test_needs_something.py").write_text(
        "import pytest\n\ndef test_it():\n    pytest.skip('needs a thing')\n"
    )
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "tests.plugins.no_skips_under_ci",
        "-p",
        "no:django",
    ]
    run = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == exit_code, run.stdout + run.stderr
    assert summary in run.stdout
    if ci:
        assert "skipped under CI, which must run everything: Skipped: needs a thing" in run.stdout
