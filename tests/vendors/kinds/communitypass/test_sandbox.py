"""The Community Pass sandbox speaks its contract (kinds/communitypass/contract.md) over real
HTTP: raw JSON requests with `requests`, no adapter in between, so that the contract is
pinned down independently of FeeSync's client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from apps.vendors.kinds.communitypass import sandbox as cp
from apps.vendors.registry import load_sandbox, sandboxes
from apps.vendors.sandboxes.client import SandboxControl, SandboxControlError
from apps.vendors.sandboxes.server import SandboxServer

KEY = {"X-Api-Key": cp.DEFAULT_API_KEY}
ROOT = Path(__file__).resolve().parents[4]


def api(server: SandboxServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {**KEY, **kwargs.pop("headers", {})}
    return requests.request(method, f"{server.url}/v1{path}", headers=headers, timeout=5, **kwargs)


def fee(fee_ref: str = "F1", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "fee_ref": fee_ref,
        "version": 1,
        "student_id": "S1",
        "student_name": "Ada Lovelace",
        "school_code": "HS1",
        "category_code": "BUS",
        "merchant_id": "MID-1",
        "description": "Bus pass",
        "amount": "25.00",
        "amount_due": "25.00",
        "fee_date": "2026-09-01",
        "due_date": "2026-10-01",
        "active": True,
    }
    data.update(overrides)
    return data


def upsert(server: SandboxServer, *fees: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    path = "/fees/batch?dry_run=true" if dry_run else "/fees/batch"
    response = api(server, "POST", path, json={"fees": list(fees)})
    assert response.status_code == 200, response.text
    return response.json()


def error_of(response: requests.Response) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] and error["message"] and error["request_id"].startswith("req_")
    assert response.headers["X-Request-Id"] == error["request_id"]
    return error


def results(body: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {r["fee_ref"]: (r["status"], r["version"]) for r in body["results"]}


# --- wiring ---------------------------------------------------------------------------------------


def test_registered_with_the_default_port() -> None:
    assert sandboxes()["communitypass"] == "apps.vendors.kinds.communitypass.sandbox"
    module = load_sandbox("communitypass")
    assert module.DEFAULT_PORT == 8102 and callable(module.make_server) and callable(module.run)


def test_manage_py_sandbox_communitypass_serves(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.Popen(  # noqa: S603 - our own command, fixed arguments
        [
            sys.executable,
            "manage.py",
            "sandbox",
            "communitypass",
            "--port",
            str(port),
            "--state",
            str(tmp_path / "cp.sqlite3"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/v1/ping", headers=KEY, timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.1)
        assert response.status_code == 200 and response.json()["ok"] is True
        assert (tmp_path / "cp.sqlite3").exists()
    finally:
        proc.terminate()
        proc.wait(10)
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert f"Community Pass sandbox on http://127.0.0.1:{port}/v1" in output


# --- authentication and errors --------------------------------------------------------------------


def test_the_index_needs_no_key_and_everything_else_does(communitypass: SandboxServer) -> None:
    index = requests.get(f"{communitypass.url}/v1", timeout=5)
    assert index.status_code == 200 and index.json()["version"] == "v1"
    assert "POST /v1/fees/batch[?dry_run=true]" in index.json()["endpoints"]

    missing = requests.get(f"{communitypass.url}/v1/ping", timeout=5)
    assert missing.status_code == 401
    assert error_of(missing)["code"] == "unauthorized"
    assert "X-Api-Key header is missing" in error_of(missing)["message"]

    for path in ("/ping", "/fees", "/payments", "/balances?student_id=S1", "/fees/F1"):
        wrong = api(communitypass, "GET", path, headers={"X-Api-Key": "nope"})
        assert wrong.status_code == 401, path
        assert error_of(wrong)["message"] == "The API key is not valid."
    wrong_post = api(
        communitypass, "POST", "/fees/batch", json={"fees": [fee()]}, headers={"X-Api-Key": "x"}
    )
    assert wrong_post.status_code == 401

    ping = api(communitypass, "GET", "/ping")
    assert ping.status_code == 200 and ping.json()["ok"] is True
    assert ping.json()["server_time"].endswith("Z") and ping.headers["X-Request-Id"]


def test_unknown_paths_and_methods_are_json_errors(communitypass: SandboxServer) -> None:
    missing = api(communitypass, "GET", "/nothing")
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    wrong = api(communitypass, "DELETE", "/payments")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
    assert error_of(wrong)["code"] == "method_not_allowed"
    outside = requests.get(f"{communitypass.url}/api", headers=KEY, timeout=5)
    assert outside.status_code == 404 and "/v1/" in error_of(outside)["message"]


def test_bad_bodies_are_refused_whole(communitypass: SandboxServer) -> None:
    broken = api(communitypass, "POST", "/fees/batch", data=b"{nope")
    assert broken.status_code == 400 and error_of(broken)["code"] == "invalid_json"
    not_json = api(
        communitypass,
        "POST",
        "/fees/batch",
        data=b"fee_ref=F1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert not_json.status_code == 415 and error_of(not_json)["code"] == "unsupported_media_type"
    shape = api(communitypass, "POST", "/fees/batch", json=[fee()])
    assert shape.status_code == 400 and error_of(shape)["code"] == "invalid_request"
    empty = api(communitypass, "POST", "/fees/batch", json={"fees": []})
    assert empty.status_code == 400 and error_of(empty)["code"] == "empty_batch"
    big = api(
        communitypass, "POST", "/fees/batch", json={"fees": [fee(f"F{i}") for i in range(201)]}
    )
    assert big.status_code == 400 and error_of(big)["code"] == "batch_too_large"
    assert "201" in error_of(big)["message"]
    assert SandboxControl(communitypass.url).state()["fees"] == []


# --- fees -----------------------------------------------------------------------------------------


def test_upsert_is_idempotent_by_ref_and_version(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    assert results(upsert(communitypass, fee())) == {"F1": ("accepted", 1)}
    # The same version again (a redelivery): nothing changes, the held version comes back.
    again = upsert(communitypass, fee(amount="99.00", amount_due="99.00"))
    assert results(again) == {"F1": ("stale", 1)} and again["dry_run"] is False
    held = communitypass_control.state()["fees"]
    assert len(held) == 1 and held[0]["amount"] == "25.00"

    assert results(upsert(communitypass, fee(version=3, amount="30.00", amount_due="30.00"))) == {
        "F1": ("accepted", 3)
    }
    assert results(upsert(communitypass, fee(version=2, amount="1.00", amount_due="1.00"))) == {
        "F1": ("stale", 3)
    }
    held_fee = api(communitypass, "GET", "/fees/F1").json()
    assert held_fee["amount"] == "30.00" and held_fee["version"] == 3
    assert held_fee["status"] == "open" and held_fee["foreign"] is False


def test_each_bad_fee_is_rejected_and_the_rest_stored(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    body = upsert(
        communitypass,
        fee("GOOD"),
        fee("FLOAT", amount=12.5, amount_due=12.5),
        fee("INT", amount=12, amount_due=12),
        fee("THREE", amount="1.005", amount_due="1.005"),
        fee("MORE", amount="10.00", amount_due="12.00"),
        fee("NODATE", fee_date="01/09/2026"),
        {"fee_ref": "HALF", "version": 1},
        fee("ZERO", version=0),
        fee("BOOL", active="yes"),
    )
    outcome = {r["fee_ref"]: r for r in body["results"]}
    assert outcome["GOOD"]["status"] == "accepted"
    for ref in ("FLOAT", "INT", "THREE", "MORE", "NODATE", "HALF", "ZERO", "BOOL"):
        assert outcome[ref]["status"] == "rejected" and outcome[ref]["version"] == 0, ref
    assert 'decimal string such as "12.50", not 12.5.' in outcome["FLOAT"]["message"]
    assert "more than two decimal places" in outcome["THREE"]["message"]
    assert "more than Amount" in outcome["MORE"]["message"]
    assert "missing" in outcome["HALF"]["message"]
    assert [f["fee_ref"] for f in communitypass_control.state()["fees"]] == ["GOOD"]


def test_dry_run_validates_and_stores_nothing(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    upsert(communitypass, fee("HELD", version=2))
    body = upsert(
        communitypass,
        fee("NEW"),
        fee("HELD", version=2),
        fee("HELD", version=5, amount="1.00", amount_due="1.00"),
        fee("BAD", amount_due="99.00"),
        dry_run=True,
    )
    assert body["dry_run"] is True
    assert [(r["fee_ref"], r["status"], r["version"]) for r in body["results"]] == [
        ("NEW", "accepted", 1),
        ("HELD", "stale", 2),
        ("HELD", "accepted", 5),
        ("BAD", "rejected", 0),
    ]
    state = communitypass_control.state()
    assert [(f["fee_ref"], f["version"], f["amount"]) for f in state["fees"]] == [
        ("HELD", 2, "25.00")
    ]
    bad_flag = api(communitypass, "POST", "/fees/batch?dry_run=maybe", json={"fees": [fee()]})
    assert bad_flag.status_code == 400


def test_an_update_keeps_what_parents_paid(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    upsert(communitypass, fee("F1", amount="50.00", amount_due="50.00"))
    communitypass_control.pay("F1", "20.00")
    # FeeSync has not pulled yet and re-sends the fee with its own (older) amount due.
    upsert(communitypass, fee("F1", version=2, amount="60.00", amount_due="60.00"))
    held = api(communitypass, "GET", "/fees/F1").json()
    assert held["amount_due"] == "40.00" and held["paid"] == "20.00"


def test_list_fees_pages_and_flags_foreign_fees(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    upsert(communitypass, *[fee(f"F{i}", student_id=f"S{i % 3}") for i in range(5)])
    foreign = communitypass_control.foreign_fee("S1", "7.50", description="Yearbook")["fee"]
    assert foreign["fee_ref"].startswith("CPF-")

    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api(communitypass, "GET", "/fees", params=params).json()
        seen += page["data"]
        cursor = page["next_cursor"]
        pages += 1
        if not page["has_more"]:
            break
    assert pages == 3
    assert [f["fee_ref"] for f in seen] == [*(f"F{i}" for i in range(5)), foreign["fee_ref"]]
    flagged = {f["fee_ref"]: f["foreign"] for f in seen}
    assert flagged[foreign["fee_ref"]] is True and not any(flagged[f"F{i}"] for i in range(5))
    assert seen[-1]["amount"] == "7.50" and isinstance(seen[-1]["amount"], str)
    # Nothing new after the last page: the position is kept.
    tail = api(communitypass, "GET", "/fees", params={"cursor": cursor}).json()
    assert tail == {"data": [], "next_cursor": cursor, "has_more": False}
    missing = api(communitypass, "GET", "/fees/NOPE")
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"


# --- payments -------------------------------------------------------------------------------------


def test_payments_carry_kind_closed_and_refers_to(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    upsert(
        communitypass,
        fee("PART", amount="40.00", amount_due="40.00"),
        fee("CLOSE", amount="30.00", amount_due="30.00"),
        fee("WAIVE", amount="15.00", amount_due="15.00"),
    )
    part = communitypass_control.pay("PART", "12.34")["payment"]
    communitypass_control.pay("CLOSE", "10.00", closed=True)
    communitypass_control.refund(part["payment_id"], "2.34")
    communitypass_control.waive("WAIVE")
    voided = communitypass_control.pay("PART", "5.00")["payment"]
    communitypass_control.void(voided["payment_id"])

    page = api(communitypass, "GET", "/payments").json()
    rows = [
        (p["fee_ref"], p["kind"], p["amount"], p["closed"], p["refers_to"]) for p in page["data"]
    ]
    assert rows == [
        ("PART", "payment", "12.34", False, None),
        ("CLOSE", "payment", "10.00", True, None),
        ("PART", "refund", "2.34", False, part["payment_id"]),
        ("WAIVE", "waiver", "15.00", True, None),
        ("PART", "payment", "5.00", False, None),
        ("PART", "void", "5.00", False, voided["payment_id"]),
    ]
    assert set(page["data"][0]) == {
        "payment_id",
        "fee_ref",
        "student_id",
        "amount",
        "kind",
        "closed",
        "occurred_at",
        "refers_to",
    }
    assert all(p["payment_id"].startswith("CP-") for p in page["data"])
    fees = {f["fee_ref"]: f for f in api(communitypass, "GET", "/fees").json()["data"]}
    assert fees["CLOSE"]["status"] == "closed" and fees["CLOSE"]["amount_due"] == "0.00"
    assert fees["WAIVE"]["status"] == "waived"
    assert fees["PART"]["amount_due"] == "30.00" and fees["PART"]["status"] == "open"


def test_1200_payments_page_in_order_without_loss_or_doubles(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    communitypass_control.seed_fees(
        [{"fee_ref": f"F{i}", "student_id": f"S{i % 7}", "amount": "100.00"} for i in range(400)]
    )
    communitypass_control.pay_many(
        [{"fee_ref": f"F{i % 400}", "amount": "1.00"} for i in range(1200)]
    )
    expected = [p["payment_id"] for p in communitypass_control.state()["payments"]]

    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = api(communitypass, "GET", "/payments", params=params).json()
        seen += [p["payment_id"] for p in page["data"]]
        sizes.append(len(page["data"]))
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert sizes == [500, 500, 200] and seen == expected
    empty = api(communitypass, "GET", "/payments", params={"cursor": cursor}).json()
    assert empty == {"data": [], "next_cursor": cursor, "has_more": False}


def test_student_filter_comma_separated_or_repeated(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    upsert(
        communitypass,
        fee("A1", student_id="A"),
        fee("B1", student_id="B"),
        fee("C1", student_id="C"),
    )
    for ref in ("A1", "B1", "C1", "A1"):
        communitypass_control.pay(ref, "1.00")

    def students(params: Any) -> list[str]:
        return [
            p["student_id"]
            for p in api(communitypass, "GET", "/payments", params=params).json()["data"]
        ]

    assert students({"student_id": "A"}) == ["A", "A"]
    assert students({"student_id": "A,C"}) == ["A", "C", "A"]
    assert students([("student_id", "B"), ("student_id", "C")]) == ["B", "C"]
    assert students({"student_id": "Z"}) == []
    too_many = api(
        communitypass, "GET", "/payments", params={"student_id": ",".join(map(str, range(201)))}
    )
    assert too_many.status_code == 400 and error_of(too_many)["code"] == "too_many_students"


def test_bad_cursor_and_limit(communitypass: SandboxServer) -> None:
    bad = api(communitypass, "GET", "/payments", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and error_of(bad)["code"] == "invalid_cursor"
    fee_cursor = api(communitypass, "GET", "/fees").json()["next_cursor"]
    assert fee_cursor is None  # nothing held yet: no cursor to hand out
    for limit in ("0", "1001", "ten"):
        response = api(communitypass, "GET", "/payments", params={"limit": limit})
        assert response.status_code == 400 and error_of(response)["code"] == "bad_limit"


def test_hidden_payments_and_duplicates(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    upsert(communitypass, fee("F1"))
    hidden = communitypass_control.pay("F1", "5.00", hidden=True)["payment"]
    assert api(communitypass, "GET", "/payments").json()["data"] == []
    communitypass_control.hide_payments([hidden["payment_id"]], hidden=False)
    communitypass_control.faults("ok", duplicate_payments=True)
    ids = [p["payment_id"] for p in api(communitypass, "GET", "/payments").json()["data"]]
    assert ids == [hidden["payment_id"], hidden["payment_id"]]


# --- balances -------------------------------------------------------------------------------------


def test_balances_include_foreign_fees(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    upsert(
        communitypass,
        fee("A1", student_id="A", amount="25.00", amount_due="25.00"),
        fee("A2", student_id="A", amount="10.00", amount_due="10.00"),
        fee("OFF", student_id="A", amount="8.00", amount_due="8.00", active=False),
        fee("B1", student_id="B", amount="5.00", amount_due="5.00"),
    )
    communitypass_control.pay("A1", "5.00")
    communitypass_control.waive("A2")
    communitypass_control.foreign_fee("A", "7.50")
    response = api(communitypass, "GET", "/balances", params={"student_id": "A,B,NOBODY"})
    assert response.status_code == 200
    assert response.json()["data"] == [
        {"student_id": "A", "balance": "27.50", "foreign_balance": "7.50", "open_fees": 2},
        {"student_id": "B", "balance": "5.00", "foreign_balance": "0.00", "open_fees": 1},
        {"student_id": "NOBODY", "balance": "0.00", "foreign_balance": "0.00", "open_fees": 0},
    ]
    # The control API's state reports the same balances (every student with a fee).
    assert communitypass_control.state()["balances"] == {"A": "27.50", "B": "5.00"}
    assert communitypass_control.call("state?student_id=B")["balances"] == {"B": "5.00"}
    required = api(communitypass, "GET", "/balances")
    assert required.status_code == 400 and "student_id is required" in error_of(required)["message"]


# --- faults ---------------------------------------------------------------------------------------


def test_down_and_throttle_answer_json_with_retry_after(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    communitypass_control.faults("down", retry_after=7)
    down = api(communitypass, "GET", "/ping")
    assert down.status_code == 503 and down.headers["Retry-After"] == "7"
    assert error_of(down)["code"] == "unavailable" and down.json()["error"]["retry_after"] == 7
    assert requests.get(f"{communitypass.url}/v1", timeout=5).status_code == 503
    assert communitypass_control.state()["fees"] == []  # the control API still answers

    communitypass_control.faults("throttle", retry_after=3)
    limited = api(communitypass, "POST", "/fees/batch", json={"fees": [fee()]})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert error_of(limited)["code"] == "rate_limited"
    assert communitypass_control.state()["fees"] == []  # a 429 did nothing


def test_a_429_storm_passes_and_the_vendor_recovers(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    setting = communitypass_control.call("faults", {"throttle_count": 3})
    assert setting["mode"] == "throttle" and setting["count"] == 3 and setting["retry_after"] == 1
    statuses = [api(communitypass, "GET", "/ping").status_code for _ in range(5)]
    assert statuses == [429, 429, 429, 200, 200]
    assert communitypass_control.call("faults")["mode"] == "ok"
    counts = communitypass_control.requests()
    assert counts == {"total": 5, "faulted": 3, "by_endpoint": {"GET /v1/ping": 5}}

    communitypass_control.faults("throttle", every=2, retry_after=1)
    statuses = [api(communitypass, "GET", "/ping").status_code for _ in range(6)]
    assert statuses == [200, 429, 200, 429, 200, 429]
    with pytest.raises(Exception, match="throttle_count goes with mode throttle"):
        communitypass_control.call("faults", {"mode": "down", "throttle_count": 2})


def test_fault_mode_answers_the_contracts_error(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    communitypass_control.faults("fault")
    response = api(communitypass, "GET", "/payments")
    assert response.status_code == 500 and error_of(response)["code"] == "internal_error"
    communitypass_control.faults("fault", status=400)
    response = api(communitypass, "GET", "/payments")
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_request"
    communitypass_control.faults("fault", status=502, count=1)
    assert error_of(api(communitypass, "GET", "/payments"))["code"] == "bad_gateway"
    assert api(communitypass, "GET", "/payments").status_code == 200
    with pytest.raises(Exception, match="status must be an HTTP error status"):
        communitypass_control.faults("fault", status=200)


def test_error_malformed_drop_slow_and_no_description(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    communitypass_control.faults("error")
    response = api(communitypass, "GET", "/payments")
    assert response.status_code == 500 and response.headers["Content-Type"].startswith("text/html")

    communitypass_control.faults("malformed")
    response = api(communitypass, "GET", "/payments")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()

    communitypass_control.faults("drop")
    with pytest.raises(requests.ConnectionError):
        api(communitypass, "GET", "/payments")

    communitypass_control.faults("no_wsdl")
    assert requests.get(f"{communitypass.url}/v1", timeout=5).status_code == 404
    assert api(communitypass, "GET", "/ping").status_code == 200

    communitypass_control.faults("slow", delay_ms=400)
    with pytest.raises(requests.Timeout):
        requests.get(f"{communitypass.url}/v1/ping", headers=KEY, timeout=0.1)
    assert api(communitypass, "GET", "/ping").status_code == 200


def test_request_counters_skip_the_control_api_and_clear(
    communitypass: SandboxServer, communitypass_control: SandboxControl
) -> None:
    api(communitypass, "GET", "/ping")
    upsert(communitypass, fee())
    communitypass_control.state()
    counts = communitypass_control.requests()
    assert counts["by_endpoint"] == {"GET /v1/ping": 1, "POST /v1/fees/batch": 1}
    communitypass_control.clear_requests()
    assert communitypass_control.requests() == {"total": 0, "faulted": 0, "by_endpoint": {}}
    index = communitypass_control.call("")
    assert "GET /_sandbox/requests" in index["endpoints"] and "count" in index["fault_options"]


def _raw_get(server: SandboxServer, path: str) -> bytes:
    """Everything the sandbox writes for one request, until it closes the connection."""
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY['X-Api-Key']}\r\n\r\n".encode()
        )
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("cut_at", ["body", "headers"])
def test_drop_mid_answer_does_the_work_then_cuts_the_answer(
    communitypass: SandboxServer, communitypass_control: SandboxControl, cut_at: str
) -> None:
    communitypass_control.faults("drop_mid_answer", cut_at=cut_at)
    assert communitypass_control.call("faults")["mode"] == "drop_mid_answer"
    # The push is stored although the client never hears the whole answer.
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api(communitypass, "POST", "/fees/batch", json={"fees": [fee("F1")]})
    communitypass_control.faults("ok")
    assert [f["fee_ref"] for f in communitypass_control.state()["fees"]] == ["F1"]

    communitypass_control.faults("drop_mid_answer", cut_at=cut_at)
    raw = _raw_get(communitypass, "/v1/payments")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")).split(
            b":"
        )[1]
    )
    assert length > 0 and len(body) == (length // 2 if cut_at == "body" else 0)
    # The description is still served whole.
    assert requests.get(f"{communitypass.url}/v1", timeout=5).status_code == 200


def test_drop_mid_answer_takes_only_a_known_cut_point(
    communitypass_control: SandboxControl,
) -> None:
    with pytest.raises(SandboxControlError) as info:
        communitypass_control.faults("drop_mid_answer", cut_at="trailer")
    assert info.value.status == 400 and "cut_at" in info.value.message
