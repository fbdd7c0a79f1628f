"""The operations a simulation chooses among, one registry.

An operation is a name, a weight, and `run(world, params, step) -> str` (what happened, in
words, for the step log). `params` are random numbers drawn up front from the run's seed
(`a`, `b`: floats in [0, 1); `i`, `j`, `k`: large ints used modulo whatever list they pick
from), so the plan of a run depends on its seed only, never on the timing of the worker,
and any subset of a plan can be replayed (the shrinker does). An operation whose target does
not exist yet says so and changes nothing. Refusals the ledger states in words
(`ValidationError`) are outcomes, not failures; any other exception is a failure.

To add one: write `def op_x(world, p, step) -> str` and register it with `@operation(...)`.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connections
from rest_framework.test import APIClient

from apps.fees.models import Fee, LedgerEntry, StudentCredit
from apps.fees.services import (
    Origin,
    assignment_create,
    credit_apply,
    credit_refund,
    fee_change,
    fee_create,
    fee_void,
    fee_waive,
    fees_create_bulk,
    payment_refund,
    payment_take,
)
from apps.students.models import StudentList
from apps.vendors import engine, findings, tasks
from apps.vendors.jobs import pull_for_students, task_run
from apps.vendors.models import Discrepancy, HeldMovement
from apps.vendors.sandboxes.client import SandboxControlError
from apps.vendors.scope import Scope

from .parts import FILE_KINDS
from .world import CENT, World

Params = dict[str, Any]
RunFn = Callable[[World, Params, int], str]

PAYMENTS = "/api/student-accounting/ledger-payment-transactions"
PLANS = "/api/student-accounting/student-payment-plan"


class SimulationFailure(AssertionError):
    """An invariant broken, or an operation that failed in a way no user should see."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


@dataclass(frozen=True)
class Operation:
    name: str
    weight: float
    group: str  # staff, vendor, pull, api, fault, clock
    run: RunFn
    per_vendor: bool = False  # draws a vendor among the run's sandboxes
    #: Which of them: "any", "api" (pulled over an API: PaySchools, Community Pass) or
    #: "file" (the file exchange).
    vendor_kinds: str = "any"

    def vendors_among(self, vendors: list[str]) -> list[str]:
        if self.vendor_kinds == "api":
            return [v for v in vendors if v not in FILE_KINDS]
        if self.vendor_kinds == "file":
            return [v for v in vendors if v in FILE_KINDS]
        return list(vendors)


REGISTRY: dict[str, Operation] = {}


def operation(
    name: str, *, weight: float, group: str, per_vendor: bool = False, vendor_kinds: str = "any"
) -> Callable[[RunFn], RunFn]:
    def register(fn: RunFn) -> RunFn:
        REGISTRY[name] = Operation(
            name, weight, group, fn, per_vendor or vendor_kinds != "any", vendor_kinds
        )
        return fn

    return register


# --- helpers ----------------------------------------------------------------------------


def _origin(world: World) -> Origin:
    return Origin(user=world.staff)


def _money(value: Decimal | float) -> Decimal:
    return max(Decimal(str(value)).quantize(CENT), CENT)


def _part(amount: Decimal, fraction: float) -> Decimal:
    """Between a cent and all of `amount`."""
    return min(_money(amount * Decimal(str(round(0.05 + 0.9 * fraction, 4)))), amount)


def _fee(world: World, p: Params, *, vendor: str | None = None) -> Fee | None:
    ids = world.fee_ids
    if vendor is not None:
        category = world.category_of[vendor]
        ids = list(
            Fee.objects.filter(pk__in=ids, category=category)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    if not ids:
        return None
    return Fee.objects.get(pk=ids[p["i"] % len(ids)])


def _refused(exc: ValidationError) -> str:
    return "refused: " + " ".join(exc.messages)[:120]


def _vendor(world: World, p: Params) -> str:
    return str(p["vendor"])


def _vendor_fee(world: World, vendor: str, p: Params) -> dict[str, Any] | None:
    """The vendor's record of one of the simulator's own fees for it, chosen from the
    simulator's list (the same choice on every replay, whatever the worker's timing). An
    API vendor that is not faulted gets a moment to receive it (deliveries take about a
    second); None if it does not hold it."""
    refs = list(
        Fee.objects.filter(pk__in=world.fee_ids, category=world.category_of[vendor])
        .order_by("pk")
        .values_list("reference", flat=True)
    )
    if not refs:
        return None
    ref = refs[p["i"] % len(refs)]
    box = world.sandboxes[vendor]
    can_wait = (
        vendor not in FILE_KINDS
        and vendor not in world.fault_until
        and world.worker_down_until is None
    )
    for _ in range(50 if can_wait else 1):
        held = next((f for f in box.state()["fees"] if f["fee_ref"] == ref), None)
        if held is not None or not can_wait:
            return held
        time.sleep(0.1)
    return None


def _at_vendor(world: World, vendor: str, *, foreign: bool = False) -> list[dict[str, Any]]:
    fees = world.sandboxes[vendor].state()["fees"]
    return sorted(
        (f for f in fees if bool(f.get("foreign")) == foreign), key=lambda f: f["fee_ref"]
    )


def _pull_task(vendor: str) -> str:
    return "import-payments" if vendor in FILE_KINDS else "get-payments"


def _file_written(world: World, vendor: str, answer: dict[str, Any], fee_ref: str) -> None:
    """A result file the file exchange just wrote: if the simulator broke it, its
    transaction id must never be posted (and that fee's figures differ for good)."""
    if vendor not in FILE_KINDS or world.file_fault_pending.pop(vendor, None) is None:
        return
    payment = answer.get("payment") or {}
    if payment.get("payment_id"):
        world.broken_ids.add(str(payment["payment_id"]))
    world.broken_refs.add(fee_ref)


# --- staff --------------------------------------------------------------------------------


@operation("fee_create", weight=14, group="staff")
def op_fee_create(world: World, p: Params, step: int) -> str:
    student = world.students[p["i"] % len(world.students)]
    # Mostly a vendor's fee (the money path), now and then one only the office takes.
    vendors = list(world.category_of.values())
    category = world.staff_category if p["k"] % 5 == 0 else vendors[p["k"] % len(vendors)]
    today = world.clock.local().date()
    if p["b"] < 0.1:  # before the integrations' import-after date: out of every scope
        fee_date = world.import_after - dt.timedelta(days=1 + p["j"] % 20)
    else:
        fee_date = today - dt.timedelta(days=p["j"] % 20)
    if category is None or world.account is None:
        raise RuntimeError("world_build makes the categories and the account")
    try:
        fee = fee_create(
            student=student,
            category=category,
            merchant_account=world.account,
            description=f"Sim fee {step}",
            amount=_money(5 + 145 * p["a"]),
            fee_date=fee_date,
            due_date=fee_date + dt.timedelta(days=30),
            origin=_origin(world),
        )
    except ValidationError as exc:
        return _refused(exc)
    world.fee_ids.append(fee.pk)
    return f"{fee.reference} ${fee.amount} {category.code} dated {fee_date}"


@operation("fee_change", weight=6, group="staff")
def op_fee_change(world: World, p: Params, step: int) -> str:
    fee = _fee(world, p)
    if fee is None:
        return "skipped: no fee"
    try:
        if p["a"] < 0.5:
            amount = _money(5 + 145 * p["b"])
            fee_change(fee=fee, amount=amount, origin=_origin(world), reason="simulated")
            return f"{fee.reference} amount -> ${amount}"
        if p["a"] < 0.8:
            fee_change(fee=fee, description=f"Sim fee {step} (changed)", origin=_origin(world))
            return f"{fee.reference} description"
        due = (fee.due_date or fee.fee_date) + dt.timedelta(days=1 + p["j"] % 10)
        fee_change(fee=fee, due_date=due, origin=_origin(world))
        return f"{fee.reference} due {due}"
    except ValidationError as exc:
        return _refused(exc)


@operation("fee_waive", weight=3, group="staff")
def op_fee_waive(world: World, p: Params, step: int) -> str:
    fee = _fee(world, p)
    if fee is None:
        return "skipped: no fee"
    amount = None if p["a"] < 0.5 or fee.balance <= 0 else _part(fee.balance, p["b"])
    try:
        fee_waive(fee=fee, reason="simulated", origin=_origin(world), amount=amount)
    except ValidationError as exc:
        return _refused(exc)
    return f"{fee.reference} waived {amount or 'all'}"


@operation("fee_void", weight=2, group="staff")
def op_fee_void(world: World, p: Params, step: int) -> str:
    fee = _fee(world, p)
    if fee is None:
        return "skipped: no fee"
    try:
        fee_void(fee=fee, reason="simulated", origin=_origin(world))
    except ValidationError as exc:
        return _refused(exc)
    return f"{fee.reference} voided"


@operation("bulk_assign", weight=2, group="staff")
def op_bulk_assign(world: World, p: Params, step: int) -> str:
    count = 2 + p["k"] % 5
    start = p["i"] % len(world.students)
    chosen = [world.students[(start + n) % len(world.students)] for n in range(count)]
    categories = [*world.category_of.values(), world.staff_category]
    category = categories[p["j"] % len(categories)]
    if category is None or world.account is None:
        raise RuntimeError("world_build makes the categories and the account")
    student_list = StudentList.objects.create(
        name=f"Sim list {world.next_id('L')}", kind=StudentList.Kind.FIXED
    )
    student_list.students.set(chosen)
    today = world.clock.local().date()
    try:
        assignment = assignment_create(
            student_list=student_list,
            category=category,
            merchant_account=world.account,
            description=f"Sim assignment {step}",
            amount=_money(5 + 95 * p["a"]),
            fee_date=today,
            due_date=today + dt.timedelta(days=14),
            origin=_origin(world),
        )
        made = fees_create_bulk(
            assignment=assignment, student_ids=[s.pk for s in chosen], origin=_origin(world)
        )
    except ValidationError as exc:
        return _refused(exc)
    world.fee_ids.extend(
        Fee.objects.filter(assignment=assignment).order_by("pk").values_list("pk", flat=True)
    )
    return f"{made} fees of ${assignment.amount} {category.code}"


@operation("office_payment", weight=6, group="staff")
def op_office_payment(world: World, p: Params, step: int) -> str:
    fee = _fee(world, p)
    if fee is None:
        return "skipped: no fee"
    if p["a"] < 0.15:  # more than is owed: the rest is the student's credit
        amount = fee.balance + _money(1 + 20 * p["b"])
    elif p["a"] < 0.5:
        amount = fee.balance
    else:
        amount = _part(fee.balance, p["b"]) if fee.balance > 0 else CENT
    try:
        payment_take(fee=fee, amount=amount, method="cash", origin=_origin(world))
    except ValidationError as exc:
        return _refused(exc)
    return f"{fee.reference} paid ${amount} at the office"


@operation("staff_refund", weight=3, group="staff")
def op_staff_refund(world: World, p: Params, step: int) -> str:
    payments = list(
        LedgerEntry.objects.filter(
            kind=LedgerEntry.Kind.PAYMENT, source=LedgerEntry.Source.STAFF, fee__isnull=False
        ).order_by("pk")
    )
    if not payments:
        return "skipped: no office payment"
    payment = payments[p["i"] % len(payments)]
    amount = None if p["a"] < 0.5 else _part(payment.amount, p["b"])
    try:
        payment_refund(payment=payment, reason="simulated", origin=_origin(world), amount=amount)
    except ValidationError as exc:
        return _refused(exc)
    return f"entry {payment.pk} refunded {amount or 'all'}"


@operation("credit_apply", weight=3, group="staff")
def op_credit_apply(world: World, p: Params, step: int) -> str:
    credits = list(StudentCredit.objects.filter(amount__gt=0).order_by("student_id"))
    if not credits:
        return "skipped: no credit"
    credit = credits[p["i"] % len(credits)]
    fees = list(
        Fee.objects.filter(student_id=credit.student_id, status=Fee.Status.OPEN).order_by("pk")
    )
    if not fees:
        return "skipped: no open fee"
    fee = fees[p["j"] % len(fees)]
    try:
        applied = credit_apply(student=credit.student, fee=fee, origin=_origin(world))
    except ValidationError as exc:
        return _refused(exc)
    return f"${applied} of credit applied to {fee.reference}"


@operation("credit_refund", weight=1, group="staff")
def op_credit_refund(world: World, p: Params, step: int) -> str:
    credits = list(StudentCredit.objects.filter(amount__gt=0).order_by("student_id"))
    if not credits:
        return "skipped: no credit"
    credit = credits[p["i"] % len(credits)]
    amount = _part(credit.amount, p["a"])
    try:
        credit_refund(
            student=credit.student, amount=amount, reason="simulated", origin=_origin(world)
        )
    except ValidationError as exc:
        return _refused(exc)
    return f"${amount} of credit refunded to student {credit.student_id}"


# --- staff decisions on findings (what a clerk answers on the integration's dashboard) -----


def open_findings(world: World) -> list[HeldMovement | Discrepancy]:
    """What waits for a clerk's decision, oldest first: movements held for staff, then
    refunds made at a vendor (the fee owed again)."""
    integrations = list(world.integrations.values())
    held: list[HeldMovement | Discrepancy] = list(
        HeldMovement.objects.filter(
            integration__in=integrations, status=HeldMovement.Status.OPEN
        ).order_by("pk")
    )
    refunds = Discrepancy.objects.filter(
        integration__in=integrations,
        kind=Discrepancy.Kind.REFUNDED_AT_VENDOR,
        resolved_at__isnull=True,
    ).order_by("pk")
    return held + list(refunds)


def staff_decide(world: World, finding: HeldMovement | Discrepancy, a: float) -> str:
    """A clerk answers one finding through the services the staff site calls, the answer
    chosen by `a` (from the seed): a held movement is applied to its fee, kept as the
    student's credit (a payment only: `movement_credit`) or dismissed with a note; after a
    refund at the vendor the fee is kept owed or the rest is waived. A refusal in words
    (`IntegrationError`, e.g. more than is owed) is the outcome."""
    user = world.staff
    try:
        if isinstance(finding, HeldMovement):
            what = f"{finding.kind} {finding.vendor_ref} on {finding.fee_ref}"
            payment = finding.kind == "payment"
            if a < 0.4:
                findings.held_movement_apply(held=finding, user=user)
                decision = "apply"
            elif a < 0.7 and payment:
                findings.held_movement_credit(held=finding, user=user)
                decision = "credit"
            else:
                findings.held_movement_dismiss(held=finding, user=user, note="simulated")
                world.dismissed_refs.add(finding.fee_ref)
                decision = "dismiss"
        else:
            what = f"refund {finding.vendor_ref} on {finding.fee_ref}"
            if a < 0.5:
                findings.refund_keep_owed(discrepancy=finding, user=user)
                world.kept_owed.add(finding.fee_ref)
                decision = "keep_owed"
            else:
                findings.refund_waive_rest(discrepancy=finding, user=user)
                decision = "waive_rest"
    except ValidationError as exc:
        world.staff_decisions["refused"] += 1
        return f"{what}: {_refused(exc)}"
    world.staff_decisions[decision] += 1
    return f"{what}: {decision}"


@operation("staff_decide", weight=3, group="staff")
def op_staff_decide(world: World, p: Params, step: int) -> str:
    waiting = open_findings(world)
    if not waiting:
        return "skipped: nothing waits for staff"
    return staff_decide(world, waiting[p["i"] % len(waiting)], p["a"])


# --- vendor side (a parent or the vendor's staff, at the sandbox) ---------------------------


@operation("vendor_pay", weight=8, group="vendor", per_vendor=True)
def op_vendor_pay(world: World, p: Params, step: int) -> str:
    vendor = _vendor(world, p)
    as_file = vendor in FILE_KINDS
    foreign = p["k"] % 10 == 0 and not as_file
    if foreign:
        fees = [f for f in _at_vendor(world, vendor, foreign=True) if Decimal(f["amount_due"]) > 0]
        found = fees[p["i"] % len(fees)] if fees else None
    else:
        found = _vendor_fee(world, vendor, p)
    if found is None or Decimal(found["amount_due"]) <= 0:
        return "skipped: nothing owed at the vendor"
    fee = found
    due = Decimal(fee["amount_due"])
    closed = False
    over = False
    if p["a"] < 0.1:
        amount, over = due + _money(1 + 10 * p["b"]), True
    elif p["a"] < 0.2 and not as_file:  # result files have no "closed"
        amount, closed = _part(due, p["b"]), True  # reduced price handled at the vendor
    elif p["a"] < 0.6:
        amount = due
    else:
        amount = _part(due, p["b"])
    try:
        paid = world.sandboxes[vendor].control.pay(
            fee["fee_ref"], amount, closed=closed, allow_over=over
        )
    except SandboxControlError as exc:
        return f"refused by the sandbox: {exc}"
    pid = (paid.get("payment") or {}).get("payment_id", "")
    _file_written(world, vendor, paid, fee["fee_ref"])
    return f"{fee['fee_ref']} paid ${amount}{' closed' if closed else ''} ({pid})"


@operation("vendor_refund", vendor_kinds="api", weight=3, group="vendor")
def op_vendor_refund(world: World, p: Params, step: int) -> str:
    vendor = _vendor(world, p)
    box = world.sandboxes[vendor]
    payments = [x for x in box.state()["payments"] if x["kind"] == "payment"]
    if not payments:
        return "skipped: no payment at the vendor"
    payment = payments[p["i"] % len(payments)]
    amount = (
        Decimal(payment["amount"]) if p["a"] < 0.5 else _part(Decimal(payment["amount"]), p["b"])
    )
    try:
        box.control.refund(payment["payment_id"], amount)
    except SandboxControlError as exc:
        return f"refused by the sandbox: {exc}"
    return f"{payment['payment_id']} refunded ${amount}"


@operation("vendor_waive", weight=2, group="vendor", per_vendor=True)
def op_vendor_waive(world: World, p: Params, step: int) -> str:
    vendor = _vendor(world, p)
    found = _vendor_fee(world, vendor, p)
    if found is None or Decimal(found["amount_due"]) <= 0:
        return "skipped: nothing owed at the vendor"
    fee = found
    amount = None if p["a"] < 0.6 else _part(Decimal(fee["amount_due"]), p["b"])
    try:
        done = world.sandboxes[vendor].control.waive(fee["fee_ref"], amount)
    except SandboxControlError as exc:
        return f"refused by the sandbox: {exc}"
    _file_written(world, vendor, done, fee["fee_ref"])
    return f"{fee['fee_ref']} waived {amount or 'all'} at the vendor"


@operation("vendor_void", vendor_kinds="api", weight=1, group="vendor")
def op_vendor_void(world: World, p: Params, step: int) -> str:
    vendor = _vendor(world, p)
    box = world.sandboxes[vendor]
    payments = [x for x in box.state()["payments"] if x["kind"] == "payment"]
    if not payments:
        return "skipped: no payment at the vendor"
    payment = payments[p["i"] % len(payments)]
    try:
        box.control.void(payment["payment_id"])
    except SandboxControlError as exc:
        return f"refused by the sandbox: {exc}"
    return f"{payment['payment_id']} voided at the vendor"


@operation("foreign_fee", vendor_kinds="api", weight=1, group="vendor")
def op_foreign_fee(world: World, p: Params, step: int) -> str:
    """A fee only the vendor has; now and then under the reference of one of FeeSync's fees
    that is not the vendor's to settle (another vendor's, the office's, dated before the
    import-after date: entered at the vendor by hand from an old list), paid there at once.
    The payment is held for staff (`staff_decide`)."""
    vendor = _vendor(world, p)
    student = world.students[p["i"] % len(world.students)]
    amount = _money(5 + 45 * p["a"])
    if p["k"] % 3 == 0:
        in_scope = Scope.of(world.integrations[vendor]).fees().values_list("pk", flat=True)
        held_refs = {f["fee_ref"] for f in world.sandboxes[vendor].state()["fees"]}
        others = [
            fee
            for fee in Fee.objects.filter(pk__in=world.fee_ids)
            .exclude(pk__in=in_scope)
            .select_related("student")
            .order_by("pk")
            if fee.reference not in held_refs
        ]
        if others:
            fee = others[p["j"] % len(others)]
            box = world.sandboxes[vendor].control
            box.foreign_fee(fee.student.student_number, amount, fee_ref=fee.reference)
            paid = amount if p["b"] < 0.5 else _part(amount, p["b"])
            box.pay(fee.reference, paid)  # and a parent pays it there at once
            return (
                f"a ${amount} fee only {vendor} has, as FeeSync's {fee.reference} (not its"
                f" own); ${paid} paid on it"
            )
    world.sandboxes[vendor].control.foreign_fee(student.student_number, amount)
    return f"a ${amount} fee only {vendor} has, for {student.student_number}"


# --- pulls, validation, deliveries -------------------------------------------------------


@operation("pull_nightly", weight=4, group="pull", per_vendor=True)
def op_pull_nightly(world: World, p: Params, step: int) -> str:
    vendor = _vendor(world, p)
    task = _pull_task(vendor)
    run = task_run(integration=world.integrations[vendor], task=task)
    return f"{task}: {run.outcome if run else 'not run'} {run.counts if run else ''}"


@operation("pull_student", vendor_kinds="api", weight=3, group="pull")
def op_pull_student(world: World, p: Params, step: int) -> str:
    student = world.students[p["i"] % len(world.students)]
    pull_for_students(
        integration=world.integrations[_vendor(world, p)],
        student_numbers=[student.student_number],
        trigger="fee page",
    )
    return f"pulled for {student.student_number}"


def _together(*calls: Callable[[], object]) -> list[BaseException]:
    """Run `calls` at the same moment in threads; return what they raised."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - reported to the step
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _vendor_errors_only(errors: list[BaseException], what: str) -> str:
    from apps.vendors.kinds.base import VendorError

    for exc in errors:
        if not isinstance(exc, VendorError):
            raise SimulationFailure("no operation crashes", f"{what}: {exc!r}") from exc
    return f"{what}: {len(errors)} vendor errors" if errors else f"{what}: both ran"


@operation("pull_twice_at_once", weight=2, group="pull", per_vendor=True)
def op_pull_twice_at_once(world: World, p: Params, step: int) -> str:
    integration = world.integrations[_vendor(world, p)]
    student = world.students[p["i"] % len(world.students)]
    numbers = [student.student_number] if p["a"] < 0.5 else None
    world.faults["two_pulls_at_once"] += 1

    def pull() -> None:
        if integration.vendor_kind in FILE_KINDS:  # two imports of the same files at once
            task_run(integration=integration, task="import-payments")
        else:
            engine.payments_pull(integration=integration, student_ids=numbers)

    return _vendor_errors_only(_together(pull, pull), "two pulls at once")


@operation("validate", weight=2, group="pull", per_vendor=True)
def op_validate(world: World, p: Params, step: int) -> str:
    vendor = _vendor(world, p)
    task = "validate-exports" if vendor in FILE_KINDS else "validate"
    run = task_run(integration=world.integrations[vendor], task=task)
    return f"{task}: {run.outcome if run else 'not run'} {run.counts if run else ''}"


@operation("nightly_twice", weight=1, group="fault", per_vendor=True)
def op_nightly_twice(world: World, p: Params, step: int) -> str:
    """Beat fires a nightly task twice: here for the simulated business date, and at the
    worker for its own (real) date."""
    integration = world.integrations[_vendor(world, p)]
    task = _pull_task(integration.vendor_kind) if p["a"] < 0.7 else "validate"
    if integration.vendor_kind in FILE_KINDS and task == "validate":
        task = "export-fees"
    day = world.clock.local().date()
    world.faults["nightly_twice"] += 1
    for _ in range(2):
        tasks.run_integration_task.delay(integration.pk, task, nightly=True)

    def nightly() -> None:
        task_run(integration=integration, task=task, trigger="schedule", business_date=day)

    return _vendor_errors_only(_together(nightly, nightly), f"nightly {task} twice for {day}")


@operation("duplicate_delivery", weight=2, group="fault", per_vendor=True)
def op_duplicate_delivery(world: World, p: Params, step: int) -> str:
    integration = world.integrations[_vendor(world, p)]
    world.faults["duplicate_delivery"] += 1
    if integration.vendor_kind in FILE_KINDS:  # the same changes exported twice

        def export() -> None:
            task_run(integration=integration, task="export-fees")

        if CONCURRENT_EXPORTS:
            return _vendor_errors_only(_together(export, export), "two exports at once")
        export()
        export()
        return "exported twice, one after the other"
    for _ in range(2):
        tasks.deliver_outbox.delay(integration.pk)
    return "two deliveries queued"


# --- the partner API (Django's test client over the real URLconf and auth) ------------------


def _api(world: World) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {world.api_key}")
    return client


def _api_answer(response: Any, what: str) -> dict[str, Any]:
    if response.status_code >= 500:
        raise SimulationFailure(
            "the partner API never answers 5xx", f"{what}: {response.status_code}"
        )
    return response.json() if response.content else {}


@operation("api_payment", weight=5, group="api")
def op_api_payment(world: World, p: Params, step: int) -> str:
    from apps.fees.models import PaymentPlan

    from .world import ApiPosting

    student = world.students[p["i"] % len(world.students)]
    vid = world.next_id("API")
    key = world.next_id("KEY")
    amount = _money(1 + 99 * p["a"])
    body: dict[str, Any] = {
        "StudentId": student.student_number,
        "TransactionAmount": str(amount),
        "TransactionDate": world.clock.local().strftime("%Y-%m-%dT00:00:00"),
        "PaymentType": "CreditCard",
        "Description": "Paid through the partner",
        "VendorTransactionId": vid,
    }
    plan = PaymentPlan.objects.filter(pk__in=world.plan_ids, student=student).order_by("pk").first()
    if plan is not None and p["k"] % 2 == 0:
        body.update(PaymentPlanId=plan.pk, UseNextScheduledPayment=True)
    client = _api(world)
    first = client.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    answer = _api_answer(first, "payment")
    if first.status_code not in (200, 201):
        return f"refused {first.status_code}: {str(answer)[:100]}"
    world.api_postings.append(ApiPosting(vid, amount, student.student_number))
    entry_id = answer["StudentAccountTransactionId"]
    said = f"{vid} ${amount}{' on plan' if 'PaymentPlanId' in body else ''}"
    if p["b"] < 0.3:  # the vendor's retry of the very same request
        world.faults["api_retry_same_key"] += 1
        again = client.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        replay = _api_answer(again, "retry")
        if again.status_code != first.status_code or replay != answer:
            raise SimulationFailure(
                "an Idempotency-Key replays its first answer",
                f"{vid}: {first.status_code} {answer} then {again.status_code} {replay}",
            )
        said += ", retried with the same key"
    elif p["b"] < 0.45:  # same transaction id, a new key: a replay by the vendor's id
        world.faults["api_same_transaction_id"] += 1
        again = client.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY=key + "-b")
        replay = _api_answer(again, "repeat")
        if replay.get("StudentAccountTransactionId") != entry_id:
            raise SimulationFailure(
                "a vendor transaction id is recorded once",
                f"{vid}: first entry {entry_id}, repeat answered {again.status_code} {replay}",
            )
        said += ", repeated with a new key"
    elif p["b"] < 0.55:  # same key, another body: refused
        world.faults["api_key_reused"] += 1
        other = {**body, "TransactionAmount": str(amount + 1)}
        again = client.post(PAYMENTS, other, format="json", HTTP_IDEMPOTENCY_KEY=key)
        _api_answer(again, "key reused")
        if again.status_code != 422:
            raise SimulationFailure(
                "an Idempotency-Key with another body is a 422",
                f"{vid}: answered {again.status_code}",
            )
        said += ", key reused with another body (422)"
    return said


@operation("api_plan", weight=2, group="api")
def op_api_plan(world: World, p: Params, step: int) -> str:
    from apps.fees.models import PaymentPlan

    student = world.students[p["i"] % len(world.students)]
    today = world.clock.local().date()
    count = 2 + p["k"] % 3
    schedule = [
        {
            "Amount": str(_money(10 + 40 * p["a"])),
            "ExpectedDate": (today + dt.timedelta(days=30 * (n + 1))).isoformat(),
        }
        for n in range(count)
    ]
    plan = PaymentPlan.objects.filter(pk__in=world.plan_ids, student=student).order_by("pk").first()
    client = _api(world)
    key = world.next_id("KEY")
    if plan is None or p["b"] < 0.3:
        body: dict[str, Any] = {
            "StudentId": student.student_number,
            "Description": "Simulated plan",
            "ScheduledPayments": schedule,
        }
        response = client.post(PLANS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        answer = _api_answer(response, "plan")
        if response.status_code == 201:
            world.plan_ids.append(answer["PaymentPlanId"])
            return f"plan {answer['PaymentPlanId']} of {count} for {student.student_number}"
        return f"refused {response.status_code}"
    body = {
        "PaymentPlanId": plan.pk,
        "IsScheduledPaymentsRemoved": True,
        "ScheduledPayments": schedule,
    }
    response = client.patch(PLANS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    _api_answer(response, "plan replacement")
    return f"plan {plan.pk} replaced: {response.status_code}"


@operation("change_while_sending", weight=2, group="fault", vendor_kinds="api")
def op_change_while_sending(world: World, p: Params, step: int) -> str:
    """A clerk changes a fee again while its previous change is on the wire: the vendor is
    made slow for one request, the first change's delivery starts, and the second commits
    before the vendor answers. The outbox must keep the second (a delivery acknowledges
    only the version it sent)."""
    vendor = _vendor(world, p)
    if vendor in world.fault_until or world.worker_down_until is not None:
        return "skipped: the vendor is faulted or the worker is down"
    refs = list(
        Fee.objects.filter(
            pk__in=world.fee_ids,
            category=world.category_of[vendor],
            status=Fee.Status.OPEN,
            amount_locked=False,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not refs:
        return "skipped: no open fee of this vendor's"
    fee = Fee.objects.get(pk=refs[p["i"] % len(refs)])
    box = world.sandboxes[vendor]
    box.control.faults("slow", delay_ms=1500, count=1)
    world.faults["change_while_sending"] += 1
    try:
        fee_change(fee=fee, description=f"Sim fee {step} (first)", origin=_origin(world))
        time.sleep(0.5)  # the first change's delivery is waiting for the vendor's answer
        fee = Fee.objects.get(pk=fee.pk)
        fee_change(fee=fee, description=f"Sim fee {step} (second)", origin=_origin(world))
    except ValidationError as exc:
        return _refused(exc)
    finally:
        time.sleep(1.2)
        box.control.faults("ok")
    return f"{fee.reference} changed twice, the second while the first was on the wire"


# --- the file exchange ----------------------------------------------------------------


@operation("fx_export", weight=4, group="pull", vendor_kinds="file")
def op_fx_export(world: World, p: Params, step: int) -> str:
    run = task_run(integration=world.integrations[_vendor(world, p)], task="export-fees")
    return f"export-fees: {run.outcome if run else 'not run'} {run.counts if run else ''}"


@operation("fx_dispute", weight=1, group="vendor", vendor_kinds="file")
def op_fx_dispute(world: World, p: Params, step: int) -> str:
    vendor = _vendor(world, p)
    found = _vendor_fee(world, vendor, p)
    if found is None:
        return "skipped: that fee is not at the financials side"
    fee = found
    # A restore here ends a dispute. (On a fee not disputed FeeSync reads it as undoing the
    # last waiver, which the sandbox's own figures do not follow: not compared, so not
    # drawn.)
    disputed = fee["fee_ref"] in world.sandboxes[vendor].state().get("disputed", [])
    op = "restore" if disputed else "dispute"
    done = world.sandboxes[vendor].control.call(op, {"fee_ref": fee["fee_ref"]})
    # Not one of the financials side's payments: the checks learn its id from here.
    world.file_line_ids.add(str(done.get("transaction_id")))
    if world.file_fault_pending.pop(vendor, None) is not None:
        world.broken_refs.add(fee["fee_ref"])
        world.broken_ids.add(str(done.get("transaction_id")))
    return f"{fee['fee_ref']} {op} ({done.get('transaction_id')})"


@operation("fx_duplicate_drop", weight=1, group="fault", vendor_kinds="file")
def op_fx_duplicate_drop(world: World, p: Params, step: int) -> str:
    """The financials side drops a result file it already dropped, under a new name."""
    vendor = _vendor(world, p)
    root = world.sandboxes[vendor].root
    if root is None:
        return "skipped: no exchange directory"
    done = sorted(
        [*(root / "inbound").glob("*.csv.done"), *(root / "inbound" / "archive").glob("*.csv")]
    )
    if not done:
        return "skipped: no result file yet"
    chosen = done[p["i"] % len(done)]
    source = chosen.with_suffix("") if chosen.suffix == ".done" else chosen
    if not source.exists():
        return "skipped: that file is gone"
    copy = root / "inbound" / f"again_{world.next_id('F')}.csv"
    copy.write_bytes(source.read_bytes())
    (root / "inbound" / (copy.name + ".done")).write_bytes(b"")
    world.faults["file_duplicated"] += 1
    return f"{source.name} dropped again as {copy.name}"


# --- faults -------------------------------------------------------------------------------

#: Two exports of one file exchange at the same moment. They used to take the same
#: sequence number and, in the same second, the same file name (the second file replacing
#: the first); exports now take turns under the integration's export lock
#: (`apps.vendors.files.fees_export`; tests/vendors/kinds/fileexchange/test_exchange.py).
CONCURRENT_EXPORTS = True

FAULT_MODES = ("down", "slow", "throttle", "error", "malformed", "drop", "fault", "drop_mid_answer")
FILE_FAULTS = ("half_written", "malformed", "bad_amount")


@operation("vendor_fault", weight=4, group="fault", per_vendor=True)
def op_vendor_fault(world: World, p: Params, step: int) -> str:
    vendor = _vendor(world, p)
    if vendor in FILE_KINDS:
        broken = FILE_FAULTS[p["k"] % len(FILE_FAULTS)]
        world.sandboxes[vendor].control.call("faults", {"file": broken})
        world.file_fault_pending[vendor] = broken
        world.faults[f"file_{broken}"] += 1
        return f"{vendor}: the next result file {broken}"
    mode = FAULT_MODES[p["k"] % len(FAULT_MODES)]
    options: dict[str, Any] = {}
    if mode == "slow":
        options["delay_ms"] = 200 + p["j"] % 1300
    if mode in ("down", "throttle"):
        options["retry_after"] = 1
    if mode == "drop_mid_answer":  # the vendor did the work; the answer is cut off
        options["cut_at"] = "headers" if p["j"] % 2 else "body"
    if p["a"] < 0.5:
        options["count"] = 1 + p["j"] % 6  # the next few requests only
    if p["b"] < 0.3:
        options["duplicate_payments"] = True
        world.faults["duplicate_payments"] += 1
    world.sandboxes[vendor].control.faults(mode, **options)
    world.fault_until[vendor] = step + 3 + p["i"] % 12
    world.faults[f"vendor_{mode}"] += 1
    return f"{vendor} {mode} {options} until step {world.fault_until[vendor]}"


@operation("worker_kill", weight=1, group="fault")
def op_worker_kill(world: World, p: Params, step: int) -> str:
    if world.worker_down_until is not None:
        return "skipped: the worker is already down"
    world.worker.kill()
    world.worker_down_until = step + 1 + p["i"] % 5
    world.faults["worker_sigkill"] += 1
    return f"worker killed with SIGKILL, back at step {world.worker_down_until}"


@operation("clock_advance", weight=3, group="clock")
def op_clock_advance(world: World, p: Params, step: int) -> str:
    minutes = 1 + p["i"] % 180
    world.clock.advance(minutes * 60)
    return f"+{minutes} min -> {world.clock.local():%Y-%m-%d %H:%M %Z}"


@operation("clock_midnight", weight=1, group="clock")
def op_clock_midnight(world: World, p: Params, step: int) -> str:
    world.clock.to_local_time(dt.time(23, 59, 50))
    world.faults["clock_midnight"] += 1
    return f"-> {world.clock.local():%Y-%m-%d %H:%M:%S %Z}"


@operation("clock_dst", weight=0.5, group="clock")
def op_clock_dst(world: World, p: Params, step: int) -> str:
    """To 01:59:50 of the next day: on the change's night, the next steps cross it."""
    world.clock.to_local_time(dt.time(1, 59, 50))
    world.faults["clock_dst_edge"] += 1
    return f"-> {world.clock.local():%Y-%m-%d %H:%M:%S %Z}"
