"""The banner atop a file exchange's pages says what is true of it (issue 12): fees go out
as files on the export schedule, with the last export and the next one; not "as they change"
as for the API kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lxml.html
import pytest
from django.urls import reverse

from apps.vendors.jobs import task_run
from apps.vendors.schedules import schedules_sync
from tests.admin_helpers import csrf_client
from tests.factories import make_fee
from tests.vendors.kinds.fileexchange.conftest import make_exchange

pytestmark = pytest.mark.django_db


def _banner(client: Any, url: str) -> str:
    page = lxml.html.fromstring(client.get(url).content)
    return " ".join(page.cssselect(".feesync-banner-state")[0].text_content().split())


def test_the_banner_says_when_fees_are_exported_not_as_they_change(
    tmp_path: Path, libfine: Any, district_admin: Any
) -> None:
    integration = make_exchange(tmp_path, server=None, category=libfine)
    schedules_sync(integration=integration)
    client = csrf_client(district_admin)
    dashboard = reverse("admin:vendors_integration_dashboard", args=[integration.pk])
    setup = reverse("admin:vendors_integration_change", args=[integration.pk])

    before = _banner(client, dashboard)
    assert "as they change" not in before.replace("not as they change", "")
    assert "every day at 08:00 and 20:00" in before
    assert "no export yet" in before and "next export" in before

    make_fee(amount="4.00", category=libfine)
    run = task_run(integration=integration, task="export-fees")
    assert run is not None and run.counts["rows"] == 1
    for url in (dashboard, setup):
        after = _banner(client, url)
        assert "last export" in after and str(run.counts["file"]) in after, after
        assert "1 fee" in after and "next export" in after
