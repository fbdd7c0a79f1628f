"""Where each fee is paid, the family's vendor balance (once, counted once), the district's
lockout (threshold, categories, the Community Pass balance option) and the sections it
locks: Documents (downloads only by the student's guardians and district staff, each
logged) and Activity sign-up (charges the fee once, through the ledger, to the vendor)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.fees.models import Fee, LedgerEntry
from apps.fees.roles import FEES_CLERK
from apps.fees.services import Origin, payment_take
from apps.portal.models import (
    ActivityOffer,
    ActivitySignup,
    DocumentDownload,
    PortalLockout,
    StudentDocument,
)
from apps.portal.services import SignupRefused, activity_sign_up
from apps.vendors.models import OutboxItem, StudentVendorBalance
from tests.factories import (
    ActivityFactory,
    CategoryFactory,
    MerchantAccountFactory,
    StaffFactory,
    make_fee,
)

from .conftest import IN_SCOPE

pytestmark = pytest.mark.django_db
FEES = reverse("portal:fees")


@pytest.fixture(autouse=True)
def fresh_rule_cache(settings, tmp_path):
    settings.FEESYNC_DOCUMENTS_ROOT = tmp_path / "documents"
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def cp(make_integration):
    """Community Pass, collecting the "Activities" category, showing the family's balance."""
    activities = CategoryFactory(description="Activities")
    return make_integration(
        vendor_kind="communitypass",
        name="Community Pass demo",
        service_url="http://127.0.0.1:9/v1",
        button_url="https://cp.example.org/pay",
        categories=[activities],
        show_vendor_balance=True,
        balance_message="Pay your Community Pass balance online.",
        parent_message="Activity fees are paid at Community Pass.",
    )


def activities_of(integration):
    return integration.categories.get()


def vendor_balance(integration, student, balance: str) -> StudentVendorBalance:
    return StudentVendorBalance.objects.create(
        integration=integration, student=student, balance=balance, fetched_at=timezone.now()
    )


def lockout(**fields) -> PortalLockout:
    row = PortalLockout.current()
    categories = fields.pop("categories", None)
    for name, value in {
        "enabled": True,
        "locked_sections": ["documents", "activities"],
        **fields,
    }.items():
        setattr(row, name, value)
    row.save()
    if categories is not None:
        row.categories.set(categories)
    return row


def page_of(client: Client):
    return client.get(FEES).context["page"]


# --- item 12: where each fee is paid, and a total that counts each fee once -----------------


def test_each_fee_says_where_it_is_paid_with_its_own_button(
    make_family, parent_client, make_integration, cp
):
    books = CategoryFactory(description="Books")
    make_integration(
        name="PaySchools demo",
        categories=[books],
        button_url="https://ps.example.org/pay",
        parent_message="Book fees are paid at PaySchools.",
    )
    make_integration(  # collects nothing this family owes: its message must not show
        name="Other PaySchools",
        categories=[CategoryFactory(description="Transport")],
        parent_message="Bus passes are paid at the district office.",
    )
    family = make_family(1)
    child = family.children[0]
    make_fee(
        student=child, category=books, description="Workbook", amount="12.00", fee_date=IN_SCOPE
    )
    make_fee(
        student=child,
        category=activities_of(cp),
        description="Chess club",
        amount="30.00",
        fee_date=IN_SCOPE,
    )
    make_fee(student=child, description="Locker repair", amount="5.00", fee_date=IN_SCOPE)

    response = parent_client(family).get(FEES)
    page = response.context["page"]
    rows = {r.fee.description: r for r in page.children[0].open_fees}
    html = response.content.decode()

    assert (rows["Workbook"].vendor, rows["Workbook"].pay.url) == (
        "PaySchools",
        "https://ps.example.org/pay",
    )
    assert (rows["Chess club"].vendor, rows["Chess club"].pay.url) == (
        "Community Pass",
        "https://cp.example.org/pay",
    )
    assert rows["Locker repair"].vendor == "" and rows["Locker repair"].pay is None
    assert 'Pay<span class="visually-hidden"> Chess club at Community Pass' in html
    assert "At the school office" in html
    places = [(p.vendor, p.amount, p.fees) for p in page.pay_places]
    assert places == [
        ("Community Pass", Decimal("30.00"), 1),
        ("PaySchools", Decimal("12.00"), 1),
        ("", Decimal("5.00"), 1),
    ]
    # Each district message sits with its own vendor's button, only where it collects fees.
    assert "Message from the district about paying at PaySchools" in html
    assert "Book fees are paid at PaySchools." in html
    assert "Bus passes are paid at the district office." not in html
    assert page.total_due == Decimal("47.00")


def test_total_due_never_counts_a_fee_also_inside_the_vendor_balance(
    make_family, parent_client, cp
):
    family = make_family(1)
    child = family.children[0]
    make_fee(
        student=child,
        category=activities_of(cp),
        description="Chess club",
        amount="20.00",
        fee_date=IN_SCOPE,
    )
    vendor_balance(cp, child, "25.00")  # the chess club fee and a $5 charge kept only there

    response = parent_client(family).get(FEES)
    page = response.context["page"]
    html = response.content.decode()
    balance = page.vendor_balances[0]

    assert page.total_due == Decimal("20.00")
    assert (balance.balance, balance.listed, balance.only_there) == (
        Decimal("25.00"),
        Decimal("20.00"),
        Decimal("5.00"),
    )
    assert page.total_with_vendor_charges == Decimal("25.00")
    assert "(already in the total due)" in html and "(not in the total due)" in html
    assert "Everything owed, counted once: $25.00" in html


# --- item 13: the vendor balance is the family's ------------------------------------------


def test_vendor_balance_is_shown_once_for_the_family(make_family, parent_client, cp):
    family = make_family(3)
    a, b, c = family.children
    vendor_balance(cp, a, "0.00")
    vendor_balance(cp, b, "18.00")
    vendor_balance(cp, c, "0.00")

    response = parent_client(family).get(FEES)
    html = response.content.decode()

    assert [(v.vendor, v.balance) for v in response.context["page"].vendor_balances] == [
        ("Community Pass", Decimal("18.00"))
    ]
    assert html.count("Your family's balance at Community Pass") == 1
    assert html.count('class="card vendor-balance"') == 1  # not once per child at $0.00
    assert "Balance at Community Pass" not in html  # the old per-child figure
    assert html.count("Pay your Community Pass balance online.") == 1


def test_balance_message_only_while_something_is_owed(make_family, parent_client, cp):
    family = make_family(2)
    for child in family.children:
        vendor_balance(cp, child, "0.00")

    html = parent_client(family).get(FEES).content.decode()

    assert "Your family's balance at Community Pass" in html
    assert "Nothing is owed at Community Pass." in html
    assert "Pay your Community Pass balance online." not in html


def test_vendor_balance_hidden_unless_the_integration_shows_it(make_family, parent_client, cp):
    cp.show_vendor_balance = False
    cp.save()
    family = make_family(1)
    vendor_balance(cp, family.children[0], "42.00")

    assert "balance at Community Pass" not in parent_client(family).get(FEES).content.decode()


# --- item 14: the lockout test --------------------------------------------------------------


@pytest.mark.parametrize(
    ("owed", "threshold", "locked"),
    [
        ("25.00", "25.00", False),
        ("25.01", "25.00", True),
        ("0.01", "0.00", True),
        ("0.00", "0.00", False),
    ],
)
def test_lockout_is_strictly_above_the_threshold(
    make_family, parent_client, owed, threshold, locked
):
    lockout(threshold=Decimal(threshold))
    family = make_family(1)
    if Decimal(owed):
        make_fee(student=family.children[0], amount=owed, fee_date=IN_SCOPE)

    page = page_of(parent_client(family))

    assert (page.lock is not None) is locked
    assert all(c.locked is locked for c in page.children)


def test_lockout_counts_the_whole_family(make_family, parent_client):
    lockout(threshold=Decimal("20.00"))
    family = make_family(2)
    for child in family.children:
        make_fee(student=child, amount="15.00", fee_date=IN_SCOPE)

    page = page_of(parent_client(family))

    assert page.lock is not None and page.lock.owed == Decimal("30.00")
    assert page.lock.to_pay == Decimal("10.00")


def test_lockout_off_or_without_sections_locks_nothing(make_family, parent_client):
    family = make_family(1)
    make_fee(student=family.children[0], amount="90.00", fee_date=IN_SCOPE)
    client = parent_client(family)

    lockout(enabled=False)
    assert page_of(client).lock is None
    lockout(enabled=True, locked_sections=[])
    assert page_of(client).lock is None


def test_lockout_counts_only_the_chosen_categories(make_family, parent_client):
    fines, trips = CategoryFactory(description="Fines"), CategoryFactory(description="Trips")
    lockout(threshold=Decimal("10.00"), categories=[fines])
    family = make_family(1)
    child = family.children[0]
    make_fee(student=child, category=trips, amount="80.00", fee_date=IN_SCOPE)
    client = parent_client(family)

    assert page_of(client).lock is None  # $80 owed, none of it in a counted category

    make_fee(student=child, category=fines, amount="10.50", fee_date=IN_SCOPE)
    lock = page_of(client).lock
    assert lock is not None and lock.owed == Decimal("10.50") and lock.categories_limited


def test_community_pass_option_adds_its_balance_as_a_district_fee(make_family, parent_client, cp):
    lockout(threshold=Decimal("20.00"))
    family = make_family(1)
    child = family.children[0]
    make_fee(student=child, category=activities_of(cp), amount="10.00", fee_date=IN_SCOPE)
    vendor_balance(cp, child, "30.00")  # the $10 fee above and $20 kept only at Community Pass
    client = parent_client(family)

    assert page_of(client).lock is None  # the option is off: $10 of district fees

    cp.lock_portal_on_balance = True
    cp.save()
    lock = page_of(client).lock
    assert lock is not None
    # $10 of district fees and the $20 rest of the balance: the $10 fee is not counted twice.
    assert (lock.owed, lock.district, lock.at_vendors) == (
        Decimal("30.00"),
        Decimal("10.00"),
        (("Community Pass", Decimal("20.00")),),
    )


def test_the_vendor_option_alone_locks_nothing(make_family, parent_client, cp):
    cp.lock_portal_on_balance = True
    cp.save()
    family = make_family(1)
    vendor_balance(cp, family.children[0], "300.00")

    assert page_of(parent_client(family)).lock is None  # the district's lockout is off


def test_a_locked_family_still_sees_fees_and_fines_and_why(make_family, parent_client, cp):
    lockout(threshold=Decimal("5.00"), unlock_message="Call the office to set up a plan.")
    family = make_family(1)
    child = family.children[0]
    make_fee(
        student=child,
        category=activities_of(cp),
        description="Chess club",
        amount="30.00",
        fee_date=IN_SCOPE,
    )
    client = parent_client(family)
    documents = reverse("portal:section", args=[child.pk, "documents"])
    activities = reverse("portal:section", args=[child.pk, "activities"])

    html = client.get(FEES).content.decode()
    assert "Chess club" in html  # Fees and Fines is never locked
    assert "Documents and Activity sign-up are locked" in html
    assert "To unlock them, pay at least $25.00." in html
    assert "Call the office to set up a plan." in html
    assert documents not in html and activities not in html
    for url in (documents, activities):
        section = client.get(url).content.decode()
        assert "are locked" in section and "To unlock them" in section

    for fee in Fee.objects.filter(student=child):  # paid down to the threshold, at the office
        payment_take(fee=fee, amount=fee.balance - Decimal("5.00"), method="cash", origin=Origin())
    html = client.get(FEES).content.decode()
    assert "are locked" not in html and documents in html


# --- Documents ------------------------------------------------------------------------------


@pytest.fixture
def report_card(make_family):
    family = make_family(1)
    document = StudentDocument.objects.create(
        student=family.children[0],
        title="Report card, term 1",
        file=ContentFile(b"%PDF-1.4 report card", name="report-card.pdf"),
    )
    return family, document


def test_a_guardian_downloads_their_childs_document_and_it_is_logged(report_card, parent_client):
    family, document = report_card
    client = parent_client(family)
    url = reverse("portal:document", args=[document.student_id, document.pk])

    listing = client.get(reverse("portal:section", args=[document.student_id, "documents"]))
    assert "Report card, term 1" in listing.content.decode() and url in listing.content.decode()
    response = client.get(url)

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"%PDF-1.4 report card"
    assert "attachment" in response["Content-Disposition"]
    log = DocumentDownload.objects.get()
    assert (log.user, log.downloaded_as, log.document) == (family.user, "guardian", document)


def test_another_parent_cannot_download_it(report_card, make_family, parent_client):
    _, document = report_card
    other = make_family(1)
    client = parent_client(other)

    for url in (
        reverse("portal:document", args=[document.student_id, document.pk]),
        reverse("portal:document", args=[other.children[0].pk, document.pk]),
    ):
        assert client.get(url).status_code == 404
    assert not DocumentDownload.objects.exists()


def test_district_staff_download_it_in_the_staff_site_logged(report_card):
    _, document = report_card
    clerk = StaffFactory()
    clerk.groups.add(Group.objects.get(name=FEES_CLERK))
    client = Client()
    client.force_login(clerk)
    url = reverse("admin:portal_studentdocument_download", args=[document.pk])

    response = client.get(url)

    assert response.status_code == 200
    assert DocumentDownload.objects.get().downloaded_as == "staff"


def test_staff_without_the_documents_permission_cannot(report_card):
    _, document = report_card
    nobody = StaffFactory()  # staff, in no group
    client = Client()
    client.force_login(nobody)

    response = client.get(reverse("admin:portal_studentdocument_download", args=[document.pk]))

    assert response.status_code in (302, 403)
    assert not DocumentDownload.objects.exists()


def test_signed_out_visitors_are_sent_to_sign_in(report_card):
    _, document = report_card
    response = Client().get(reverse("portal:document", args=[document.student_id, document.pk]))
    assert response.status_code == 302 and "/portal/login/" in response["Location"]
    assert not DocumentDownload.objects.exists()


def test_a_locked_family_cannot_download(report_card, parent_client):
    family, document = report_card
    lockout(locked_sections=["documents"])
    make_fee(student=family.children[0], amount="9.00", fee_date=IN_SCOPE)

    response = parent_client(family).get(
        reverse("portal:document", args=[document.student_id, document.pk])
    )

    assert "Documents is locked" in response.content.decode()
    assert not DocumentDownload.objects.exists()


# --- Activity sign-up -----------------------------------------------------------------------


@pytest.fixture
def soccer(cp, make_family):
    family = make_family(1)
    offer = ActivityOffer.objects.create(
        activity=ActivityFactory(name="Soccer", school=family.children[0].school),
        title="Fall soccer",
        fee_description="Fall soccer fee",
        fee_amount=Decimal("45.00"),
        category=activities_of(cp),
        merchant_account=MerchantAccountFactory(),
        opens_on=timezone.localdate() - dt.timedelta(days=1),
    )
    return family, offer


def test_signing_up_charges_the_fee_once_through_the_ledger_to_the_vendor(soccer, cp):
    family, offer = soccer
    child = family.children[0]
    token = uuid.uuid4()

    first = activity_sign_up(offer=offer, student=child, user=family.user, token=token)
    again = activity_sign_up(offer=offer, student=child, user=family.user, token=token)
    other_tab = activity_sign_up(offer=offer, student=child, user=family.user, token=uuid.uuid4())

    assert first.created and not again.created and not other_tab.created
    fee = Fee.objects.get(student=child)
    assert (fee.description, fee.amount, fee.category_id) == (
        "Fall soccer fee",
        Decimal("45.00"),
        offer.category_id,
    )
    charge = LedgerEntry.objects.get(fee=fee)
    assert (charge.kind, charge.external_source, charge.created_by) == (
        "charge",
        "portal-signup",
        family.user,
    )
    assert ActivitySignup.objects.get().fee == fee
    assert child.activities.filter(pk=offer.activity_id).exists()
    # On its way to Community Pass, the vendor that collects the category.
    assert OutboxItem.objects.filter(integration=cp, fee=fee).exists()


def test_signing_up_in_the_portal_twice_charges_once(soccer, parent_client):
    family, offer = soccer
    child = family.children[0]
    client = parent_client(family)
    section = reverse("portal:section", args=[child.pk, "activities"])
    form = client.get(section).context["offers"][0][2]
    token = str(form.initial["token"])
    url = reverse("portal:sign_up", args=[child.pk, offer.pk])

    first = client.post(url, {"token": token}, follow=True)
    second = client.post(url, {"token": token}, follow=True)

    assert f"{child.first_name} is signed up for Fall soccer" in first.content.decode()
    assert "nothing more was charged" in second.content.decode()
    assert Fee.objects.filter(student=child).count() == 1
    assert "Signed up" in client.get(section).content.decode()


def test_sign_up_is_refused_while_closed_or_locked(soccer, parent_client):
    family, offer = soccer
    child = family.children[0]
    offer.closes_on = timezone.localdate() - dt.timedelta(days=1)
    offer.opens_on = offer.closes_on - dt.timedelta(days=5)
    offer.save()
    with pytest.raises(SignupRefused, match="closed on"):
        activity_sign_up(offer=offer, student=child, user=family.user, token=uuid.uuid4())

    offer.closes_on = None
    offer.save()
    lockout(locked_sections=["activities"])
    make_fee(student=child, amount="9.00", fee_date=IN_SCOPE)
    client = parent_client(family)
    url = reverse("portal:sign_up", args=[child.pk, offer.pk])
    response = client.post(url, {"token": str(uuid.uuid4())}, follow=True)

    assert "Activity sign-up is locked" in response.content.decode()
    assert not ActivitySignup.objects.exists()


def test_a_parent_cannot_sign_up_someone_elses_child(soccer, make_family, parent_client):
    family, offer = soccer
    other = make_family(1)
    url = reverse("portal:sign_up", args=[family.children[0].pk, offer.pk])

    assert parent_client(other).post(url, {"token": str(uuid.uuid4())}).status_code == 404
    assert not ActivitySignup.objects.exists()


def test_a_clerk_shares_a_document_in_the_staff_site(make_family, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    family = make_family(1)
    child = family.children[0]
    clerk = StaffFactory()
    clerk.groups.add(Group.objects.get(name=FEES_CLERK))
    client = Client()
    client.force_login(clerk)
    add = reverse("admin:portal_studentdocument_add")

    settings.FEESYNC_DOCUMENT_MAX_BYTES = 10
    too_big = client.post(
        add,
        {
            "student": child.pk,
            "title": "Letter",
            "file": SimpleUploadedFile("letter.pdf", b"%PDF-1.4 longer than ten bytes"),
        },
    )
    assert too_big.status_code == 200 and "the most is" in too_big.content.decode()
    assert not StudentDocument.objects.exists()

    settings.FEESYNC_DOCUMENT_MAX_BYTES = 1024
    response = client.post(
        add,
        {
            "student": child.pk,
            "title": "Letter about the trip",
            "file": SimpleUploadedFile("letter.pdf", b"%PDF-1.4 letter"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    document = StudentDocument.objects.get()
    assert (document.student, document.uploaded_by) == (child, clerk)
    assert document.file.read() == b"%PDF-1.4 letter"
    listing = parent_client_of(family).get(reverse("portal:section", args=[child.pk, "documents"]))
    assert "Letter about the trip" in listing.content.decode()


def parent_client_of(family) -> Client:
    client = Client()
    client.force_login(family.user)
    return client


def test_the_district_admin_sets_the_lockout_and_parents_see_it_at_once(
    district_admin, make_family, parent_client
):
    fines = CategoryFactory(description="Fines")
    family = make_family(1)
    make_fee(student=family.children[0], category=fines, amount="40.00", fee_date=IN_SCOPE)
    parent = parent_client(family)
    assert page_of(parent).lock is None  # off: the district has not set it up

    staff = Client()
    staff.force_login(district_admin)
    opened = staff.get(reverse("admin:portal_portallockout_changelist"), follow=True)
    assert "Sections to lock" in opened.content.decode()
    url = reverse("admin:portal_portallockout_change", args=[PortalLockout.current().pk])
    missing = staff.post(url, {"enabled": "on", "threshold": "25.00"})
    assert "Choose at least one section to lock" in missing.content.decode()
    saved = staff.post(
        url,
        {
            "enabled": "on",
            "threshold": "25.00",
            "categories": [fines.pk],
            "locked_sections": ["activities"],
            "unlock_message": "",
        },
    )
    assert saved.status_code == 302

    lock = page_of(parent).lock
    assert lock is not None and [s.slug for s in lock.sections] == ["activities"]
    assert lock.owed == Decimal("40.00") and lock.categories_limited
