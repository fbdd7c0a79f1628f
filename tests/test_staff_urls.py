"""Bounded input in staff URLs: an id that is not a number (`abc`) or names nothing
(`999999`) is a page not found, never a server error (issue 10 item 9).

The cases are built from the URL patterns themselves, so a page added later is covered
without anyone remembering to list it here."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from apps.fees.models import BulkJob, LedgerEntry, StudentCredit
from apps.fees.services import (
    Movement,
    MovementKind,
    MovementSource,
    Origin,
    assignment_create,
    movements_record,
    payment_take,
)
from apps.portal.models import ActivityOffer, ActivitySignup, PortalLockout, StudentDocument
from apps.portal.services import document_download
from apps.roster.models import AcademicSession, InvitationBatch, RosterImport, RosterSource
from apps.vendors.models import Discrepancy, HeldMovement, OutboxItem, SyncedFee, TaskRun
from tests.factories import (
    ActivityFactory,
    CategoryFactory,
    GuardianFactory,
    MerchantAccountFactory,
    StudentListFactory,
    make_fee,
)
from tests.vendors.setup_pages import make_integration

pytestmark = pytest.mark.django_db

BAD_IDS = ["abc", "999999"]
PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")

#: Parameters that are not ids: a value that names a real page, so that only the id is bad.
#: A new page with another parameter fails `test_every_parameter_is_known` until it is added.
FIXED = {
    ("vendors_integration_section", "section"): "connection",
    ("vendors_integration_dashboard_action", "action"): "retry",
    ("vendors_integration_discrepancy", "action"): "resolve",
    ("vendors_heldmovement_act", "action"): "dismiss",
}


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern) and p.name and "<" in str(p.pattern):
            yield prefix + str(p.pattern), p.name


def _ours(route: str) -> bool:
    """A page of one of FeeSync's own apps (not Django's, auditlog's, celery-beat's ...)."""
    parts = route.split("/")
    return (
        len(parts) > 2
        and parts[0] == "admin"
        and parts[1] in {c.label for c in apps.get_app_configs() if c.name.startswith("apps.")}
    )


ROUTES = sorted(set(_walk(get_resolver().url_patterns)))
OURS = [(route, name) for route, name in ROUTES if _ours(route)]
THEIRS = [
    (route, name) for route, name in ROUTES if route.startswith("admin/") and not _ours(route)
]


@pytest.fixture
def world(district_admin: Any, settings: Any, tmp_path: Any) -> dict[str, int]:
    """One row of each FeeSync model a staff URL can name."""
    settings.FEESYNC_DOCUMENTS_ROOT = tmp_path / "documents"
    fee = make_fee(amount="50.00")
    payment_take(fee=fee, amount="10.00", method="cash", origin=Origin())
    GuardianFactory().students.add(fee.student)
    roster = StudentListFactory(school=fee.student.school)
    ActivityFactory(school=fee.student.school)
    assignment = assignment_create(
        student_list=roster,
        category=CategoryFactory(),
        merchant_account=MerchantAccountFactory(),
        description="Yearbook",
        amount="25.00",
        fee_date=dt.date(2026, 9, 1),
        origin=Origin(),
    )
    BulkJob.objects.create(assignment=assignment, action="assign", state="done")
    RosterImport.objects.create(file_name="roster.zip", content=b"", state="unreadable")
    InvitationBatch.objects.create(base_url="http://testserver/", state="done")
    RosterSource.objects.create(host="sis.example.org", username="sis", host_key="")
    AcademicSession.objects.create(
        sourced_id="y2026",
        title="2025-2026",
        kind="schoolYear",
        start_date=dt.date(2025, 8, 26),
        end_date=dt.date(2026, 6, 12),
        school_year=2026,
    )
    integration = make_integration()  # not enabled: opening a student asks no vendor
    now = timezone.now()
    OutboxItem.objects.create(integration=integration, fee=fee, version=1, next_attempt_at=now)
    SyncedFee.objects.create(
        integration=integration, fee=fee, acknowledged_version=1, acknowledged_at=now
    )
    TaskRun.objects.create(integration=integration, task="get-payments", started=now)
    finding = Discrepancy.objects.create(
        integration=integration,
        kind="missing_at_vendor",
        fee=fee,
        fee_ref=fee.reference,
        detail="x",
    )
    HeldMovement.objects.create(
        integration=integration,
        fee=fee,
        fee_ref=fee.reference,
        vendor_ref="P-HELD-1",
        kind="payment",
        amount=Decimal("5.00"),
        reason=HeldMovement.Reason.values[0],
        detail="held for the test",
    )
    # A real credit: a vendor took more than the other fee owed (the door keeps the rest).
    other = make_fee(student=fee.student, amount="5.00")
    movements_record(
        source=MovementSource("integration:test", "A vendor", LedgerEntry.Source.VENDOR),
        movements=[Movement("P-OVER-1", MovementKind.PAYMENT, other.reference, Decimal("8.00"))],
    )
    assert StudentCredit.objects.get(student=fee.student).amount == Decimal("3.00")
    # The parent portal's rows: the lockout, a shared document and its download log, an
    # activity open for sign-up and a sign-up.
    PortalLockout.current()
    document = StudentDocument.objects.create(
        student=fee.student, title="Report card", file=ContentFile(b"%PDF", name="card.pdf")
    )
    document_download(user=district_admin, document=document)
    offer = ActivityOffer.objects.create(
        activity=ActivityFactory(),
        title="Chess club",
        fee_description="Chess club fee",
        fee_amount=Decimal("15.00"),
        category=CategoryFactory(),
        merchant_account=MerchantAccountFactory(),
        opens_on=dt.date(2026, 9, 1),
    )
    ActivitySignup.objects.create(
        offer=offer, student=fee.student, fee=other, signed_up_by=district_admin
    )
    # The partner API's rows: an API user of a Partner API integration, its key, a call.
    from apps.fees.services.credit import manual_apply_flag
    from apps.partner_api.models import ApiCall
    from apps.partner_api.services import api_key_issue, api_user_create
    from apps.vendors.models import Integration

    partner = Integration.objects.create(
        vendor_kind="partnerapi", slug="partner-w", name="Partner", service_url="https://x.org/"
    )
    api_user = api_user_create(user=district_admin, integration=partner)
    api_key_issue(api_user=api_user, name="world")
    ApiCall.objects.create(integration=partner, api_user=api_user, operation="x", status_code=400)
    manual_apply_flag(entries=[LedgerEntry.objects.filter(kind="payment").first()])
    # Cashiering and fund sources (issue 14): one of each record, a session in a drawer.
    from apps.accounting import models as acc
    from apps.accounting.services.cashiering import session_open

    year = acc.AcademicYear.objects.create(
        code="2026-27", start_date=dt.date(2026, 8, 1), end_date=dt.date(2027, 7, 31)
    )
    period = acc.EnrollmentPeriod.objects.create(
        student=fee.student, school=fee.student.school, start_date=dt.date(2026, 8, 1)
    )
    acc.StudentAcademicYear.objects.create(
        student=fee.student, enrollment_period=period, academic_year=year, sequence=1
    )
    fund = acc.FundSource.objects.create(code="FAMILY", name="Family payments")
    acc.StudentAward.objects.create(
        student=fee.student, enrollment_period=period, fund_source=fund, award_year="2026-27"
    )
    bank = acc.Bank.objects.create(school=fee.student.school, name="First Riverside Bank")
    acc.BankAccount.objects.create(bank=bank, name="Deposits")
    drawer = acc.CashDrawer.objects.create(school=fee.student.school, name="Front office")
    session_open(drawer=drawer, cashier=district_admin)
    # The business office's rows (issue 14, refunds14): a refund, a receipt, a release.
    from apps.accounting.models import GLRelease, MiscCashReceipt, Refund

    Refund.objects.create(
        student=fee.student, amount=Decimal("1.00"), due_date=dt.date(2026, 9, 30)
    )
    MiscCashReceipt.objects.create(
        billing_code=CategoryFactory(usage="M"),
        amount=Decimal("20.00"),
        receipt_date=dt.date(2026, 9, 15),
        payment_type="C",
    )
    GLRelease.objects.create(business_date=dt.date(2026, 9, 1), file_name="gl-2026-09-01.csv")
    return {"integration": integration.pk, "discrepancy_id": finding.pk}


def _real_id(route: str, param: str, world: dict[str, int]) -> str:
    if param == "discrepancy_id":
        return str(world["discrepancy_id"])
    _, app_label, model_name, *_ = route.split("/")
    model = apps.get_model(app_label, model_name)
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None, f"add a {model.__name__} to the world fixture for {route}"
    return str(obj.pk)


def _url(route: str, values: dict[str, str]) -> str:
    def value(m: re.Match[str]) -> str:
        return values[m["name"]]

    return "/" + PARAM.sub(value, route)


def _ids(route: str) -> list[str]:
    return [m["name"] for m in PARAM.finditer(route) if m["name"].endswith("id")]


def _values(route: str, name: str, world: dict[str, int]) -> dict[str, str]:
    values = {p: _real_id(route, p, world) for p in _ids(route)}
    for m in PARAM.finditer(route):
        if m["name"] not in values:
            values[m["name"]] = FIXED[(name, m["name"])]
    return values


def test_every_parameter_is_known():
    for route, name in OURS:
        for m in PARAM.finditer(route):
            assert m["name"].endswith("id") or (name, m["name"]) in FIXED, (
                f"{route}: say in FIXED which {m['name']} names a real page"
            )


def test_the_list_covers_the_pages_of_the_issue():
    names = {name for _, name in OURS}
    assert {
        "students_student_change",
        "fees_feeassignment_make_list",
        "fees_feeassignment_assign",
        "fees_bulkjob_change",
        "fees_fee_pay",
        "vendors_integration_section",
        "vendors_integration_dashboard",
        "vendors_integration_discrepancy",
    } <= names


@pytest.mark.parametrize(("route", "name"), OURS, ids=[name for _, name in OURS])
@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_bad_id_in_a_staff_url_is_page_not_found(district_admin, world, route, name, bad):
    client = Client()
    client.force_login(district_admin)
    good = _values(route, name, world)
    for method in (client.get, client.post):
        # What the district admin may not do at all (delete a fee, post to a read-only
        # page) is refused whatever the id; everything else is a 404 for a bad id.
        refused_anyway = method(_url(route, good)).status_code == 403
        expected = 403 if refused_anyway else 404
        for param in _ids(route):
            url = _url(route, {**good, param: bad})
            # follow: `abc` where a number is expected falls through to the admin's own
            # "<id>/" → "<id>/change/" redirect, whose page is then not found.
            status = method(url, follow=True).status_code
            assert status == expected, (method.__name__.upper(), url, status)


def test_a_bad_integration_and_finding_in_one_url_is_page_not_found(district_admin, world):
    client = Client()
    client.force_login(district_admin)
    for integration, finding in [("abc", "1"), (str(world["integration"]), "999999")]:
        url = f"/admin/vendors/integration/{integration}/findings/{finding}/resolve/"
        assert client.post(url).status_code == 404, url
    assert Discrepancy.objects.get().resolved_at is None


@pytest.mark.parametrize("student", BAD_IDS + ["", "1e3", "-1", "99999999999999999999"])
def test_the_fee_form_for_a_bad_student_is_page_not_found(clerk, student):
    client = Client()
    client.force_login(clerk)

    response = client.get(reverse("admin:fees_fee_add") + f"?student={student}")

    assert response.status_code == 404


def test_the_fee_form_for_a_real_student_starts_with_that_student(clerk, world):
    client = Client()
    client.force_login(clerk)
    student = apps.get_model("students", "student").objects.get()

    response = client.get(reverse("admin:fees_fee_add") + f"?student={student.pk}")

    assert response.status_code == 200
    assert response.context["form"].initial["student"] == student.pk


@pytest.mark.parametrize(("route", "name"), THEIRS, ids=[name for _, name in THEIRS])
def test_a_bad_id_in_a_page_of_another_app_is_never_a_server_error(district_admin, route, name):
    """Django's and the packages' own admin pages keep their own answer (the admin's
    redirect to the index with "… doesn't exist"); what matters is that none fails."""
    client = Client()
    client.force_login(district_admin)
    for bad in BAD_IDS:
        url = "/" + PARAM.sub(bad, route)
        if "(?P" in url:
            continue
        assert client.get(url).status_code < 500, url
