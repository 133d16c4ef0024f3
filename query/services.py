"""Declaring, building and dropping value indexes.

A declared index is a row of ValueIndex (replicated like schemas, through cluster.records) and
one or two database indexes over kv_entry (see query.compiler): SQLite gets an expression index
on `json_extract(value, path)`, PostgreSQL one on the jsonb value and one on its text, each
partial over the prefix's key range. The database keeps them current on every write to
kv_entry (local, replicated, expiry), so no write path knows about them.
"""

from __future__ import annotations

import logging
import time
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save

from kv.keys import prefix_successor, prefix_validate
from kv.selectors import live_entries
from kvsite.exceptions import InvalidInput, NotFound

from .compiler import DIALECTS, IndexSpec
from .language import path_format, path_parse
from .models import BUILDING, FAILED, READY, ValueIndex, index_name

log = logging.getLogger(__name__)


def dialect():
    """The compiler dialect of the default database."""
    try:
        return DIALECTS[connection.vendor]
    except KeyError:
        raise InvalidInput(f"Queries are not available on {connection.vendor}.") from None


def index_spec(index: ValueIndex) -> IndexSpec:
    return IndexSpec(name=index.name, prefix=index.prefix, path=path_parse(index.path))


def _index_fields(*, prefix: str, path: str) -> tuple[str, str]:
    prefix_validate(prefix)
    if prefix.startswith("_"):
        raise InvalidInput("Keys under '_' are reserved: they cannot be indexed.")
    return prefix, path_format(path_parse(path))


def index_put(*, prefix: str, path: str) -> tuple[ValueIndex, bool]:
    """Declare the index of `path` under `prefix` (idempotent; a failed build is tried again);
    it is built in the background. Returns the index and whether it is new."""
    prefix, path = _index_fields(prefix=prefix, path=path)
    index, created = ValueIndex.objects.get_or_create(
        prefix=prefix, path=path, defaults={"name": index_name(prefix, path)}
    )
    if index.state == FAILED:  # declaring it again tries again
        index.state, index.error = BUILDING, ""
        index.save(update_fields=["state", "error", "updated_at"])
    return index, created


def index_delete(*, prefix: str, path: str) -> None:
    """Forget the index of `path` under `prefix` and drop its database index."""
    prefix, path = _index_fields(prefix=prefix, path=path)
    deleted, _ = ValueIndex.objects.filter(prefix=prefix, path=path).delete()
    if not deleted:
        raise NotFound(f"No index of {path!r} under {prefix!r}.")


def _execute(statements: list[str]) -> None:
    if connection.in_atomic_block:  # PostgreSQL: CONCURRENTLY only outside a transaction
        with transaction.atomic(), connection.cursor() as cursor:  # a savepoint: may fail alone
            for sql in statements:
                cursor.execute(sql.replace(" CONCURRENTLY", ""))
        return
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def index_build(*, name: str) -> ValueIndex | None:
    """Create the database index of the declared index `name` if it is still building, count the
    keys it covers and mark it ready (or failed, with the database's message). Idempotent."""
    index = ValueIndex.objects.filter(name=name).first()
    if index is None or index.state == READY:
        return index
    started = time.monotonic()
    try:
        _execute(dialect().index_create(index_spec(index)))
    except Exception as exc:  # the database refused: keep the reason where admins see it
        log.exception("Building index %s failed", name)
        try:  # PostgreSQL leaves an invalid index behind a failed CONCURRENTLY build
            _execute(dialect().index_drop(index_spec(index)))
        except Exception:
            log.exception("Dropping the failed index %s failed too", name)
        ValueIndex.objects.filter(pk=index.pk).update(state=FAILED, error=str(exc)[:2000])
        index.refresh_from_db()
        return index
    under = live_entries().filter(key__gte=index.prefix)
    upper = prefix_successor(index.prefix) if index.prefix else None
    if upper is not None:
        under = under.filter(key__lt=upper)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE kv_entry")  # statistics of the new expressions, for the planner
    ValueIndex.objects.filter(pk=index.pk, state__in=[BUILDING, FAILED]).update(
        state=READY,
        keys=under.count(),
        error="",
        built_seconds=round(time.monotonic() - started, 3),
    )
    index.refresh_from_db()
    return index


def indexes_build_pending() -> int:
    """Build every declared index still marked building; how many were built."""
    names = list(ValueIndex.objects.filter(state=BUILDING).values_list("name", flat=True))
    for name in names:
        index_build(name=name)
    return len(names)


def index_drop(*, index: ValueIndex) -> None:
    """Drop the database index of `index` (the declaration is gone)."""
    _execute(dialect().index_drop(index_spec(index)))


def _build_task(name: str) -> None:
    from .tasks import index_build as index_build_task

    index_build_task.delay(name)


def _on_index_saved(sender, instance: ValueIndex, **kwargs) -> None:
    if instance.state == BUILDING and settings.KVS_INDEX_BUILD_ON_COMMIT:
        transaction.on_commit(partial(_build_task, instance.name))


def _on_index_deleted(sender, instance: ValueIndex, **kwargs) -> None:
    index_drop(index=instance)


def connect_builds() -> None:
    post_save.connect(_on_index_saved, sender=ValueIndex, dispatch_uid="kvs-index-build")
    post_delete.connect(_on_index_deleted, sender=ValueIndex, dispatch_uid="kvs-index-drop")
