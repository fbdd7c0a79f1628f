"""Every `curl` example of docs/partner-api.md, run as written against a live server."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from apps.fees.models import ScheduledPayment
from apps.fees.selectors import ledger_report
from tests.factories import StaffFactory, StudentFactory

DOC = Path(settings.BASE_DIR) / "docs" / "partner-api.md"
EXAMPLE = re.compile(r"<!-- expect: (\d{3}) -->\s*```sh\n(.*?)```", re.S)


@pytest.mark.django_db(transaction=True)
def test_the_docs_curl_examples_answer_as_documented(
    api_key: str, api_user: Any, live_server: Any
) -> None:
    from django.contrib.auth.models import Group

    # The OData examples read the feeds the "API - Student Accounts" group grants.
    api_user.user.groups.add(Group.objects.get(name="API - Student Accounts"))
    examples = EXAMPLE.findall(DOC.read_text())
    assert len(examples) >= 8
    student = StudentFactory()
    clerk = StaffFactory(username="clerk")
    clerk.set_password("feesync-demo")
    clerk.save()
    env = {**os.environ, "BASE": live_server.url, "KEY": api_key, "STUDENT": student.student_number}
    for expected, command in examples:
        done = subprocess.run(  # noqa: S603
            ["/bin/bash", "-c", command], env=env, capture_output=True, text=True, timeout=60
        )
        status_line = done.stdout.splitlines()[0] if done.stdout else done.stderr
        assert status_line.split()[1] == expected, (command, done.stdout)
        assert "application/problem+json" in done.stdout or int(expected) < 400
    # The documented worked example: 125 on the first of 100/100/100.
    schedule = [
        (s.status, f"{s.amount:.2f}")
        for s in ScheduledPayment.objects.order_by("expected_date", "id")
    ]
    assert schedule == [("P", "100.00"), ("P", "25.00"), ("S", "75.00"), ("S", "100.00")]
    assert ledger_report().ok
