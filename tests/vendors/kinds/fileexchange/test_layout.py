"""The district-defined column layout on the setup page (issue 12, item 3): what staff save
is what the export writes, bad layouts are refused naming what is wrong with nothing else
lost, and the live preview draws the file from unsaved values without saving them."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from apps.vendors import files
from apps.vendors.kinds.fileexchange.layouts import COLUMNS, parse_columns
from apps.vendors.models import Integration
from tests.admin_helpers import csrf_client
from tests.factories import make_fee
from tests.vendors.kinds.fileexchange.conftest import make_exchange
from tests.vendors.setup_pages import field_errors, section_url, setup_url, submit_form

pytestmark = pytest.mark.django_db


@pytest.fixture
def local_exchange(tmp_path: Path, libfine: Any) -> Integration:
    root = tmp_path / "financials"
    root.mkdir()
    integration = make_exchange(root, server=None, category=libfine)
    integration.test_pull_ok = integration.test_push_ok = True
    integration.save()
    return integration


def _fee(libfine: Any, amount: str = "4.50") -> Any:
    return make_fee(
        amount=amount,
        category=libfine,
        description="Overdue book",
        fee_date=dt.date(2026, 9, 15),
        due_date=dt.date(2026, 10, 1),
    )


def _connection_errors(response: Any) -> str:
    return field_errors(response, "connection")


def _textarea(response: Any, name: str) -> str:
    doc = lxml.html.fromstring(response.content.decode())
    value = doc.xpath(f"//form[@id='connection-form']//*[@name='{name}']")[0].value or ""
    return value.removeprefix("\n")  # a browser drops a text area's first line break


# --- the rules, in words -----------------------------------------------------------------------


def test_a_duplicate_column_is_named_in_the_message() -> None:
    with pytest.raises(ValueError, match=r"“Amount” \(amount\) is listed twice"):
        parse_columns("reference,amount,student_id,amount")


def test_an_unknown_column_is_named_and_the_known_ones_listed() -> None:
    with pytest.raises(ValueError) as caught:
        parse_columns("reference,amout")
    assert "Unknown column “amout”" in str(caught.value)
    assert all(key in str(caught.value) for key in COLUMNS)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"columns": "reference,amout"}, "columns", "Unknown column “amout”"),
        ({"columns": "reference,amount,amount"}, "columns", "“Amount” (amount) is listed twice"),
        ({"columns": ""}, "columns", "Pick at least one column for the district-defined layout."),
        (
            {"delimiter": "other", "delimiter_other": "/", "date_format": "%m/%d/%Y"},
            "delimiter_other",
            "The delimiter “/” also appears in the dates (12/01/2026)",
        ),
        (
            {"delimiter": "other", "delimiter_other": "-"},
            "delimiter_other",
            "The delimiter “-” also appears in the dates (2026-12-01)",
        ),
        ({"delimiter": "other", "delimiter_other": "."}, "delimiter_other", "every amount"),
        ({"delimiter": "other", "delimiter_other": "x"}, "delimiter_other", "letters, digits"),
        ({"delimiter": "other", "delimiter_other": ""}, "delimiter_other", "Type the delimiter"),
    ],
)
def test_a_bad_layout_is_refused_naming_what_is_wrong_and_nothing_typed_is_lost(
    district_admin: Any,
    local_exchange: Integration,
    changes: dict[str, str],
    field: str,
    words: str,
) -> None:
    before = dict(local_exchange.options)
    client = csrf_client(district_admin)
    typed = {
        "layout": "district",
        "columns": "reference,amount,student_id",
        "inbound_dir": "from-financials",
        "item_types": "LIBFINE = 900000000009",
        "term": "2280",
        **changes,
    }
    response = submit_form(client, setup_url(local_exchange), "connection-form", typed)
    assert response.status_code == 200
    assert "Nothing was saved" in response.content.decode()
    doc = lxml.html.fromstring(response.content.decode())
    # The message sits with the field it is about.
    errors = doc.xpath(f"//*[@id='id_{field}']/ancestor::div[contains(@class,'feesync-field')][1]")
    assert errors and words in " ".join(errors[0].text_content().split())
    # Everything else typed is still there, and nothing was stored.
    assert _textarea(response, "inbound_dir") == "from-financials"
    assert _textarea(response, "item_types") == "LIBFINE = 900000000009"
    assert _textarea(response, "term") == "2280"
    assert _textarea(response, "columns") == typed["columns"]
    local_exchange.refresh_from_db()
    assert local_exchange.options == before


def test_a_saved_district_layout_is_what_the_export_writes_and_keeps_the_tests(
    district_admin: Any, local_exchange: Integration, libfine: Any
) -> None:
    fee = _fee(libfine)
    client = csrf_client(district_admin)
    response = submit_form(
        client,
        setup_url(local_exchange),
        "connection-form",
        {
            "layout": "district",
            "columns": "reference,amount,student_name,effective_date",
            "header": "",
            "delimiter": "other",
            "delimiter_other": "~",
            "date_format": "%m/%d/%Y",
            "encoding": "utf-8-sig",
        },
        drop=("header",),
    )
    assert "Connection settings saved." in response.content.decode()
    local_exchange.refresh_from_db()
    # A layout is not how FeeSync reaches the server: Test Pull / Push still stand.
    assert local_exchange.test_pull_ok and local_exchange.test_push_ok
    outcome = files.fees_export(integration=local_exchange)
    assert outcome["rows"] == 1, outcome
    root = Path(local_exchange.options["local_path"])
    written = [p for p in (root / "outbound").glob("*.csv")]
    assert len(written) == 1
    data = written[0].read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # the byte-order mark asked for
    name = f"{fee.student.first_name} {fee.student.last_name}".strip()
    assert data[3:].decode() == f"{fee.reference}~4.50~{name}~09/15/2026\r\n"


def test_the_page_offers_the_picker_over_a_plain_field_that_saves_without_javascript(
    district_admin: Any, local_exchange: Integration
) -> None:
    client = csrf_client(district_admin)
    page = client.get(setup_url(local_exchange))
    doc = lxml.html.fromstring(page.content.decode())
    widget = doc.xpath("//form[@id='connection-form']//*[@data-feesync-layout]")[0]
    assert widget.get("data-preview-url") == section_url(local_exchange, "file-preview")
    assert widget.xpath(".//textarea[@name='columns']")  # what is posted, with or without JS
    names = "".join(widget.xpath(".//*[contains(@class,'feesync-layout-names')]")[0].itertext())
    assert "student_name (student name)" in names
    assert doc.xpath("//script[contains(@src,'feesync/layout.js')]")


# --- the live preview ------------------------------------------------------------------------


def _preview(client: Any, integration: Integration, data: dict[str, str]) -> Any:
    page = client.get(setup_url(integration))
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)
    assert token
    return client.post(
        section_url(integration, "file-preview"),
        {"csrfmiddlewaretoken": token.group(1).decode(), **data},
    )


def test_the_preview_draws_unsaved_columns_from_fees_in_scope_and_saves_nothing(
    district_admin: Any, local_exchange: Integration, libfine: Any
) -> None:
    fee = _fee(libfine, "12.00")
    before = dict(local_exchange.options)
    client = csrf_client(district_admin)
    answer = _preview(
        client,
        local_exchange,
        {
            "layout": "district",
            "columns": "amount,reference",
            "header": "on",
            "delimiter": "|",
            "date_format": "%Y-%m-%d",
            "encoding": "utf-8-sig",
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] and body["fees"] == 1 and body["byte_order_mark"]
    assert body["text"] == f"amount|reference\n12.00|{fee.reference}\n"
    # Header off (an unticked box is absent from the post), other order.
    typed = {"layout": "district", "columns": "reference,amount", "delimiter": ","}
    body = _preview(client, local_exchange, {**typed, "date_format": "%Y%m%d", "encoding": "utf-8"})
    body = body.json()
    assert body["text"] == f"{fee.reference},12.00\n"
    local_exchange.refresh_from_db()
    assert local_exchange.options == before


def test_the_preview_names_what_is_wrong_instead_of_drawing(
    district_admin: Any, local_exchange: Integration
) -> None:
    answer = _preview(
        csrf_client(district_admin),
        local_exchange,
        {"layout": "district", "columns": "amount,amount,reference"},
    )
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert errors["columns"]["label"] == "Columns (district layout)"
    assert "“Amount” (amount) is listed twice" in errors["columns"]["message"]


def test_the_preview_needs_the_csrf_token_and_a_district_admin(
    district_admin: Any, support_user: Any, local_exchange: Integration
) -> None:
    url = section_url(local_exchange, "file-preview")
    data = {"layout": "district", "columns": "reference"}
    assert csrf_client(district_admin).post(url, data).status_code == 403  # no token
    assert _preview(csrf_client(support_user), local_exchange, data).status_code == 403
    from django.test import Client

    anonymous = Client().post(url, data)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


# --- the other settings of the file (items 1 and 2) ----------------------------------------------


def test_an_item_type_for_a_category_that_does_not_exist_is_refused_by_name(
    district_admin: Any, local_exchange: Integration
) -> None:
    before = dict(local_exchange.options)
    response = submit_form(
        csrf_client(district_admin),
        setup_url(local_exchange),
        "connection-form",
        {"item_types": "LIBFINE = 800000000001\nLIBFNE = 800000000002"},
    )
    errors = _connection_errors(response)
    assert "There is no fee category LIBFNE" in errors and "LIBFINE" in errors
    local_exchange.refresh_from_db()
    assert local_exchange.options == before


def test_nothing_changed_writes_no_file_unless_staff_ask_for_an_empty_one(
    district_admin: Any, local_exchange: Integration
) -> None:
    root = Path(local_exchange.options["local_path"])
    assert files.fees_export(integration=local_exchange)["rows"] == 0
    assert not (root / "outbound").exists() or not list((root / "outbound").glob("*.csv"))

    response = submit_form(
        csrf_client(district_admin),
        setup_url(local_exchange),
        "connection-form",
        {"empty_export": "on"},
    )
    assert "Connection settings saved." in response.content.decode()
    local_exchange.refresh_from_db()
    outcome = files.fees_export(integration=local_exchange)
    assert outcome["rows"] == 0 and outcome["file"]
    written = root / "outbound" / str(outcome["file"])
    assert written.read_text().startswith("EMPLID,ITEM_TYPE,ITEM_AMT")
    assert len(written.read_text().splitlines()) == 1  # the header, no fee line
    control = written.with_suffix(".ctl").read_text()
    assert "rows=0" in control and "total=0.00" in control


def test_a_password_typed_with_a_bad_layout_is_asked_for_again_not_silently_dropped(
    district_admin: Any, local_exchange: Integration
) -> None:
    response = submit_form(
        csrf_client(district_admin),
        setup_url(local_exchange),
        "connection-form",
        {"layout": "district", "columns": "amout", "password": "new-secret-9"},
    )
    doc = lxml.html.fromstring(response.content.decode())
    row = doc.xpath("//*[@id='id_password']/ancestor::div[contains(@class,'feesync-field')][1]")
    assert "Type the password again: nothing was saved" in " ".join(row[0].text_content().split())
    assert "new-secret-9" not in response.content.decode()
    local_exchange.refresh_from_db()
    assert local_exchange.credentials.get("password", "") != "new-secret-9"
