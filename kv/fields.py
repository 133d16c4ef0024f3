"""The column that holds values: JSON text, compressed at rest where the database does not.

On SQLite a value of KVS_COMPRESS_MIN_BYTES or more (in UTF-8) is stored zstd-compressed, as a
BLOB in the same column; shorter values stay text. Reading through the ORM gives the text back.
SQL that looks into values (queries on values, their indexes) reads them through `kvs_inflate()`,
a deterministic SQL function every connection of the node registers. PostgreSQL compresses large
text itself (TOAST; migration 0004 asks for lz4) and inflates it for its JSON operators, so there
values are stored as text.
"""

from __future__ import annotations

import zstandard
from django.conf import settings
from django.db import models
from django.db.backends.signals import connection_created
from django.dispatch import receiver

LEVEL = 3
INFLATE_SQL = "kvs_inflate"


def value_deflate(text: str) -> bytes | str:
    """What SQLite stores for JSON text `text`."""
    data = text.encode("utf-8")
    if len(data) < settings.KVS_COMPRESS_MIN_BYTES:
        return text
    return zstandard.ZstdCompressor(level=LEVEL).compress(data)


def value_inflate(stored: bytes | memoryview | str | None) -> str | None:
    """The JSON text of a stored value (text as it is; a zstd BLOB inflated)."""
    if stored is None or isinstance(stored, str):
        return stored
    return zstandard.ZstdDecompressor().decompress(bytes(stored)).decode("utf-8")


class JsonTextField(models.TextField):
    """JSON text, zstd-compressed at rest on SQLite from KVS_COMPRESS_MIN_BYTES."""

    def from_db_value(self, value, expression, connection):
        return value_inflate(value)

    def get_db_prep_value(self, value, connection, prepared=False):
        value = super().get_db_prep_value(value, connection, prepared)
        if value is None or connection.vendor != "sqlite":
            return value
        return value_deflate(value)


@receiver(connection_created)
def _inflate_function(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function(INFLATE_SQL, 1, value_inflate, deterministic=True)
