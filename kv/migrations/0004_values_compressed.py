"""Values compressed at rest: the field changes in Python only (same column type, no table
rebuild); on PostgreSQL the value columns ask for lz4 TOAST compression where the server has it."""

from django.db import DatabaseError, migrations, transaction

import kv.fields

TABLES = ("kv_entry", "kv_entryversion")


def lz4_on_postgresql(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or connection.pg_version < 140000:
        return
    for table in TABLES:
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN "value" SET COMPRESSION lz4')
        except DatabaseError:  # a server built without lz4 keeps its default (pglz)
            return


class Migration(migrations.Migration):
    dependencies = [("kv", "0003_acl_rules_and_schemas")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="entry",
                    name="value",
                    field=kv.fields.JsonTextField(
                        blank=True, help_text="The value as JSON text.", null=True
                    ),
                ),
                migrations.AlterField(
                    model_name="entryversion",
                    name="value",
                    field=kv.fields.JsonTextField(blank=True, null=True),
                ),
            ]
        ),
        migrations.RunPython(lz4_on_postgresql, migrations.RunPython.noop),
    ]
