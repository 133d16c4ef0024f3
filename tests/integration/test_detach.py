"""`kvs up --detach` returns once the cluster is up, `kvs ps` lists its processes, `kvs down`
stops every one of them."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from .helpers import KVS, alive, free_ports, node_processes, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


def kvs(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(KVS), *args], env=env, capture_output=True, text=True, timeout=320)


def test_up_detach_ps_down(tmp_path):
    port, data = free_ports(1), tmp_path / "bg"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["KVS_BOOTSTRAP_TOKEN"] = "kvs_detached-test-token-0123456789abcdef"
    try:
        up = kvs("up", "--detach", "--nodes", "1", "--base-port", str(port), "--data", str(data),
                 env=env)  # fmt: skip
        assert up.returncode == 0, (up.stdout, up.stderr)
        assert "cluster up" in up.stdout and (data / "launcher.pid").exists()
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        again = kvs("up", "--detach", "--nodes", "1", "--base-port", str(port),
                    "--data", str(data), env=env)  # fmt: skip
        assert again.returncode == 1 and "already running" in again.stderr
        ps = kvs("ps", "--data", str(data), env=env)
        assert ps.returncode == 0, ps.stderr
        roles = {line.split()[2] for line in ps.stdout.splitlines()[1:] if line.split()}
        assert {"launcher", "web", "worker", "redis"} <= roles, ps.stdout
        down = kvs("down", "--data", str(data), env=env)
        assert down.returncode == 0, down.stderr
        wait_for(lambda: not alive(node_processes(data, [port])), timeout=30,
                 what="every process of the cluster to stop")  # fmt: skip
        assert kvs("ps", "--data", str(data), env=env).returncode == 1
        assert kvs("down", "--data", str(data), env=env).returncode == 1
    finally:
        for leftover in node_processes(data, [port]):
            leftover.kill()
