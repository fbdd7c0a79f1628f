"""The one door for money from outside FeeSync (`movements_record`), used directly the way a
vendor pull, a file drop or the partner API uses it."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from apps.fees.models import Fee, LedgerEntry
from apps.fees.selectors import ledger_report
from apps.fees.services import (
    Movement,
    MovementKind,
    MovementOutcome,
    MovementSource,
    Origin,
    OutcomeStatus,
    movement_record,
    movements_record,
    payment_take,
)
from tests.factories import make_fee

pytestmark = pytest.mark.django_db

D = Decimal
K = MovementKind
S = OutcomeStatus
PAYSCHOOLS = MovementSource(
    external_source="integration:7", name="PaySchools", ledger_source=LedgerEntry.Source.VENDOR
)


def move(
    external_id: str,
    kind: MovementKind,
    fee: Fee | str,
    amount: str = "10.00",
    *,
    closed: bool = False,
    refers_to: str | None = None,
) -> Movement:
    return Movement(
        external_id=external_id,
        kind=kind,
        fee_ref=fee if isinstance(fee, str) else fee.reference,
        amount=D(amount),
        closed=closed,
        refers_to=refers_to,
    )


def record(*movements: Movement, source: MovementSource = PAYSCHOOLS) -> list[MovementOutcome]:
    return movements_record(source=source, movements=list(movements))


def statuses(outcomes: list[MovementOutcome]) -> list[str]:
    return [o.status for o in outcomes]


def test_a_payment_from_outside_is_recorded_with_its_entry():
    fee = make_fee(amount="50.00")
    outcome = movement_record(source=PAYSCHOOLS, movement=move("P-1", K.PAYMENT, fee, "20.00"))
    assert (outcome.external_id, outcome.status, outcome.fee_id) == ("P-1", S.RECORDED, fee.pk)
    entry = LedgerEntry.objects.get(pk=outcome.entry_id)
    assert (entry.kind, entry.amount, entry.method, entry.source, entry.reason) == (
        "payment",
        D("20.00"),
        "online",
        "vendor",
        "Paid at PaySchools",
    )
    assert (entry.external_source, entry.external_id) == ("integration:7", "P-1")
    fee.refresh_from_db()
    assert (fee.balance, fee.status, fee.amount_locked) == (D("30.00"), "open", True)
    assert ledger_report().ok


@pytest.mark.parametrize(
    "movement",
    [
        pytest.param({"kind": K.PAYMENT}, id="plain payment (set-wise)"),
        pytest.param({"kind": K.PAYMENT, "closed": True}, id="closed payment (one by one)"),
        pytest.param({"kind": K.WAIVER}, id="waiver"),
    ],
)
def test_a_movement_sent_twice_is_recorded_once(movement):
    fee = make_fee(amount="50.00")
    first = record(move("M-1", fee=fee, **movement))
    again = record(move("M-1", fee=fee, **movement))
    third = record(move("M-1", fee=fee, **movement))
    assert statuses(first) == [S.RECORDED]
    assert statuses(again) == statuses(third) == [S.ALREADY_RECORDED]
    assert again[0].entry_id == third[0].entry_id == first[0].entry_id
    assert again[0].fee_id == fee.pk
    assert LedgerEntry.objects.filter(external_id="M-1").count() == 1
    assert ledger_report().ok


def test_the_same_id_from_another_source_is_another_movement():
    fee = make_fee(amount="50.00")
    other = MovementSource(
        external_source="integration:8", name="Community Pass", ledger_source="vendor"
    )
    assert statuses(record(move("P-1", K.PAYMENT, fee))) == [S.RECORDED]
    assert statuses(record(move("P-1", K.PAYMENT, fee), source=other)) == [S.RECORDED]
    fee.refresh_from_db()
    assert fee.balance == D("30.00")


def test_a_movement_twice_in_one_batch_counts_once():
    fee = make_fee(amount="50.00")
    outcomes = record(move("P-1", K.PAYMENT, fee), move("P-1", K.PAYMENT, fee))
    assert statuses(outcomes) == [S.RECORDED, S.ALREADY_RECORDED]
    assert outcomes[0].entry_id == outcomes[1].entry_id
    fee.refresh_from_db()
    assert fee.balance == D("40.00")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("closed", [False, True], ids=["set-wise", "one by one"])
def test_two_pulls_at_once_record_a_movement_once(closed):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency are a PostgreSQL matter")
    fee = make_fee(amount="50.00")
    outcomes: list[MovementOutcome] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2)

    def pull() -> None:
        try:
            barrier.wait()
            [outcome] = record(move("P-1", K.PAYMENT, fee, "20.00", closed=closed))
        finally:
            connections.close_all()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The loser waited for the fee's lock, then found the winner's entry: not a second one.
    assert sorted(statuses(outcomes)) == [S.ALREADY_RECORDED, S.RECORDED]
    assert outcomes[0].entry_id == outcomes[1].entry_id
    assert LedgerEntry.objects.filter(external_id="P-1").count() == 1
    fee.refresh_from_db()
    assert fee.balance == (D("0.00") if closed else D("30.00"))
    assert ledger_report().ok


def test_a_payment_for_a_fee_feesync_does_not_have_is_refused_naming_both():
    [outcome] = record(move("P-9", K.PAYMENT, "F-1"))
    assert outcome.status == S.REFUSED
    assert outcome.reason == "PaySchools sent payment P-9 for fee F-1, which FeeSync does not have."
    assert (outcome.entry_id, outcome.fee_id) == (None, None)
    assert not LedgerEntry.objects.filter(external_id="P-9").exists()


def test_a_bad_movement_in_a_batch_fails_alone():
    a, b, c, d = (make_fee(amount=amount) for amount in ("50.00", "10.00", "15.00", "10.00"))
    outcomes = record(
        move("P-1", K.PAYMENT, a, "20.00"),
        move("P-2", K.PAYMENT, b, "11.00"),  # more than is owed: settled, $1.00 is credit
        move("P-3", K.PAYMENT, "NOPE-1"),
        move("P-4", K.PAYMENT, a, "-5.00"),  # a negative amount must not sink the batch
        move("P-5", K.PAYMENT, a, "1.005"),  # nor a fraction of a cent
        move("W-1", K.WAIVER, c, "15.00"),
        move("P-6", K.PAYMENT, d, "10.00"),
    )
    assert [o.external_id for o in outcomes] == ["P-1", "P-2", "P-3", "P-4", "P-5", "W-1", "P-6"]
    assert statuses(outcomes) == [
        S.RECORDED,
        S.RECORDED,
        S.REFUSED,
        S.REFUSED,
        S.REFUSED,
        S.RECORDED,
        S.RECORDED,
    ]
    assert outcomes[1].fee_id == b.pk
    assert "NOPE-1" in outcomes[2].reason
    assert outcomes[3].reason == "Amount “-5.00” cannot be negative."
    assert "more than two decimal places" in outcomes[4].reason
    for fee in (a, b, c, d):
        fee.refresh_from_db()
    assert (a.balance, b.balance, c.status, d.status) == (D("30.00"), D("0.00"), "waived", "paid")
    assert b.student.credit_account.amount == D("1.00")
    assert LedgerEntry.objects.filter(external_source="integration:7").count() == 4
    assert ledger_report().ok


def test_a_movement_without_its_id_is_refused():
    fee = make_fee()
    [outcome] = record(move("", K.PAYMENT, fee))
    assert outcome.status == S.REFUSED and "without its id" in outcome.reason
    assert not LedgerEntry.objects.filter(external_source="integration:7").exists()


def test_refund_and_void_give_back_the_payment_they_refer_to():
    refunded, voided = make_fee(amount="30.00"), make_fee(amount="20.00")
    outcomes = record(
        move("P-1", K.PAYMENT, refunded, "30.00"),
        move("P-2", K.PAYMENT, voided, "20.00"),
        move("R-1", K.REFUND, refunded, "12.00", refers_to="P-1"),
        move("V-1", K.VOID, voided, "20.00", refers_to="P-2"),
        move("R-2", K.REFUND, refunded, "1.00", refers_to="P-404"),
    )
    assert statuses(outcomes) == [S.RECORDED] * 4 + [S.REFUSED]
    refund = LedgerEntry.objects.get(pk=outcomes[2].entry_id)
    assert (refund.kind, refund.amount, refund.reverses_id, refund.reason) == (
        "refund",
        D("12.00"),
        outcomes[0].entry_id,
        "Refunded at PaySchools",
    )
    void = LedgerEntry.objects.get(pk=outcomes[3].entry_id)
    assert (void.kind, void.reverses_id, void.reason) == (
        "reversal",
        outcomes[1].entry_id,
        "Voided at PaySchools",
    )
    assert outcomes[4].reason == (
        "PaySchools sent refund R-2 of payment P-404, which FeeSync has not recorded."
    )
    refunded.refresh_from_db()
    voided.refresh_from_db()
    assert (refunded.balance, refunded.status) == (D("12.00"), "open")
    assert (voided.balance, voided.status) == (D("20.00"), "open")
    # Sent again (the next pull): nothing moves.
    assert statuses(record(move("R-1", K.REFUND, refunded, "12.00", refers_to="P-1"))) == [
        S.ALREADY_RECORDED
    ]
    assert ledger_report().ok


def test_restore_reverses_the_waiver_it_refers_to():
    fee = make_fee(amount="40.00")
    outcomes = record(
        move("W-1", K.WAIVER, fee, "40.00"),
        move("X-1", K.RESTORE, fee, "25.00", refers_to="W-1"),
    )
    assert statuses(outcomes) == [S.RECORDED, S.RECORDED]
    restore = LedgerEntry.objects.get(pk=outcomes[1].entry_id)
    assert (restore.kind, restore.amount, restore.reverses_id, restore.reason) == (
        "reversal",
        D("25.00"),
        outcomes[0].entry_id,
        "Restored at PaySchools",
    )
    fee.refresh_from_db()
    assert (fee.balance, fee.status) == (D("25.00"), "open")
    assert ledger_report().ok


def test_restore_of_a_payment_is_refused():
    fee = make_fee(amount="40.00")
    [paid, restore] = record(
        move("P-1", K.PAYMENT, fee, "40.00"),
        move("X-1", K.RESTORE, fee, "40.00", refers_to="P-1"),
    )
    assert (paid.status, restore.status) == (S.RECORDED, S.REFUSED)
    assert restore.reason == "PaySchools sent restore X-1 of P-1, which is a payment, not a waiver."
    fee.refresh_from_db()
    assert fee.status == "paid"


def test_a_dispute_marks_the_fee_disputed_once_and_a_restore_ends_it():
    fee = make_fee(amount="25.00")
    [opened] = record(move("D-1", K.DISPUTE, fee))
    assert (opened.status, opened.fee_id) == (S.RECORDED, fee.pk)
    fee.refresh_from_db()
    assert (fee.disputed, fee.status, fee.balance) == (True, "open", D("25.00"))
    # The same report again (a file dropped twice), and a second dispute of a disputed fee.
    again, second = record(move("D-1", K.DISPUTE, fee), move("D-2", K.DISPUTE, fee))
    assert again.status == S.ALREADY_RECORDED
    assert (second.status, second.reason) == (
        S.REFUSED,
        f"Fee {fee.reference} is already disputed.",
    )
    [ended] = record(move("R-1", K.RESTORE, fee))
    assert ended.status == S.RECORDED
    fee.refresh_from_db()
    assert fee.disputed is False
    assert LedgerEntry.objects.filter(fee=fee).count() == 1  # the charge only: no money moved
    [ended_again] = record(move("R-1", K.RESTORE, fee))
    assert ended_again.status == S.ALREADY_RECORDED
    assert ledger_report().ok


def test_a_restore_naming_no_waiver_reverses_the_sources_latest_waiver():
    fee = make_fee(amount="30.00")
    waived, restored = record(
        move("W-1", K.WAIVER, fee, "30.00"), move("R-9", K.RESTORE, fee, "30.00")
    )
    assert (waived.status, restored.status) == (S.RECORDED, S.RECORDED)
    fee.refresh_from_db()
    assert (fee.status, fee.balance) == ("open", D("30.00"))
    assert LedgerEntry.objects.get(pk=restored.entry_id).kind == "reversal"
    partly = make_fee(amount="20.00")
    record(move("W-2", K.WAIVER, partly, "5.00"))
    [whole] = record(move("R-11", K.RESTORE, partly, "0.00"))  # no amount: the whole waiver
    assert whole.status == S.RECORDED
    partly.refresh_from_db()
    assert partly.balance == D("20.00")
    [nothing] = record(move("R-10", K.RESTORE, make_fee()))
    assert nothing.status == S.REFUSED and "nothing to restore" in nothing.reason
    assert ledger_report().ok


def test_a_movement_on_a_fee_the_source_does_not_manage_is_held():
    managed, other = make_fee(amount="30.00"), make_fee(amount="30.00")
    asked: list[set[int]] = []

    def may_settle(fee_ids: set[int]) -> set[int]:
        asked.append(fee_ids)
        return fee_ids & {managed.pk}

    source = MovementSource(
        external_source="integration:7",
        name="PaySchools",
        ledger_source=LedgerEntry.Source.VENDOR,
        may_settle=may_settle,
    )
    outcomes = record(
        move("P-1", K.PAYMENT, other),
        move("P-2", K.PAYMENT, managed),
        move("W-1", K.WAIVER, other),
        source=source,
    )
    assert asked == [{managed.pk, other.pk}]  # once per batch, not once per movement
    assert statuses(outcomes) == [S.HELD, S.RECORDED, S.HELD]
    assert outcomes[0].reason == f"PaySchools does not manage fee {other.reference}."
    assert outcomes[0].fee_id == other.pk and outcomes[0].entry_id is None
    other.refresh_from_db()
    assert (other.balance, other.version) == (D("30.00"), 1)


def test_outcomes_come_in_input_order_whichever_path_posts_them():
    a, b, c = make_fee(amount="50.00"), make_fee(amount="50.00"), make_fee(amount="50.00")
    payment_take(
        fee=c,
        amount="5.00",
        method="online",
        origin=Origin(source="vendor", external_source="integration:7", external_id="P-0"),
    )
    movements = [
        move("P-1", K.PAYMENT, a, "10.00", closed=True),  # one by one
        move("P-2", K.PAYMENT, b, "10.00"),  # set-wise
        move("P-0", K.PAYMENT, c, "5.00"),  # recorded before
        move("R-2", K.REFUND, b, "10.00", refers_to="P-2"),  # after the payment it refunds
        move("P-3", K.PAYMENT, c, "10.00"),  # set-wise
        move("P-2", K.PAYMENT, b, "10.00"),  # the same one again
        move("P-4", K.PAYMENT, "NOPE-1"),
    ]
    outcomes = record(*movements)
    assert [o.external_id for o in outcomes] == [m.external_id for m in movements]
    assert statuses(outcomes) == [
        S.RECORDED,
        S.RECORDED,
        S.ALREADY_RECORDED,
        S.RECORDED,
        S.RECORDED,
        S.ALREADY_RECORDED,
        S.REFUSED,
    ]
    for fee in (a, b, c):
        fee.refresh_from_db()
    assert (a.status, b.balance, c.balance) == ("closed", D("50.00"), D("35.00"))
    assert ledger_report().ok


def test_a_source_needs_its_external_source():
    with pytest.raises(ValueError, match="external_source"):
        MovementSource(external_source="", name="Nobody", ledger_source="vendor")
