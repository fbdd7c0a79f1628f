"""One INSERT of a model instance in plain SQL, for the few hot paths where the ORM's own
`save()` costs more CPU than the statement (the partner API posts hundreds of payments a
second: building the query is most of the work, not running it)."""

from __future__ import annotations

from django.db import connection
from django.db.models import Model


def insert(instance: Model, *, conflict: str = "") -> bool:
    """INSERT `instance` (a new one) with its model's columns and values exactly as `save()`
    would prepare them (`auto_now_add` fields set), `conflict` appended (e.g. an
    `ON CONFLICT ... DO NOTHING` clause), and its pk set from RETURNING. True when a row
    was inserted; False when `conflict` skipped it. No `pre_save`/`post_save` signal is
    sent: callers use it only for models nothing listens to (or audit themselves)."""
    meta = instance._meta
    pk = meta.pk
    if pk is None:
        raise TypeError(f"{meta.label} has no primary key")
    # The pk too when it is set already (a one-to-one primary key), else it is generated.
    fields = [f for f in meta.concrete_fields if f is not pk or instance.pk is not None]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608 - the model's own table and columns; values bound
        f"VALUES ({', '.join(['%s'] * len(fields))}){conflict} RETURNING {quote(str(pk.column))}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = connection.alias
    return True
