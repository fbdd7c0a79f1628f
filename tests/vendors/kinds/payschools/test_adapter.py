"""The PaySchools adapter against the real PaySchools sandbox, over real HTTP (zeep, SOAP,
WS-Security). Nothing is mocked: faults are injected through the sandbox's control API."""

from __future__ import annotations

import socket
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from apps.vendors.kinds.base import FeeRecord, VendorError
from apps.vendors.kinds.payschools.adapter import PaySchoolsAdapter, _money_in
from apps.vendors.registry import get_adapter_class
from apps.vendors.sandboxes.client import SandboxControl
from apps.vendors.sandboxes.server import SandboxServer

MakeAdapter = Callable[..., PaySchoolsAdapter]
MakeFee = Callable[..., FeeRecord]


def fees_by_ref(control: SandboxControl) -> dict[str, dict[str, Any]]:
    return {f["fee_ref"]: f for f in control.state()["fees"]}


def test_registered_under_its_kind() -> None:
    assert get_adapter_class("payschools") is PaySchoolsAdapter
    assert PaySchoolsAdapter.capabilities == frozenset(
        {"send", "pull", "validate", "lunch", "demographics"}
    )
    assert PaySchoolsAdapter.credential_labels() == {"username": "Username", "password": "Password"}


def test_base_url_may_be_the_root_or_the_endpoint(
    make_payschools_adapter: MakeAdapter, payschools: SandboxServer
) -> None:
    for base in (payschools.url, payschools.url + "/", payschools.url + "/soap"):
        adapter = make_payschools_adapter(base_url=base)
        assert adapter.service_url == payschools.url + "/soap"
        assert adapter.test_push().ok


# --- checks ---------------------------------------------------------------------------------------


def test_test_pull_and_test_push_pass_and_change_nothing(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl
) -> None:
    pull = payschools_adapter.test_pull()
    push = payschools_adapter.test_push()
    assert pull.ok and push.ok, (pull, push)
    assert "payments" in pull.tried.lower() or "payment" in pull.tried.lower()
    assert "TestConnection" in push.tried and "changes nothing" in push.tried
    assert pull.elapsed_ms >= 0 and push.elapsed_ms >= 0
    assert payschools_control.state() == {"fees": [], "payments": [], "balances": {}}


def test_wrong_password_is_permanent_and_plain(
    make_payschools_adapter: MakeAdapter,
) -> None:
    adapter = make_payschools_adapter(credentials={"username": "feesync", "password": "wrong"})
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert info.value.permanent is True
    assert "PaySchools refused the username or password" in info.value.message
    check = adapter.test_pull()
    assert check.ok is False and "refused the username or password" in check.answer
    assert adapter.test_push().ok is False


def test_missing_credentials_are_permanent(make_payschools_adapter: MakeAdapter) -> None:
    adapter = make_payschools_adapter(credentials={})
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert info.value.permanent and "username and a password" in info.value.message


# --- pushing fees ---------------------------------------------------------------------------------


def test_push_then_state_shows_the_fee(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl, fee_record: MakeFee
) -> None:
    result = payschools_adapter.push_fees([fee_record("F1", amount=Decimal("25.50"))])
    assert result.acknowledged == {"F1": 1} and result.rejected == {}
    fee = fees_by_ref(payschools_control)["F1"]
    assert fee["amount"] == "25.50" and fee["amount_due"] == "25.50"
    assert fee["student_id"] == "100001" and fee["status"] == "open" and fee["version"] == 1
    assert fee["due_date"] == "2025-10-01" and fee["foreign"] is False


def test_redelivery_is_harmless_and_a_new_version_updates(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl, fee_record: MakeFee
) -> None:
    payschools_adapter.push_fees([fee_record("F1")])
    again = payschools_adapter.push_fees([fee_record("F1", amount="99.00")])  # same version
    assert again.acknowledged == {"F1": 1}
    assert len(payschools_control.state()["fees"]) == 1
    assert fees_by_ref(payschools_control)["F1"]["amount"] == "25.00"

    newer = payschools_adapter.push_fees([fee_record("F1", version=2, amount="30.00")])
    assert newer.acknowledged == {"F1": 2}
    fee = fees_by_ref(payschools_control)["F1"]
    assert fee["amount"] == "30.00" and fee["version"] == 2

    older = payschools_adapter.push_fees([fee_record("F1", version=1, amount="5.00")])
    assert older.acknowledged == {"F1": 2}  # the vendor says what it holds
    assert fees_by_ref(payschools_control)["F1"]["amount"] == "30.00"


def test_inactive_fee_stops_collection(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl, fee_record: MakeFee
) -> None:
    payschools_adapter.push_fees([fee_record("F1")])
    payschools_adapter.push_fees([fee_record("F1", version=2, active=False)])
    assert fees_by_ref(payschools_control)["F1"]["status"] == "inactive"


def test_rejected_fees_are_reported_and_the_rest_delivered(
    payschools_adapter: PaySchoolsAdapter, fee_record: MakeFee
) -> None:
    result = payschools_adapter.push_fees(
        [fee_record("GOOD"), fee_record("BAD", amount="10.00", amount_due=Decimal("12.00"))]
    )
    assert result.acknowledged == {"GOOD": 1}
    assert "more than Amount" in result.rejected["BAD"]


def test_large_pushes_go_in_batches_of_200(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl, fee_record: MakeFee
) -> None:
    fees = [fee_record(f"F{i:04d}", student_id=f"S{i % 40}") for i in range(450)]
    result = payschools_adapter.push_fees(fees)
    assert len(result.acknowledged) == 450 and not result.rejected
    assert len(payschools_control.state()["fees"]) == 450


def test_float_money_is_refused(payschools_adapter: PaySchoolsAdapter, fee_record: MakeFee) -> None:
    with pytest.raises(VendorError) as info:
        payschools_adapter.push_fees([fee_record("F1", amount=12.5, amount_due=12.5)])
    assert info.value.permanent and "float" in info.value.message


# --- pulling payments -----------------------------------------------------------------------------


def test_partial_payment_comes_back_as_decimal(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl, fee_record: MakeFee
) -> None:
    payschools_adapter.push_fees([fee_record("F1", amount="25.00")])
    payschools_control.pay("F1", "10.05")
    page = payschools_adapter.pull_payments()
    assert len(page.payments) == 1 and page.has_more is False and page.cursor
    payment = page.payments[0]
    assert payment.amount == Decimal("10.05") and isinstance(payment.amount, Decimal)
    assert payment.fee_ref == "F1" and payment.student_id == "100001"
    assert payment.kind == "payment" and payment.closed is False and payment.refers_to is None
    assert payment.occurred_at is not None and payment.occurred_at.utcoffset() is not None
    assert fees_by_ref(payschools_control)["F1"]["amount_due"] == "14.95"
    # Nothing new: an empty page that keeps the position.
    again = payschools_adapter.pull_payments(cursor=page.cursor)
    assert again.payments == [] and again.cursor == page.cursor and again.has_more is False


def test_cursor_paging_loses_and_doubles_nothing(
    payschools_adapter: PaySchoolsAdapter,
    payschools_control: SandboxControl,
) -> None:
    payschools_control.seed_fees(
        [{"fee_ref": f"F{i}", "student_id": f"S{i % 7}", "amount": "100.00"} for i in range(400)]
    )
    payschools_control.pay_many([{"fee_ref": f"F{i % 400}", "amount": "1.00"} for i in range(1200)])
    expected = [p["payment_id"] for p in payschools_control.state()["payments"]]
    assert len(expected) == 1200

    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    while True:
        page = payschools_adapter.pull_payments(cursor=cursor, limit=500)
        seen += [p.payment_id for p in page.payments]
        sizes.append(len(page.payments))
        cursor = page.cursor
        if not page.has_more:
            break
    assert sizes == [500, 500, 200]
    assert seen == expected  # in recorded order, none lost, none doubled

    payschools_control.pay("F1", "1.00")
    later = payschools_adapter.pull_payments(cursor=cursor, limit=500)
    assert len(later.payments) == 1 and later.payments[0].fee_ref == "F1"


def test_student_filter(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl, fee_record: MakeFee
) -> None:
    payschools_adapter.push_fees(
        [
            fee_record("A1", student_id="A"),
            fee_record("B1", student_id="B"),
            fee_record("C1", student_id="C"),
        ]
    )
    for ref in ("A1", "B1", "C1", "A1"):
        payschools_control.pay(ref, "1.00")
    page = payschools_adapter.pull_payments(student_ids=["A", "C"])
    assert [p.fee_ref for p in page.payments] == ["A1", "C1", "A1"]
    assert payschools_adapter.pull_payments(student_ids=[]).payments == []
    assert payschools_adapter.pull_payments(student_ids=["nobody"]).payments == []


def test_closed_refund_waiver_and_void_kinds(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl, fee_record: MakeFee
) -> None:
    payschools_adapter.push_fees(
        [fee_record("F1", amount="20.00"), fee_record("F2", amount="20.00"), fee_record("F3")]
    )
    closing = payschools_control.pay("F1", "5.00", closed=True)["payment"]["payment_id"]
    paid = payschools_control.pay("F2", "20.00")["payment"]["payment_id"]
    refund = payschools_control.refund(paid, "7.50")["payment"]["payment_id"]
    payschools_control.waive("F3")
    page = payschools_adapter.pull_payments()
    by_id = {p.payment_id: p for p in page.payments}
    assert by_id[closing].closed is True and by_id[closing].amount == Decimal("5.00")
    assert by_id[refund].kind == "refund" and by_id[refund].refers_to == paid
    assert by_id[refund].amount == Decimal("7.50")
    waiver = next(p for p in page.payments if p.kind == "waiver")
    assert waiver.fee_ref == "F3" and waiver.amount == Decimal("25.00") and waiver.closed
    voided = payschools_control.void(closing)["payment"]["payment_id"]
    void = payschools_adapter.pull_payments(cursor=page.cursor).payments
    assert [(v.payment_id, v.kind, v.refers_to) for v in void] == [(voided, "void", closing)]
    fees = fees_by_ref(payschools_control)
    assert fees["F1"]["status"] == "open" and fees["F3"]["status"] == "waived"


def test_duplicate_payments_mode_sends_each_payment_twice(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl, fee_record: MakeFee
) -> None:
    payschools_adapter.push_fees([fee_record("F1")])
    payschools_control.pay("F1", "1.00")
    payschools_control.pay("F1", "2.00")
    payschools_control.faults("ok", duplicate_payments=True)
    ids = [p.payment_id for p in payschools_adapter.pull_payments().payments]
    assert len(ids) == 4 and len(set(ids)) == 2  # the engine records each id once


# --- validation and balances ----------------------------------------------------------------------


def test_list_fees_includes_foreign_fees(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl, fee_record: MakeFee
) -> None:
    payschools_adapter.push_fees([fee_record("MINE", amount="12.00")])
    payschools_control.pay("MINE", "2.00")
    foreign_ref = payschools_control.foreign_fee("100001", "7.25")["fee"]["fee_ref"]
    page = payschools_adapter.list_fees()
    assert page.has_more is False
    fees = {f.fee_ref: f for f in page.fees}
    assert fees["MINE"].foreign is False and fees["MINE"].amount_due == Decimal("10.00")
    assert fees["MINE"].amount == Decimal("12.00") and fees["MINE"].version == 1
    assert fees[foreign_ref].foreign is True and fees[foreign_ref].amount == Decimal("7.25")


def test_list_fees_pages(
    make_payschools_adapter: MakeAdapter, payschools_control: SandboxControl
) -> None:
    payschools_control.seed_fees(
        [{"fee_ref": f"F{i}", "student_id": "S", "amount": "1.00"} for i in range(25)]
    )
    adapter = make_payschools_adapter(list_page_size=10)
    refs: list[str] = []
    cursor = None
    while True:
        page = adapter.list_fees(cursor=cursor)
        refs += [f.fee_ref for f in page.fees]
        cursor = page.cursor
        if not page.has_more:
            break
    assert refs == [f"F{i}" for i in range(25)]


def test_lunch_balances(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl
) -> None:
    assert payschools_adapter.get_lunch_balances(["S1"]) == {}
    payschools_control.lunch("S1", "12.40")
    payschools_control.lunch("S2", "-3.00")
    balances = payschools_adapter.get_lunch_balances(["S1", "S2", "S3"])
    assert balances == {"S1": Decimal("12.40"), "S2": Decimal("-3.00")}
    assert all(isinstance(v, Decimal) for v in balances.values())


# --- faults ---------------------------------------------------------------------------------------


def test_down_is_retryable_with_retry_after(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl
) -> None:
    assert payschools_adapter.test_push().ok  # the WSDL is loaded and cached
    payschools_control.faults("down", retry_after=12)
    with pytest.raises(VendorError) as info:
        payschools_adapter.pull_payments()
    assert info.value.permanent is False and info.value.retry_after == 12
    assert "unavailable" in info.value.message and "503" in info.value.message
    check = payschools_adapter.test_pull()
    assert check.ok is False and "unavailable" in check.answer
    payschools_control.faults("ok")
    assert payschools_adapter.test_pull().ok  # back by itself once the vendor is


def test_down_before_the_wsdl_was_read(
    make_payschools_adapter: MakeAdapter, payschools_control: SandboxControl
) -> None:
    payschools_control.faults("down")
    adapter = make_payschools_adapter()
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert "service description (WSDL) could not be loaded" in info.value.message
    assert "503" in info.value.message and info.value.permanent is False


def test_server_error(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl
) -> None:
    payschools_control.faults("error")
    with pytest.raises(VendorError) as info:
        payschools_adapter.pull_payments()
    assert info.value.permanent is False
    assert "PaySchools' server failed (HTTP 500" in info.value.message


def test_slow_vendor_times_out_in_plain_words(
    make_payschools_adapter: MakeAdapter, payschools_control: SandboxControl
) -> None:
    # A timeout a busy machine cannot reach by itself, and a delay far beyond it.
    adapter = make_payschools_adapter(timeout=1.5)
    assert adapter.test_push().ok
    payschools_control.faults("slow", delay_ms=6000)
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert info.value.permanent is False
    assert info.value.message == "PaySchools did not answer within 1.5 seconds."
    check = adapter.test_push()
    assert check.ok is False and "1.5 seconds" in check.answer and check.elapsed_ms < 6000


def test_slow_wsdl_times_out_too(
    make_payschools_adapter: MakeAdapter, payschools_control: SandboxControl
) -> None:
    payschools_control.faults("slow", delay_ms=6000)
    with pytest.raises(VendorError) as info:
        make_payschools_adapter(timeout=1.5).pull_payments()
    assert "WSDL" in info.value.message and "within 1.5 seconds" in info.value.message
    assert info.value.permanent is False


def test_no_wsdl(make_payschools_adapter: MakeAdapter, payschools_control: SandboxControl) -> None:
    payschools_control.faults("no_wsdl")
    adapter = make_payschools_adapter()
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    message = info.value.message
    assert message.startswith("PaySchools' service description (WSDL) could not be loaded from")
    assert adapter.wsdl_url in message and "404" in message
    assert adapter.test_pull().ok is False
    payschools_control.faults("ok")
    assert adapter.test_pull().ok  # a failed WSDL load is not cached


def test_malformed_reply(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl
) -> None:
    payschools_control.faults("malformed")
    with pytest.raises(VendorError) as info:
        payschools_adapter.pull_payments()
    assert "not valid XML" in info.value.message and info.value.permanent is False


def test_soap_fault_from_the_server(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl
) -> None:
    payschools_control.faults("fault")
    with pytest.raises(VendorError) as info:
        payschools_adapter.pull_payments()
    assert info.value.permanent is False
    assert info.value.message.startswith("PaySchools reported an error on its side:")
    assert "internal error" in info.value.message


def test_dropped_connection(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl
) -> None:
    assert payschools_adapter.test_push().ok
    payschools_control.faults("drop")
    with pytest.raises(VendorError) as info:
        payschools_adapter.pull_payments()
    assert "could not be reached" in info.value.message and not info.value.permanent


def test_throttled(
    payschools_adapter: PaySchoolsAdapter, payschools_control: SandboxControl
) -> None:
    assert payschools_adapter.test_push().ok
    payschools_control.faults("throttle", retry_after=5)
    with pytest.raises(VendorError) as info:
        payschools_adapter.pull_payments()
    assert "429" in info.value.message and info.value.retry_after == 5
    assert not info.value.permanent


def test_connection_refused(make_payschools_adapter: MakeAdapter) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = make_payschools_adapter(base_url=f"http://127.0.0.1:{port}/soap", timeout=2)
    with pytest.raises(VendorError) as info:
        adapter.pull_payments()
    assert "PaySchools' server could not be reached" in info.value.message
    assert "refused" in info.value.message and info.value.permanent is False
    check = adapter.test_push()
    assert check.ok is False and "could not be reached" in check.answer


def test_bad_cursor_is_a_permanent_rejection(payschools_adapter: PaySchoolsAdapter) -> None:
    with pytest.raises(VendorError) as info:
        payschools_adapter.pull_payments(cursor="not-a-cursor")
    assert info.value.permanent is True and "rejected the request" in info.value.message


# --- money from the wire: the ledger's one strict parser ----------------------------------------


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        (Decimal("1E+3"), "exponent notation"),
        (Decimal("12.505"), "more than two decimal places"),
        (Decimal("NaN"), "not a number"),
        (None, "not an amount"),
        (12.5, "not an amount"),
    ],
)
def test_an_amount_from_the_wire_is_read_by_the_strict_parser(sent: Any, said: str) -> None:
    """zeep reads any xsd:decimal text into a Decimal; rounding 12.505 (as this adapter once
    did) would post a cent nobody sent, so a bad amount is a plain error naming it."""
    with pytest.raises(VendorError, match=said) as info:
        _money_in(sent, "the amount of payment P-1")
    assert "PaySchools" in info.value.message and "payment P-1" in info.value.message


def test_plain_amounts_from_the_wire_are_read_as_sent() -> None:
    assert _money_in(Decimal("12.50"), "amount") == Decimal("12.50")
    assert _money_in(Decimal("0"), "balance") == Decimal("0.00")
    assert _money_in(Decimal("-4.00"), "balance") == Decimal("-4.00")  # a balance in credit


# --- a connection dropped mid-answer (the vendor did the work; FeeSync never heard) ---------


@pytest.mark.parametrize("cut_at", ["body", "headers"])
def test_push_answered_then_cut_off_is_a_retryable_error_and_the_retry_is_harmless(
    payschools_adapter: PaySchoolsAdapter,
    payschools_control: SandboxControl,
    fee_record: MakeFee,
    cut_at: str,
) -> None:
    assert payschools_adapter.test_push().ok  # the WSDL is loaded: the next call is the push
    payschools_control.faults("drop_mid_answer", cut_at=cut_at, count=1)
    with pytest.raises(VendorError) as info:
        payschools_adapter.push_fees([fee_record("F1", amount=Decimal("25.50"))])
    assert info.value.permanent is False
    assert "dropped while PaySchools was answering" in info.value.message
    # PaySchools stored it all the same: the nasty case.
    assert fees_by_ref(payschools_control)["F1"]["version"] == 1
    again = payschools_adapter.push_fees([fee_record("F1", amount=Decimal("25.50"))])
    assert again.acknowledged == {"F1": 1}
    assert [f["fee_ref"] for f in payschools_control.state()["fees"]] == ["F1"]
    assert payschools_control.requests()["faulted"] == 1


@pytest.mark.parametrize("cut_at", ["body", "headers"])
def test_pull_answered_then_cut_off_is_a_retryable_error_and_the_page_comes_again(
    payschools_adapter: PaySchoolsAdapter,
    payschools_control: SandboxControl,
    fee_record: MakeFee,
    cut_at: str,
) -> None:
    payschools_adapter.push_fees([fee_record("F1")])
    payschools_control.pay("F1", "10.00")
    payschools_control.faults("drop_mid_answer", cut_at=cut_at, count=1)
    with pytest.raises(VendorError) as info:
        payschools_adapter.pull_payments()
    assert info.value.permanent is False
    assert "dropped while PaySchools was answering" in info.value.message
    page = payschools_adapter.pull_payments()
    assert [(p.fee_ref, p.amount) for p in page.payments] == [("F1", Decimal("10.00"))]
