"""The namespaced cluster's decisions that need no root: when it refuses to start, which subnet it
takes, and what it counts as left behind by a run that is gone."""

from __future__ import annotations

import subprocess

import pytest

from tests.faults import netns


def _answers(outputs: dict[tuple[str, ...], str]):
    """A stand-in for `netns._ip`: the given stdout per argument tuple, empty otherwise."""
    calls = []

    def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        calls.append(args)
        return subprocess.CompletedProcess(["ip", *args], 0, outputs.get(args, ""), "")

    ip.calls = calls
    return ip


def test_a_cluster_without_root_is_refused_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert netns.netns_missing() == "network namespaces need root (ip netns add)"
    with pytest.raises(netns.NetnsUnavailable, match="need root"):
        netns.NetnsCluster(tmp_path)


def test_missing_nft_is_named(monkeypatch):
    monkeypatch.setattr(netns.shutil, "which", lambda name: None)
    assert "apt-get install nftables" in netns.nft_missing()


def test_the_subnet_avoids_every_routed_or_addressed_prefix(monkeypatch):
    monkeypatch.setattr(netns.os, "getpid", lambda: 5)  # first choice: 10.77.25
    routes = "10.77.25.0/24 dev kvn9b proto kernel scope link src 10.77.25.1\n"
    addrs = "7: kvn8b    inet 10.77.26.1/24 scope global kvn8b\n"
    ip = _answers(
        {("-4", "route", "show", "table", "all"): routes, ("-4", "-o", "addr", "show"): addrs}
    )
    monkeypatch.setattr(netns, "_ip", ip)
    assert netns._free_subnet() == "10.77.27"


def test_stale_cleanup_removes_only_what_runs_that_are_gone_left(monkeypatch):
    gone, running = 4_000_001, 4_000_002
    monkeypatch.setattr(netns, "_pid_alive", lambda pid: pid == running)
    ip = _answers(
        {
            ("netns", "list"): f"kvn{gone}n1 (id: 3)\nkvn{running}n1 (id: 4)\nother\n",
            ("-o", "link", "show"): (
                f"9: kvn{gone}v1@if8: <BROADCAST> mtu 1500\n"
                f"11: kvn{running}v1@if10: <BROADCAST> mtu 1500\n"
                "2: eth0: <BROADCAST> mtu 1500\n"
            ),
            ("-4", "-o", "addr", "show"): f"12: kvn{running}b    inet 10.77.40.1/24 scope global\n",
            ("-4", "route", "show"): (
                "blackhole 10.77.30.0/24 metric 4077\nblackhole 10.77.40.0/24 metric 4077\n"
            ),
        }
    )
    monkeypatch.setattr(netns, "_ip", ip)
    monkeypatch.setattr(netns, "_kill_namespace_pids", lambda ns: None)
    removed = netns.clean_stale()
    assert removed == [f"kvn{gone}n1", f"kvn{gone}v1", "blackhole 10.77.30.0/24 metric 4077"]
    deleted = [call for call in ip.calls if "del" in call]
    assert ("netns", "del", f"kvn{gone}n1") in deleted
    assert not any(str(running) in " ".join(call) for call in deleted)
