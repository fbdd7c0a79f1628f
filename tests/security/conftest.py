"""Fixtures of the sign-in tests: a parent with one child (signing in needs a guardian)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import GuardianFactory, StudentFactory

PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory


@pytest.fixture
def make_parent(db: None) -> Any:
    def make() -> Any:
        guardian = GuardianFactory()
        guardian.students.add(StudentFactory())
        return guardian.user

    return make
