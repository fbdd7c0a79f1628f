"""`manage.py seed_demo [--students N]`: a believable demo district, safe to run again.

What it builds (DESIGN.md, "Command contract"):

* three schools (Lincoln Elementary K-5, Washington Middle 6-8, Jefferson High 9-12) and
  N students (default 200) with realistic names, grades, enrollment dates, a few inactive;
* families: guardians with parent-portal logins `parent1`, `parent2`, ... each linked to
  their own children only; some families have two or more children, some children two
  guardians;
* the fee categories, the two merchant accounts (MIDs), a sport and a club with members,
  saved student lists (one dynamic list per school, one per activity, a grade list);
* fees assigned to those lists for every listed student, charged through
  `apps.fees.services.fees_create_bulk`, and for a bounded sample of students (the first
  200) single fees in every state (open, partly paid, paid by cash / check / card, waived,
  voided, refunded, closed at the vendor), posted through the ledger services, so the ledger
  is exactly what the product would have written and `manage.py ledger_check` passes;
* staff logins `admin` (group "District admin"), `clerk` ("Fees clerk") and `support`
  ("Support staff"). `admin` is *not* a superuser: the "District admin" group is given every
  permission by migration `fees.0003_staff_groups`, third-party apps (axes, auditlog,
  celery beat) included, so group permissions are enough and the demo shows the real
  permission model. Every login's password is `settings.DEMO_PASSWORD`.

Idempotent: everything is found again by a stable key (school code, student number,
username, category code, merchant ID, activity and list name, an assignment's list and
description, a sample fee's student, category and description) and only what is missing is
created, so a second run changes nothing. Running with a larger N later adds the students
(and families) beyond the first N; the random draws are made in a fixed order from a fixed
seed, so the first N students are the same whatever N is.

Fast for a large district: rows are inserted with `bulk_create` in batches, the demo
password is hashed once and that hash reused for every login, and list fees go through the
bulk ledger service; only the sample calls the per-fee services.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import Count, OuterRef, Subquery, Value
from django.db.models.functions import Concat
from django.utils import timezone

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.fees.models import Fee, FeeAssignment, LedgerEntry
from apps.fees.services import (
    Origin,
    assignment_create,
    fee_create,
    fee_void,
    fee_waive,
    fees_create_bulk,
    payment_refund,
    payment_take,
)
from apps.roster.demo import demo_roster_files, guardian_sid
from apps.roster.formats import read_roster
from apps.roster.services import roster_apply, roster_plan
from apps.students.models import (
    Activity,
    ActivityMembership,
    Guardian,
    School,
    Student,
    StudentList,
)
from apps.students.selectors import student_list_students

SEED = 20_250_901
BATCH = 2000
#: Students who get single fees posted through the per-fee services (payments, waivers ...).
SAMPLE = 200
FEE_CHUNK = 5000
FIRST_STUDENT_NUMBER = 1_000_001

# --- the district ---------------------------------------------------------------------------

GRADES = ["K", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]
SCHOOLS: list[tuple[str, str, tuple[str, ...]]] = [
    ("LES", "Lincoln Elementary School", ("K", "1", "2", "3", "4", "5")),
    ("WMS", "Washington Middle School", ("6", "7", "8")),
    ("JHS", "Jefferson High School", ("9", "10", "11", "12")),
]
SCHOOL_OF_GRADE = {g: code for code, _, grades in SCHOOLS for g in grades}

CATEGORIES = [
    ("ATH", "Athletics participation"),
    ("FIELDTRIP", "Field trip"),
    ("LIBFINE", "Library fine"),
    ("TEXTBOOK", "Lost or damaged textbook"),
    ("ACTIVITY", "Clubs and activities"),
    ("TECH", "Technology fee"),
    ("LUNCH", "School lunch balance"),
]
GENERAL_FUND = ("District General Fund", "MID-GEN-001")
ATHLETICS_FUND = ("Athletics & Activities", "MID-ATH-002")

#: username, group, first name, last name, what the login is for.
STAFF = [
    ("admin", "District admin", "Dana", "Whitfield", "district admin: everything in /admin/"),
    ("clerk", "Fees clerk", "Carlos", "Mendoza", "fees clerk: fees, payments, waivers, lists"),
    ("support", "Support staff", "Priya", "Natarajan", "support staff: setup read-only, tasks"),
]

#: name, school code, is_sport, share of the school's active students who join.
ACTIVITIES = [
    ("Jefferson Eagles Varsity Soccer", "JHS", True, 0.12),
    ("Washington Robotics Club", "WMS", False, 0.15),
]

GIRLS = (
    "Olivia Emma Charlotte Amelia Sophia Mia Isabella Ava Evelyn Harper Luna Camila Sofia "
    "Scarlett Elizabeth Eleanor Emily Chloe Mila Violet Penelope Gianna Aria Abigail Ella "
    "Avery Hazel Nora Layla Lily Aurora Nova Ellie Madison Grace Isla Willow Zoe Riley "
    "Stella Victoria Maya Naomi Leah Valentina Aaliyah Ximena Priya Mei Fatima Amara Keisha "
    "Hannah Lucia Ana Yasmin Sara Jasmine Imani Rosa Guadalupe Nadia Aisha"
).split()
BOYS = (
    "Liam Noah Oliver James Elijah Mateo Theodore Henry Lucas William Benjamin Levi "
    "Sebastian Jack Ezra Michael Daniel Leo Owen Samuel Hudson Alexander Asher Luca Ethan "
    "John David Jackson Joseph Mason Luke Matthew Julian Dylan Elias Jacob Maverick Gabriel "
    "Logan Aiden Thomas Isaac Miles Santiago Carlos Diego Andre Malik Jamal Omar Ahmed Wei "
    "Arjun Rohan Kenji Hiroshi Darius Xavier Marcus Tyrone Andres Javier Ibrahim Dmitri"
).split()
ADULTS_F = (
    "Jennifer Maria Jessica Sarah Ashley Michelle Amanda Melissa Stephanie Nicole Laura "
    "Angela Rebecca Kimberly Rachel Lisa Patricia Monica Tanya Erica Latoya Veronica "
    "Carmen Sunita Lin Yolanda Denise Heather Christina Tiffany"
).split()
ADULTS_M = (
    "Michael Christopher Matthew Joshua David James Daniel Robert John Joseph Jason Brian "
    "Kevin Anthony Eric Jose Juan Luis Steven Andrew Mark Derek Marcus Raj Tuan Ahmed "
    "Terrence Victor Paul Gregory"
).split()
SURNAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter "
    "Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart "
    "Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed "
    "Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray "
    "Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez "
    "O'Brien Chen Wang Singh Okafor Kowalski Nakamura Haddad Novak Schmidt Rossi Dubois"
).split()
STREETS = (
    "Maple Oak Elm Cedar Pine Walnut Chestnut Birch Willow Spruce Park Lake Hill Washington "
    "Lincoln Jefferson Madison Franklin Highland Ridge Meadow Sunset River Church Mill"
).split()
STREET_KINDS = ["St", "Ave", "Rd", "Ln", "Dr", "Ct", "Way"]
TOWN = "Riverside"


@dataclass
class PlannedStudent:
    number: str
    first_name: str
    last_name: str
    grade: str
    active: bool
    enrollment_date: date
    activity: str | None = None


@dataclass
class PlannedGuardian:
    username: str
    first_name: str
    last_name: str
    email: str
    phone: str
    address: str
    children: list[str] = field(default_factory=list)


@dataclass
class DistrictPlan:
    students: list[PlannedStudent]
    guardians: list[PlannedGuardian]


def school_year_start(today: date) -> date:
    """The first day of the school year `today` falls in (late August)."""
    year = today.year if today.month >= 8 else today.year - 1
    return date(year, 8, 26)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def plan_district(
    n: int, *, year_start: date, latest: date | None = None, seed: int = SEED
) -> DistrictPlan:
    """Draw N students in families, with their guardians, from one seeded random stream.

    Families are drawn one after another and every family makes the same draws whatever N
    is, so the plan for N students is a prefix of the plan for more (the last family may be
    cut short). Guardian usernames are numbered in family order: parent1, parent2, ...
    No enrollment date is later than `latest` (default: the first day of the year)."""
    latest = latest or year_start
    rng = random.Random(seed)
    students: list[PlannedStudent] = []
    guardians: list[PlannedGuardian] = []
    activity_of_school = {school: (name, share) for name, school, _, share in ACTIVITIES}
    started: set[str | None] = {None}
    while len(students) < n:
        size = rng.choices([1, 2, 3, 4], weights=[52, 32, 12, 4])[0]
        surname = rng.choice(SURNAMES)
        grades = sorted(rng.sample(range(len(GRADES)), size), reverse=True)
        children: list[PlannedStudent] = []
        for grade_index in grades:
            grade = GRADES[grade_index]
            first = rng.choice(GIRLS if rng.random() < 0.5 else BOYS)
            active = rng.random() >= 0.04
            kindergarten = year_start.replace(year=year_start.year - grade_index)
            if rng.random() < 0.2:  # moved into the district after kindergarten
                enrolled = kindergarten + timedelta(days=rng.randint(30, 365 * grade_index + 250))
            else:
                enrolled = kindergarten + timedelta(days=rng.randint(0, 6))
            joins = rng.random()
            activity, share = activity_of_school.get(SCHOOL_OF_GRADE[grade], (None, 0.0))
            if activity not in started:  # every activity has members, however small N is
                joins, share = 0.0, 1.0 if active else 0.0
                if active:
                    started.add(activity)
            children.append(
                PlannedStudent(
                    number=str(FIRST_STUDENT_NUMBER + len(students) + len(children)),
                    first_name=first,
                    last_name=surname,
                    grade=grade,
                    active=active,
                    enrollment_date=min(enrolled, latest),
                    activity=activity if active and joins < share else None,
                )
            )
        children = children[: n - len(students)]
        students.extend(children)
        two_guardians = rng.random() < 0.35
        street = f"{rng.randint(10, 9899)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}"
        for i in range(2 if two_guardians else 1):
            female = (i == 0) == (rng.random() < 0.7)
            first = rng.choice(ADULTS_F if female else ADULTS_M)
            last = surname if rng.random() < 0.85 else rng.choice(SURNAMES)
            k = len(guardians) + 1
            guardians.append(
                PlannedGuardian(
                    username=f"parent{k}",
                    first_name=first,
                    last_name=last,
                    email=f"{_slug(first)}.{_slug(last)}{k}@example.org",
                    phone=f"(217) 555-01{rng.randrange(100):02d}",
                    address=f"{street}, {TOWN}",
                    children=[c.number for c in children],
                )
            )
    return DistrictPlan(students=students, guardians=guardians)


# --- the sample's single fees: one per student, in every state the ledger knows ----------------


@dataclass(frozen=True)
class Scenario:
    """A single fee for one sample student and what happens to it afterwards."""

    name: str
    category: str
    description: str
    amount: Decimal
    fund: str
    then: Callable[[Fee, Origin, int], None]


def _nothing(fee: Fee, origin: Origin, i: int) -> None:
    """Left open: nothing paid yet."""


def _pay(amount: str | None, method: str) -> Callable[[Fee, Origin, int], None]:
    def then(fee: Fee, origin: Origin, i: int) -> None:
        payment_take(
            fee=fee,
            amount=amount or fee.balance,
            method=method,
            origin=origin,
            check_number=str(4100 + i) if method == LedgerEntry.Method.CHECK else "",
        )

    return then


def _waive(fee: Fee, origin: Origin, i: int) -> None:
    fee_waive(fee=fee, reason="Forgiven by the principal (family hardship).", origin=origin)


def _void(fee: Fee, origin: Origin, i: int) -> None:
    fee_void(
        fee=fee, reason="Charged in error: the book was found in the classroom.", origin=origin
    )


def _refund(fee: Fee, origin: Origin, i: int) -> None:
    payment = payment_take(
        fee=fee, amount=fee.balance, method=LedgerEntry.Method.CARD, origin=origin
    )
    payment_refund(payment=payment, reason="Camp cancelled; deposit returned.", origin=origin)


def _pay_and_waive(fee: Fee, origin: Origin, i: int) -> None:
    payment_take(fee=fee, amount="10.00", method=LedgerEntry.Method.CASH, origin=origin)
    fee_waive(fee=fee, reason="Approved for reduced-price meals.", origin=origin)


def _closed_at_vendor(fee: Fee, origin: Origin, i: int) -> None:
    """A parent paid part at the vendor, which reported the fee settled (reduced price)."""
    from apps.vendors.models import Integration

    integration = Integration.objects.get(slug="payschools-demo")
    vendor = Origin(
        source=LedgerEntry.Source.VENDOR,
        external_source=integration.external_source,
        external_id=f"PS-DEMO-{fee.reference}",
    )
    payment_take(
        fee=fee, amount="15.00", method=LedgerEntry.Method.ONLINE, origin=vendor, closed=True
    )


SCENARIOS = [
    Scenario("open", "LIBFINE", "Overdue library book", Decimal("4.50"), "GEN", _nothing),
    Scenario(
        "partly paid",
        "TEXTBOOK",
        "Lost textbook: Algebra I",
        Decimal("85.00"),
        "GEN",
        _pay("40.00", LedgerEntry.Method.CASH),
    ),
    Scenario(
        "paid cash",
        "LUNCH",
        "Lunch account balance",
        Decimal("12.75"),
        "GEN",
        _pay(None, LedgerEntry.Method.CASH),
    ),
    Scenario(
        "paid check",
        "FIELDTRIP",
        "Field trip: State Capitol",
        Decimal("22.00"),
        "GEN",
        _pay(None, LedgerEntry.Method.CHECK),
    ),
    Scenario(
        "paid card",
        "ACTIVITY",
        "Yearbook",
        Decimal("45.00"),
        "ATH",
        _pay(None, LedgerEntry.Method.CARD),
    ),
    Scenario("waived", "LIBFINE", "Damaged library book", Decimal("15.00"), "GEN", _waive),
    Scenario("voided", "TEXTBOOK", "Lost textbook: Earth Science", Decimal("60.00"), "GEN", _void),
    Scenario("refunded", "ACTIVITY", "Summer camp deposit", Decimal("50.00"), "ATH", _refund),
    Scenario(
        "paid and waived",
        "LUNCH",
        "Lunch account balance (reduced price)",
        Decimal("20.00"),
        "GEN",
        _pay_and_waive,
    ),
    Scenario(
        "closed at vendor",
        "FIELDTRIP",
        "Field trip: Aquarium",
        Decimal("30.00"),
        "GEN",
        _closed_at_vendor,
    ),
]

#: List fees: list key, category, fund, description, amount, days after the year starts.
LIST_FEES = [
    ("LES", "TECH", "GEN", "Classroom technology fee", Decimal("15.00"), 10),
    ("WMS", "TECH", "GEN", "Chromebook protection plan", Decimal("25.00"), 10),
    ("JHS", "TECH", "GEN", "Chromebook protection plan", Decimal("35.00"), 10),
    ("LES-4", "FIELDTRIP", "GEN", "Field trip: Science Center", Decimal("18.00"), 40),
    (
        "Jefferson Eagles Varsity Soccer",
        "ATH",
        "ATH",
        "Varsity soccer participation fee",
        Decimal("150.00"),
        20,
    ),
    ("Washington Robotics Club", "ACTIVITY", "ATH", "Robotics club dues", Decimal("40.00"), 25),
]


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _fileexchange_demo() -> tuple[str, str, str, str, dict[str, str], list[str], dict[str, Any]]:
    """`fileexchange-demo`: the school libraries' fines go to the financials sandbox as
    files over its SFTP (DESIGN.md: 8103, SFTP on 8104; FILEEXCHANGE_SANDBOX_URL and
    FILEEXCHANGE_SANDBOX_SFTP_PORT override), its demo host key pinned."""
    from apps.vendors.kinds.fileexchange.sandbox import (
        DEFAULT_PASSWORD,
        DEFAULT_USERNAME,
        host_key_line,
    )

    url = os.environ.get("FILEEXCHANGE_SANDBOX_URL", "http://127.0.0.1:8103")
    sftp_port = int(os.environ.get("FILEEXCHANGE_SANDBOX_SFTP_PORT", "8104"))
    return (
        "fileexchange-demo",
        "fileexchange",
        "Student financials (file exchange demo)",
        url,
        {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD},
        ["LIBFINE"],
        {
            "options": {
                "transport": "sftp",
                "host": "127.0.0.1",
                "port": sftp_port,
                "host_key": host_key_line(),
                "item_types": "LIBFINE = 800000000001",
                "term": "2270",
            },
            "parent_message": "Library fines are paid at the district's business office.",
        },
    )


class Command(BaseCommand):
    help = "Create (or complete) the demo district: schools, students, parents, fees, logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--students",
            type=int,
            default=200,
            help="How many students the district has (default 200).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        n: int = options["students"]
        if n < 1:
            raise CommandError("--students must be at least 1.")
        self.verbosity: int = options["verbosity"]
        self._hash: str | None = None
        self._started = time.perf_counter()
        missing = {g for _, g, *_ in STAFF} - set(
            Group.objects.filter(name__in=[g for _, g, *_ in STAFF]).values_list("name", flat=True)
        )
        if missing:
            raise CommandError(f"Staff groups {sorted(missing)} are missing: run migrate first.")
        today = timezone.localdate()
        self.year_start = year_start = school_year_start(today)
        self.today = today
        plan = plan_district(n, year_start=year_start, latest=today)
        self._step("planned the district")
        with transaction.atomic():
            staff = self._staff()
            student_ids = self._people_from_roster(plan)
            schools = self._schools()
            categories, funds = self._catalog()
            lists = self._activities_and_lists(plan, schools, student_ids)
            clerk = staff["clerk"]
            self._integrations(categories, funds)
            self._partner_api(categories, funds)
            self._business_office(schools, funds)  # issue 14: cashiering, fund sources
            self._list_fees(lists, categories, funds, clerk)
            self._sample_fees(plan, student_ids, categories, funds, clerk)
            self._portal(categories, funds)
            self._business_office_billing_codes(categories)  # issue 14, refunds14
        self._report(plan)

    # --- helpers -------------------------------------------------------------------------------

    # --- issue 14 (refunds14): billing codes for misc receipts and the GL export -------------

    def _business_office_billing_codes(self, categories: dict[str, FeeCategory]) -> None:
        """Every demo billing code gets a general-ledger account (kept if staff set one),
        and two codes for miscellaneous cash receipts (usage M) exist: a facility rental and
        a donation, so the misc-receipts API and the daily close have something to post."""
        for i, category in enumerate(sorted(categories.values(), key=lambda c: c.code)):
            if not category.gl_account:
                category.gl_account = f"4{100 + i * 10:03d}"
                category.save(update_fields=["gl_account"])
        for code, description, gl in [
            ("RENT", "Facility rental", "4900"),
            ("DONATION", "Donation", "4910"),
        ]:
            FeeCategory.objects.get_or_create(
                code=code,
                defaults={"description": description, "usage": "M", "gl_account": gl},
            )
        self._step("billing codes for misc receipts and the GL")

    def _step(self, what: str) -> None:
        if self.verbosity >= 2:
            self.stdout.write(f"  {time.perf_counter() - self._started:6.1f}s  {what}")

    def _password_hash(self) -> str:
        """The demo password, hashed once (PBKDF2 is slow on purpose) and reused."""
        if self._hash is None:
            self._hash = make_password(settings.DEMO_PASSWORD)
        return self._hash

    # --- reference data ------------------------------------------------------------------------

    def _staff(self) -> dict[str, AbstractBaseUser]:
        """The three staff logins, each staff (site access) and in its group; not superusers."""
        user_model = get_user_model()
        out: dict[str, AbstractBaseUser] = {}
        for username, group, first, last, _ in STAFF:
            user = user_model.objects.filter(username=username).first()
            if user is None:
                user = user_model.objects.create(
                    username=username,
                    first_name=first,
                    last_name=last,
                    email=f"{username}@riverside-schools.example.org",
                    is_staff=True,
                    password=self._password_hash(),
                )
            elif not user.is_staff:
                user.is_staff = True
                user.save(update_fields=["is_staff"])
            user.groups.add(Group.objects.get(name=group))
            out[username] = user
        self._step("staff logins")
        return out

    def _schools(self) -> dict[str, School]:
        out = {}
        for code, name, _ in SCHOOLS:
            out[code], _ = School.objects.get_or_create(code=code, defaults={"name": name})
        return out

    def _catalog(self) -> tuple[dict[str, FeeCategory], dict[str, MerchantAccount]]:
        categories = {}
        for code, description in CATEGORIES:
            categories[code], _ = FeeCategory.objects.get_or_create(
                code=code, defaults={"description": description}
            )
        funds = {}
        for key, (name, mid) in (("GEN", GENERAL_FUND), ("ATH", ATHLETICS_FUND)):
            funds[key], _ = MerchantAccount.objects.get_or_create(
                merchant_id=mid, defaults={"name": name}
            )
        return categories, funds

    # --- people --------------------------------------------------------------------------------

    def _people_from_roster(self, plan: DistrictPlan) -> dict[str, int]:
        """Schools, students, guardians and parent logins, imported through the roster
        importer (apps.roster) from a OneRoster 1.2 roster generated from the plan, so the
        demo takes the path a real district's SIS file takes. Student number -> id."""
        # A district seeded before the roster import existed: its parents are found again by
        # their login (parentN), its students by their number (the importer takes over
        # students with no SIS id that have the roster's student number).
        user_model = get_user_model()
        Guardian.objects.filter(
            sourced_id__isnull=True, user__username__startswith="parent"
        ).update(
            sourced_id=Concat(
                Value("demo-"),
                Subquery(user_model.objects.filter(pk=OuterRef("user_id")).values("username")),
            )
        )
        files = {
            name: text.encode()
            for name, text in demo_roster_files(
                students=plan.students,
                guardians=plan.guardians,
                schools=SCHOOLS,
                school_of_grade=SCHOOL_OF_GRADE,
                year_start=self.year_start,
            ).items()
        }
        roster = read_roster(files=files, name="demo roster")
        del files  # the roster holds what it needs
        roster_plan_ = roster_plan(roster=roster)
        if roster_plan_.refused:
            raise CommandError(f"The demo roster has refused rows: {roster_plan_.refused[:3]}")
        applied = roster_apply(
            plan=roster_plan_,
            username_for=lambda sid, email: sid.removeprefix("demo-"),
            password_hash=self._password_hash(),
        )
        # OneRoster has no postal address; the demo's families have one.
        addresses = {guardian_sid(g.username): g.address for g in plan.guardians}
        if connection.vendor == "postgresql":
            # One statement: bulk_update's CASE per row cost as much as the import itself.
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE students_guardian AS g SET address = v.address "
                    "FROM unnest(%s::varchar[], %s::varchar[]) AS v(sid, address) "
                    "WHERE g.sourced_id = v.sid AND g.address = ''",
                    [list(addresses), list(addresses.values())],
                )
        else:
            missing = list(Guardian.objects.filter(address="", sourced_id__in=list(addresses)))
            for guardian in missing:
                guardian.address = addresses[guardian.sourced_id or ""]
            Guardian.objects.bulk_update(missing, ["address"], batch_size=BATCH)
        counts = applied.counts
        self._step(
            f"roster import: {counts['students_added']} new students, "
            f"{counts['guardians_added']} new guardians, {applied.accounts_created} new logins"
        )
        return dict(Student.objects.values_list("student_number", "id"))

    def _activities_and_lists(
        self, plan: DistrictPlan, schools: dict[str, School], student_ids: dict[str, int]
    ) -> dict[str, StudentList]:
        """The sport and the club with their members; the saved lists fees are assigned to."""
        lists: dict[str, StudentList] = {}
        for code, school in schools.items():
            lists[code], _ = StudentList.objects.get_or_create(
                name=f"{school.name}: active students",
                defaults={"kind": StudentList.Kind.DYNAMIC, "school": school},
            )
        lists["LES-4"], _ = StudentList.objects.get_or_create(
            name=f"{schools['LES'].name}: grade 4",
            defaults={"kind": StudentList.Kind.DYNAMIC, "school": schools["LES"], "grade": "4"},
        )
        for name, code, is_sport, _ in ACTIVITIES:
            activity, _ = Activity.objects.get_or_create(
                name=name, defaults={"school": schools[code], "is_sport": is_sport}
            )
            members = [
                ActivityMembership(activity=activity, student_id=student_ids[s.number])
                for s in plan.students
                if s.activity == name
            ]
            ActivityMembership.objects.bulk_create(members, batch_size=BATCH, ignore_conflicts=True)
            lists[name], _ = StudentList.objects.get_or_create(
                name=f"{name}: roster",
                defaults={
                    "kind": StudentList.Kind.DYNAMIC,
                    "school": schools[code],
                    "activity": activity,
                },
            )
        self._step("activities and saved lists")
        return lists

    # --- fees ----------------------------------------------------------------------------------

    def _list_fees(
        self,
        lists: dict[str, StudentList],
        categories: dict[str, FeeCategory],
        funds: dict[str, MerchantAccount],
        clerk: AbstractBaseUser,
    ) -> None:
        """Assign each list fee to every student of its list who never had it (bulk service).

        Students who had it and saw it voided are not charged again, so a second run adds
        nothing even where the sample voided a list fee."""
        origin = Origin(user=clerk)
        created = 0
        for key, category, fund, description, amount, days in LIST_FEES:
            student_list = lists[key]
            assignment = FeeAssignment.objects.filter(
                student_list=student_list, description=description
            ).first()
            fee_date = min(self.year_start + timedelta(days=days), self.today)
            if assignment is None:
                assignment = assignment_create(
                    student_list=student_list,
                    category=categories[category],
                    merchant_account=funds[fund],
                    description=description,
                    amount=amount,
                    fee_date=fee_date,
                    due_date=fee_date + timedelta(days=30),
                    origin=origin,
                )
            ids = list(
                student_list_students(student_list=student_list)
                .exclude(pk__in=Fee.objects.filter(assignment=assignment).values("student_id"))
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            for chunk in _batches(ids, FEE_CHUNK):
                created += fees_create_bulk(assignment=assignment, student_ids=chunk, origin=origin)
        self._step(f"list fees: {created} new")

    def _sample_fees(
        self,
        plan: DistrictPlan,
        student_ids: dict[str, int],
        categories: dict[str, FeeCategory],
        funds: dict[str, MerchantAccount],
        clerk: AbstractBaseUser,
    ) -> None:
        """For the first SAMPLE students: one single fee each in a rotating state, and some
        payments on their list fees, all through the per-fee ledger services."""
        origin = Origin(user=clerk)
        sample = plan.students[:SAMPLE]
        students = Student.objects.in_bulk([student_ids[s.number] for s in sample])
        existing = set(
            Fee.objects.filter(student_id__in=list(students), assignment__isnull=True).values_list(
                "student_id", "category__code", "description"
            )
        )
        created = 0
        for i, planned in enumerate(sample):
            student = students[student_ids[planned.number]]
            scenario = SCENARIOS[i % len(SCENARIOS)]
            if (student.pk, scenario.category, scenario.description) in existing:
                continue
            fee_date = min(self.year_start + timedelta(days=15 + i % 60), self.today)
            fee = fee_create(
                student=student,
                category=categories[scenario.category],
                merchant_account=funds[scenario.fund],
                description=scenario.description,
                amount=scenario.amount,
                fee_date=fee_date,
                due_date=fee_date + timedelta(days=21),
                origin=origin,
            )
            scenario.then(fee, origin, i)
            created += 1
        # List fees of sample students that still have only their charge: some paid online
        # at the window by card, some part-paid in cash.
        untouched = (
            Fee.objects.filter(
                student_id__in=list(students), assignment__isnull=False, status=Fee.Status.OPEN
            )
            .annotate(n=Count("entries"))
            .filter(n=1)
            .order_by("student_id", "id")
        )
        paid = 0
        for fee in untouched:
            number = int(students[fee.student_id].student_number) - FIRST_STUDENT_NUMBER
            if number % 3 == 0:
                payment_take(
                    fee=fee, amount=fee.balance, method=LedgerEntry.Method.CARD, origin=origin
                )
                paid += 1
            elif number % 7 == 1 and fee.balance > Decimal("10.00"):
                payment_take(fee=fee, amount="10.00", method=LedgerEntry.Method.CASH, origin=origin)
                paid += 1
        self._step(f"sample fees: {created} new, {paid} list fees paid")

    # --- integrations ------------------------------------------------------------------------

    def _integrations(
        self, categories: dict[str, FeeCategory], funds: dict[str, MerchantAccount]
    ) -> None:
        """`payschools-demo`, `communitypass-demo` and `fileexchange-demo` (library
        fines), wired to the sandboxes (DESIGN.md ports,
        overridable by PAYSCHOOLS_SANDBOX_URL / COMMUNITYPASS_SANDBOX_URL). Both are enabled,
        for different categories: Community Pass takes activity fees, PaySchools the rest
        (so no fee is ever sent to both). Created once; staff changes are kept on re-runs."""
        from apps.vendors.models import Integration, MerchantAccountMapping
        from apps.vendors.registry import kinds

        registered = kinds()
        demos = [
            (
                "payschools-demo",
                "payschools",
                "PaySchools (demo)",
                os.environ.get("PAYSCHOOLS_SANDBOX_URL", "http://127.0.0.1:8101/soap"),
                {"username": "feesync", "password": "sandbox-secret"},
                [c for c in categories if c not in ("ACTIVITY", "LIBFINE")],
                {
                    "show_lunch_balance": True,
                    "sync_lunch_balance": True,
                    "lunch_balance_threshold": Decimal("5.00"),
                    "lunch_payment_url": "http://127.0.0.1:8101/_sandbox/",
                    "parent_message": "Fees can be paid online with PaySchools. Payments made "
                    "online appear here within minutes.",
                },
            ),
            (
                "communitypass-demo",
                "communitypass",
                "Community Pass (demo)",
                os.environ.get("COMMUNITYPASS_SANDBOX_URL", "http://127.0.0.1:8102"),
                {"api_key": "sandbox-key"},
                ["ACTIVITY"],
                {
                    "show_vendor_balance": True,
                    "balance_message": "Your Community Pass balance includes activity "
                    "registrations made directly with Community Pass.",
                },
            ),
        ]
        demos.append(_fileexchange_demo())
        for slug, kind, name, url, secrets, codes, options in demos:
            if kind not in registered or Integration.objects.filter(slug=slug).exists():
                continue
            base = url.removesuffix("/soap")
            integration = Integration(
                vendor_kind=kind,
                slug=slug,
                name=name,
                enabled=True,
                enabled_at=timezone.now(),
                service_url=url,
                import_after=self.year_start,
                # Library fines are paid through the financials office: no portal button.
                button_url="" if kind == "fileexchange" else f"{base}/_sandbox/",
                **options,
            )
            integration.credentials = secrets
            integration.save()
            integration.categories.set([categories[c] for c in codes])
            for fund in funds.values():
                MerchantAccountMapping.objects.create(
                    integration=integration, merchant_account=fund
                )
            if kind == "fileexchange":
                # Library fines moved to the file exchange: an older demo's PaySchools
                # integration lets go of them, so no fee goes to two vendors.
                for other in Integration.objects.exclude(pk=integration.pk):
                    other.categories.remove(categories["LIBFINE"])
        self._step("integrations")

    def _portal(
        self, categories: dict[str, FeeCategory], funds: dict[str, MerchantAccount]
    ) -> None:
        """The portal's lockout (families owing more than $150.00 lose Documents and Activity
        sign-up until they pay) and an activity open for sign-up, whose fee goes to
        Community Pass (it collects the ACTIVITY category)."""
        from apps.portal.models import ActivityOffer, PortalLockout

        lockout = PortalLockout.current()
        if not lockout.enabled and not lockout.locked_sections:
            lockout.enabled = True
            lockout.threshold = Decimal("150.00")
            lockout.locked_sections = ["documents", "activities"]
            lockout.unlock_message = "Questions? Call the business office."
            lockout.save()
        if "ACTIVITY" in categories and not ActivityOffer.objects.exists():
            activity = Activity.objects.filter(is_sport=False).order_by("pk").first()
            if activity is None:
                self._step("portal lockout")
                return
            ActivityOffer.objects.create(
                activity=activity,
                title=f"{activity.name} (spring sign-up)",
                details="Wednesdays after school, 3:15 to 4:45 pm, in the library.",
                fee_description=f"{activity.name} spring fee",
                fee_amount=Decimal("35.00"),
                category=categories["ACTIVITY"],
                merchant_account=next(iter(funds.values())),
                opens_on=self.year_start,
            )
        self._step("portal lockout and sign-up")

    def _partner_api(
        self, categories: dict[str, FeeCategory], funds: dict[str, MerchantAccount]
    ) -> None:
        """`partner-demo`: a vendor posting through the partner API, with the API user
        `partner` (the demo password, both API permission groups) and the application key
        PARTNER_DEMO_KEY. It may post charges in the technology-fee billing code, paid into
        the general fund. Created once; staff changes are kept on re-runs."""
        from apps.partner_api.models import ApiUser
        from apps.partner_api.services import api_key_issue, api_user_create
        from apps.vendors.models import Integration, MerchantAccountMapping
        from apps.vendors.registry import kinds

        if "partnerapi" not in kinds() or Integration.objects.filter(slug="partner-demo").exists():
            return
        integration = Integration.objects.create(
            vendor_kind="partnerapi",
            slug="partner-demo",
            name="Partner API (demo)",
            enabled=True,
            service_url="http://127.0.0.1:8000/api/docs/",
            import_after=self.year_start,
        )
        integration.categories.set([categories["TECH"]])
        MerchantAccountMapping.objects.create(
            integration=integration, merchant_account=funds["GEN"]
        )
        User = get_user_model()
        user, _ = User.objects.get_or_create(
            username="partner",
            defaults={
                "is_staff": True,
                "password": self._password_hash(),
                "first_name": "Demo partner",
            },
        )
        if not ApiUser.objects.filter(user=user).exists():
            api_user = api_user_create(
                user=user,
                integration=integration,
                groups=(
                    "API - Student Accounting",
                    "API - Student Payment Plan",
                    "API - Student Accounts",  # fund-source payments and the OData feeds
                ),
            )
            api_key_issue(api_user=api_user, name="demo key", key=settings.PARTNER_DEMO_KEY)
        self._step("partner API")

    # --- business office (issue 14: cashiering, payments to fund sources) ----------------------

    def _business_office(
        self, schools: dict[str, School], funds: dict[str, MerchantAccount]
    ) -> None:
        """Academic year, enrollment periods, fund sources, banks and bank accounts tied to
        the merchant accounts, cash drawers, and partner-demo's drawers with open sessions
        (apps.accounting.demo)."""
        from apps.accounting.demo import seed_business_office

        made = seed_business_office(year_start=self.year_start, schools=schools, funds=funds)
        self._step(f"business office: {made}")

    # --- output ------------------------------------------------------------------------------

    def _report(self, plan: DistrictPlan) -> None:
        elapsed = time.perf_counter() - self._started
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo district ready in {elapsed:.1f}s: {Student.objects.count()} students, "
                f"{Guardian.objects.count()} guardians, {Fee.objects.count()} fees."
            )
        )
        password = settings.DEMO_PASSWORD
        self.stdout.write(f"\nLogins (password for all: {password})")
        self.stdout.write("  staff site: /admin/")
        for username, _, _, _, what in STAFF:
            self.stdout.write(f"    {username:<10} {what}")
        self.stdout.write(
            f"  partner API: /api/docs/  (API user partner, or application key "
            f"{settings.PARTNER_DEMO_KEY})"
        )
        self.stdout.write(
            f"  parent portal: /portal/login/  "
            f"(parent1 … parent{len(plan.guardians)}, each sees only their own children)"
        )
        names = {s.number: f"{s.first_name} {s.last_name} (grade {s.grade})" for s in plan.students}
        shown = plan.guardians[:4]
        if all(len(g.children) < 3 for g in shown):  # also show a larger family
            shown += [g for g in plan.guardians[4:] if len(g.children) >= 3][:1]
        for g in shown:
            kids = ", ".join(names[c] for c in g.children)
            self.stdout.write(f"    {g.username:<10} {g.first_name} {g.last_name}: {kids}")
