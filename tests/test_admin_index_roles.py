"""Issue 11 item 5: the list of tables on the staff home, per role. Developer-only tables
are out of the fees clerk's and support's sight, and grouped under "System" (last) for the
district admin."""

from __future__ import annotations

import lxml.html
import pytest
from django.urls import reverse

from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

SYSTEM = [
    "Access attempts",
    "Periodic tasks",
    "Outbox items",
    "Synced fees",
]


def sections(client) -> dict[str, list[str]]:
    page = client.get(reverse("admin:index"))
    assert page.status_code == 200
    doc = lxml.html.fromstring(page.content.decode())
    out: dict[str, list[str]] = {}
    for table in doc.xpath("//div[@id='content-main']//div[contains(@class,'module')]/table"):
        caption = " ".join(table.xpath("./caption")[0].text_content().split())
        out[caption] = [
            " ".join(th.text_content().split()) for th in table.xpath(".//th[@scope='row']")
        ]
    return out


@pytest.mark.parametrize("group", ["Fees clerk", "Support staff"])
def test_clerks_and_support_see_no_developer_tables(client, group):
    client.force_login(StaffFactory(groups=[group]))
    shown = sections(client)
    assert "System" not in shown
    every = " | ".join(name for names in shown.values() for name in names)
    for table in SYSTEM:
        assert table not in every
    assert "Fees" in every  # what they work from is still there


def test_support_still_opens_the_outbox_list_the_dashboards_link_to(client):
    client.force_login(StaffFactory(groups=["Support staff"]))
    assert client.get(reverse("admin:vendors_outboxitem_changelist")).status_code == 200
    page = client.get(reverse("admin:app_list", args=["vendors"])).content.decode()
    assert "Outbox items" not in page and "Integrations" in page


def test_the_district_admin_finds_them_under_system_last(client):
    client.force_login(StaffFactory(groups=["District admin"]))
    shown = sections(client)
    assert list(shown)[-1] == "System"
    system = " | ".join(shown["System"])
    for table in SYSTEM:
        assert table in system
    assert "Outbox items" not in " | ".join(shown["Payments"])
    for caption in ("Axes", "Periodic Tasks"):
        assert caption not in shown
    # The app's own page still lists every table of it.
    page = client.get(reverse("admin:app_list", args=["vendors"])).content.decode()
    assert "Outbox items" in page
