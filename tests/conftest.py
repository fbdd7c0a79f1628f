"""Fixtures shared by the whole suite, and the ledger check after every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import StaffFactory

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


@pytest.fixture
def clerk(db):
    return StaffFactory(username="clerk-t", groups=["Fees clerk"])


@pytest.fixture
def district_admin(db):
    return StaffFactory(username="admin-t", groups=["District admin"])


@pytest.fixture
def support_user(db):
    return StaffFactory(username="support-t", groups=["Support staff"])
