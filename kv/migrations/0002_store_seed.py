"""Seed the store state row and the Merkle leaves; compare keys bytewise on PostgreSQL."""

from django.conf import settings
from django.db import migrations


def seed(apps, schema_editor):
    StoreState = apps.get_model("kv", "StoreState")
    MerkleLeaf = apps.get_model("kv", "MerkleLeaf")
    StoreState.objects.get_or_create(pk=1)
    MerkleLeaf.objects.bulk_create(
        [MerkleLeaf(bucket=b) for b in range(settings.KVS_MERKLE_BUCKETS)],
        ignore_conflicts=True,
    )


def key_collation_c(apps, schema_editor):
    # Listing pages and prefix ranges rely on code-point (= UTF-8 byte) order of keys.
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in ("kv_entry", "kv_entryversion"):
        schema_editor.execute(f'ALTER TABLE {table} ALTER COLUMN key TYPE varchar(1024) COLLATE "C"')


class Migration(migrations.Migration):
    dependencies = [("kv", "0001_initial")]

    operations = [
        migrations.RunPython(seed, migrations.RunPython.noop),
        migrations.RunPython(key_collation_c, migrations.RunPython.noop),
    ]
