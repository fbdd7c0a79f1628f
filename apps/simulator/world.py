"""The simulated district: its students, categories, integrations wired to the sandboxes,
a partner-API user, and what the simulator itself did (the record the invariants compare
the ledger with)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.students.models import School, Student
from apps.vendors.models import Integration

from .clock import SimClock
from .parts import FILE_KINDS, Sandbox, WorkerLike

CENT = Decimal("0.01")
STUDENTS = 12


@dataclass
class ApiPosting:
    """A partner-API payment the vendor was told succeeded (201, or 200 as a replay)."""

    vendor_transaction_id: str
    amount: Decimal
    student_number: str


@dataclass
class World:
    """Everything one run holds. Its randomness is all in the plan (runner.plan_draw)."""

    seed: int
    clock: SimClock
    worker: WorkerLike
    sandboxes: dict[str, Sandbox]
    integrations: dict[str, Integration] = field(default_factory=dict)
    category_of: dict[str, FeeCategory] = field(default_factory=dict)  # vendor -> category
    staff_category: FeeCategory | None = None  # no vendor's
    account: MerchantAccount | None = None
    students: list[Student] = field(default_factory=list)
    staff: Any = None
    api_key: str = ""
    partner: Integration | None = None
    fee_ids: list[int] = field(default_factory=list)
    api_postings: list[ApiPosting] = field(default_factory=list)
    plan_ids: list[int] = field(default_factory=list)
    #: File exchange: transaction ids the simulator put in broken result files (malformed,
    #: half-written, a bad amount), which FeeSync must not post, and their fees.
    broken_ids: set[str] = field(default_factory=set)
    broken_refs: set[str] = field(default_factory=set)
    file_fault_pending: dict[str, str] = field(default_factory=dict)
    #: File exchange: the transaction ids of dispute and restore lines it wrote.
    file_line_ids: set[str] = field(default_factory=set)
    #: Fees that differ at the vendor where FeeSync left a finding for staff to decide.
    awaiting_staff: set[str] = field(default_factory=set)
    #: Staff's answers to findings (`operations.staff_decide`), by decision.
    staff_decisions: Counter[str] = field(default_factory=Counter)
    #: Fees staff kept owed after a refund at the vendor, and fees with a movement staff
    #: dismissed: the two sides may differ there by staff's decision (checks.check_vendor_fees).
    kept_owed: set[str] = field(default_factory=set)
    dismissed_refs: set[str] = field(default_factory=set)
    #: Fees that differ at the vendor after the settlement by one of those decisions.
    decided_by_staff: set[str] = field(default_factory=set)
    #: vendor -> the step at which its injected fault ends
    fault_until: dict[str, int] = field(default_factory=dict)
    worker_down_until: int | None = None
    faults: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    counter: int = 0
    #: Fees dated before this are outside every integration's scope.
    import_after: dt.date = dt.date(2026, 1, 1)

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.seed}-{self.counter}"


def world_build(
    *, seed: int, clock: SimClock, worker: WorkerLike, sandboxes: dict[str, Sandbox]
) -> World:
    """The district a run starts from (in an empty database)."""
    from apps.partner_api.services import api_key_issue, api_user_create

    world = World(seed=seed, clock=clock, worker=worker, sandboxes=sandboxes)
    world.import_after = clock.local().date() - dt.timedelta(days=30)
    school, _ = School.objects.get_or_create(code="SIM", defaults={"name": "Simulated High"})
    world.account, _ = MerchantAccount.objects.get_or_create(
        merchant_id="MID-SIM", defaults={"name": "Simulated fund"}
    )
    world.staff_category, _ = FeeCategory.objects.get_or_create(
        code="SIM-OFFICE", defaults={"description": "Paid at the office only"}
    )
    world.students = [
        Student.objects.create(
            student_number=f"{700000 + i}",
            first_name=f"Sim{i}",
            last_name="Student",
            grade="7",
            school=school,
            active=True,
            enrollment_date=dt.date(2025, 9, 2),
        )
        for i in range(STUDENTS)
    ]
    user_model = get_user_model()
    world.staff = user_model.objects.create_user(username="sim-clerk", is_staff=True)
    for kind, box in sandboxes.items():
        category, _ = FeeCategory.objects.get_or_create(
            code=f"SIM-{kind.upper()}"[:20], defaults={"description": f"Paid at {kind}"}
        )
        world.category_of[kind] = category
        options: dict[str, Any] = {}
        if kind in FILE_KINDS:
            options = {
                "transport": "local",
                "local_path": str(box.root),
                "outbound_dir": "outbound",
                "inbound_dir": "inbound",
                "item_types": f"{category.code} = 800000000001",
                "term": "2270",
            }
        integration = Integration(
            vendor_kind=kind,
            slug=f"{kind}-sim",
            name=f"Simulated {kind}",
            enabled=True,
            service_url=box.service_url,
            timeout_seconds=5,
            import_after=world.import_after,
            options=options,
        )
        integration.credentials = {
            "payschools": {"username": "feesync", "password": "sandbox-secret"},
            "communitypass": {"api_key": "sandbox-key"},
        }.get(kind, {})
        integration.save()
        integration.categories.set([category])
        world.integrations[kind] = integration
    world.partner = Integration.objects.create(
        vendor_kind="partnerapi",
        slug="partner-sim",
        name="Simulated partner",
        enabled=True,
        service_url="https://partner.example.org/",
    )
    api_user = api_user_create(
        user=user_model.objects.create_user(username="sim-partner", is_staff=True),
        integration=world.partner,
        groups=("API - Student Accounting", "API - Student Payment Plan"),
    )
    world.api_key = api_key_issue(api_user=api_user, name="simulator")[1]
    return world
