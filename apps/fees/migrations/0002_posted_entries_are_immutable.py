"""The database itself refuses to change or remove a posted ledger entry or allocation.

Application code never does either (corrections are reversing entries); the trigger makes
sure that a raw SQL session, a bad migration or a future bug cannot either.
"""

from django.db import migrations

TABLES = ["fees_ledgerentry", "fees_allocation"]

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION feesync_refuse_ledger_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'posted ledger rows in % are append-only: % refused (post a reversing entry instead)',
        TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION, params=None)
        for table in TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION feesync_refuse_ledger_change();"
            )
    elif vendor == "sqlite":
        for table in TABLES:
            for op in ("UPDATE", "DELETE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'posted ledger rows in {table} are "
                    f"append-only: {op} refused (post a reversing entry instead)'); END;"
                )


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};")
        elif vendor == "sqlite":
            for op in ("update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op};")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS feesync_refuse_ledger_change();")


class Migration(migrations.Migration):
    dependencies = [("fees", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
