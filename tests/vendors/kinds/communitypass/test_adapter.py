"""The Community Pass adapter against the real Community Pass sandbox, over real HTTP.
Nothing is mocked: faults are injected, and requests counted, through the sandbox's
control API."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import pytest

from apps.vendors.kinds.base import FeeRecord, VendorError
from apps.vendors.kinds.communitypass.adapter import (
    CommunityPassAdapter,
    _BadReply,
    _money_in,
    _retry_after,
)
from apps.vendors.registry import get_adapter_class
from apps.vendors.sandboxes.client import SandboxControl
from apps.vendors.sandboxes.server import SandboxServer

MakeAdapter = Callable[..., CommunityPassAdapter]
MakeFee = Callable[..., FeeRecord]
BATCH = "POST /v1/fees/batch"
PAYMENTS = "GET /v1/payments"


def fees_by_ref(control: SandboxControl) -> dict[str, dict[str, Any]]:
    return {f["fee_ref"]: f for f in control.state()["fees"]}


def requests_to(control: SandboxControl, endpoint: str) -> int:
    return int(control.requests()["by_endpoint"].get(endpoint, 0))


def pull_all(adapter: CommunityPassAdapter, **kwargs: Any) -> tuple[list[str], list[int], str]:
    """Every page from the start: (payment ids, page sizes, last cursor)."""
    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    while True:
        page = adapter.pull_payments(cursor=cursor, **kwargs)
        seen += [p.payment_id for p in page.payments]
        sizes.append(len(page.payments))
        cursor = page.cursor
        if not page.has_more:
            break
    assert cursor is not None
    return seen, sizes, cursor


def test_registered_under_its_kind() -> None:
    assert get_adapter_class("communitypass") is CommunityPassAdapter
    assert CommunityPassAdapter.name == "Community Pass"
    assert CommunityPassAdapter.capabilities == frozenset(
        {"send", "pull", "validate", "balances", "demographics"}
    )
    assert CommunityPassAdapter.credential_labels() == {"api_key": "API key"}
    assert CommunityPassAdapter.requires_tests_before_import_date is True
    assert CommunityPassAdapter.push_batch_size == 200


def test_base_url_may_be_the_root_or_the_api_root(
    make_communitypass_adapter: MakeAdapter, communitypass: SandboxServer
) -> None:
    for base in (communitypass.url, communitypass.url + "/", communitypass.url + "/v1/"):
        adapter = make_communitypass_adapter(base_url=base)
        assert adapter.api_root == communitypass.url + "/v1"
        assert adapter.test_pull().ok


# --- checks ---------------------------------------------------------------------------------------


def test_test_pull_and_test_push_pass_and_change_nothing(
    communitypass_adapter: CommunityPassAdapter, communitypass_control: SandboxControl
) -> None:
    pull = communitypass_adapter.test_pull()
    push = communitypass_adapter.test_push()
    assert pull.ok and push.ok, (pull, push)
    assert "/v1/ping" in pull.tried and "changes nothing" in pull.tried
    assert "dry run" in push.tried and "changes nothing" in push.tried
    assert "nothing was stored" in push.answer
    assert pull.elapsed_ms >= 0 and push.elapsed_ms >= 0
    assert communitypass_control.state() == {"fees": [], "payments": [], "balances": {}}
    assert communitypass_control.requests()["by_endpoint"] == {
        "GET /v1/ping": 1,
        PAYMENTS: 1,
        BATCH: 1,
    }


def test_test_pull_reports_a_payment(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    communitypass_adapter.push_fees([fee_record("F1"), fee_record("F2")])
    communitypass_control.pay("F1", "1.00")
    communitypass_control.pay("F2", "1.00")
    check = communitypass_adapter.test_pull()
    assert check.ok and "returned a payment (more are waiting)" in check.answer


def test_wrong_api_key_is_refused_permanently_in_plain_words(
    make_communitypass_adapter: MakeAdapter, communitypass_control: SandboxControl
) -> None:
    adapter = make_communitypass_adapter(credentials={"api_key": "wrong"})
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert info.value.permanent is True
    assert info.value.message.startswith("The API key was refused")
    assert "401" in info.value.message and "not valid" in info.value.message
    assert requests_to(communitypass_control, PAYMENTS) == 1  # a 401 is not retried

    pull, push = adapter.test_pull(), adapter.test_push()
    assert pull.ok is False and pull.answer.startswith("The API key was refused")
    assert push.ok is False and push.answer.startswith("The API key was refused")
    with pytest.raises(VendorError, match="^The API key was refused"):
        adapter.get_balances(["S1"])


def test_missing_api_key_is_permanent(make_communitypass_adapter: MakeAdapter) -> None:
    adapter = make_communitypass_adapter(credentials={})
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert info.value.permanent and "needs an API key" in info.value.message
    assert adapter.test_pull().ok is False


# --- pushing fees ---------------------------------------------------------------------------------


def test_push_then_state_shows_the_fee(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    result = communitypass_adapter.push_fees([fee_record("F1", amount=Decimal("25.50"))])
    assert result.acknowledged == {"F1": 1} and result.rejected == {}
    fee = fees_by_ref(communitypass_control)["F1"]
    assert fee["amount"] == "25.50" and fee["amount_due"] == "25.50"
    assert fee["student_id"] == "100001" and fee["status"] == "open" and fee["version"] == 1
    assert fee["due_date"] == "2025-10-01" and fee["fee_date"] == "2025-09-01"
    assert fee["merchant_id"] == "MID-1" and fee["foreign"] is False


def test_redelivery_is_harmless_and_a_new_version_updates(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    communitypass_adapter.push_fees([fee_record("F1")])
    again = communitypass_adapter.push_fees([fee_record("F1", amount="99.00")])  # same version
    assert again.acknowledged == {"F1": 1}
    assert len(communitypass_control.state()["fees"]) == 1
    assert fees_by_ref(communitypass_control)["F1"]["amount"] == "25.00"

    newer = communitypass_adapter.push_fees([fee_record("F1", version=2, amount="30.00")])
    assert newer.acknowledged == {"F1": 2}
    fee = fees_by_ref(communitypass_control)["F1"]
    assert fee["amount"] == "30.00" and fee["version"] == 2

    older = communitypass_adapter.push_fees([fee_record("F1", version=1, amount="5.00")])
    assert older.acknowledged == {"F1": 2}  # the vendor says what it holds
    assert fees_by_ref(communitypass_control)["F1"]["amount"] == "30.00"


def test_inactive_fee_stops_collection(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    communitypass_adapter.push_fees([fee_record("F1")])
    communitypass_adapter.push_fees([fee_record("F1", version=2, active=False)])
    assert fees_by_ref(communitypass_control)["F1"]["status"] == "inactive"
    communitypass_adapter.push_fees(
        [fee_record("F1", version=3, active=False, amount_due=Decimal("0.00"))]
    )
    assert fees_by_ref(communitypass_control)["F1"]["status"] == "paid"  # nothing due: not open


def test_rejected_fees_are_reported_and_the_rest_delivered(
    communitypass_adapter: CommunityPassAdapter, fee_record: MakeFee
) -> None:
    result = communitypass_adapter.push_fees(
        [fee_record("GOOD"), fee_record("BAD", amount="10.00", amount_due=Decimal("12.00"))]
    )
    assert result.acknowledged == {"GOOD": 1}
    assert "more than Amount" in result.rejected["BAD"]


def test_large_pushes_go_in_batches_of_200(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    fees = [fee_record(f"F{i:04d}", student_id=f"S{i % 40}") for i in range(450)]
    result = communitypass_adapter.push_fees(fees)
    assert len(result.acknowledged) == 450 and not result.rejected
    assert len(communitypass_control.state()["fees"]) == 450
    assert requests_to(communitypass_control, BATCH) == 3


def test_float_money_is_refused(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    with pytest.raises(VendorError) as info:
        communitypass_adapter.push_fees([fee_record("F1", amount=12.5, amount_due=12.5)])
    assert info.value.permanent and "float" in info.value.message
    assert communitypass_control.requests()["total"] == 0  # refused before sending


# --- pulling payments -----------------------------------------------------------------------------


def test_partial_payment_comes_back_as_decimal(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    communitypass_adapter.push_fees([fee_record("F1", amount="25.00")])
    communitypass_control.pay("F1", "10.05")
    page = communitypass_adapter.pull_payments()
    assert len(page.payments) == 1 and page.has_more is False and page.cursor
    payment = page.payments[0]
    assert payment.amount == Decimal("10.05") and isinstance(payment.amount, Decimal)
    assert payment.fee_ref == "F1" and payment.student_id == "100001"
    assert payment.kind == "payment" and payment.closed is False and payment.refers_to is None
    assert payment.occurred_at is not None and payment.occurred_at.utcoffset() == timedelta(0)
    assert fees_by_ref(communitypass_control)["F1"]["amount_due"] == "14.95"
    # Nothing new: an empty page that keeps the position.
    again = communitypass_adapter.pull_payments(cursor=page.cursor)
    assert again.payments == [] and again.cursor == page.cursor and again.has_more is False


def test_closed_refund_waiver_and_void(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    communitypass_adapter.push_fees(
        [
            fee_record("CLOSE", amount="40.00"),
            fee_record("REFUND", amount="30.00"),
            fee_record("WAIVE", amount="15.00"),
            fee_record("VOID", amount="20.00"),
        ]
    )
    communitypass_control.pay("CLOSE", "10.00", closed=True)
    paid = communitypass_control.pay("REFUND", "30.00")["payment"]["payment_id"]
    communitypass_control.refund(paid, "12.00")
    communitypass_control.waive("WAIVE")
    voided = communitypass_control.pay("VOID", "20.00")["payment"]["payment_id"]
    communitypass_control.void(voided)

    payments = communitypass_adapter.pull_payments().payments
    got = [(p.fee_ref, p.kind, p.amount, p.closed, p.refers_to) for p in payments]
    assert got == [
        ("CLOSE", "payment", Decimal("10.00"), True, None),
        ("REFUND", "payment", Decimal("30.00"), False, None),
        ("REFUND", "refund", Decimal("12.00"), False, paid),
        ("WAIVE", "waiver", Decimal("15.00"), True, None),
        ("VOID", "payment", Decimal("20.00"), False, None),
        ("VOID", "void", Decimal("20.00"), False, voided),
    ]
    held = fees_by_ref(communitypass_control)
    assert held["CLOSE"]["status"] == "closed" and held["WAIVE"]["status"] == "waived"
    assert held["REFUND"]["amount_due"] == "12.00"


def test_1200_payments_page_without_loss_or_doubles(
    communitypass_adapter: CommunityPassAdapter, communitypass_control: SandboxControl
) -> None:
    communitypass_control.seed_fees(
        [{"fee_ref": f"F{i}", "student_id": f"S{i % 7}", "amount": "100.00"} for i in range(400)]
    )
    communitypass_control.pay_many(
        [{"fee_ref": f"F{i % 400}", "amount": "1.00"} for i in range(1200)]
    )
    expected = [p["payment_id"] for p in communitypass_control.state()["payments"]]
    assert len(expected) == 1200

    seen, sizes, cursor = pull_all(communitypass_adapter, limit=500)
    assert sizes == [500, 500, 200]
    assert seen == expected  # in recorded order, none lost, none doubled

    communitypass_control.pay("F1", "1.00")
    later = communitypass_adapter.pull_payments(cursor=cursor, limit=500)
    assert len(later.payments) == 1 and later.payments[0].fee_ref == "F1"
    assert communitypass_adapter.pull_payments(cursor=cursor, limit=5000).has_more is False


def test_student_filter(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    communitypass_adapter.push_fees(
        [
            fee_record("A1", student_id="A"),
            fee_record("B1", student_id="B"),
            fee_record("C1", student_id="C"),
        ]
    )
    for ref in ("A1", "B1", "C1", "A1"):
        communitypass_control.pay(ref, "1.00")
    page = communitypass_adapter.pull_payments(student_ids=["A", "C"])
    assert [p.student_id for p in page.payments] == ["A", "C", "A"]
    assert communitypass_adapter.pull_payments(student_ids=["Z"]).payments == []
    nobody = communitypass_adapter.pull_payments(student_ids=[], cursor="kept")
    assert nobody.payments == [] and nobody.cursor == "kept" and not nobody.has_more
    assert requests_to(communitypass_control, PAYMENTS) == 2  # nobody asked: no request


def test_a_long_student_list_is_walked_in_chunks(
    communitypass_adapter: CommunityPassAdapter, communitypass_control: SandboxControl
) -> None:
    students = [f"S{i:03d}" for i in range(450)]
    communitypass_control.seed_fees(
        [{"fee_ref": f"F{s}", "student_id": s, "amount": "10.00"} for s in students]
    )
    communitypass_control.pay_many([{"fee_ref": f"F{s}", "amount": "1.00"} for s in students])
    communitypass_control.pay_many([{"fee_ref": f"F{s}", "amount": "2.00"} for s in students[::3]])
    communitypass_control.seed_fees([{"fee_ref": "OTHER", "student_id": "X", "amount": "5.00"}])
    communitypass_control.pay("OTHER", "5.00")
    expected = {
        p["payment_id"]
        for p in communitypass_control.state()["payments"]
        if p["fee_ref"] != "OTHER"
    }

    seen, sizes, _ = pull_all(communitypass_adapter, student_ids=students, limit=100)
    assert len(seen) == len(set(seen)) == len(expected) == 600
    assert set(seen) == expected
    assert requests_to(communitypass_control, PAYMENTS) == len(sizes)
    with pytest.raises(VendorError) as info:
        communitypass_adapter.pull_payments(student_ids=students, cursor="not-ours")
    assert info.value.permanent


def test_duplicate_payments_come_through_as_sent(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    communitypass_adapter.push_fees([fee_record("F1")])
    communitypass_control.pay("F1", "1.00")
    communitypass_control.faults("ok", duplicate_payments=True)
    ids = [p.payment_id for p in communitypass_adapter.pull_payments().payments]
    assert len(ids) == 2 and ids[0] == ids[1]  # the engine records each id once


# --- fees at the vendor and balances --------------------------------------------------------------


def test_list_fees_flags_foreign_fees(
    make_communitypass_adapter: MakeAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    adapter = make_communitypass_adapter(page_size=2)
    adapter.push_fees([fee_record(f"F{i}") for i in range(3)])
    communitypass_control.pay("F1", "5.00")
    foreign_ref = communitypass_control.foreign_fee("100001", "7.50")["fee"]["fee_ref"]

    fees = []
    cursor = None
    while True:
        page = adapter.list_fees(cursor=cursor)
        fees += page.fees
        cursor = page.cursor
        if not page.has_more:
            break
    by_ref = {f.fee_ref: f for f in fees}
    assert list(by_ref) == ["F0", "F1", "F2", foreign_ref]
    assert by_ref[foreign_ref].foreign is True and by_ref[foreign_ref].amount == Decimal("7.50")
    assert not any(by_ref[f"F{i}"].foreign for i in range(3))
    assert by_ref["F1"].amount_due == Decimal("20.00") and by_ref["F1"].active
    assert all(isinstance(f.amount_due, Decimal) for f in fees)


def test_balances_include_foreign_fees(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    communitypass_adapter.push_fees(
        [
            fee_record("A1", student_id="A", amount="25.00"),
            fee_record("B1", student_id="B", amount="5.00"),
        ]
    )
    communitypass_control.pay("A1", "5.00")
    communitypass_control.foreign_fee("A", "7.50")
    balances = communitypass_adapter.get_balances(["A", "B", "NOBODY"])
    assert [(b.student_id, b.balance) for b in balances] == [
        ("A", Decimal("27.50")),
        ("B", Decimal("5.00")),
        ("NOBODY", Decimal("0.00")),
    ]
    assert all(isinstance(b.balance, Decimal) for b in balances)
    assert communitypass_control.state()["balances"] == {"A": "27.50", "B": "5.00"}


def test_balances_for_many_students_go_in_chunks(
    communitypass_adapter: CommunityPassAdapter, communitypass_control: SandboxControl
) -> None:
    students = [f"S{i:03d}" for i in range(450)]
    communitypass_control.seed_fees(
        [{"fee_ref": f"F{s}", "student_id": s, "amount": "3.00"} for s in students]
    )
    balances = communitypass_adapter.get_balances(students)
    assert [b.student_id for b in balances] == students
    assert {b.balance for b in balances} == {Decimal("3.00")}
    assert requests_to(communitypass_control, "GET /v1/balances") == 3


# --- retries: what is retried, and for how long ---------------------------------------------------


def test_a_429_storm_is_ridden_out_without_losing_or_doubling_anything(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    fees = [fee_record(f"F{i:04d}", student_id=f"S{i % 9}") for i in range(450)]
    communitypass_control.call("faults", {"throttle_count": 2})  # 2 x 429, Retry-After: 1
    started = time.monotonic()
    result = communitypass_adapter.push_fees(fees)
    elapsed = time.monotonic() - started
    assert len(result.acknowledged) == 450 and set(result.acknowledged.values()) == {1}
    assert elapsed >= 2.0  # Retry-After was honoured, twice
    counts = communitypass_control.requests()
    assert counts["by_endpoint"][BATCH] == 3 + 2 and counts["faulted"] == 2
    held = communitypass_control.state()["fees"]
    assert len(held) == 450 and len({f["fee_ref"] for f in held}) == 450

    # Payments through a storm where every other request is limited: all pages, once.
    communitypass_control.pay_many([{"fee_ref": f["fee_ref"], "amount": "1.00"} for f in held])
    expected = [p["payment_id"] for p in communitypass_control.state()["payments"]]
    communitypass_control.faults("throttle", every=2, retry_after=0)
    seen, sizes, _ = pull_all(communitypass_adapter, limit=100)
    assert seen == expected and sizes == [100, 100, 100, 100, 50]
    assert communitypass_control.requests()["faulted"] == 2 + 4  # pages 2..5 were limited once


def test_a_long_retry_after_is_handed_to_the_engine_at_once(
    communitypass_adapter: CommunityPassAdapter, communitypass_control: SandboxControl
) -> None:
    communitypass_control.faults("throttle", retry_after=120)
    started = time.monotonic()
    with pytest.raises(VendorError) as info:
        communitypass_adapter.pull_payments()
    assert time.monotonic() - started < 30  # it did not wait the 120 s (a busy machine may be slow)
    assert info.value.permanent is False and info.value.retry_after == 120
    assert "limiting requests" in info.value.message and "429" in info.value.message
    assert requests_to(communitypass_control, PAYMENTS) == 1


def test_429_after_the_retries_are_spent(
    make_communitypass_adapter: MakeAdapter, communitypass_control: SandboxControl
) -> None:
    adapter = make_communitypass_adapter(max_retries=2)
    communitypass_control.faults("throttle", retry_after=0)
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert info.value.permanent is False and info.value.retry_after == 0
    assert requests_to(communitypass_control, PAYMENTS) == 3 and adapter.last_attempts == 3


def test_the_retry_budget_bounds_the_waiting(
    make_communitypass_adapter: MakeAdapter, communitypass_control: SandboxControl
) -> None:
    adapter = make_communitypass_adapter(max_retries=10, retry_budget=1.5)
    communitypass_control.faults("throttle", retry_after=1)
    started = time.monotonic()
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    # Waited once (1 s), then stopped: 10 retries would take 10 s. The request count is the
    # exact proof; the upper bound leaves room for a busy machine.
    assert 1.0 <= time.monotonic() - started < 8.0
    assert info.value.retry_after == 1 and requests_to(communitypass_control, PAYMENTS) == 2


def test_the_deadline_of_the_page_that_called_ends_the_retries(
    make_communitypass_adapter: MakeAdapter, communitypass_control: SandboxControl
) -> None:
    """A page's deadline wins over the adapter's own 20-second retry budget (issue 10,
    item 11c): `engine.adapter_for(integration, timeout=...)` sets it."""
    # Left to itself: 40 retries about 0.2 s apart, within its 20-second budget.
    adapter = make_communitypass_adapter(
        max_retries=40, retry_budget=20.0, backoff_base=0.3, backoff_cap=0.3
    )
    adapter.config = dataclasses.replace(adapter.config, deadline=time.monotonic() + 1.0)
    communitypass_control.faults("error")  # a 500 without Retry-After: retried
    started = time.monotonic()
    with pytest.raises(VendorError):
        adapter.pull_payments()
    # 40 retries would take about 12 s; the request count bounds what it did exactly.
    assert time.monotonic() - started < 8.0
    assert 2 <= requests_to(communitypass_control, PAYMENTS) < 10


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (404, False), (422, True)])
def test_other_4xx_are_never_retried(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
    status: int,
    permanent: bool,
) -> None:
    communitypass_control.faults("fault", status=status)
    with pytest.raises(VendorError) as info:
        communitypass_adapter.push_fees([fee_record("F1")])
    assert info.value.permanent is permanent
    assert info.value.message.startswith(
        "Community Pass rejected the request:" if status != 404 else "Community Pass answered"
    )
    assert requests_to(communitypass_control, BATCH) == 1  # one attempt, no retry
    assert communitypass_adapter.last_attempts == 1


def test_5xx_is_retried_and_a_push_lands_once(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
) -> None:
    communitypass_control.faults("fault", status=500, count=2)
    result = communitypass_adapter.push_fees([fee_record("F1"), fee_record("F2")])
    assert result.acknowledged == {"F1": 1, "F2": 1}
    assert requests_to(communitypass_control, BATCH) == 3
    assert list(fees_by_ref(communitypass_control)) == ["F1", "F2"]


def test_down_with_a_short_retry_after_recovers_within_the_call(
    communitypass_adapter: CommunityPassAdapter, communitypass_control: SandboxControl
) -> None:
    communitypass_control.faults("down", count=1, retry_after=0)
    assert communitypass_adapter.pull_payments().payments == []
    assert requests_to(communitypass_control, PAYMENTS) == 2


# --- faults in plain words ------------------------------------------------------------------------


def test_down_is_retryable_with_retry_after(
    communitypass_adapter: CommunityPassAdapter, communitypass_control: SandboxControl
) -> None:
    communitypass_control.faults("down", retry_after=45)
    with pytest.raises(VendorError) as info:
        communitypass_adapter.pull_payments()
    assert info.value.permanent is False and info.value.retry_after == 45
    assert "unavailable" in info.value.message and "503" in info.value.message
    check = communitypass_adapter.test_pull()
    assert check.ok is False and "unavailable" in check.answer
    communitypass_control.faults("ok")
    assert communitypass_adapter.test_pull().ok  # back by itself once the vendor is


def test_server_error_page_is_retried_then_reported(
    make_communitypass_adapter: MakeAdapter, communitypass_control: SandboxControl
) -> None:
    adapter = make_communitypass_adapter(max_retries=2)
    communitypass_control.faults("error")
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert info.value.permanent is False
    assert info.value.message.startswith("Community Pass' server failed (HTTP 500")
    assert requests_to(communitypass_control, PAYMENTS) == 3


def test_a_json_server_fault_says_what_the_vendor_said(
    make_communitypass_adapter: MakeAdapter, communitypass_control: SandboxControl
) -> None:
    adapter = make_communitypass_adapter(max_retries=0)
    communitypass_control.faults("fault")
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert "server failed (HTTP 500" in info.value.message
    assert "internal error" in info.value.message and not info.value.permanent


def test_slow_vendor_times_out_in_plain_words_without_a_retry(
    make_communitypass_adapter: MakeAdapter, communitypass_control: SandboxControl
) -> None:
    # A timeout a busy machine cannot reach by itself, and a delay far beyond it.
    adapter = make_communitypass_adapter(timeout=1.5)
    communitypass_control.faults("slow", delay_ms=6000)
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert info.value.permanent is False
    assert info.value.message == "Community Pass did not answer within 1.5 seconds."
    assert adapter.last_attempts == 1
    check = adapter.test_push()
    assert check.ok is False and "1.5 seconds" in check.answer and check.elapsed_ms < 6000


def test_malformed_reply(
    communitypass_adapter: CommunityPassAdapter, communitypass_control: SandboxControl
) -> None:
    communitypass_control.faults("malformed")
    with pytest.raises(VendorError) as info:
        communitypass_adapter.pull_payments()
    assert "not valid JSON" in info.value.message and info.value.permanent is False
    assert communitypass_adapter.last_attempts == 1
    assert "not valid JSON" in communitypass_adapter.test_pull().answer


def test_dropped_connection_is_retried_then_reported(
    make_communitypass_adapter: MakeAdapter, communitypass_control: SandboxControl
) -> None:
    adapter = make_communitypass_adapter(max_retries=2)
    communitypass_control.faults("drop")
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert "could not be reached" in info.value.message and not info.value.permanent
    assert adapter.last_attempts == 3


def test_connection_refused(make_communitypass_adapter: MakeAdapter) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = make_communitypass_adapter(base_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert info.value.message.startswith("Community Pass' server could not be reached at")
    assert "refused" in info.value.message and info.value.permanent is False
    check = adapter.test_push()
    assert check.ok is False and "could not be reached" in check.answer


def test_a_wrong_address_is_said_plainly(
    make_communitypass_adapter: MakeAdapter, communitypass: SandboxServer
) -> None:
    adapter = make_communitypass_adapter(base_url=communitypass.url + "/elsewhere")
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert "HTTP 404" in info.value.message and "check the service address" in info.value.message
    invalid = make_communitypass_adapter(base_url="not a url")
    with pytest.raises(VendorError) as info:
        invalid.pull_payments()
    assert info.value.permanent and "not a valid URL" in info.value.message


def test_bad_cursor_is_a_permanent_rejection(communitypass_adapter: CommunityPassAdapter) -> None:
    with pytest.raises(VendorError) as info:
        communitypass_adapter.pull_payments(cursor="not-a-cursor")
    assert info.value.permanent is True
    assert "rejected the request" in info.value.message and "invalid_cursor" in info.value.message


# --- reading the wire -----------------------------------------------------------------------------


def test_money_is_read_from_strings_only() -> None:
    assert _money_in("12.50", "amount") == Decimal("12.50")
    assert _money_in("7", "amount") == Decimal("7.00")
    for bad in (Decimal("12.5"), 12, 12.5, "1.005", "NaN", "twelve"):
        with pytest.raises(_BadReply):
            _money_in(bad, "amount")


def test_retry_after_as_seconds_or_http_date() -> None:
    assert _retry_after({"Retry-After": "3"}) == 3.0
    assert _retry_after({}) is None and _retry_after({"Retry-After": "soon"}) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (_retry_after({"Retry-After": later}) or 0) <= 30


# --- money from the wire: the ledger's one strict parser ----------------------------------------


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        ("1e3", "exponent notation"),
        ("12,50", "comma as the decimal mark"),
        ("12.505", "more than two decimal places"),
        ("NaN", "is not a number"),
        ("", "empty"),
    ],
)
def test_an_amount_from_the_wire_is_read_by_the_strict_parser(sent: str, said: str) -> None:
    with pytest.raises(_BadReply, match=said):
        _money_in(sent, "amount")


def test_plain_amounts_from_the_wire_are_read_as_sent() -> None:
    assert _money_in("12.50", "amount") == Decimal("12.50")
    assert _money_in("1,234.56", "amount") == Decimal("1234.56")
    assert _money_in("0.00", "balance") == Decimal("0.00")
    assert _money_in("-4.00", "balance") == Decimal("-4.00")  # a balance in credit
    with pytest.raises(_BadReply, match="not as a decimal string"):
        _money_in(Decimal("12.50"), "amount")  # a JSON number breaks the contract


# --- a connection dropped mid-answer (the vendor did the work; FeeSync never heard) ---------


@pytest.mark.parametrize("cut_at", ["body", "headers"])
def test_push_answered_then_cut_off_is_a_retryable_error_and_the_retry_is_harmless(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
    cut_at: str,
) -> None:
    communitypass_control.faults("drop_mid_answer", cut_at=cut_at, count=1)
    with pytest.raises(VendorError) as info:
        communitypass_adapter.push_fees([fee_record("F1", amount=Decimal("25.50"))])
    assert info.value.permanent is False
    assert "dropped while Community Pass was answering" in info.value.message
    # Not retried inside the call (the request arrived; the engine's outbox sends it again).
    assert communitypass_adapter.last_attempts == 1
    assert fees_by_ref(communitypass_control)["F1"]["version"] == 1  # stored all the same
    again = communitypass_adapter.push_fees([fee_record("F1", amount=Decimal("25.50"))])
    assert again.acknowledged == {"F1": 1}
    assert [f["fee_ref"] for f in communitypass_control.state()["fees"]] == ["F1"]


@pytest.mark.parametrize("cut_at", ["body", "headers"])
def test_pull_answered_then_cut_off_is_a_retryable_error_and_the_page_comes_again(
    communitypass_adapter: CommunityPassAdapter,
    communitypass_control: SandboxControl,
    fee_record: MakeFee,
    cut_at: str,
) -> None:
    communitypass_adapter.push_fees([fee_record("F1")])
    communitypass_control.pay("F1", "10.00")
    communitypass_control.faults("drop_mid_answer", cut_at=cut_at, count=1)
    with pytest.raises(VendorError) as info:
        communitypass_adapter.pull_payments()
    assert info.value.permanent is False
    assert "dropped while Community Pass was answering" in info.value.message
    page = communitypass_adapter.pull_payments()
    assert [(p.fee_ref, p.amount) for p in page.payments] == [("F1", Decimal("10.00"))]
