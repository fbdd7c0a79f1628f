"""What a parent sees: their own students only, those students' fees, and what the district's
enabled payment vendors say about them (where to pay, lunch and vendor balances, locks).

Everything is read in a fixed number of queries whatever the number of children and fees:
the children with their fees (one prefetch), each fee's net payments (one query), their
credit on account (with the children), the enabled integrations with their categories, and the
lunch and vendor balances of those children (one query each); the district's lockout rule
comes from the cache. Nothing here calls a vendor: the figures are the ones the pulls (at
sign-in, in the background, nightly) last stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import F, Prefetch, QuerySet
from django.utils import timezone

from apps.fees.models import ZERO, Allocation, Fee, LedgerEntry, StudentCredit
from apps.students.models import Guardian, Student
from apps.vendors.models import Integration, LunchBalance, StudentVendorBalance
from apps.vendors.scope import Scope

from .models import ActivityOffer, ActivitySignup, PortalLockout, StudentDocument
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
class PayButton:
    vendor: str
    text: str
    url: str


@dataclass(frozen=True)
class FeeRow:
    fee: Fee
    paid: Decimal  # payments, net of refunds
    credited: Decimal  # everything else that lowered the balance: waivers, adjustments, voids
    overdue: bool
    vendor: str  # the vendor that collects this fee ("": none, it is paid at the school office)
    integration_id: int | None  # the integration of that vendor
    pay: PayButton | None  # that vendor's pay button, where it has one

    @property
    def payable_online(self) -> bool:
        return self.pay is not None


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
class FamilyVendorBalance:
    """The family's account at a vendor (its patron balance): the sum of what the vendor's
    Get Balances reported for each of the family's children, shown once for the family.

    `listed` is the part of it that is fees FeeSync sent there and the page lists (already in
    the total due); `only_there` the rest, charges kept only at the vendor (not in it)."""

    vendor: str
    integration_id: int
    balance: Decimal
    listed: Decimal
    fetched_at: datetime
    message: str  # the district's balance message; "" when nothing is owed there
    pay: PayButton | None
    shown: bool  # the integration shows it to parents (it may only count for lockout)
    counts_for_lockout: bool

    @property
    def only_there(self) -> Decimal:
        return max(self.balance - self.listed, ZERO)

    @property
    def owed(self) -> bool:
        return self.balance > 0


@dataclass(frozen=True)
class PayPlace:
    """Where part of the family's total due is paid: a vendor (with its pay button and the
    district's message about paying there) or, `vendor` empty, the school office."""

    vendor: str
    amount: Decimal
    fees: int
    button: PayButton | None
    message: str


@dataclass(frozen=True)
class LockoutRule:
    """The district's lockout settings as the page needs them (models.PortalLockout)."""

    enabled: bool = False
    threshold: Decimal = ZERO
    category_ids: frozenset[int] = frozenset()
    sections: frozenset[str] = frozenset()
    unlock_message: str = ""

    def counts(self, fee: Fee) -> bool:
        return not self.category_ids or fee.category_id in self.category_ids


@dataclass(frozen=True)
class FamilyLock:
    """Why some sections are locked for this family, and how to unlock them."""

    owed: Decimal  # what the lockout test counted
    threshold: Decimal
    district: Decimal  # of which open district fees (in the counted categories)
    at_vendors: tuple[tuple[str, Decimal], ...]  # and balances at vendors, beyond those fees
    sections: tuple[Section, ...]
    categories_limited: bool
    unlock_message: str
    pay: tuple[PayButton, ...]

    @property
    def to_pay(self) -> Decimal:
        """How much must be paid for the family to be unlocked (owed down to the threshold)."""
        return self.owed - self.threshold


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
    lock: FamilyLock | None = None

    @property
    def locked(self) -> bool:
        return self.lock is not None

    def section_locked(self, section: Section) -> bool:
        return self.lock is not None and section in self.lock.sections

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
    total_due: Decimal  # open district fees of every child, each counted once
    pay_places: list[PayPlace]
    vendor_balances: list[FamilyVendorBalance]
    lock: FamilyLock | None
    pulls: list[PullLine]
    today: date

    @property
    def pay_buttons(self) -> list[PayButton]:
        return [p.button for p in self.pay_places if p.button is not None]

    @property
    def total_with_vendor_charges(self) -> Decimal:
        """Everything the family owes: the total due plus the charges kept only at vendors
        (never the fees that are in both)."""
        return self.total_due + sum((b.only_there for b in self.vendor_balances), ZERO)

    def child(self, student_id: int) -> ChildFees | None:
        return next((c for c in self.children if c.student.pk == student_id), None)


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


def _children(guardian: Guardian) -> list[Student]:
    fees = Fee.objects.select_related("category").order_by(
        F("due_date").asc(nulls_last=True), "fee_date", "pk"
    )
    qs: QuerySet[Student] = Student.objects.filter(guardians=guardian)
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


# --- the district's lockout rule ------------------------------------------------------------
# Read on every portal page, changed a few times a year: kept in the cache (shared by every
# web process where CACHE_URL is set) so that the page costs no query for it, and dropped
# from the cache whenever the row or its categories change (apps/portal/signals.py).

LOCKOUT_CACHE_KEY = "portal:lockout-rule:v1"


def lockout_rule() -> LockoutRule:
    rule = cache.get(LOCKOUT_CACHE_KEY)
    if isinstance(rule, LockoutRule):
        return rule
    row = PortalLockout.objects.filter(pk=1).prefetch_related("categories").first()
    if row is None:
        rule = LockoutRule()
    else:
        rule = LockoutRule(
            enabled=row.enabled,
            threshold=row.threshold,
            category_ids=frozenset(c.pk for c in row.categories.all()),
            sections=frozenset(row.locked_sections or []),
            unlock_message=row.unlock_message.strip(),
        )
    # A minute at most: where web processes do not share a cache (no CACHE_URL, several
    # processes) a change reaches the others within that, not only the one that saved it.
    cache.set(LOCKOUT_CACHE_KEY, rule, 60)
    return rule


def forget_lockout_rule() -> None:
    cache.delete(LOCKOUT_CACHE_KEY)


def family_lock(
    *,
    rule: LockoutRule,
    open_fees: list[FeeRow],
    balances: list[FamilyVendorBalance],
    buttons: list[PayButton],
) -> FamilyLock | None:
    """Genesis' lockout: the family's open district fees (only the rule's categories, where
    it names some), plus, for each vendor whose lockout option is on, the family's balance
    there as if it was a district fee, are more than the threshold. The part of a vendor
    balance that is district fees already counted is not counted twice."""
    sections = tuple(s for s in CHILD_SECTIONS if s.lockable and s.slug in rule.sections)
    if not rule.enabled or not sections:
        return None
    counted = [r for r in open_fees if rule.counts(r.fee)]
    district = sum((r.fee.balance for r in counted), ZERO)
    at_vendors: list[tuple[str, Decimal]] = []
    for b in balances:
        if not b.counts_for_lockout:
            continue
        inside = sum((r.fee.balance for r in counted if r.integration_id == b.integration_id), ZERO)
        if (extra := max(b.balance - inside, ZERO)) > 0:
            at_vendors.append((b.vendor, extra))
    owed = district + sum((a for _, a in at_vendors), ZERO)
    if owed <= rule.threshold:
        return None
    return FamilyLock(
        owed=owed,
        threshold=rule.threshold,
        district=district,
        at_vendors=tuple(at_vendors),
        sections=sections,
        categories_limited=bool(rule.category_ids),
        unlock_message=rule.unlock_message,
        pay=tuple(buttons),
    )


def portal_page_for(*, guardian: Guardian) -> PortalPage:
    """The Fees and Fines page of one guardian: every child (a child's own page picks one
    with `PortalPage.child`; the family's figures, vendor balances and lock are the same)."""
    today = timezone.localdate()
    students = _children(guardian)
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
    vendor_rows: list[StudentVendorBalance] = []
    if ids and balance_from:
        vendor_rows = list(
            StudentVendorBalance.objects.filter(
                student_id__in=ids, integration_id__in=[i.pk for i in balance_from]
            )
        )

    children: list[ChildFees] = []
    all_open: list[FeeRow] = []
    for student in students:
        child = ChildFees(student=student)
        for fee in student.fees.all():
            owed = fee.status == Fee.Status.OPEN
            # A disputed fee is not offered for payment, nor counted in what is due (nor,
            # so, in any lock), until the dispute ends.
            payable = owed and not fee.disputed
            manager = next((e.integration for e in enabled if e.covers(fee)), None)
            row = FeeRow(
                fee=fee,
                paid=paid.get(fee.pk, ZERO),
                credited=max(fee.amount - fee.balance - paid.get(fee.pk, ZERO), ZERO),
                overdue=payable and fee.due_date is not None and fee.due_date < today,
                vendor=manager.vendor_name if manager else "",
                integration_id=manager.pk if manager else None,
                pay=pay_button(manager) if manager and payable else None,
            )
            (child.open_fees if owed else child.history).append(row)
        child.history.sort(key=lambda r: (r.fee.fee_date, r.fee.pk), reverse=True)
        child.due = sum((r.fee.balance for r in child.open_fees if not r.fee.disputed), ZERO)
        child.credit = _credit_of(student)
        all_open.extend(r for r in child.open_fees if not r.fee.disputed)
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
        children.append(child)

    places = _pay_places(integrations, all_open)
    balances = _family_balances(balance_from, vendor_rows, all_open)
    lock = family_lock(
        rule=lockout_rule(),
        open_fees=all_open,
        balances=balances,
        buttons=[p.button for p in places if p.button is not None],
    )
    for child in children:
        child.lock = lock
    return PortalPage(
        guardian=guardian,
        children=children,
        total_due=sum((c.due for c in children), ZERO),
        pay_places=places,
        vendor_balances=balances,
        lock=lock,
        pulls=[PullLine(i.vendor_name, i.payments_pulled_at) for i in integrations],
        today=today,
    )


def _pay_places(integrations: list[Integration], open_fees: list[FeeRow]) -> list[PayPlace]:
    """Where the total due is paid: each vendor that collects some of the open fees (with
    its button and the district's message about it, so that neither can speak of fees the
    other does not collect), then the school office for the fees no vendor collects."""
    places: list[PayPlace] = []
    for integration in integrations:
        rows = [r for r in open_fees if r.integration_id == integration.pk]
        if not rows:
            continue
        places.append(
            PayPlace(
                vendor=integration.vendor_name,
                amount=sum((r.fee.balance for r in rows), ZERO),
                fees=len(rows),
                button=pay_button(integration),
                message=integration.parent_message.strip(),
            )
        )
    office = [r for r in open_fees if r.integration_id is None]
    if office:
        places.append(
            PayPlace(
                vendor="",
                amount=sum((r.fee.balance for r in office), ZERO),
                fees=len(office),
                button=None,
                message="",
            )
        )
    return places


def _family_balances(
    integrations: list[Integration],
    rows: list[StudentVendorBalance],
    open_fees: list[FeeRow],
) -> list[FamilyVendorBalance]:
    out: list[FamilyVendorBalance] = []
    for integration in integrations:
        mine = [r for r in rows if r.integration_id == integration.pk]
        if not mine:
            continue  # never fetched: nothing to say yet
        balance = sum((r.balance for r in mine), ZERO)
        listed = sum((r.fee.balance for r in open_fees if r.integration_id == integration.pk), ZERO)
        out.append(
            FamilyVendorBalance(
                vendor=integration.vendor_name,
                integration_id=integration.pk,
                balance=balance,
                listed=min(listed, balance),
                fetched_at=min(r.fetched_at for r in mine),
                message=integration.balance_message.strip() if balance > 0 else "",
                pay=pay_button(integration),
                shown=integration.show_vendor_balance,
                counts_for_lockout=integration.lock_portal_on_balance,
            )
        )
    return out


# --- the sections -------------------------------------------------------------------------


def documents_for(*, student: Student) -> list[StudentDocument]:
    """The documents shared with this student's guardians, newest first."""
    return list(StudentDocument.objects.filter(student=student).order_by("-uploaded_at", "-pk"))


def offers_for(*, student: Student, day: date) -> list[tuple[ActivityOffer, ActivitySignup | None]]:
    """The activities open for sign-up today that this student may join, each with the
    student's sign-up if there is one (signed up: the page says so instead of offering it)."""
    offers = [
        o
        for o in ActivityOffer.objects.select_related("activity").filter(opens_on__lte=day)
        if o.is_open(day) and o.admits(student)
    ]
    signups = {
        s.offer_id: s
        for s in ActivitySignup.objects.select_related("fee").filter(
            student=student, offer__in=offers
        )
    }
    return [(o, signups.get(o.pk)) for o in offers]


# --- the page cache ---------------------------------------------------------------------------
# Parents are the largest group of users and the Fees and Fines page is nearly all they
# load, often many at once (a reminder e-mail goes out). Its body is cached per parent under
# a fingerprint of everything money-related it shows, read in one query: the children linked
# to the parent, their fees (count and the sum of versions: every change to a fee raises its
# version), their credit on account (a refund of credit changes no fee), the balances
# fetched from the vendors, the enabled integrations' settings and last pull, and the
# district's lockout settings (they decide which sections the page offers). Any such
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
        FROM vendors_integration WHERE enabled),
    (SELECT updated_at::text FROM portal_portallockout WHERE id = 1)
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
