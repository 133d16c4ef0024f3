"""The `kvs` click group without a cluster: exit codes from one place, usage errors, the cluster
commands passed through to their argparse parser, output formats, profiles created 0600."""

from __future__ import annotations

import json
import stat

import httpx
import pytest

from kvsite import commands
from kvsite.profiles import profile_load, profile_save
from kvsite_client import Client, Conflict, Forbidden, NotFound, Unauthorized, Unavailable


@pytest.mark.parametrize(
    ("error", "code"),
    [(NotFound, 1), (Conflict, 3), (Unauthorized, 4), (Forbidden, 4), (Unavailable, 5)],
)
def test_each_kind_of_error_has_its_exit_code(error, code):
    assert commands.exit_code(error("x")) == code


@pytest.fixture
def answering(monkeypatch):
    """Every client the CLI makes answers through `handler` (set by the test)."""
    state = {}

    def client(self):
        if self._client is None:
            transport = httpx.MockTransport(lambda request: state["handler"](request))
            self._client = Client(self.endpoints, self.token, transport=transport, backoff=0)
        return self._client

    monkeypatch.setattr(commands.Settings, "client", client)
    return state


def test_get_prints_the_value_and_json_prints_the_entry(answering, capsys):
    entry = {"key": "k", "value": {"a": 1}, "version": "v", "revision": 3, "expires_at": None}
    answering["handler"] = lambda request: httpx.Response(200, json=entry)
    assert commands.main(["get", "k"]) == 0
    assert json.loads(capsys.readouterr().out) == {"a": 1}
    assert commands.main(["-o", "json", "get", "k"]) == 0
    assert json.loads(capsys.readouterr().out) == entry


def test_errors_print_the_detail_and_exit_with_their_code(answering, capsys):
    answering["handler"] = lambda request: httpx.Response(
        404, json={"detail": "No key 'k'.", "code": "not_found"}
    )
    assert commands.main(["get", "k"]) == 1
    assert "No key 'k'. (not_found)" in capsys.readouterr().err


def test_a_failed_compare_exits_3(answering, tmp_path, capsys):
    answering["handler"] = lambda request: httpx.Response(
        200, json={"succeeded": False, "results": []}
    )
    body = tmp_path / "txn.json"
    body.write_text('{"compare": [{"key": "k", "absent": true}], "success": []}')
    assert commands.main(["txn", str(body)]) == 3


def test_usage_errors_exit_2(capsys):
    assert commands.main(["get"]) == 2
    assert commands.main(["put", "k", "not json"]) == 2
    assert commands.main(["-o", "yaml", "get", "k"]) == 2
    assert commands.main(["backup"]) == 2  # argparse: --data is required
    capsys.readouterr()


def test_the_cluster_commands_keep_their_argparse_flags(capsys):
    assert commands.main(["up", "--help"]) == 0
    assert "--restart-delay" in capsys.readouterr().out
    assert commands.main(["import", "--help"]) == 0
    assert "--concurrency" in capsys.readouterr().out


def test_profiles_are_created_0600_and_forgotten(tmp_path, monkeypatch):
    monkeypatch.setenv("KVS_CONFIG", str(tmp_path / "kvs" / "profiles.json"))
    path = profile_save("default", {"access": "a", "refresh": "r"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert profile_load("default") == {"access": "a", "refresh": "r"}
    profile_save("default", None)
    assert profile_load("default") == {}


def test_completion_prints_a_script(capsys):
    assert commands.main(["completion", "bash"]) == 0
    assert "_KVS_COMPLETE" in capsys.readouterr().out
