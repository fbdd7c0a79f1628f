"""A result line FeeSync may not apply by itself (its fee was never given to the financials
side) is held for staff with what the line said besides its amount: the method the money
was taken by and the line's reason. The clerk reads both where held money is shown, and
whatever they decide, the entry posted says the same as an applied line's would."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from django.test import Client
from django.urls import reverse

from apps.fees.models import LedgerEntry
from apps.fees.selectors import ledger_report
from apps.vendors.jobs import task_run
from apps.vendors.kinds.fileexchange.layouts import result_file_text
from apps.vendors.models import HeldMovement, TaskRun
from tests.factories import StudentFactory, make_fee

from .conftest import Exchange, make_exchange

pytestmark = pytest.mark.django_db
D = Decimal


def _text(response: Any) -> str:
    assert response.status_code == 200
    doc = lxml.html.fromstring(response.content.decode())
    return " ".join(" ".join(doc.itertext()).split())


@pytest.fixture
def held_lines(tmp_path: Path, libfine: Any) -> dict[str, Any]:
    """Three fees in the exchange's scope that were never exported (so the financials side
    could not have settled them), each named by a line of one result file."""
    root = tmp_path / "financials"
    root.mkdir()
    exchange = Exchange(make_exchange(root, server=None, category=libfine), root, "local")
    student = StudentFactory(student_number="710001")
    by_check, by_cash, waived = (
        make_fee(student=student, amount="20.00", category=libfine) for _ in range(3)
    )
    rows = [
        {
            "reference": by_check.reference,
            "operation": "pay",
            "amount": "20.00",
            "method": "check",
            "reason": "Check 1042 at the bursar's window",
            "transaction_id": "H-1",
        },
        {
            "reference": by_cash.reference,
            "operation": "pay",
            "amount": "15.00",
            "method": "cash",
            "reason": "Paid at orientation",
            "transaction_id": "H-2",
        },
        {
            "reference": waived.reference,
            "operation": "waive",
            "amount": "20.00",
            "method": "",
            "reason": "Hardship (form 12)",
            "transaction_id": "H-3",
        },
    ]
    exchange.drop("results_held.csv", result_file_text(rows))
    done = task_run(integration=exchange.integration, task="import-payments")
    assert done is not None and done.outcome == TaskRun.Outcome.OK, done and done.error
    assert (done.counts["held"], done.counts["recorded"]) == (3, 0)
    held = {h.vendor_ref: h for h in HeldMovement.objects.all()}
    return {
        "exchange": exchange,
        "student": student,
        "fees": (by_check, by_cash, waived),
        "held": held,
    }


def test_a_held_line_keeps_its_method_and_reason(held_lines: dict[str, Any]) -> None:
    held = held_lines["held"]
    assert (held["H-1"].method, held["H-1"].note) == ("check", "Check 1042 at the bursar's window")
    assert (held["H-2"].method, held["H-2"].note) == ("cash", "Paid at orientation")
    assert held["H-3"].note == "Hardship (form 12)"
    assert all(h.status == HeldMovement.Status.OPEN for h in held.values())


def test_the_clerk_reads_the_method_and_reason_where_held_money_is_shown(
    held_lines: dict[str, Any], clerk: Any, support_user: Any, client: Client
) -> None:
    client.force_login(clerk)
    integration = held_lines["exchange"].integration
    held = held_lines["held"]

    page = _text(client.get(reverse("admin:vendors_heldmovement_change", args=[held["H-1"].pk])))
    assert "Paid by Check" in page
    assert "File exchange's note Check 1042 at the bursar's window" in page
    waiver = _text(client.get(reverse("admin:vendors_heldmovement_change", args=[held["H-3"].pk])))
    assert "Paid by" not in waiver  # a waiver is paid by nothing
    assert "File exchange's note Hardship (form 12)" in waiver

    listing = _text(client.get(reverse("admin:vendors_heldmovement_changelist") + "?status=open"))
    assert "Payment of $20.00 by check" in listing and "Payment of $15.00 by cash" in listing
    assert "Check 1042 at the bursar's window" in listing and "Hardship (form 12)" in listing

    # The integration's dashboard (a district admin's and support's page) says the same.
    client.force_login(support_user)
    dashboard = _text(
        client.get(reverse("admin:vendors_integration_dashboard", args=[integration.pk]))
    )
    assert "Paid by check. File exchange's note: “Check 1042 at the bursar's window”" in dashboard
    assert "Paid by cash. File exchange's note: “Paid at orientation”" in dashboard
    assert "File exchange's note: “Hardship (form 12)”" in dashboard


def _act(client: Client, held: HeldMovement, action: str, **data: str) -> str:
    url = reverse("admin:vendors_heldmovement_act", args=[held.pk, action])
    return _text(client.post(url, {"token": str(uuid.uuid4()), **data}, follow=True))


def test_what_staff_post_from_a_held_line_keeps_its_method_and_reason(
    held_lines: dict[str, Any], clerk: Any, client: Client
) -> None:
    client.force_login(clerk)
    held = held_lines["held"]
    by_check, by_cash, waived = held_lines["fees"]
    source = held_lines["exchange"].integration.external_source

    assert "is applied to fee" in _act(client, held["H-1"], "apply")
    paid = LedgerEntry.objects.get(external_source=source, external_id="H-1")
    assert (paid.fee_id, paid.kind, paid.amount) == (by_check.pk, "payment", D("20.00"))
    assert (paid.method, paid.reason) == ("check", "Check 1042 at the bursar's window")

    assert "is held as" in _act(client, held["H-2"], "credit")
    credit = LedgerEntry.objects.get(external_source=source, external_id="H-2")
    assert credit.fee_id is None and credit.amount == D("15.00")
    assert credit.method == "cash"
    assert credit.reason == (
        f"Paid at File exchange for fee {by_cash.reference}; kept as credit: Paid at orientation"
    )

    assert "is dismissed" in _act(client, held["H-3"], "dismiss", note="Already waived by hand")
    dismissed = HeldMovement.objects.get(pk=held["H-3"].pk)
    assert dismissed.status == HeldMovement.Status.DISMISSED
    # Dismissed, the line's own words are still there beside the clerk's.
    assert (dismissed.note, dismissed.resolution_note) == (
        "Hardship (form 12)",
        "Already waived by hand",
    )
    assert not LedgerEntry.objects.filter(external_source=source, external_id="H-3").exists()
    page = _text(client.get(reverse("admin:vendors_heldmovement_change", args=[dismissed.pk])))
    assert "Hardship (form 12)" in page and "Already waived by hand" in page

    # The fee's page lists the posted entry with its method and reason, like any other.
    fee_page = _text(client.get(reverse("admin:fees_fee_change", args=[by_check.pk])))
    assert "Payment 20.00 Check - Check 1042 at the bursar's window Payment vendor H-1" in fee_page
    assert ledger_report().ok
