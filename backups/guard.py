"""Whether a node is running on a data directory: a restore must not write under a live node."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
from django.db import connection

# Processes of a node: its web server, Celery worker (with beat), Redis, one-shot manage.py.
_NODE_PROGRAMS = ("celery", "serve", "uvicorn", "daphne", "redis-server", "manage.py")


def _ancestors() -> set[int]:
    pids, proc = {os.getpid()}, psutil.Process()
    for parent in proc.parents():
        pids.add(parent.pid)
    return pids


def node_processes(data_dir: Path, *, database: Path | None = None) -> list[str]:
    """`pid (name)` of every other process that has this node's SQLite database (`database`,
    default: the connection's) open, or is one of a node's programs started with
    KVS_DATA_DIR=`data_dir`; with PostgreSQL, also every other session on the node's database."""
    found: list[str] = []
    data_dir = data_dir.resolve()
    if database is None and connection.vendor == "sqlite":
        database = Path(str(connection.settings_dict["NAME"])).resolve()
    mine = _ancestors()
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.pid in mine:
            continue
        try:
            if _uses(proc, data_dir, database):
                found.append(f"{proc.pid} ({proc.info['name']})")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    if connection.vendor == "postgresql":
        found += _database_sessions()
    return found


def _uses(proc: psutil.Process, data_dir: Path, database: Path | None) -> bool:
    if database is not None:
        for opened in proc.open_files():
            if opened.path.startswith(str(database)):
                return True
    env_dir = proc.environ().get("KVS_DATA_DIR")
    if env_dir and Path(env_dir).resolve() == data_dir:
        command = " ".join(proc.cmdline())
        return any(program in command for program in _NODE_PROGRAMS)
    return False


def _database_sessions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [
            f"{pid} (PostgreSQL session {name or 'unnamed'})" for pid, name in cursor.fetchall()
        ]
