"""The ledger's invariants: a stateful property test, the database's own refusals, and
`ledger_check` catching a tamper."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from apps.fees.models import Fee, LedgerEntry
from apps.fees.selectors import ledger_report
from apps.fees.services import (
    LedgerError,
    Origin,
    credit_apply,
    credit_refund,
    credit_reverse,
    fee_change,
    fee_void,
    fee_waive,
    payment_refund,
    payment_take,
    student_credit,
)
from tests.factories import CategoryFactory, MerchantAccountFactory, StudentFactory, make_fee

D = Decimal
cents = st.integers(min_value=1, max_value=20_000).map(lambda c: D(c) / 100)


class LedgerMachine(RuleBasedStateMachine):
    """Random payments, waivers, refunds, reversals, voids, amount changes and vendor
    payments (some delivered twice, some `closed`), checked against a plain model."""

    fees = Bundle("fees")
    credits = Bundle("credits")

    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.student = StudentFactory()
        self.category = CategoryFactory(code="HYP")
        self.account = MerchantAccountFactory(merchant_id="MID-HYP")
        self.staff = Origin()
        self.expected: dict[int, D] = {}
        self.credit = D("0.00")  # the student's credit, as the plain model has it
        self.vendor_ids = 0

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def _fee(self, fee: Fee) -> Fee:
        return Fee.objects.get(pk=fee.pk)

    @rule(target=fees, amount=cents)
    def create(self, amount: D) -> Fee:
        fee = make_fee(
            student=self.student,
            category=self.category,
            merchant_account=self.account,
            amount=amount,
        )
        self.expected[fee.pk] = amount
        return fee

    @rule(target=credits, fee=fees, amount=cents, method=st.sampled_from(["cash", "card"]))
    def pay(self, fee: Fee, amount: D, method: str):
        owed = self.expected[fee.pk]
        current = self._fee(fee)
        if current.status == Fee.Status.VOIDED or amount > owed:
            with pytest.raises(LedgerError):
                payment_take(fee=fee, amount=amount, method=method, origin=self.staff)
            return None
        entry = payment_take(fee=fee, amount=amount, method=method, origin=self.staff)
        self.expected[fee.pk] = owed - amount
        return entry

    @rule(target=credits, fee=fees, amount=cents, closed=st.booleans(), twice=st.booleans())
    def vendor_pays(self, fee: Fee, amount: D, closed: bool, twice: bool):
        owed = self.expected[fee.pk]
        if self._fee(fee).status == Fee.Status.VOIDED:
            return None
        self.vendor_ids += 1
        origin = Origin(
            source="vendor", external_source="integration:9", external_id=f"V{self.vendor_ids}"
        )
        entry = payment_take(fee=fee, amount=amount, method="online", origin=origin, closed=closed)
        if twice:
            assert (
                payment_take(
                    fee=fee, amount=amount, method="online", origin=origin, closed=closed
                ).pk
                == entry.pk
            )
        self.expected[fee.pk] = D("0.00") if closed else max(owed - amount, D("0.00"))
        if amount > owed:
            # Money already taken: the fee is settled, the rest is the student's credit.
            self.credit += amount - owed
            return None  # its refunds give back credit first: covered in test_credit.py
        return entry

    @rule(fee=fees, amount=st.one_of(st.none(), cents))
    def apply_credit(self, fee: Fee, amount: D | None):
        owed = self.expected[fee.pk]
        take = min(self.credit, owed) if amount is None else amount
        ok = self._fee(fee).status == Fee.Status.OPEN and 0 < take <= min(self.credit, owed)
        if not ok:
            with pytest.raises(LedgerError):
                credit_apply(student=self.student, fee=fee, amount=amount, origin=self.staff)
            return
        assert credit_apply(student=self.student, fee=fee, amount=amount, origin=self.staff) == take
        self.expected[fee.pk] = owed - take
        self.credit -= take

    @rule(amount=cents)
    def refund_credit(self, amount: D):
        if amount > self.credit:
            with pytest.raises(LedgerError):
                credit_refund(student=self.student, amount=amount, reason="r", origin=self.staff)
            return
        credit_refund(student=self.student, amount=amount, reason="r", origin=self.staff)
        self.credit -= amount

    @rule(target=credits, fee=fees, part=st.booleans())
    def waive(self, fee: Fee, part: bool):
        owed = self.expected[fee.pk]
        if owed == 0:
            with pytest.raises(LedgerError):
                fee_waive(fee=fee, reason="r", origin=self.staff)
            return None
        amount = (owed / 2).quantize(D("0.01")) if part and owed >= D("0.02") else owed
        entry = fee_waive(fee=fee, reason="r", origin=self.staff, amount=amount)
        self.expected[fee.pk] = owed - amount
        return entry

    @rule(credit=credits, amount=cents)
    def give_back(self, credit: LedgerEntry | None, amount: D):
        if credit is None:
            return
        fee = credit.fee
        left = credit.amount - sum(
            (e.amount for e in LedgerEntry.objects.filter(reverses=credit)), D("0")
        )
        service = payment_refund if credit.kind == "payment" else credit_reverse
        kwargs = {"payment": credit} if credit.kind == "payment" else {"credit": credit}
        if amount > left or left == 0:
            with pytest.raises(LedgerError):
                service(**kwargs, amount=amount, reason="r", origin=self.staff)
            return
        service(**kwargs, amount=amount, reason="r", origin=self.staff)
        self.expected[fee.pk] += amount

    @rule(fee=fees)
    def void(self, fee: Fee):
        current = self._fee(fee)
        paid = LedgerEntry.objects.filter(fee=fee, kind="payment").exists()
        try:
            fee_void(fee=fee, reason="r", origin=self.staff)
        except LedgerError:
            current_after = self._fee(fee)
            assert current_after.balance == current.balance
            return
        assert not paid or current.balance > 0
        self.expected[fee.pk] = D("0.00")

    @rule(fee=fees, amount=cents)
    def change_amount(self, fee: Fee, amount: D):
        before = self._fee(fee)
        try:
            fee_change(fee=fee, amount=amount, origin=self.staff)
        except LedgerError:
            assert self._fee(fee).balance == before.balance
            return
        after = self._fee(fee)
        assert after.amount == amount
        self.expected[fee.pk] = after.balance
        assert after.balance == before.balance + (amount - before.amount)

    @invariant()
    def balances_match_the_model(self) -> None:
        for fee_id, owed in self.expected.items():
            fee = Fee.objects.get(pk=fee_id)
            assert fee.balance == owed, (fee_id, fee.balance, owed)
            assert D("0") <= fee.balance <= fee.amount
            assert (fee.status == Fee.Status.OPEN) == (fee.balance > 0)

    @invariant()
    def credit_matches_the_model(self) -> None:
        assert student_credit(student=self.student) == self.credit

    @invariant()
    def ledger_report_is_clean(self) -> None:
        report = ledger_report()
        assert report.ok, report.breaches


@pytest.mark.django_db
def test_ledger_invariants_hold_after_any_sequence():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE fees_ledgerentry SET amount = amount + 1",
        "DELETE FROM fees_ledgerentry",
        "UPDATE fees_allocation SET amount = 1",
        "DELETE FROM fees_allocation",
    ],
)
def test_database_refuses_to_change_posted_entries(statement):
    fee = make_fee(amount="20.00")
    payment_take(fee=fee, amount="5", method="cash", origin=Origin())
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert LedgerEntry.objects.filter(fee=fee).count() == 2


@pytest.mark.django_db
def test_ledger_check_passes_on_a_consistent_ledger(capsys):
    fee = make_fee(amount="20.00")
    payment_take(fee=fee, amount="5", method="cash", origin=Origin())
    call_command("ledger_check", "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True
    assert out["counts"]["fees"] == 1 and out["totals"]["payment"] == "5.00"


@pytest.mark.django_db
@pytest.mark.ledger_breach
def test_ledger_check_fails_after_a_raw_sql_tamper(capsys):
    fee = make_fee(amount="20.00")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE fees_fee SET balance = balance - 3 WHERE id = %s", [fee.pk])
    with pytest.raises(CommandError) as excinfo:
        call_command("ledger_check")
    assert excinfo.value.returncode == 1
    assert (
        f"fee {fee.pk}: stored balance 17.00 but its entries say 20.00" in capsys.readouterr().out
    )


@pytest.mark.django_db
@pytest.mark.ledger_breach
def test_ledger_check_finds_an_allocation_slipped_in_by_sql():
    fee = make_fee(amount="20.00")
    pay = payment_take(fee=fee, amount="20", method="cash", origin=Origin())
    charge = fee.entries.get(kind="charge")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO fees_allocation (credit_id, debit_id, amount, manual, created_at) "
            "VALUES (%s, %s, 5, false, CURRENT_TIMESTAMP)",
            [pay.pk, charge.pk],
        )
    checks = {b.check for b in ledger_report().breaches}
    assert {"debit_over_allocated", "credit_over_allocated", "fee_balance"} <= checks


@pytest.mark.django_db(transaction=True)
def test_concurrent_payments_can_never_over_allocate_a_fee():
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency are a PostgreSQL matter")
    student = StudentFactory()
    category, account = CategoryFactory(), MerchantAccountFactory()
    fees = [
        make_fee(student=student, category=category, merchant_account=account, amount="50.00")
        for _ in range(15)
    ]
    outcomes: list[str] = []
    lock = threading.Lock()

    def pay(fee: Fee, barrier: threading.Barrier) -> None:
        from django.db import connections

        try:
            barrier.wait()
            payment_take(fee=fee, amount="30.00", method="card", origin=Origin())
            result = "paid"
        except LedgerError:
            result = "refused"
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    for fee in fees:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=pay, args=(fee, barrier)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert outcomes.count("paid") == 15 and outcomes.count("refused") == 15
    for fee in fees:
        fee.refresh_from_db()
        assert fee.balance == D("20.00")
        assert fee.entries.filter(kind="payment").count() == 1
    assert ledger_report().ok
