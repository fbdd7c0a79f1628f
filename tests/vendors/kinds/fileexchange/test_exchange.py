"""The file exchange end to end, over a real SFTP server on loopback and over a local
directory: fees out as a file with control totals, results back through the one door."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

from apps.fees.models import Fee, FeeDispute, LedgerEntry
from apps.fees.selectors import ledger_report
from apps.fees.services import fee_waive, student_credit
from apps.fees.services.ledger import Origin
from apps.vendors.jobs import task_run
from apps.vendors.kinds.fileexchange.layouts import result_file_text
from apps.vendors.models import Discrepancy, OutboxItem, SyncedFee, TaskRun
from tests.factories import CategoryFactory, StudentFactory, make_fee
from tests.vendors.servers import run_sftp_server

from .conftest import Exchange, cutting_proxy, make_exchange

pytestmark = pytest.mark.django_db
D = Decimal


def run(exchange: Exchange, task: str) -> TaskRun:
    done = task_run(integration=exchange.integration, task=task)
    assert done is not None
    assert done.outcome == TaskRun.Outcome.OK, done.error
    return done


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_fees_out_results_back_applied_once(exchange: Exchange, libfine):
    student = StudentFactory(student_number="700001")
    fees = {
        name: make_fee(student=student, amount=amount, category=libfine, description=name)
        for name, amount in [
            ("paid", "40.00"),
            ("partial", "50.00"),
            ("waived", "30.00"),
            ("disputed", "25.00"),
            ("restored", "12.00"),
            ("overpaid", "10.00"),
        ]
    }
    other = make_fee(student=student, amount="99.00", category=CategoryFactory(code="BUS"))

    # --- export -----------------------------------------------------------------------
    exported = run(exchange, "export-fees")
    assert exported.counts["rows"] == 6 and exported.counts["total"] == "167.00"
    name = str(exported.counts["file"])
    assert name.startswith("feesync_fees_") and name.endswith("_000001.csv")
    assert exchange.outbound() == [name, name[:-4] + ".ctl"][::-1] or set(exchange.outbound()) == {
        name,
        name[:-4] + ".ctl",
    }
    rows = read_csv(exchange.root / "outbound" / name)
    assert rows[0][:8] == [
        "EMPLID",
        "ITEM_TYPE",
        "ITEM_AMT",
        "ITEM_EFFECTIVE_DT",
        "DUE_DT",
        "REF1_DESCR",
        "ITEM_TERM",
        "DESCR",
    ]
    by_ref = {r[5]: r for r in rows[1:]}
    assert set(by_ref) == {f.reference for f in fees.values()}
    assert other.reference not in by_ref
    paid_line = by_ref[fees["paid"].reference]
    assert paid_line[:4] == ["700001", "800000000001", "40.00", "2026-09-15"]
    assert paid_line[6:8] == ["2270", "paid"]
    control = (exchange.root / "outbound" / (name[:-4] + ".ctl")).read_text()
    assert "rows=6" in control and "total=167.00" in control
    assert (exchange.root / "outbound" / "archive" / name).read_bytes() == (
        exchange.root / "outbound" / name
    ).read_bytes()
    assert not list((exchange.root / "outbound").glob("*.part"))
    assert SyncedFee.objects.filter(integration=exchange.integration).count() == 6
    assert not OutboxItem.objects.filter(integration=exchange.integration).exists()

    # Nothing changed: nothing to say, no file.
    again = run(exchange, "export-fees")
    assert again.counts["rows"] == 0 and again.counts["file"] == ""
    assert len(list((exchange.root / "outbound").glob("*.csv"))) == 1

    # --- results back -----------------------------------------------------------------
    ref = {k: f.reference for k, f in fees.items()}
    lines = [
        {"reference": ref["paid"], "operation": "pay", "amount": "40.00", "transaction_id": "T1"},
        {
            "reference": ref["partial"],
            "operation": "pay",
            "amount": "20.00",
            "transaction_id": "T2",
        },
        {
            "reference": ref["waived"],
            "operation": "waive",
            "amount": "30.00",
            "transaction_id": "T3",
        },
        {
            "reference": ref["disputed"],
            "operation": "dispute",
            "amount": "",
            "transaction_id": "T4",
        },
        {
            "reference": ref["restored"],
            "operation": "waive",
            "amount": "12.00",
            "transaction_id": "T5",
        },
        {
            "reference": ref["restored"],
            "operation": "restore",
            "amount": "12.00",
            "transaction_id": "T6",
        },
        {
            "reference": ref["overpaid"],
            "operation": "pay",
            "amount": "15.00",
            "transaction_id": "T7",
        },
        {"reference": ref["paid"], "operation": "pay", "amount": "40.00", "transaction_id": "T1"},
        {"reference": "F-NOSUCH", "operation": "pay", "amount": "5.00", "transaction_id": "T8"},
        {
            "reference": ref["partial"],
            "operation": "pay",
            "amount": "12,34",
            "transaction_id": "T9",
        },
    ]
    text = result_file_text(lines)
    exchange.drop("results_0001.csv", text)
    imported = run(exchange, "import-payments")
    c = imported.counts
    assert (c["files"], c["lines"], c["recorded"], c["already_recorded"], c["rejected"]) == (
        1,
        10,
        7,
        1,
        2,
    )

    for f in fees.values():
        f.refresh_from_db()
    assert (fees["paid"].status, fees["paid"].balance) == ("paid", D("0.00"))
    assert (fees["partial"].status, fees["partial"].balance) == ("open", D("30.00"))
    assert fees["waived"].status == "waived"
    assert fees["disputed"].disputed is True and fees["disputed"].balance == D("25.00")
    assert (fees["restored"].status, fees["restored"].balance) == ("open", D("12.00"))
    assert fees["overpaid"].status == "paid"
    assert student_credit(student=student) == D("5.00")
    assert LedgerEntry.objects.filter(external_id="T1").count() == 1

    rejects = read_csv(exchange.root / "inbound" / "rejects" / "results_0001.csv.rejects.csv")
    assert [r[1] for r in rejects[1:]] == ["10", "11"]  # line numbers (the header is line 1)
    assert "F-NOSUCH" in rejects[1][2] and "does not have" in rejects[1][2]
    assert "12,34" in rejects[2][2]
    assert (exchange.root / "inbound" / "archive" / "results_0001.csv").exists()
    assert not (exchange.root / "inbound" / "results_0001.csv").exists()
    assert not (exchange.root / "inbound" / "results_0001.csv.done").exists()
    findings = Discrepancy.objects.filter(integration=exchange.integration)
    assert findings.filter(kind=Discrepancy.Kind.UNMATCHED_PAYMENT).count() == 2
    assert ledger_report().ok

    # --- the same file dropped again adds nothing ------------------------------------
    entries = LedgerEntry.objects.count()
    exchange.drop("results_0001.csv", text)
    repeat = run(exchange, "import-payments")
    assert repeat.counts["recorded"] == 0 and repeat.counts["already_recorded"] == 8
    assert LedgerEntry.objects.count() == entries
    assert FeeDispute.objects.count() == 1
    assert student_credit(student=student) == D("5.00")
    assert ledger_report().ok

    # What the results changed goes back to the financials side, each fee with the amount
    # due that counts them: it cannot tell which of its own payments a line it loads
    # counts (simulate --seed 1). Once only.
    back = run(exchange, "export-fees")
    lines = {r[5]: r for r in read_csv(exchange.root / "outbound" / str(back.counts["file"]))[1:]}
    for key in ("paid", "partial", "waived", "restored", "overpaid"):
        fees[key].refresh_from_db()
        assert lines[ref[key]][9:12] == [
            f"{fees[key].balance:.2f}",
            fees[key].status,
            str(fees[key].version),
        ]
    assert lines[ref["partial"]][9] == "30.00" and lines[ref["overpaid"]][10] == "paid"
    assert run(exchange, "export-fees").counts["rows"] == 0


def test_a_half_written_file_is_not_taken(exchange: Exchange, libfine):
    fee = make_fee(amount="10.00", category=libfine)
    run(exchange, "export-fees")
    text = result_file_text(
        [
            {
                "reference": fee.reference,
                "operation": "pay",
                "amount": "10.00",
                "transaction_id": "H1",
            }
        ]
    )
    exchange.drop("late.csv", text, done=False)  # still being written: no marker yet
    assert run(exchange, "import-payments").counts["files"] == 0
    assert (exchange.root / "inbound" / "late.csv").exists()
    (exchange.root / "inbound" / "late.csv.done").write_bytes(b"")
    assert run(exchange, "import-payments").counts["recorded"] == 1


def test_unchanged_size_over_two_polls_rule(exchange: Exchange, libfine):
    options = {**exchange.integration.options, "completeness": "stable"}
    exchange.integration.options = options
    exchange.integration.save()
    fee = make_fee(amount="10.00", category=libfine)
    run(exchange, "export-fees")
    text = result_file_text(
        [{"reference": fee.reference, "operation": "pay", "amount": "4.00", "transaction_id": "S1"}]
    )
    exchange.drop("grow.csv", text[:30], done=False)
    assert run(exchange, "import-payments").counts["files"] == 0  # first sight
    exchange.drop("grow.csv", text, done=False)  # it grew: still being written
    assert run(exchange, "import-payments").counts["files"] == 0
    assert run(exchange, "import-payments").counts["recorded"] == 1  # same size twice


def test_an_unreadable_file_is_quarantined_and_nothing_applied(exchange: Exchange, libfine):
    fee = make_fee(amount="10.00", category=libfine)
    run(exchange, "export-fees")
    good = result_file_text(
        [
            {
                "reference": fee.reference,
                "operation": "pay",
                "amount": "10.00",
                "transaction_id": "Q1",
            }
        ]
    )
    exchange.drop("cut.csv", good.rstrip("\r\n")[:-2])  # truncated mid-line
    exchange.drop("cols.csv", "who,what\r\nx,y\r\n")  # wrong columns
    exchange.drop("enc.csv", good.replace("pay", "p\xe9y").encode("latin-1").decode("latin-1"))
    (exchange.root / "inbound" / "enc.csv").write_bytes(
        good.replace("pay", "p\xe9y").encode("latin-1")
    )
    counts = run(exchange, "import-payments").counts
    assert counts["quarantined"] == 3 and counts["recorded"] == 0
    fee.refresh_from_db()
    assert fee.balance == D("10.00")
    quarantine = exchange.root / "inbound" / "quarantine"
    assert {p.name for p in quarantine.glob("*.csv")} == {"cut.csv", "cols.csv", "enc.csv"}
    details = " ".join(
        Discrepancy.objects.filter(kind=Discrepancy.Kind.UNREADABLE_FILE).values_list(
            "detail", flat=True
        )
    )
    assert "cut short" in details and "does not name the column" in details
    assert "not UTF-8" in details


def test_a_dropped_connection_during_export_leaves_no_file_and_is_retried_whole(
    tmp_path: Path, libfine
):
    root = tmp_path / "financials"
    for n in range(400):  # about 100 KB of file: the line is cut well before its end
        make_fee(amount="1.00", category=libfine, description=f"Overdue book {n:05d} " + "x" * 170)
    with run_sftp_server(root) as server, cutting_proxy(server, after_bytes=40_000) as port:
        server.port = port
        integration = make_exchange(root, server=server, category=libfine)
        failed = task_run(integration=integration, task="export-fees")
        assert failed is not None and failed.outcome == TaskRun.Outcome.FAILED
        assert "SFTP server" in failed.error
    assert not list((root / "outbound").glob("*.csv"))  # nothing under a final name
    assert not SyncedFee.objects.filter(integration=integration).exists()
    with run_sftp_server(root) as server:
        integration.options = {
            **integration.options,
            "port": server.port,
            "host_key": server.host_key,
        }
        integration.save()
        done = task_run(integration=integration, task="export-fees")
    assert done is not None and done.outcome == TaskRun.Outcome.OK, done.error
    assert done.counts["rows"] == 400
    [name] = [p.name for p in (root / "outbound").glob("*.csv")]
    assert len(read_csv(root / "outbound" / name)) == 401


def test_a_fee_waived_at_the_district_is_exported_with_its_new_status(exchange: Exchange, libfine):
    fee = make_fee(amount="8.00", category=libfine)
    run(exchange, "export-fees")
    fee_waive(fee=Fee.objects.get(pk=fee.pk), reason="Lost book found", origin=Origin())
    out = run(exchange, "export-fees")
    rows = read_csv(exchange.root / "outbound" / str(out.counts["file"]))
    assert rows[1][5] == fee.reference and rows[1][10] == "waived"


def test_a_students_page_reads_waiting_payment_files_and_shows_a_dispute(
    exchange: Exchange, libfine, client, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    from tests.factories import StaffFactory

    student = StudentFactory()
    paid = make_fee(student=student, amount="6.00", category=libfine)
    disputed = make_fee(student=student, amount="7.00", category=libfine)
    run(exchange, "export-fees")
    exchange.drop(
        "r.csv",
        result_file_text(
            [
                {
                    "reference": paid.reference,
                    "operation": "pay",
                    "amount": "6.00",
                    "transaction_id": "SP1",
                },
                {"reference": disputed.reference, "operation": "dispute", "transaction_id": "SP2"},
            ]
        ),
    )
    client.force_login(StaffFactory(username="clerk-fx", groups=["Fees clerk"]))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(reverse("admin:students_student_change", args=[student.pk]))
    assert response.status_code == 200
    notes = [str(m) for m in response.context["messages"]]
    assert any("payment files are being read in the background" in n for n in notes)
    paid.refresh_from_db()
    assert paid.status == "paid"
    page = client.get(reverse("admin:fees_fee_change", args=[disputed.pk])).content.decode()
    assert "Disputed" in page and "not offered it for payment" in page


def test_parents_see_a_disputed_fee_left_out_of_what_is_due(exchange: Exchange, libfine):
    from apps.portal.selectors import portal_page_for
    from tests.factories import GuardianFactory

    student = StudentFactory()
    guardian = GuardianFactory()
    guardian.students.add(student)
    owed = make_fee(student=student, amount="5.00", category=libfine)
    disputed = make_fee(student=student, amount="8.00", category=libfine)
    run(exchange, "export-fees")
    exchange.drop(
        "d.csv",
        result_file_text(
            [{"reference": disputed.reference, "operation": "dispute", "transaction_id": "PD1"}]
        ),
    )
    run(exchange, "import-payments")
    page = portal_page_for(guardian=guardian)
    [child] = page.children
    rows = {r.fee.pk: r for r in child.open_fees}
    assert rows[disputed.pk].fee.disputed and not rows[disputed.pk].payable_online
    assert not rows[owed.pk].fee.disputed
    assert child.due == D("5.00")


@pytest.mark.django_db(transaction=True)
def test_two_exports_at_once_write_two_files_never_one_name_twice(tmp_path: Path):
    """Beat firing twice, or staff asking for a full file while the schedule runs: each
    export takes its own sequence number, so neither file replaces the other (found by the
    simulator's concurrent exports)."""
    import threading

    from django.db import connection

    from apps.vendors.files import fees_export

    libfine = CategoryFactory(code="LIBFINE", description="Library fines")
    for n in range(30):
        make_fee(amount="2.00", category=libfine, description=f"Overdue book {n}")
    root = tmp_path / "financials"
    (root / "outbound").mkdir(parents=True)
    integration = make_exchange(root, server=None, category=libfine)
    start = threading.Barrier(2)
    results: list[dict] = []
    errors: list[BaseException] = []

    def export() -> None:
        try:
            start.wait()
            results.append(fees_export(integration=integration, full=True))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=export) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r["sequence"] for r in results) == [1, 2]
    names = {str(r["file"]) for r in results}
    assert len(names) == 2
    assert sorted(p.name for p in (root / "outbound").glob("*.csv")) == sorted(names)
    for name in names:
        assert len(read_csv(root / "outbound" / name)) == 31
    integration.refresh_from_db()
    assert integration.export_sequence == 2
