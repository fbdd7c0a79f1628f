"""Fixtures of the parent-portal tests: families, integrations, and the browser.

The browser tests need Debian's Chromium and axe-core (`npm install` at the repository
root). Where either is missing they are skipped, except under CI_REQUIRE_BROWSER=1 (CI sets
it), where they fail: a CI run must not pass by skipping them.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from apps.students.models import Guardian, Student
from apps.vendors.models import Integration
from tests.factories import GuardianFactory, StudentFactory

PASSWORD = "pw-for-tests-1"
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("FEESYNC_CHROMIUM", "/usr/bin/chromium"))
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "tests" / "artifacts"
#: The vendor is "down": nothing listens on the discard port of loopback.
CLOSED_PORT_URL = "http://127.0.0.1:9/soap"
IMPORT_AFTER = dt.date(2026, 7, 1)
IN_SCOPE = dt.date(2026, 9, 15)


@dataclass
class Family:
    guardian: Guardian
    children: list[Student]

    @property
    def user(self) -> Any:
        return self.guardian.user


@pytest.fixture
def make_family(db: None) -> Callable[..., Family]:
    def make(n_children: int = 1, **student_fields: Any) -> Family:
        guardian = GuardianFactory()
        children = [StudentFactory(**student_fields) for _ in range(n_children)]
        guardian.students.add(*children)
        return Family(guardian=guardian, children=children)

    return make


@pytest.fixture
def parent_client(client: Client) -> Callable[[Family], Client]:
    """A test client signed in as the family's parent (force_login: django-axes needs a
    request to authenticate, and these tests are not about the sign-in form)."""

    def sign_in(family: Family) -> Client:
        client.force_login(family.user)
        return client

    return sign_in


@pytest.fixture
def make_integration(db: None) -> Callable[..., Integration]:
    counter = iter(range(1, 1000))

    def make(**fields: Any) -> Integration:
        n = next(counter)
        values: dict[str, Any] = {
            "vendor_kind": "payschools",
            "slug": f"portal-test-{n}",
            "name": f"PaySchools {n}",
            "enabled": True,
            "service_url": CLOSED_PORT_URL,
            "import_after": IMPORT_AFTER,
            "button_url": "https://pay.example.org/parents",
            **fields,
        }
        categories = values.pop("categories", None)
        integration = Integration(**values)
        integration.save()
        if categories:
            integration.categories.set(categories)
        return integration

    return make


# --- the browser ---------------------------------------------------------------------------------


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    if not AXE_JS.exists():
        return f"axe-core is not installed at {AXE_JS} (npm install at the repository root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install '.[dev]')"
    return None


@pytest.fixture(scope="session")
def browser_requirements() -> None:
    """Skip (or, under CI_REQUIRE_BROWSER=1, fail) when the browser or axe-core is missing."""
    missing = _browser_missing()
    if missing is None:
        return
    if os.environ.get("CI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CI_REQUIRE_BROWSER=1 but {missing}", pytrace=False)
    pytest.skip(missing)


@pytest.fixture
def browser(browser_requirements: None) -> Any:
    """Chromium, launched for one test. Request it after the fixtures that write to the
    database: while Playwright's sync API runs, this thread has an asyncio loop, and Django
    refuses ORM calls from it (rightly: they would open a connection of their own that
    nobody closes)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
