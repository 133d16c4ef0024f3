"""A restore must not run under a live node: processes that hold its database open, or that are
a node's programs started on its data directory, are found; others are not."""

import os
import subprocess
import sys

import pytest

from backups.guard import node_processes

# On PostgreSQL the guard also lists the other sessions on the node's database (other tests'
# threads may hold some): these tests look at processes only.
pytestmark = pytest.mark.django_db


def processes(data_dir, *, database) -> list[str]:
    return [
        found
        for found in node_processes(data_dir, database=database)
        if "PostgreSQL session" not in found
    ]


@pytest.fixture
def spawn():
    started = []

    def run(code: str, *, env: dict | None = None) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **(env or {})},
                                stdout=subprocess.PIPE)  # fmt: skip
        assert proc.stdout.readline().strip() == b"ready"
        started.append(proc)
        return proc

    yield run
    for proc in started:
        proc.kill()
        proc.wait()


HOLD_DATABASE = (
    "import sqlite3, time; c = sqlite3.connect({path!r});"
    " c.execute('create table if not exists t (x)'); print('ready', flush=True); time.sleep(60)"
)
SLEEP = "import time; print('ready', flush=True); time.sleep(60)  # {label}"


def test_a_process_holding_the_database_open_is_found(tmp_path, spawn):
    database = tmp_path / "kvsite.sqlite3"
    assert processes(tmp_path, database=database) == []
    proc = spawn(HOLD_DATABASE.format(path=str(database)))
    found = processes(tmp_path, database=database)
    assert any(entry.startswith(f"{proc.pid} ") for entry in found), found


def test_a_node_program_on_the_data_directory_is_found(tmp_path, spawn):
    proc = spawn(SLEEP.format(label="celery worker"), env={"KVS_DATA_DIR": str(tmp_path)})
    found = processes(tmp_path, database=tmp_path / "kvsite.sqlite3")
    assert any(entry.startswith(f"{proc.pid} ") for entry in found), found


def test_other_processes_are_not_found(tmp_path, spawn):
    other = tmp_path / "other"
    other.mkdir()
    spawn(SLEEP.format(label="celery worker"), env={"KVS_DATA_DIR": str(other)})
    spawn(SLEEP.format(label="an editor"), env={"KVS_DATA_DIR": str(tmp_path)})
    assert processes(tmp_path, database=tmp_path / "kvsite.sqlite3") == []


def test_on_postgresql_another_session_on_the_database_is_found(tmp_path):
    from django.db import connection

    if connection.vendor != "postgresql":
        assert not any("PostgreSQL" in p for p in node_processes(tmp_path, database=None))
        return
    import psycopg

    params = connection.get_connection_params()
    with psycopg.connect(**params, application_name="kvs-test-holder"):
        found = node_processes(tmp_path, database=None)
    assert any("PostgreSQL session kvs-test-holder" in p for p in found), found
