"""A damaged line in a result file (issue 12, item 4): it fails alone, with its line number,
the column and what is wrong in words (in the rejects file and on the dashboard), and the
good lines of the same file are applied. Before, a transaction id or a reference longer
than FeeSync keeps, a NUL byte or a field too long for CSV stopped the whole import on a
database or CSV error, and none of the file was applied."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from apps.fees.models import Fee, LedgerEntry
from apps.fees.selectors import ledger_report
from apps.vendors.jobs import task_run
from apps.vendors.kinds.fileexchange.layouts import result_file_text
from apps.vendors.models import Discrepancy, TaskRun
from tests.factories import make_fee

from .conftest import Exchange, make_exchange

pytestmark = pytest.mark.django_db

DAMAGE = {
    "transaction id too long": (
        {"transaction_id": "T" * 150},
        "The transaction id (column transaction_id) is 150 characters long; it can be at most 100.",
    ),
    "reference too long": (
        {"reference": "R" * 60},
        "The fee reference (column reference) is 60 characters long; it can be at most 40.",
    ),
    "student id too long": (
        {"student_id": "S" * 60},
        "The student id (column student_id) is 60 characters long; it can be at most 40.",
    ),
    "original transaction id too long": (
        {"operation": "restore", "amount": "", "original_transaction_id": "O" * 101},
        "The original transaction id (column original_transaction_id) is 101 characters "
        "long; it can be at most 100.",
    ),
    "NUL byte": (
        {"reason": "Bursar\x00window"},
        "Column reason holds a NUL character: the line is damaged; ask the financials team "
        "to send it again.",
    ),
    "field too long for CSV": (
        {"reason": "x" * 200_000},
        "The line cannot be read as CSV (field larger than field limit (131072)).",
    ),
    "negative amount": (
        {"amount": "-5.00"},
        "The amount (column amount) “-5.00” cannot be negative.",
    ),
    "comma decimal": ({"amount": "12,34"}, "The amount (column amount) “12,34”"),
    "unknown operation": (
        {"operation": "refund"},
        "Unknown operation “refund” (column operation): use pay, waive, dispute or restore.",
    ),
    "no transaction id": (
        {"transaction_id": " "},
        "The transaction id (column transaction_id) is empty.",
    ),
    "no reference": ({"reference": ""}, "The fee reference (column reference) is empty."),
}


@pytest.fixture
def local(tmp_path: Path, libfine: Any) -> Exchange:
    root = tmp_path / "financials"
    root.mkdir()
    return Exchange(make_exchange(root, server=None, category=libfine), root, "local")


def _import(exchange: Exchange) -> TaskRun:
    done = task_run(integration=exchange.integration, task="import-payments")
    assert done is not None and done.outcome == TaskRun.Outcome.OK, done and done.error
    return done


@pytest.mark.parametrize(("damage", "words"), DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_line_fails_alone_naming_its_line_and_column(
    local: Exchange, libfine: Any, damage: dict[str, str], words: str
) -> None:
    before, bad, after = (make_fee(amount="10.00", category=libfine) for _ in range(3))
    assert task_run(integration=local.integration, task="export-fees") is not None
    line = {"operation": "pay", "amount": "10.00", "method": "cash"}
    rows = [
        {**line, "reference": before.reference, "transaction_id": "G-1"},
        {**line, "reference": bad.reference, "transaction_id": "B-1", **damage},
        {**line, "reference": after.reference, "transaction_id": "G-2"},
    ]
    local.drop("results_7.csv", result_file_text(rows))

    counts = _import(local).counts
    assert (counts["lines"], counts["recorded"], counts["rejected"]) == (3, 2, 1)
    assert counts["quarantined"] == 0
    for fee in (before, after):
        assert Fee.objects.get(pk=fee.pk).status == Fee.Status.PAID
    assert Fee.objects.get(pk=bad.pk).balance == Decimal("10.00")
    assert not LedgerEntry.objects.filter(fee=bad, kind=LedgerEntry.Kind.PAYMENT).exists()

    rejects = local.root / "inbound" / "rejects" / "results_7.csv.rejects.csv"
    [rejected] = list(csv.DictReader(io.StringIO(rejects.read_text())))
    assert rejected["line"] == "3"  # the header is line 1
    assert words in rejected["reason"]
    # The line, so the financials team can find it (a very long one in part).
    assert rejected["text"].startswith(result_file_text(rows).splitlines()[2][:1000])
    finding = Discrepancy.objects.get(kind=Discrepancy.Kind.UNMATCHED_PAYMENT)
    assert finding.detail == f"Line 3 of results_7.csv was not applied: {rejected['reason']}"
    assert (local.root / "inbound" / "archive" / "results_7.csv").exists()
    assert ledger_report().ok


def test_a_bad_line_in_a_file_with_a_long_name_is_still_a_finding(
    local: Exchange, libfine: Any
) -> None:
    fee = make_fee(amount="10.00", category=libfine)
    name = "PS_SF_RESULTS_" + "X" * 120 + ".csv"
    line = {"operation": "pay", "amount": "ten", "transaction_id": "1"}
    rows = [{**line, "reference": fee.reference}]
    local.drop(name, result_file_text(rows))
    assert _import(local).counts["rejected"] == 1
    finding = Discrepancy.objects.get(kind=Discrepancy.Kind.UNMATCHED_PAYMENT)
    assert finding.vendor_ref.endswith(":2") and len(finding.vendor_ref) == 100
    assert finding.detail.startswith(
        f"Line 2 of {name} was not applied: The amount (column amount) “ten”"
    )


def test_a_header_too_long_for_csv_quarantines_the_file_in_words(local: Exchange) -> None:
    local.drop("results_8.csv", "reference," + "x" * 200_000 + "\r\n")
    counts = _import(local).counts
    assert counts["quarantined"] == 1
    finding = Discrepancy.objects.get(kind=Discrepancy.Kind.UNREADABLE_FILE)
    assert "The header line: The line cannot be read as CSV" in finding.detail


def test_the_rejects_file_repeats_a_very_long_line_only_in_part(
    local: Exchange, libfine: Any
) -> None:
    fee = make_fee(amount="10.00", category=libfine)
    line = {"operation": "pay", "amount": "10.00", "transaction_id": "L-1"}
    local.drop(
        "results_9.csv",
        result_file_text([{**line, "reference": fee.reference, "reason": "x" * 200_000}]),
    )
    assert _import(local).counts["rejected"] == 1
    rejects = local.root / "inbound" / "rejects" / "results_9.csv.rejects.csv"
    [rejected] = list(csv.DictReader(io.StringIO(rejects.read_text())))
    assert rejected["text"].startswith(fee.reference)
    assert rejected["text"].endswith("… (200,032 characters in all)")
    assert len(rejected["text"]) < 1100


def test_the_column_is_named_as_the_files_own_header_names_it(
    local: Exchange, libfine: Any
) -> None:
    """A financials side that writes its own column names (PeopleSoft's) reads its own
    names back in the reason."""
    fee = make_fee(amount="10.00", category=libfine)
    assert task_run(integration=local.integration, task="export-fees") is not None
    local.drop(
        "results_10.csv",
        "REF1_DESCR,EMPLID,op,ITEM_AMT,txn_id\r\n"
        f"{fee.reference},,pay,ten,P-1\r\n"
        f"{fee.reference},,pay,10.00,\r\n"
        f"{fee.reference},,pay,10.00,P-3\r\n",
    )
    counts = _import(local).counts
    assert (counts["recorded"], counts["rejected"]) == (1, 2)
    rejects = local.root / "inbound" / "rejects" / "results_10.csv.rejects.csv"
    reasons = {r["line"]: r["reason"] for r in csv.DictReader(io.StringIO(rejects.read_text()))}
    assert reasons["2"].startswith("The amount (column ITEM_AMT) “ten” is not a number.")
    assert reasons["3"] == "The transaction id (column txn_id) is empty."
