"""Fixtures shared by the whole suite, and the ledger check after every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests import brokers
from tests.factories import StaffFactory

# The real Celery worker's fixtures, for every directory (one worker per broker per session).
from tests.workers import celery_worker_process, live_worker, second_worker  # noqa: F401


def _flush_retrying_deadlocks() -> None:
    """A transactional test's teardown empties the database with one TRUNCATE of every
    table. The real worker shares that database and never stops: its outbox sweeper runs
    every second, and a task the test started may still be writing (live_worker waits for
    those, within a bound). When a task's row locks and the TRUNCATE's table locks cross,
    PostgreSQL kills one of the two; when it picked the TRUNCATE, the test errored at
    teardown and the next one found its rows. The flush is rolled back whole then, so it
    is simply run again once the task has gone."""
    import time

    from django.core.management.base import CommandError
    from django.db import OperationalError
    from django.test import TransactionTestCase

    flush = TransactionTestCase._fixture_teardown

    def retrying(self: TransactionTestCase) -> None:
        for attempt in range(10):
            try:
                return flush(self)
            except CommandError as exc:
                deadlocked = isinstance(exc.__cause__, OperationalError) and (
                    "deadlock detected" in str(exc.__cause__)
                )
                if not deadlocked or attempt == 9:
                    raise
                time.sleep(0.2 * (attempt + 1))

    TransactionTestCase._fixture_teardown = retrying  # type: ignore[method-assign]


_flush_retrying_deadlocks()

#: Fixtures that give a test the database (directly or through another fixture).
_DB_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "live_server"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[Any]:
    """`ledger_check` passes after every test (issue 10, "Done when"): once a test that used
    the database has passed, and while its data is still there, the ledger's invariants are
    checked. A test that breaks the ledger on purpose is marked `ledger_breach`."""
    result = yield
    uses_db = item.get_closest_marker("django_db") is not None or bool(
        _DB_FIXTURES & set(getattr(item, "fixturenames", ()))
    )
    if uses_db and item.get_closest_marker("ledger_breach") is None:
        from apps.fees.selectors import ledger_report

        # A browser test leaves Playwright's event loop in this thread, which Django takes
        # for an async context; this read runs alone, as the browser fixtures' own do.
        before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        try:
            report = ledger_report()
        finally:
            if before is None:
                del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
            else:
                os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before
        assert report.ok, f"ledger_check after the test: {report.breaches}"
    return result


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`all_brokers`: the test runs once per supported broker (tests/brokers.py), ids
    `[redis]` and `[rabbitmq]`. A test with the real worker that is not marked runs on the
    default broker (CELERY_TEST_BROKER_URL) under the same session-wide parameter, so the
    worker is not restarted between marked and unmarked tests."""
    marked = metafunc.definition.get_closest_marker("all_brokers") is not None
    if marked and "celery_broker" not in metafunc.fixturenames:
        metafunc.fixturenames.append("celery_broker")  # a test whose worker is its own
    if "celery_broker" in metafunc.fixturenames:
        names = brokers.ALL_BROKERS if marked else brokers.ALL_BROKERS[:1]
        metafunc.parametrize("celery_broker", names, indirect=True, scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A marked test that names no worker fixture still publishes to its broker: pytest drops
    # the name added above from the fixtures it sets up (keeping the parameter), so add the
    # producer's fixture here, where it stays.
    for item in items:
        names = getattr(item, "fixturenames", None)
        if (
            names is not None
            and item.get_closest_marker("all_brokers") is not None
            and "celery_producer" not in names
        ):
            names.append("celery_producer")


@pytest.fixture(scope="session")
def celery_broker(request: pytest.FixtureRequest) -> brokers.Broker:
    """The broker of the real Celery worker (one at a time, for the whole session, per
    `[broker]` parameter). RabbitMQ that does not answer skips its tests on a developer's
    machine and fails them in CI (CI_REQUIRE_BROKERS=1)."""
    broker = brokers.broker_named(getattr(request, "param", brokers.ALL_BROKERS[0]))
    brokers.require_broker(broker)
    return broker


@pytest.fixture
def celery_producer(celery_broker: brokers.Broker) -> Iterator[brokers.Broker]:
    """This process's Celery app publishes to `celery_broker` for the test, so that producer
    and worker agree; other tests keep the settings' broker."""
    from config.celery import app

    with brokers.producing_to(app, celery_broker):
        yield celery_broker


@pytest.fixture
def clerk(db):
    return StaffFactory(username="clerk-t", groups=["Fees clerk"])


@pytest.fixture
def district_admin(db):
    return StaffFactory(username="admin-t", groups=["District admin"])


@pytest.fixture
def support_user(db):
    return StaffFactory(username="support-t", groups=["Support staff"])
