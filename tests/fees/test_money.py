"""The one strict money parser (`apps.fees.money.parse_money`) and the form field on it.

Property-based: whatever it accepts round-trips exactly, and generated junk is refused with a
message naming what was typed. The explicit cases are the ones a business office met."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from apps.fees.money import MAX_MONEY, MoneyError, MoneyField, money_text, parse_money
from apps.fees.services import LedgerError, to_money

D = Decimal

#: Every amount a money column holds, to the cent.
amounts = st.decimals(
    min_value=D("0.01"), max_value=MAX_MONEY, places=2, allow_nan=False, allow_infinity=False
)
#: Strings a clerk, a file or a bug might send: digits and the characters around money.
junk = st.text(alphabet="0123456789.,$-+eE _nNaIifty١", max_size=20)
#: What the parser accepts, written as a regular expression independently of its own code.
ACCEPTED = re.compile(
    r"-?\$?(?:(?:[1-9][0-9]{0,2}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]{1,2})?|\.[0-9]{1,2})"
)


@given(amounts)
def test_every_amount_round_trips_through_how_feesync_writes_it(amount):
    assert parse_money(money_text(amount)) == amount
    assert parse_money(f"{amount:.2f}") == amount  # ungrouped
    assert parse_money(f"${amount:,.2f}") == amount  # as printed on a check
    assert parse_money(amount) == amount  # already a Decimal


@given(junk)
@example("12,50")
@example("1,23.45")
@example("1e3")
@example("NaN")
@example("-Infinity")
@example("0,500")
@example("10.005")
def test_whatever_is_accepted_is_its_own_exact_value_and_the_rest_is_refused_by_name(text):
    try:
        amount = parse_money(text, allow_zero=True, allow_negative=True)
    except MoneyError as exc:
        message = exc.message
        assert message.startswith("Amount")
        if text.strip():
            assert f"“{text.strip()}”" in message or "…" in message  # names what was typed
        else:
            assert "is empty" in message
        return
    stripped = text.strip()
    assert ACCEPTED.fullmatch(stripped), f"accepted {text!r}"
    # The accepted string's own value, exactly (no comma became a decimal mark).
    plain = stripped.replace("$", "").replace(",", "")
    assert amount == D(plain)
    assert amount == amount.quantize(D("0.01")) and abs(amount) <= MAX_MONEY
    assert parse_money(money_text(amount), allow_zero=True, allow_negative=True) == amount


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("20", D("20.00")),
        ("20.5", D("20.50")),
        (" 20.50 ", D("20.50")),
        (".50", D("0.50")),
        ("$1,250.00", D("1250.00")),
        ("1,234", D("1234.00")),
        ("1,234,567.89", D("1234567.89")),
        ("9,999,999,999.99", MAX_MONEY),
        ("0012.00", D("12.00")),
    ],
)
def test_plain_and_grouped_amounts_are_read_as_written(typed, value):
    assert parse_money(typed) == value


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("12,50", "“12,50” uses a comma as the decimal mark"),
        ("1.234,56", "“1.234,56” uses a comma as the decimal mark"),
        ("1,23.45", "“1,23.45” groups digits wrongly"),
        ("1234,567", "“1234,567” groups digits wrongly"),
        ("1e3", "“1e3” uses exponent notation"),
        ("2E-2", "“2E-2” uses exponent notation"),
        ("10.005", "“10.005” has more than two decimal places"),
        ("NaN", "“NaN” is not a number"),
        ("Infinity", "“Infinity” is not a number"),
        ("-inf", "“-inf” is not a number"),
        ("", "Amount is empty"),
        ("   ", "Amount is empty"),
        ("-5.00", "“-5.00” cannot be negative"),
        ("0.00", "must be more than $0.00"),
        ("10000000000.00", "“10000000000.00” is more than FeeSync can hold"),
        ("5.", "“5.” is not a number"),
        ("١٢", "“١٢” is not a number"),
    ],
)
def test_bad_amounts_are_refused_naming_the_value_and_what_is_accepted(typed, words):
    with pytest.raises(MoneyError) as excinfo:
        parse_money(typed)
    assert words in excinfo.value.message
    if typed.strip() and "negative" not in words and "$0.00" not in words:
        assert "Enter dollars and cents like 20.00 or 1,234.56." in excinfo.value.message or (
            "decimal places" in words or "can hold" in words
        )


def test_decimals_and_floats_follow_the_same_rules():
    assert parse_money(D("12.5")) == D("12.50")
    assert parse_money(D("12.500")) == D("12.50")  # the same amount, to the cent
    assert parse_money(7) == D("7.00")
    with pytest.raises(MoneyError, match="more than two decimal places"):
        parse_money(D("12.505"))
    with pytest.raises(MoneyError, match="not a number"):
        parse_money(D("NaN"))
    with pytest.raises(MoneyError, match="can hold"):
        parse_money(D("1E+20"))
    with pytest.raises(MoneyError, match="not a floating-point number"):
        parse_money(12.5)  # type: ignore[arg-type]
    assert parse_money("-5.00", allow_negative=True) == D("-5.00")
    assert parse_money("0", allow_zero=True) == D("0.00")


def test_the_ledger_reads_amounts_through_the_same_parser():
    with pytest.raises(LedgerError, match="“12,50” uses a comma as the decimal mark"):
        to_money("12,50")
    assert to_money("1,234.56") == D("1234.56")


def test_the_money_form_field_names_its_label_and_reads_an_empty_box_as_nothing():
    field = MoneyField(label="Lunch balance threshold", required=False, allow_zero=True)
    assert field.clean("") is None
    assert field.clean("0") == D("0.00")
    with pytest.raises(MoneyError, match="Lunch balance threshold “5,00” uses a comma"):
        field.clean("5,00")
    assert field.prepare_value(D("5")) == "5.00"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "form_name", ["FeeAddForm", "AssignmentAddForm", "PaymentForm", "WaiveForm", "RefundForm"]
)
def test_every_money_form_of_the_fees_office_refuses_a_comma_decimal(form_name):
    from apps.fees import forms
    from tests.factories import make_fee

    form_class = getattr(forms, form_name)
    assert isinstance(form_class.base_fields["amount"], MoneyField)
    kwargs = {"fee": make_fee()} if form_name in ("PaymentForm", "WaiveForm", "RefundForm") else {}
    form = form_class({"amount": "12,50"}, **kwargs)
    assert not form.is_valid()
    assert "“12,50” uses a comma as the decimal mark" in " ".join(form.errors["amount"])


def test_the_fee_page_amount_is_a_money_field():
    from apps.fees.forms import FeeChangeForm

    assert isinstance(FeeChangeForm.base_fields["amount"], MoneyField)
