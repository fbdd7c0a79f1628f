"""The PaySchools sandbox itself: its SOAP contract, its control API and its fault modes,
driven over real HTTP with raw SOAP envelopes, zeep and the JSON control API."""

from __future__ import annotations

import socket
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from zeep import Client
from zeep.wsse.username import UsernameToken

from apps.vendors.kinds.payschools.sandbox import NS, SOAP_ENV, WSSE, make_server
from apps.vendors.registry import load_sandbox, sandboxes
from apps.vendors.sandboxes.client import SandboxControl, SandboxControlError
from apps.vendors.sandboxes.server import SandboxServer

PS = {"ps": NS, "soap": SOAP_ENV}


def soap(
    url: str,
    operation_xml: str,
    *,
    username: str = "feesync",
    password: str = "sandbox-secret",  # noqa: S107 - the sandbox's documented default
    security: bool = True,
) -> tuple[int, etree._Element]:
    header = (
        f'<soap:Header><wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
        f"<wsse:Username>{username}</wsse:Username><wsse:Password>{password}</wsse:Password>"
        "</wsse:UsernameToken></wsse:Security></soap:Header>"
        if security
        else ""
    )
    body = (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:ps="{NS}">{header}'
        f"<soap:Body>{operation_xml}</soap:Body></soap:Envelope>"
    )
    response = requests.post(
        f"{url}/soap", data=body.encode(), headers={"Content-Type": "text/xml"}, timeout=10
    )
    return response.status_code, etree.fromstring(response.content)


def fee_xml(fee_ref: str, version: int = 1, amount: str = "10.00", due: str | None = None) -> str:
    return (
        f"<ps:Fee><ps:FeeRef>{fee_ref}</ps:FeeRef><ps:Version>{version}</ps:Version>"
        "<ps:StudentId>S1</ps:StudentId><ps:StudentName>Kid</ps:StudentName>"
        "<ps:SchoolCode>HS</ps:SchoolCode><ps:CategoryCode>BUS</ps:CategoryCode>"
        "<ps:MerchantId>M1</ps:MerchantId><ps:Description>Bus</ps:Description>"
        f"<ps:Amount>{amount}</ps:Amount><ps:AmountDue>{due or amount}</ps:AmountDue>"
        "<ps:FeeDate>2025-09-01</ps:FeeDate><ps:Active>true</ps:Active></ps:Fee>"
    )


def upsert(url: str, *fees: str) -> tuple[int, etree._Element]:
    return soap(url, f"<ps:UpsertFees><ps:Fees>{''.join(fees)}</ps:Fees></ps:UpsertFees>")


def results(doc: etree._Element) -> list[dict[str, str]]:
    return [
        {etree.QName(c).localname: c.text or "" for c in r}
        for r in doc.iterfind(".//ps:Result", PS)
    ]


def fault(doc: etree._Element) -> tuple[str, str, str]:
    node = doc.find(".//soap:Fault", PS)
    assert node is not None, etree.tostring(doc)
    return (
        node.findtext("faultcode") or "",
        node.findtext("faultstring") or "",
        node.findtext("detail/ps:PaySchoolsFault/ps:Code", namespaces=PS) or "",
    )


# --- the service description ----------------------------------------------------------------------


def test_wsdl_is_served_with_the_real_address_and_zeep_reads_it(payschools: SandboxServer) -> None:
    response = requests.get(f"{payschools.url}/soap?wsdl", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    assert f'location="{payschools.url}/soap"' in response.text
    assert "{{SERVICE_URL}}" not in response.text
    client = Client(f"{payschools.url}/soap?wsdl", wsse=UsernameToken("feesync", "sandbox-secret"))
    operations = set(client.service._binding._operations)
    assert {
        "UpsertFees",
        "MarkFeeInactive",
        "GetPayments",
        "ListFees",
        "GetLunchBalances",
        "TestConnection",
    } <= operations
    assert client.service.TestConnection(Echo="hello").Echo == "hello"


def test_registry_and_module_entry_points() -> None:
    assert sandboxes()["payschools"] == "apps.vendors.kinds.payschools.sandbox"
    module = load_sandbox("payschools")
    assert module.DEFAULT_PORT == 8101
    assert callable(module.make_server) and callable(module.run)
    with pytest.raises(LookupError):
        load_sandbox("nobody")


# --- authentication -------------------------------------------------------------------------------


def test_missing_security_header_is_a_fault(payschools: SandboxServer) -> None:
    status, doc = soap(
        payschools.url,
        "<ps:TestConnection><ps:Echo>x</ps:Echo></ps:TestConnection>",
        security=False,
    )
    assert status == 500
    code, text, detail = fault(doc)
    assert code == "wsse:InvalidSecurity" and "UsernameToken" in text
    assert detail == "AuthenticationRequired"


def test_wrong_password_is_a_clear_fault(payschools: SandboxServer) -> None:
    status, doc = soap(
        payschools.url,
        "<ps:TestConnection><ps:Echo>x</ps:Echo></ps:TestConnection>",
        password="nope",
    )
    assert status == 500
    code, text, detail = fault(doc)
    assert code == "wsse:FailedAuthentication"
    assert text == "Authentication failed: the username or password is not correct."
    assert detail == "AuthenticationFailed"


def test_password_digest_is_accepted(payschools: SandboxServer) -> None:
    client = Client(
        f"{payschools.url}/soap?wsdl",
        wsse=UsernameToken("feesync", "sandbox-secret", use_digest=True),
    )
    assert client.service.TestConnection(Echo="digest").Echo == "digest"
    wrong = Client(
        f"{payschools.url}/soap?wsdl", wsse=UsernameToken("feesync", "bad", use_digest=True)
    )
    with pytest.raises(Exception, match="username or password"):
        wrong.service.TestConnection(Echo="digest")


def test_garbage_and_unknown_operations_are_client_faults(payschools: SandboxServer) -> None:
    response = requests.post(f"{payschools.url}/soap", data=b"<not-xml", timeout=5)
    assert response.status_code == 500
    assert fault(etree.fromstring(response.content))[0] == "soap:Client"
    status, doc = soap(payschools.url, "<ps:StealMoney/>")
    assert status == 500 and fault(doc)[2] == "UnknownOperation"


# --- fees -----------------------------------------------------------------------------------------


def test_upsert_is_idempotent_by_version(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    status, doc = upsert(payschools.url, fee_xml("F1", 1, "10.00"))
    assert status == 200
    assert results(doc) == [{"FeeRef": "F1", "Version": "1", "Status": "accepted"}]

    _, doc = upsert(payschools.url, fee_xml("F1", 1, "99.00"))
    assert results(doc) == [{"FeeRef": "F1", "Version": "1", "Status": "stale"}]
    _, doc = upsert(payschools.url, fee_xml("F1", 2, "12.00"))
    assert results(doc)[0]["Status"] == "accepted"
    _, doc = upsert(payschools.url, fee_xml("F1", 1, "50.00"))  # late redelivery of v1
    assert results(doc) == [{"FeeRef": "F1", "Version": "2", "Status": "stale"}]

    fees = payschools_control.state()["fees"]
    assert len(fees) == 1
    assert fees[0]["amount"] == "12.00" and fees[0]["version"] == 2


def test_bad_fees_are_rejected_one_by_one(payschools: SandboxServer) -> None:
    _, doc = upsert(
        payschools.url,
        fee_xml("OK", 1, "10.00"),
        fee_xml("TOO-MUCH-DUE", 1, "10.00", due="11.00"),
        fee_xml("THREE-PLACES", 1, "10.005"),
        fee_xml("", 1),
    )
    got = {r["FeeRef"]: r for r in results(doc)}
    assert got["OK"]["Status"] == "accepted"
    assert got["TOO-MUCH-DUE"]["Status"] == "rejected"
    assert "more than Amount" in got["TOO-MUCH-DUE"]["Message"]
    assert "two decimal places" in got["THREE-PLACES"]["Message"]
    assert got[""]["Status"] == "rejected"


def test_batch_limit_is_200(payschools: SandboxServer) -> None:
    status, doc = upsert(payschools.url, *(fee_xml(f"F{i}") for i in range(201)))
    assert status == 500 and fault(doc)[2] == "BatchTooLarge"
    status, doc = upsert(payschools.url, *(fee_xml(f"F{i}") for i in range(200)))
    assert status == 200 and len(results(doc)) == 200


def test_mark_fee_inactive(payschools: SandboxServer, payschools_control: SandboxControl) -> None:
    upsert(payschools.url, fee_xml("F1", 3))
    op = (
        "<ps:MarkFeeInactive><ps:FeeRef>F1</ps:FeeRef>"
        "<ps:Version>{v}</ps:Version></ps:MarkFeeInactive>"
    )
    _, doc = soap(payschools.url, op.format(v=3))
    assert results(doc)[0]["Status"] == "stale"
    _, doc = soap(payschools.url, op.format(v=4))
    assert results(doc)[0] == {"FeeRef": "F1", "Version": "4", "Status": "accepted"}
    fee = payschools_control.state()["fees"][0]
    assert fee["active"] is False and fee["status"] == "inactive"
    with pytest.raises(SandboxControlError, match="inactive"):
        payschools_control.pay("F1", "1.00")


def test_a_new_version_keeps_what_parents_paid(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    upsert(payschools.url, fee_xml("F1", 1, "30.00"))
    payschools_control.pay("F1", "10.00")
    # FeeSync has not pulled the payment yet and sends the fee again, raised to 40.00.
    upsert(payschools.url, fee_xml("F1", 2, "40.00"))
    fee = payschools_control.state()["fees"][0]
    assert fee["amount"] == "40.00" and fee["amount_due"] == "30.00"


# --- the control API ------------------------------------------------------------------------------


def test_pay_with_allow_over_takes_more_than_is_due_and_reports_it_whole(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    upsert(payschools.url, fee_xml("F1", 1, "10.00"))
    answer = payschools_control.pay("F1", "12.50", allow_over=True)
    assert answer["payment"]["amount"] == "12.50"
    assert (answer["fee"]["amount_due"], answer["fee"]["paid"]) == ("0.00", "12.50")
    with pytest.raises(SandboxControlError, match="true or false"):
        payschools_control.call("pay", {"fee_ref": "F1", "amount": "1.00", "allow_over": "yes"})


def test_pay_refuses_more_than_due_and_unknown_fees(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    upsert(payschools.url, fee_xml("F1", 1, "10.00"))
    response = requests.post(
        f"{payschools.url}/_sandbox/pay", json={"fee_ref": "F1", "amount": "10.01"}, timeout=5
    )
    assert response.status_code == 400
    assert "more than the 10.00 still due" in response.json()["error"]
    with pytest.raises(SandboxControlError) as info:
        payschools_control.pay("NOPE", "1.00")
    assert info.value.status == 404
    with pytest.raises(SandboxControlError, match="two decimal places"):
        payschools_control.pay("F1", "1.001")
    # A JSON number is read as a decimal, never as a float.
    response = requests.post(
        f"{payschools.url}/_sandbox/pay",
        data=b'{"fee_ref": "F1", "amount": 2.10}',
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    state = payschools_control.state()
    assert state["fees"][0]["amount_due"] == "7.90"
    assert state["payments"][0]["amount"] == "2.10"


def test_refund_void_waive_and_state_shape(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    upsert(payschools.url, fee_xml("F1", 1, "10.00"), fee_xml("F2", 1, "8.00"))
    paid = payschools_control.pay("F1", "6.00")["payment"]
    refund = payschools_control.refund(paid["payment_id"], "2.50")
    assert refund["payment"]["refers_to"] == paid["payment_id"]
    assert refund["fee"]["amount_due"] == "6.50"
    with pytest.raises(SandboxControlError, match="not yet given back"):
        payschools_control.refund(paid["payment_id"], "4.00")
    with pytest.raises(SandboxControlError, match="already refunded"):
        payschools_control.void(paid["payment_id"])
    waived = payschools_control.waive("F2")
    assert waived["payment"]["kind"] == "waiver" and waived["payment"]["amount"] == "8.00"
    assert waived["fee"]["status"] == "waived" and waived["fee"]["amount_due"] == "0.00"

    state = payschools_control.state()
    for fee in state["fees"]:
        assert {"fee_ref", "student_id", "amount", "amount_due", "status", "version"} <= set(fee)
    for payment in state["payments"]:
        assert {"payment_id", "fee_ref", "amount", "closed", "kind"} <= set(payment)
        assert isinstance(payment["amount"], str)
    assert [p["kind"] for p in state["payments"]] == ["payment", "refund", "waiver"]


def test_void_of_a_closing_payment_reopens_the_fee(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    upsert(payschools.url, fee_xml("F1", 1, "10.00"))
    paid = payschools_control.pay("F1", "4.00", closed=True)
    assert paid["fee"]["status"] == "closed" and paid["fee"]["amount_due"] == "0.00"
    voided = payschools_control.void(paid["payment"]["payment_id"])
    assert voided["payment"]["kind"] == "void" and voided["payment"]["amount"] == "4.00"
    assert voided["fee"]["status"] == "open" and voided["fee"]["amount_due"] == "10.00"


def test_foreign_fee_lunch_delete_and_reset(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    foreign = payschools_control.foreign_fee("S9", "15.00")["fee"]
    assert foreign["foreign"] is True and foreign["amount_due"] == "15.00"
    payschools_control.lunch("S9", "-3.25")
    assert payschools_control.state()["balances"] == {"S9": "-3.25"}
    payschools_control.delete_fee(foreign["fee_ref"])
    assert payschools_control.state()["fees"] == []
    with pytest.raises(SandboxControlError):
        payschools_control.delete_fee(foreign["fee_ref"])
    payschools_control.reset()
    assert payschools_control.state() == {"fees": [], "payments": [], "balances": {}}


def test_payment_ids_are_never_reused_after_reset(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    upsert(payschools.url, fee_xml("F1"))
    first = payschools_control.pay("F1", "1.00")["payment"]["payment_id"]
    payschools_control.reset()
    upsert(payschools.url, fee_xml("F1"))
    second = payschools_control.pay("F1", "1.00")["payment"]["payment_id"]
    assert first != second


def test_control_api_errors_are_json(payschools: SandboxServer) -> None:
    response = requests.post(
        f"{payschools.url}/_sandbox/faults", json={"mode": "explode"}, timeout=5
    )
    assert response.status_code == 400 and "Unknown fault mode" in response.json()["error"]
    response = requests.post(f"{payschools.url}/_sandbox/pay", data=b"{nope", timeout=5)
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    assert requests.get(f"{payschools.url}/_sandbox/nothing", timeout=5).status_code == 404
    index = requests.get(f"{payschools.url}/_sandbox/", timeout=5).json()
    assert "POST /_sandbox/pay" in index["endpoints"] and "malformed" in index["fault_modes"]


# --- fault modes at the HTTP level ----------------------------------------------------------------


def test_down_blocks_the_vendor_but_not_the_control_api(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    payschools_control.faults("down", retry_after=7)
    response = requests.get(f"{payschools.url}/soap?wsdl", timeout=5)
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    assert requests.post(f"{payschools.url}/soap", data=b"<x/>", timeout=5).status_code == 503
    assert payschools_control.state()["fees"] == []  # the control API still answers
    assert payschools_control.call("faults")["mode"] == "down"


def test_no_wsdl_error_malformed_fault_drop(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    echo = "<ps:TestConnection><ps:Echo>x</ps:Echo></ps:TestConnection>"
    payschools_control.faults("no_wsdl")
    assert requests.get(f"{payschools.url}/soap?wsdl", timeout=5).status_code == 404
    assert soap(payschools.url, echo)[0] == 200

    payschools_control.faults("error")
    assert requests.get(f"{payschools.url}/soap?wsdl", timeout=5).status_code == 200
    response = requests.post(f"{payschools.url}/soap", data=b"<x/>", timeout=5)
    assert response.status_code == 500 and response.headers["Content-Type"].startswith("text/html")

    payschools_control.faults("malformed")
    response = requests.post(f"{payschools.url}/soap", data=b"<x/>", timeout=5)
    assert response.status_code == 200
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(response.content)

    payschools_control.faults("fault")
    status, doc = soap(payschools.url, echo)
    assert status == 500 and fault(doc)[0] == "soap:Server"

    payschools_control.faults("drop")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{payschools.url}/soap", data=b"<x/>", timeout=5)


def test_slow_answers_after_the_delay(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    payschools_control.faults("slow", delay_ms=400)
    with pytest.raises(requests.Timeout):
        requests.get(f"{payschools.url}/soap?wsdl", timeout=0.1)
    assert requests.get(f"{payschools.url}/soap?wsdl", timeout=5).status_code == 200


# --- pages, cursors and hidden payments -----------------------------------------------------------


def _payments(url: str, inner: str = "") -> tuple[list[str], str | None, bool]:
    _, doc = soap(url, f"<ps:GetPayments>{inner}</ps:GetPayments>")
    ids = [e.text or "" for e in doc.iterfind(".//ps:PaymentId", PS)]
    return (
        ids,
        doc.findtext(".//ps:NextCursor", namespaces=PS),
        doc.findtext(".//ps:HasMore", namespaces=PS) == "true",
    )


def test_cursor_errors(payschools: SandboxServer) -> None:
    status, doc = soap(
        payschools.url, "<ps:GetPayments><ps:Cursor>%%%</ps:Cursor></ps:GetPayments>"
    )
    assert status == 500 and fault(doc)[2] == "InvalidCursor"
    status, doc = soap(payschools.url, "<ps:GetPayments><ps:Limit>5000</ps:Limit></ps:GetPayments>")
    assert status == 500 and fault(doc)[2] == "BadLimit"


def test_hidden_payments_are_missed_by_pulls_but_seen_by_list_fees(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    upsert(payschools.url, fee_xml("F1", 1, "10.00"), fee_xml("F2", 1, "10.00"))
    hidden = payschools_control.pay("F1", "4.00", hidden=True)["payment"]["payment_id"]
    seen = payschools_control.pay("F2", "1.00")["payment"]["payment_id"]
    ids, cursor, _ = _payments(payschools.url)
    assert ids == [seen]  # the pull missed it ...
    _, doc = soap(payschools.url, "<ps:ListFees/>")
    dues = {
        f.findtext("ps:FeeRef", namespaces=PS): f.findtext("ps:AmountDue", namespaces=PS)
        for f in doc.iterfind(".//ps:Fee", PS)
    }
    assert dues["F1"] == "6.00"  # ... but the vendor's amount due shows it
    assert payschools_control.hide_payments([hidden], hidden=False) == 1
    ids_after, _, _ = _payments(payschools.url, f"<ps:Cursor>{cursor}</ps:Cursor>")
    assert ids_after == []  # behind the stored cursor: incremental pulls still miss it
    ids_all, _, _ = _payments(
        payschools.url, "<ps:StudentIds><ps:StudentId>S1</ps:StudentId></ps:StudentIds>"
    )
    assert ids_all == [hidden, seen]  # a full re-pull for the student finds it


def test_cursor_of_another_state_file_starts_over(tmp_path: Path) -> None:
    first = make_server(0, str(tmp_path / "a.sqlite3"))
    second = make_server(0, str(tmp_path / "b.sqlite3"))
    try:
        cursor = first.state.encode_cursor("p", 42)
        assert first.state.decode_cursor("p", cursor) == 42
        assert second.state.decode_cursor("p", cursor) == 0
    finally:
        first.shutdown()
        second.shutdown()


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "ps.sqlite3")
    server = make_server(0, path)
    server.start()
    upsert(server.url, fee_xml("KEEP", 1, "5.00"))
    SandboxControl(server.url).pay("KEEP", "1.00")
    server.shutdown()
    with pytest.raises(requests.ConnectionError):  # a stopped sandbox stops answering
        requests.get(f"{server.url}/_sandbox/state", timeout=2)
    again = make_server(0, path)
    again.start()
    try:
        state = SandboxControl(again.url).state()
        assert [f["fee_ref"] for f in state["fees"]] == ["KEEP"]
        assert state["fees"][0]["amount_due"] == "4.00"
        assert len(state["payments"]) == 1
    finally:
        again.shutdown()
    assert Path(path).exists()  # a named state file is the caller's and is kept


def test_concurrent_batches_all_land(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    errors: list[Any] = []

    def push(worker: int) -> None:
        for batch in range(5):
            fees = [fee_xml(f"W{worker}-{batch}-{i}") for i in range(50)]
            status, doc = upsert(payschools.url, *fees)
            if status != 200 or len(results(doc)) != 50:
                errors.append((worker, batch, status))

    threads = [threading.Thread(target=push, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(payschools_control.state()["fees"]) == 8 * 5 * 50


def test_port_zero_gets_a_free_port_and_shutdown_without_start_works() -> None:
    server = make_server(0)
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
    server.shutdown()
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.1", server.port))


def test_money_in_state_is_never_a_float(
    payschools: SandboxServer, payschools_control: SandboxControl
) -> None:
    upsert(payschools.url, fee_xml("F1", 1, "0.30"))
    payschools_control.pay("F1", "0.10")
    payschools_control.pay("F1", "0.20")
    fee = payschools_control.state()["fees"][0]
    assert fee["amount_due"] == "0.00" and fee["status"] == "paid"
    assert Decimal(fee["paid"]) == Decimal("0.30")
