"""Values at rest: large ones compressed on SQLite (and inflated for SQL), text on PostgreSQL."""

import orjson
import pytest
from django.db import connection

from kv.fields import value_deflate, value_inflate
from kv.models import Entry
from kv.selectors import entry_get, entry_history
from kv.services import entry_put

pytestmark = pytest.mark.django_db

LARGE = orjson.dumps(
    {"name": "Ada", "items": [{"id": i, "note": "same words"} for i in range(300)]}
)


@pytest.fixture(autouse=True)
def threshold(settings):
    settings.KVS_COMPRESS_MIN_BYTES = 4096


def stored(key: str) -> tuple[str, int]:
    """The storage class and size of a key's value as the database holds it."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT typeof(value), length(value) FROM kv_entry WHERE key = %s", [key]
            )
        else:
            cursor.execute(
                "SELECT pg_typeof(value)::text, pg_column_size(value) FROM kv_entry WHERE key = %s",
                [key],
            )
        return cursor.fetchone()


def test_a_large_value_is_stored_compressed_and_read_back_whole():
    entry_put(key="docs/a", value=LARGE.decode())
    kind, size = stored("docs/a")
    if connection.vendor == "sqlite":
        assert kind == "blob"
    else:  # PostgreSQL compresses large text itself (TOAST)
        assert kind == "text"
    assert size < len(LARGE) / 4
    assert entry_get(key="docs/a").value == LARGE.decode()
    assert Entry.objects.values_list("value", flat=True).get(key="docs/a") == LARGE.decode()


def test_a_small_value_stays_text():
    entry_put(key="docs/b", value='{"name": "Bob"}')
    assert stored("docs/b") == ("text", len('{"name": "Bob"}')) or connection.vendor != "sqlite"
    assert entry_get(key="docs/b").value == '{"name": "Bob"}'


def test_history_keeps_large_versions_whole():
    entry_put(key="docs/c", value=LARGE.decode())
    entry_put(key="docs/c", value='"small"')
    _, versions = entry_history(key="docs/c")
    assert [v.value for v in versions] == [LARGE.decode()]


def test_sql_reads_compressed_values_through_kvs_inflate():
    if connection.vendor != "sqlite":
        return  # PostgreSQL's JSON operators read its own compressed text
    entry_put(key="docs/d", value=LARGE.decode())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT json_extract(kvs_inflate(value), '$.name') FROM kv_entry WHERE key = %s",
            ["docs/d"],
        )
        assert cursor.fetchone() == ("Ada",)


def test_non_ascii_text_is_measured_in_utf8(settings):
    settings.KVS_COMPRESS_MIN_BYTES = 10
    text = '"ééééé"'  # 7 characters, 12 bytes
    assert isinstance(value_deflate(text), bytes)
    assert value_inflate(value_deflate(text)) == text


@pytest.mark.parametrize("value", ["1", LARGE.decode()], ids=["small", "large"])
def test_the_batch_statements_pass_every_column_as_its_field_would(value):
    """kv.rows passes plain columns as they are and the rest through their field: the parameters
    are those Django's own get_db_prep_save gives, for every column of an entry and a history
    version, new or tombstone."""
    from kv import rows
    from kv.models import EntryVersion

    entry_put(key="docs/p", value=value)
    entry = Entry.objects.get(key="docs/p")
    tombstone = Entry(key="docs/t", value=None, version=entry.version, hlc=5, origin="n",
                      deleted=True, mode=0o644, revision=9, digest="0" * 32, bucket=7)  # fmt: skip
    version = EntryVersion(key="docs/p", value=value, version=entry.version, hlc=3,
                           origin="n", expires_at=123, owner="o", mode=3)  # fmt: skip
    for obj, fields in ((entry, rows._ENTRY_WRITABLE), (tombstone, rows._ENTRY_WRITABLE),
                        (version, rows._HISTORY_FIELDS)):  # fmt: skip
        expected = [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]
        assert rows._db_values(obj, fields) == expected
