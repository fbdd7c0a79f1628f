"""Plain SQL for the few hot paths where the ORM costs more CPU than the statement (the
partner API posts hundreds of payments a second: building the query was most of the work,
not running it): a cursor whose statements PostgreSQL prepares once per connection, and one
INSERT of a model instance."""

from __future__ import annotations

import functools
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.utils import CursorWrapper
from django.db.models import Model


class _PreparingCursor(psycopg.Cursor[Any]):
    """Server-side binding, every statement prepared: PostgreSQL parses and plans each of
    these few fixed statements once per connection instead of on every call."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("prepare", True)
        return super().execute(query, params, **kwargs)


def prepared_cursor() -> CursorWrapper:
    """Like `connection.cursor()` (the same connection and transaction, Django's checks and
    query logging), but its statements are prepared. Django keeps prepared statements off
    for the sake of connection poolers in transaction mode; FeeSync talks to PostgreSQL
    directly (FEESYNC_DB_PREPARE off: Django's cursor). Only for fixed SQL with `%s`
    parameters (bound by the server)."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each `connection.x` is a context lookup
    if (
        db.vendor != "postgresql"
        or db.queries_logged
        or not getattr(settings, "FEESYNC_DB_PREPARE", True)
    ):
        # Where queries are logged (DEBUG, a test counting them), Django's own cursor, whose
        # log shows each statement with its values.
        return db.cursor()
    db.close_if_health_check_failed()
    db.ensure_connection()
    raw = db.connection
    if raw.prepare_threshold is None:
        # psycopg prepares nothing while it is None, even when asked. Django's own cursors
        # bind on the client and never prepare, so this changes nothing for them; ours ask
        # each time (`prepare=True`), so the threshold itself is never reached.
        raw.prepare_threshold = 1 << 30
    with db.wrap_database_errors:
        wrapped: CursorWrapper = db._prepare_cursor(_PreparingCursor(raw))  # type: ignore[attr-defined]
    return wrapped


def insert(instance: Model, *, conflict: str = "") -> bool:
    """INSERT `instance` (a new one) with its model's columns and values exactly as `save()`
    would prepare them (`auto_now_add` fields set), `conflict` appended (e.g. an
    `ON CONFLICT ... DO NOTHING` clause), and its pk set from RETURNING. True when a row
    was inserted; False when `conflict` skipped it. No `pre_save`/`post_save` signal is
    sent: callers use it only for models nothing listens to (or audit themselves)."""
    db = connections[DEFAULT_DB_ALIAS]
    fields, sql = _insert_sql(type(instance), instance.pk is not None, conflict, db.vendor)
    values = [f.get_db_prep_save(f.pre_save(instance, True), db) for f in fields]
    with prepared_cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = db.alias
    return True


def insert_statement(instance: Model) -> tuple[list[Any], str]:
    """The fields whose values `insert` binds, and its statement (for a caller that folds it
    into a larger one); the statement ends with RETURNING the primary key."""
    db = connections[DEFAULT_DB_ALIAS]
    return _insert_sql(type(instance), instance.pk is not None, "", db.vendor)


@functools.cache
def _insert_sql(
    model: type[Model], with_pk: bool, conflict: str, vendor: str
) -> tuple[list[Any], str]:
    """The fields and the INSERT statement of a model (built once per process)."""
    meta = model._meta
    pk = meta.pk
    if pk is None:
        raise TypeError(f"{meta.label} has no primary key")
    # The pk too when it is set already (a one-to-one primary key), else it is generated.
    fields = [f for f in meta.concrete_fields if f is not pk or with_pk]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608 - the model's own table and columns; values bound
        f"VALUES ({', '.join(['%s'] * len(fields))}){conflict} RETURNING {quote(str(pk.column))}"
    )
    return fields, sql


def insert_then(instance: Model, then: str, params: list[Any]) -> None:
    """INSERT `instance` (as `insert` does), then `then`, a statement that uses the new row's
    primary key where it says `{key}` (before any of its own `%s`, which take `params`). On
    PostgreSQL both are one statement (the first a data-modifying CTE that `{key}` reads):
    two rows written for one round trip on a hot path. Elsewhere (SQLite for `make run`),
    two statements."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        insert(instance)
        with db.cursor() as cursor:
            cursor.execute(then.format(key="%s"), [instance.pk, *params])
        return
    fields, sql = _insert_sql(type(instance), instance.pk is not None, "", db.vendor)
    values = [f.get_db_prep_save(f.pre_save(instance, True), db) for f in fields]
    pk = connection.ops.quote_name(str(type(instance)._meta.pk.column))
    statement = f"WITH new AS ({sql}) " + then.format(key=f"(SELECT {pk} FROM new)")  # noqa: S608 - our statements, values bound
    with prepared_cursor() as cursor:
        cursor.execute(statement, [*values, *params])
    instance._state.adding = False
    instance._state.db = db.alias
