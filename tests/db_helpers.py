"""PostgreSQL helpers for tests that stage lock orders and migrations."""

from __future__ import annotations

import time
from typing import Any

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def wait_until_a_session_waits_for_a_lock(bound_s: float = 120.0) -> bool:
    """Whether some session of the test database came to wait on a lock within `bound_s`
    (generous: the machine may be busy). Used to know another thread has reached the lock
    the test holds. Inside a transaction the statistics views are a snapshot, so it is
    cleared before each look."""
    deadline = time.monotonic() + bound_s
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def migrate_to(targets: list[tuple[str, str]]) -> Any:
    """Migrate the test database to `targets`; the historical apps at that state."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
