"""The business office's tests (issue 14) run against the partner API's fixtures: an enabled
partner-API integration, its API user in every group, an application key and a client
signed in with it (tests/partner_api/conftest.py, reused rather than copied)."""

import pytest

from tests.factories import StaffFactory
from tests.partner_api.conftest import (  # noqa: F401  (pytest fixtures)
    api,
    api_key,
    api_user,
    basic_client,
    integration,
    student,
)


@pytest.fixture
def clerk(db: object) -> object:
    """The business office's clerk (a superuser: the cashier groups are cashier14's)."""
    return StaffFactory(username="office-clerk", is_superuser=True)


@pytest.fixture(autouse=True)
def gl_export_dir(settings: object, tmp_path: object) -> object:
    """Each test's GL export files in a directory of its own."""
    settings.FEESYNC_GL_EXPORT_DIR = tmp_path / "gl"  # type: ignore[attr-defined,operator]
    return settings.FEESYNC_GL_EXPORT_DIR  # type: ignore[attr-defined]


# The browser tests' Chromium and screenshot folder (tests/browser/conftest.py).
from tests.browser.conftest import artifacts, browser  # noqa: E402, F401
