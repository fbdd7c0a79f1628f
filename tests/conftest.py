"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest

from tests.factories import StaffFactory


@pytest.fixture
def clerk(db):
    return StaffFactory(username="clerk-t", groups=["Fees clerk"])


@pytest.fixture
def district_admin(db):
    return StaffFactory(username="admin-t", groups=["District admin"])


@pytest.fixture
def support_user(db):
    return StaffFactory(username="support-t", groups=["Support staff"])
