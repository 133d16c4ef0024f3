"""A full disk or database answers 507 `insufficient_storage` (never a 500): the write is rolled
back, reads keep working, and writes work again once there is room."""

import errno
import secrets
import sqlite3

import pytest
from django.db import OperationalError, connection

from kv import rows
from kv.tests.api.helpers import put_json, url
from kvsite.exceptions import storage_full

pytestmark = pytest.mark.django_db


def raised_from(error: BaseException, cause: BaseException) -> BaseException:
    """`error` as `raise error from cause` leaves it (Django wraps driver errors so)."""
    try:
        raise error from cause
    except BaseException as raised:
        return raised


class DiskFull(Exception):
    """Stands for psycopg.errors.DiskFull: what matters is its SQLSTATE."""

    sqlstate = "53100"


@pytest.mark.parametrize(
    "error",
    [
        raised_from(
            OperationalError("database or disk is full"),
            sqlite3.OperationalError("database or disk is full"),
        ),
        sqlite3.OperationalError("database or disk is full"),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        raised_from(OperationalError("could not extend file"), DiskFull()),
        raised_from(RuntimeError("the batch failed"), OSError(errno.ENOSPC, "full")),
    ],
)
def test_full_disk_errors_are_recognised(error):
    assert storage_full(error)


@pytest.mark.parametrize(
    "error",
    [
        raised_from(
            OperationalError("database is locked"), sqlite3.OperationalError("database is locked")
        ),
        OSError(errno.EACCES, "Permission denied"),
        ValueError("database or disk is full"),  # not a database or OS error
        RuntimeError("boom"),
    ],
)
def test_other_errors_are_not(error):
    assert not storage_full(error)


@pytest.fixture
def full_database(monkeypatch):
    """`fill(True)`: the database may not grow. On SQLite it truly cannot (not a page more:
    SQLite answers SQLITE_FULL); on PostgreSQL every upsert fails as a full disk makes it."""
    if connection.vendor != "sqlite":
        real = rows.entries_upsert

        def refuse(*args, **kwargs):
            raise OperationalError("could not extend file") from DiskFull()

        def fill(on: bool) -> None:
            monkeypatch.setattr(rows, "entries_upsert", refuse if on else real)

        yield fill
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute("PRAGMA max_page_count")
        limit = cursor.fetchone()[0]

    def fill(on: bool) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA max_page_count = {pages if on else limit}")

    yield fill
    fill(False)


def test_a_write_on_a_full_database_answers_507_and_reads_still_work(api, full_database):
    assert put_json(api, "before", "kept").status_code == 201
    full_database(True)
    big = secrets.token_hex(100_000)  # random: no compression makes it fit
    answers = [put_json(api, f"big/{n}", big) for n in range(3)]
    assert [a.status_code for a in answers] == [507] * 3
    body = answers[0].json()
    assert body["code"] == "insufficient_storage"
    assert "disk is full" in body["detail"]
    assert api.get(url("before")).json()["value"] == "kept"
    assert api.get(url("big/0")).status_code == 404  # rolled back: nothing half-written
    full_database(False)
    assert put_json(api, "big/0", big).status_code == 201


def test_a_write_failing_with_enospc_answers_507(api, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("kv.rows.entries_upsert", no_space)
    answer = put_json(api, "k", 1)
    assert answer.status_code == 507
    assert answer.json()["code"] == "insufficient_storage"
