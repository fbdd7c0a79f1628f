"""Issue 11 item 8: a fee's timeline keeps its whole delivery history, with the real
vendor sandbox and a real Celery worker: the vendor is down, the worker's attempts fail,
the change is parked, staff retry it once the vendor is back, and it is delivered; every
step is on the fee's page in order, and the last error (with its time) leaves the headline
once the delivery succeeded."""

from __future__ import annotations

import datetime as dt
import re

import lxml.html
import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from apps.vendors import engine
from apps.vendors.display import when
from apps.vendors.models import DeliveryEvent, Integration, OutboxItem
from tests.factories import make_fee

from .conftest import wait_for

IN_SCOPE = dt.date(2026, 9, 1)

pytestmark = [pytest.mark.slow, pytest.mark.all_brokers]


def timeline(client, fee) -> tuple[str, list[str]]:
    page = client.get(reverse("admin:fees_fee_change", args=[fee.pk]))
    assert page.status_code == 200
    doc = lxml.html.fromstring(page.content.decode())
    (vendor,) = doc.xpath("//div[@id='sync-timeline']//div[@class='feesync-vendor']")
    headline = " ".join(vendor.xpath("./p")[0].text_content().split())
    items = [" ".join(li.text_content().split()) for li in vendor.xpath(".//ol/li")]
    return headline, items


def test_attempts_park_retry_and_delivery_are_all_on_the_timeline(
    live_worker, sandbox, make_integration, district_admin, client
):
    integration = make_integration()
    sandbox.faults("down")
    fee = make_fee(fee_date=IN_SCOPE)
    # The worker tries, on commit and then on each sweep once the backoff is over.
    wait_for(
        lambda: DeliveryEvent.objects.filter(fee=fee, kind="failed").count() >= 2,
        timeout=60,
        what="two failed attempts by the worker",
    )
    # Parked at the next failure (the bound is lowered here; the worker's is high).
    with override_settings(FEESYNC_DELIVERY_MAX_ATTEMPTS=1):

        def parked() -> bool:
            Integration.objects.filter(pk=integration.pk).update(backoff_until=None)
            OutboxItem.objects.filter(fee=fee).update(next_attempt_at=timezone.now())
            engine.deliver(integration_id=integration.pk, max_batches=1)
            return OutboxItem.objects.get(fee=fee).state == OutboxItem.State.PARKED

        wait_for(parked, timeout=60, what="the change to park")
    client.force_login(district_admin)
    headline, _ = timeline(client, fee)
    last_failure = DeliveryEvent.objects.filter(fee=fee).exclude(kind="retried").last()
    assert last_failure is not None and last_failure.kind == "parked"
    assert "Parked" in headline
    assert f"Last error ({when(last_failure.created_at)}):" in headline

    sandbox.faults("ok")
    Integration.objects.filter(pk=integration.pk).update(consecutive_failures=0)
    url = reverse("admin:vendors_integration_dashboard_action", args=[integration.pk, "retry"])
    client.post(url, {"which": "all"})
    wait_for(lambda: not OutboxItem.objects.exists(), timeout=60, what="the delivery")
    assert fee.reference in sandbox.fees()

    headline, items = timeline(client, fee)
    assert headline.startswith("Up to date")
    assert "Last" not in headline and "failed" not in headline
    # In order: the failures (numbered), the park, the retry, the delivery.
    kinds = []
    for item in items:
        if "failed (attempt" in item and "parked" in item:
            kinds.append("parked")
        elif "failed (attempt" in item:
            kinds.append("failed")
        elif item.split(" — ", 1)[-1].startswith("Retried by admin-t"):
            kinds.append("retried")
        elif "First sent to" in item and "acknowledged version 1" in item:
            kinds.append("delivered")
    failed = kinds.count("failed")
    assert failed >= 2
    assert kinds[-3:] == ["parked", "retried", "delivered"], items
    assert kinds[:failed] == ["failed"] * failed
    attempts = [int(n) for n in re.findall(r"attempt (\d+)", " ".join(items))]
    assert attempts[:failed] == list(range(1, failed + 1))
    # Each failure keeps the vendor's error, and the times are the district's.
    errors = [
        e.detail for e in DeliveryEvent.objects.filter(fee=fee, kind__in=["failed", "parked"])
    ]
    shown = [i for i in items if "failed (attempt" in i]
    assert len(shown) == len(errors) and all(e for e in errors)
    assert all(i.endswith(f": {e}") for i, e in zip(shown, errors, strict=True))
    first = DeliveryEvent.objects.filter(fee=fee).first()
    assert first is not None and items[0].startswith(when(first.created_at))
