"""Reads about the node itself, for its metrics."""

from __future__ import annotations

import os

from django.db import connection


def database_size_bytes() -> int:
    """The size of this node's database: SQLite's pages and write-ahead log, or what PostgreSQL
    reports for the database."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
            return int(cursor.fetchone()[0])
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute("PRAGMA page_size")
        size = pages * cursor.fetchone()[0]
    name = str(connection.settings_dict["NAME"])
    try:
        size += os.path.getsize(f"{name}-wal")
    except OSError:  # in memory, or no log at the moment
        pass
    return size
