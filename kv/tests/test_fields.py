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
