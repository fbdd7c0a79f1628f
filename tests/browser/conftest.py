"""Fixtures of the staff-site browser tests: Chromium, a live server, a vendor sandbox.

Celery is eager in tests (config/settings/test.py), so a committed fee is delivered to the
sandbox synchronously, in the live server's thread, before the response is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import artifacts_dir, launch_chromium, require_browser
from tests.sync.conftest import Sandbox


@pytest.fixture(scope="session", autouse=True)
def _live_server_connections_closed(
    django_db_setup: None, django_db_blocker: Any
) -> Iterator[None]:
    """The live server answers each request in a thread of its own, and such a thread's
    persistent connection (CONN_MAX_AGE) outlives it. Close those connections after the
    live server has stopped, so that the test database can be dropped."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def browser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    require_browser()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with launch_chromium() as browser:
        new_context = browser.new_context

        def generous_context(*args: Any, **kwargs: Any) -> Any:
            # Playwright's 30-second default assumes an idle machine; these pages wait on a
            # live server that shares two cores with other suites.
            context = new_context(*args, **kwargs)
            context.set_default_timeout(120_000)
            context.set_default_navigation_timeout(120_000)
            return context

        browser.new_context = generous_context
        yield browser
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            # What the browser showed when the test failed, for whoever reads the CI log.
            folder = artifacts_dir()
            for c, context in enumerate(browser.contexts):
                for p, page in enumerate(context.pages):
                    name = f"failed-{request.node.name}-{c}-{p}.png"
                    page.screenshot(path=str(folder / name), full_page=True)


@pytest.fixture
def artifacts() -> Path:
    return artifacts_dir()


@pytest.fixture
def payschools_sandbox() -> Iterator[Sandbox]:
    """A PaySchools sandbox of this test's own, on a free loopback port."""
    box = Sandbox("payschools")
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def financials(tmp_path: Path) -> Iterator[Any]:
    """The file-exchange sandbox (the financials side: SFTP on loopback, demo host key)
    over a directory of this test's own."""
    from apps.vendors.kinds.fileexchange import sandbox

    server = sandbox.make_server(0, None, root=str(tmp_path / "financials"))
    sandbox.start(server)
    yield server
    server.shutdown()
