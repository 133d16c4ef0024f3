"""Root credentials of a local cluster: `kvs passwd`, and the launcher's root token file."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from .helpers import KVS, Launch, kvs_up, wait_for

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(url: str, password: str) -> int:
    body = {"username": "root", "password": password}
    return httpx.post(f"{url}/api/v1/auth/login", json=body, timeout=10).status_code


def merkle_root(launch: Launch, index: int) -> str:
    headers = {"Authorization": f"Bearer {launch.token}"}
    answer = httpx.get(f"{launch.node_url(index)}/api/v1/status", headers=headers, timeout=10)
    return answer.json()["merkle_root"]


def test_kvs_passwd_gives_root_a_new_password_that_every_node_accepts(tmp_path):
    with kvs_up(tmp_path, nodes=2) as launch:
        old = next(
            line.rsplit(": ", 1)[1].strip()
            for line in launch.output().splitlines()
            if line.startswith("root password (node1")
        )
        run = subprocess.run(
            [str(KVS), "passwd", "--data", str(launch.data)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        new = run.stdout.strip().rsplit(": ", 1)[1]
        assert login(launch.node_url(1), new) == 200
        assert login(launch.node_url(1), old) == 401
        # Failed logins are throttled per username: wait for the change to arrive, then try once.
        wait_for(
            lambda: merkle_root(launch, 1) == merkle_root(launch, 2),
            timeout=30,
            what="node2 to hold what node1 holds",
        )
        assert login(launch.node_url(2), new) == 200
        missing = subprocess.run(
            [str(KVS), "passwd", "--data", str(launch.data), "--node", "5"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert missing.returncode == 1 and "no node 5" in missing.stderr


def test_the_root_token_file_is_written_on_first_start_only(tmp_path):
    no_token = {"KVS_BOOTSTRAP_TOKEN": ""}  # let the launcher make and keep the root token
    with kvs_up(tmp_path, nodes=1, env=no_token) as first:
        kept = first.data / "bootstrap_token"
        token = kept.read_text().strip()
        assert kept.stat().st_mode & 0o777 == 0o600
        assert f"root token: {token}" in first.output()
        whoami = httpx.get(f"{first.url}/api/v1/whoami", headers=bearer(token), timeout=10)
        assert whoami.status_code == 200 and whoami.json()["username"] == "root"
    kept.unlink()  # the operator keeps the token elsewhere now
    with kvs_up(tmp_path, nodes=1, env=no_token) as again:
        assert not kept.exists()
        assert "root token: as printed on first boot\n" in again.output()
        tokens = httpx.get(
            f"{again.url}/api/v1/tokens", params={"user": "root"}, headers=bearer(token), timeout=10
        )
        assert tokens.status_code == 200 and len(tokens.json()) == 1  # no new root token
