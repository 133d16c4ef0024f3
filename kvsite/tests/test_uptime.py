"""Node uptime: counted from the web server's start, the same in every web worker."""

from __future__ import annotations

import os

from kvsite import server, uptime
from kvsite.uptime import PROCESS_STARTED, STARTED_ENV, clock, server_uptime_s


def test_every_worker_counts_from_the_server_start(settings):
    settings.KVS_SERVER_STARTED = 1000.0  # what each worker inherits from `kvs serve`
    # Two workers started at different times, asked at the same moment, agree.
    assert server_uptime_s(now=1050.0) == 50.0
    assert server_uptime_s(now=1050.5) == 50.5


def test_without_a_server_start_the_process_counts_from_its_own(settings):
    settings.KVS_SERVER_STARTED = None
    assert server_uptime_s(now=PROCESS_STARTED + 7.0) == 7.0


def test_a_server_start_from_before_a_reboot_is_ignored(settings):
    settings.KVS_SERVER_STARTED = clock() + 3600.0
    now = PROCESS_STARTED + 2.0
    assert server_uptime_s(now=now) == 2.0


def test_uptime_runs_on_the_machine_wide_clock(settings):
    settings.KVS_SERVER_STARTED = clock() - 30.0
    assert 30.0 <= server_uptime_s() < 31.0


def test_serve_hands_its_start_to_the_workers_and_runs_the_bounded_protocol(monkeypatch):
    monkeypatch.setenv(STARTED_ENV, "0")  # restored after the test
    calls = []
    monkeypatch.setattr(server.uvicorn, "run", lambda app, **options: calls.append((app, options)))
    before = uptime.clock()
    server.serve(host="0.0.0.0", port=8123, workers=3)
    assert before <= float(os.environ[STARTED_ENV]) <= uptime.clock()
    ((app, options),) = calls
    assert app == "kvsite.asgi:application"
    assert options["http"] == "kvsite.server:EdgeHttpToolsProtocol"
    assert (options["host"], options["port"], options["workers"]) == ("0.0.0.0", 8123, 3)
    assert options["lifespan"] == "off" and options["access_log"] is False
    assert options["ws_per_message_deflate"] is False and options["log_level"] == "warning"
    assert options["timeout_keep_alive"] == server.KEEP_ALIVE_S


def test_kvs_serve_parses_its_options():
    from kvsite.cli import build_parser, cmd_serve

    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "9000"])
    assert (args.host, args.port, args.workers, args.handler) == ("0.0.0.0", 9000, 2, cmd_serve)
