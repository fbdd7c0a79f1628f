"""What a parent sees: their own students only, those students' fees, and what the district's
enabled payment vendors say about them (where to pay, lunch and vendor balances, locks).

Everything is read in a fixed number of queries whatever the number of children and fees:
the children with their fees (one prefetch), each fee's net payments (one query), their
credit on account (with the children), the enabled integrations with their categories, and the
lunch and vendor balances of those children (one query each). Nothing here calls a vendor:
the figures are the ones the background pulls last stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import F, Prefetch, QuerySet
from django.utils import timezone

from apps.fees.models import ZERO, Allocation, Fee, LedgerEntry, StudentCredit
from apps.students.models import Guardian, Student
from apps.vendors.models import Integration, LunchBalance, StudentVendorBalance
from apps.vendors.scope import Scope

from .sections import CHILD_SECTIONS, Section

Kind = LedgerEntry.Kind


# --- who may use the portal ---------------------------------------------------------------------


def guardian_for(*, user: Any) -> Guardian | None:
    """The guardian record of a signed-in parent; None for staff and for logins that are not
    linked to a guardian (they are not parents, whatever else they are)."""
    if not getattr(user, "is_authenticated", False) or user.is_staff:
        return None
    return Guardian.objects.filter(user=user).first()


# --- what the page shows ------------------------------------------------------------------------


@dataclass(frozen=True)
class FeeRow:
    fee: Fee
    paid: Decimal  # payments, net of refunds
    credited: Decimal  # everything else that lowered the balance: waivers, adjustments, voids
    overdue: bool
    payable_online: bool  # an enabled integration manages this fee


@dataclass(frozen=True)
class LunchLine:
    vendor: str
    balance: Decimal | None  # None: the vendor has not sent one yet
    fetched_at: datetime | None
    threshold: Decimal
    payment_url: str

    @property
    def low(self) -> bool:
        """Strictly under the district's threshold (a balance equal to it is not low)."""
        return self.balance is not None and self.balance < self.threshold


@dataclass(frozen=True)
class VendorBalanceLine:
    vendor: str
    balance: Decimal
    fetched_at: datetime
    message: str


@dataclass(frozen=True)
class PayButton:
    vendor: str
    text: str
    url: str


@dataclass(frozen=True)
class VendorLock:
    """A balance at a vendor that locks this child's lockable sections until it is paid."""

    vendor: str
    balance: Decimal
    fetched_at: datetime
    message: str
    pay: PayButton | None


@dataclass(frozen=True)
class PullLine:
    vendor: str
    pulled_at: datetime | None


@dataclass
class ChildFees:
    student: Student
    open_fees: list[FeeRow] = field(default_factory=list)
    history: list[FeeRow] = field(default_factory=list)
    due: Decimal = ZERO
    credit: Decimal = ZERO  # money paid beyond what fees owed, held on the child's account
    lunch: list[LunchLine] = field(default_factory=list)
    vendor_balances: list[VendorBalanceLine] = field(default_factory=list)
    locks: list[VendorLock] = field(default_factory=list)

    @property
    def locked(self) -> bool:
        return bool(self.locks)

    def section_locked(self, section: Section) -> bool:
        return section.lockable and self.locked

    @property
    def open_sections(self) -> list[Section]:
        return [s for s in CHILD_SECTIONS if not self.section_locked(s)]

    @property
    def locked_sections(self) -> list[Section]:
        return [s for s in CHILD_SECTIONS if self.section_locked(s)]


@dataclass
class PortalPage:
    guardian: Guardian
    children: list[ChildFees]
    total_due: Decimal
    pay_buttons: list[PayButton]
    messages: list[str]
    pulls: list[PullLine]
    today: date


def _net_payments(fee_ids: list[int]) -> dict[int, Decimal]:
    """Per fee: payments applied to it less what was refunded or reversed of them (the same
    sums as `apps.fees.services.credit_kind_totals` for payments), in one query."""
    if not fee_ids:
        return {}
    applied = (
        Allocation.objects.filter(debit__fee_id__in=fee_ids, credit__kind=Kind.PAYMENT)
        .order_by()  # a part of a UNION may not be ordered (SQLite refuses it)
        .values_list("debit__fee_id", "amount")
    )
    given_back = (
        LedgerEntry.objects.filter(
            fee_id__in=fee_ids, kind__in=[Kind.REFUND, Kind.REVERSAL], reverses__kind=Kind.PAYMENT
        )
        .order_by()
        .annotate(back=-F("amount"))
        .values_list("fee_id", "back")
    )
    paid: dict[int, Decimal] = {}
    for fee_id, amount in applied.union(given_back, all=True):
        paid[fee_id] = paid.get(fee_id, ZERO) + amount
    return paid


def _children(guardian: Guardian, student_id: int | None) -> list[Student]:
    fees = Fee.objects.select_related("category").order_by(
        F("due_date").asc(nulls_last=True), "fee_date", "pk"
    )
    qs: QuerySet[Student] = Student.objects.filter(guardians=guardian)
    if student_id is not None:
        qs = qs.filter(pk=student_id)
    return list(
        qs.select_related("school", "credit_account")  # the credit: no query of its own
        .prefetch_related(Prefetch("fees", queryset=fees))
        .order_by("first_name", "last_name", "pk")
    )


def _credit_of(student: Student) -> Decimal:
    try:
        account: StudentCredit = student.credit_account
    except StudentCredit.DoesNotExist:
        return ZERO
    return account.amount


#: What the page reads of an integration; the rest (credentials included) stays in the database.
PAGE_FIELDS = (
    "vendor_kind",
    "name",
    "import_after",
    "payments_pulled_at",
    "button_url",
    "button_text",
    "options",  # lunch and vendor-balance options, as the kind declares them
    "parent_message",
)


@dataclass(frozen=True)
class EnabledIntegration:
    integration: Integration
    scope: Scope  # decides on fees in memory, so a page of many fees costs no query per fee

    def covers(self, fee: Fee) -> bool:
        return self.scope.covers(fee)


def enabled_integrations() -> list[EnabledIntegration]:
    """The enabled integrations with their scopes, in two queries."""
    integrations = list(
        Integration.objects.filter(enabled=True).only(*PAGE_FIELDS).order_by("name", "pk")
    )
    scopes = Scope.of_each(integrations)
    return [EnabledIntegration(i, scopes[i.pk]) for i in integrations]


def pay_button(integration: Integration) -> PayButton | None:
    if not integration.button_url:
        return None
    return PayButton(
        vendor=integration.vendor_name,
        text=integration.parent_button_text,
        url=integration.button_url,
    )


def portal_page_for(*, guardian: Guardian, student_id: int | None = None) -> PortalPage:
    """The Fees and Fines page of one guardian (or of one of their children: `student_id`;
    the page then has no children if the student is not theirs)."""
    today = timezone.localdate()
    students = _children(guardian, student_id)
    enabled = enabled_integrations()
    integrations = [e.integration for e in enabled]
    ids = [s.pk for s in students]
    paid = _net_payments([fee.pk for student in students for fee in student.fees.all()])

    lunch_from = [i for i in integrations if i.show_lunch_balance]
    balance_from = [i for i in integrations if i.show_vendor_balance or i.lock_portal_on_balance]
    lunch: dict[tuple[int, int], LunchBalance] = {}
    if ids and lunch_from:
        lunch = {
            (b.integration_id, b.student_id): b
            for b in LunchBalance.objects.filter(
                student_id__in=ids, integration_id__in=[i.pk for i in lunch_from]
            )
        }
    vendor: dict[tuple[int, int], StudentVendorBalance] = {}
    if ids and balance_from:
        vendor = {
            (b.integration_id, b.student_id): b
            for b in StudentVendorBalance.objects.filter(
                student_id__in=ids, integration_id__in=[i.pk for i in balance_from]
            )
        }

    children: list[ChildFees] = []
    covering: set[int] = set()
    for student in students:
        child = ChildFees(student=student)
        for fee in student.fees.all():
            owed = fee.status == Fee.Status.OPEN
            # A disputed fee is not offered for payment, nor counted in what is due (nor,
            # so, in any lock), until the dispute ends.
            payable = owed and not fee.disputed
            managers = [e.integration for e in enabled if e.covers(fee)]
            if payable:
                covering.update(i.pk for i in managers)
            row = FeeRow(
                fee=fee,
                paid=paid.get(fee.pk, ZERO),
                credited=max(fee.amount - fee.balance - paid.get(fee.pk, ZERO), ZERO),
                overdue=payable and fee.due_date is not None and fee.due_date < today,
                payable_online=payable and any(i.button_url for i in managers),
            )
            (child.open_fees if owed else child.history).append(row)
        child.history.sort(key=lambda r: (r.fee.fee_date, r.fee.pk), reverse=True)
        child.due = sum((r.fee.balance for r in child.open_fees if not r.fee.disputed), ZERO)
        child.credit = _credit_of(student)
        for integration in lunch_from:
            lunch_got = lunch.get((integration.pk, student.pk))
            child.lunch.append(
                LunchLine(
                    vendor=integration.vendor_name,
                    balance=lunch_got.balance if lunch_got else None,
                    fetched_at=lunch_got.fetched_at if lunch_got else None,
                    threshold=integration.lunch_balance_threshold,
                    payment_url=integration.lunch_payment_url,
                )
            )
        for integration in balance_from:
            held = vendor.get((integration.pk, student.pk))
            if held is None:
                continue
            if integration.show_vendor_balance:
                child.vendor_balances.append(
                    VendorBalanceLine(
                        vendor=integration.vendor_name,
                        balance=held.balance,
                        fetched_at=held.fetched_at,
                        message=integration.balance_message,
                    )
                )
            if integration.lock_portal_on_balance and held.balance > 0:
                child.locks.append(
                    VendorLock(
                        vendor=integration.vendor_name,
                        balance=held.balance,
                        fetched_at=held.fetched_at,
                        message=integration.balance_message,
                        pay=pay_button(integration),
                    )
                )
        children.append(child)

    buttons = [b for i in integrations if i.pk in covering and (b := pay_button(i)) is not None]
    return PortalPage(
        guardian=guardian,
        children=children,
        total_due=sum((c.due for c in children), ZERO),
        pay_buttons=buttons,
        messages=[i.parent_message.strip() for i in integrations if i.parent_message.strip()],
        pulls=[PullLine(i.vendor_name, i.payments_pulled_at) for i in integrations],
        today=today,
    )


# --- the page cache ---------------------------------------------------------------------------
# Parents are the largest group of users and the Fees and Fines page is nearly all they
# load, often many at once (a reminder e-mail goes out). Its body is cached per parent under
# a fingerprint of everything money-related it shows, read in one query: the children linked
# to the parent, their fees (count and the sum of versions: every change to a fee raises its
# version), their credit on account (a refund of credit changes no fee), the balances
# fetched from the vendors, and the enabled integrations' settings and last pull. Any such
# change makes a new key, so money is never shown stale; names and similar details may lag
# by at most PORTAL_PAGE_CACHE_SECONDS.

_FINGERPRINT_SQL = """
WITH kids AS (SELECT student_id FROM students_guardian_students WHERE guardian_id = %(g)s)
SELECT
    (SELECT string_agg(student_id::text, ',' ORDER BY student_id) FROM kids),
    (SELECT COUNT(*)::text || '/' || COALESCE(SUM(version), 0)::text FROM fees_fee
        WHERE student_id IN (SELECT student_id FROM kids)),
    (SELECT COALESCE(SUM(amount), 0)::text || '/' || COALESCE(MAX(updated_at)::text, '')
        FROM fees_studentcredit WHERE student_id IN (SELECT student_id FROM kids)),
    (SELECT MAX(fetched_at)::text FROM vendors_lunchbalance
        WHERE student_id IN (SELECT student_id FROM kids)),
    (SELECT MAX(fetched_at)::text FROM vendors_studentvendorbalance
        WHERE student_id IN (SELECT student_id FROM kids)),
    (SELECT COUNT(*)::text || '/' || COALESCE(MAX(updated_at)::text, '') || '/'
            || COALESCE(MAX(payments_pulled_at)::text, '')
        FROM vendors_integration WHERE enabled)
"""


def fees_page_cache_key(*, guardian: Guardian) -> str | None:
    """The cache key of this parent's Fees and Fines body as things stand, or None where the
    page is not cached (SQLite, a development database)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(_FINGERPRINT_SQL, {"g": guardian.pk})
        row = cursor.fetchone()
    fingerprint = "|".join(str(v) for v in row) + f"|{timezone.localdate()}"
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:32]
    return f"portal:fees:{guardian.pk}:{digest}"
