"""The file-exchange sandbox plays the financials side over real SFTP: it picks up the
export, and its control API writes result files FeeSync then imports."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from apps.fees.models import Fee
from apps.vendors.jobs import task_run
from apps.vendors.kinds.fileexchange import sandbox
from apps.vendors.models import Discrepancy, Integration, TaskRun
from tests.factories import StudentFactory, make_fee

pytestmark = pytest.mark.django_db


@pytest.fixture
def box(tmp_path) -> Iterator[sandbox.FileExchangeServer]:
    server = sandbox.make_server(0, None, root=str(tmp_path / "files"))
    sandbox.start(server)
    yield server
    server.shutdown()


def control(box: sandbox.FileExchangeServer, name: str, **body: object) -> dict:
    response = requests.post(f"{box.url}/_sandbox/{name}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def state(box: sandbox.FileExchangeServer) -> dict:
    return requests.get(f"{box.url}/_sandbox/state", timeout=10).json()


def wired(box: sandbox.FileExchangeServer, category) -> Integration:
    integration = Integration(
        vendor_kind="fileexchange",
        slug="fx-sandbox",
        name="Financials",
        enabled=True,
        service_url=box.url,
        timeout_seconds=5,
        import_after=dt.date(2026, 7, 1),
        options={
            "transport": "sftp",
            "host": "127.0.0.1",
            "port": box.sftp.port,
            "host_key": sandbox.host_key_line(),
        },
    )
    integration.credentials = {
        "username": sandbox.DEFAULT_USERNAME,
        "password": sandbox.DEFAULT_PASSWORD,
    }
    integration.save()
    integration.categories.set([category])
    return integration


def ok(integration: Integration, task: str) -> TaskRun:
    run = task_run(integration=integration, task=task)
    assert run is not None and run.outcome == TaskRun.Outcome.OK, run and run.error
    return run


def test_round_trip_through_the_sandbox(box, libfine):
    student = StudentFactory(student_number="800001")
    paid = make_fee(student=student, amount="30.00", category=libfine)
    disputed = make_fee(student=student, amount="9.00", category=libfine)
    integration = wired(box, libfine)
    from apps.vendors.services import integration_test_connection

    pull, push = integration_test_connection(integration=integration)
    assert pull.ok and push.ok, (pull.answer, push.answer)
    assert ok(integration, "export-fees").counts["rows"] == 2

    held = {f["fee_ref"]: f for f in state(box)["fees"]}
    assert set(held) == {paid.reference, disputed.reference}
    assert held[paid.reference]["amount"] == "30.00"

    control(box, "pay", fee_ref=paid.reference, amount="35.00")  # $5 more than owed
    control(box, "dispute", fee_ref=disputed.reference)
    assert state(box)["disputed"] == [disputed.reference]
    counts = ok(integration, "import-payments").counts
    assert (counts["files"], counts["recorded"]) == (2, 2)
    paid.refresh_from_db()
    disputed.refresh_from_db()
    assert paid.status == Fee.Status.PAID and disputed.disputed

    control(box, "restore", fee_ref=disputed.reference)
    ok(integration, "import-payments")
    disputed.refresh_from_db()
    assert not disputed.disputed

    # Broken files on request: a half-written one is left alone, a malformed one quarantined.
    control(box, "faults", file="half_written")
    control(box, "waive", fee_ref=disputed.reference, amount="1.00")
    assert ok(integration, "import-payments").counts["files"] == 0
    control(box, "faults", file="malformed")
    control(box, "pay", fee_ref=disputed.reference, amount="1.00")
    assert ok(integration, "import-payments").counts["quarantined"] == 1
    assert Discrepancy.objects.filter(kind=Discrepancy.Kind.UNREADABLE_FILE).exists()
    disputed.refresh_from_db()
    assert disputed.balance == Decimal("9.00")


def test_the_sandbox_refuses_a_client_that_does_not_pin_its_key(box, libfine):
    make_fee(amount="5.00", category=libfine)
    integration = wired(box, libfine)
    integration.options = {**integration.options, "host_key": ""}
    integration.save()
    run = task_run(integration=integration, task="export-fees")
    assert run is not None and run.outcome == TaskRun.Outcome.FAILED
    assert "No host key is pinned" in run.error


def test_signing_in_with_a_private_key_instead_of_the_password(box, libfine):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    box.sftp.authorize_key(public.decode())
    make_fee(amount="3.00", category=libfine)
    integration = wired(box, libfine)
    integration.credentials = {"username": sandbox.DEFAULT_USERNAME, "private_key": pem}
    integration.save()
    assert ok(integration, "export-fees").counts["rows"] == 1
    assert len(state(box)["fees"]) == 1

    # A key the server does not know is refused in words.
    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    integration.credentials = {"username": sandbox.DEFAULT_USERNAME, "private_key": other.decode()}
    integration.save()
    make_fee(amount="4.00", category=libfine)
    run = task_run(integration=integration, task="export-fees")
    assert run is not None and run.outcome == TaskRun.Outcome.FAILED
    assert "refused the login" in run.error


def test_a_bad_amount_line_is_rejected_by_number_and_the_others_applied(box, libfine):
    student = StudentFactory(student_number="800003")
    fees = [make_fee(student=student, amount="10.00", category=libfine) for _ in range(3)]
    integration = wired(box, libfine)
    assert ok(integration, "export-fees").counts["rows"] == 3

    control(box, "faults", file="bad_amount")
    written = control(
        box, "pay", payments=[{"fee_ref": f.reference, "amount": "10.00"} for f in fees]
    )
    counts = ok(integration, "import-payments").counts
    assert (counts["files"], counts["lines"]) == (1, 3)
    assert (counts["recorded"], counts["rejected"]) == (2, 1)

    for fee in fees:
        fee.refresh_from_db()
    # The first line carried "12,34": its fee is still owed, the two after it are paid.
    assert [f.status for f in fees] == [Fee.Status.OPEN, Fee.Status.PAID, Fee.Status.PAID]
    assert fees[0].balance == Decimal("10.00")

    rejects = box.root / "inbound" / "rejects" / f"{written['file']}.rejects.csv"
    rows = list(csv.DictReader(io.StringIO(rejects.read_text())))
    assert len(rows) == 1
    assert rows[0]["line"] == "2"  # the header is line 1
    assert "12,34" in rows[0]["reason"] and fees[0].reference in rows[0]["text"]
    finding = Discrepancy.objects.get(kind=Discrepancy.Kind.UNMATCHED_PAYMENT)
    assert f"Line 2 of {written['file']}" in finding.detail


def test_an_rsa_key_pasted_on_the_setup_page_signs_in(box, libfine, district_admin):
    """An RSA 4096 key (about 3,300 characters, past the 500 of other secrets) is taken
    whole by the setup page, kept encrypted and masked, and signs in over SFTP."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from django.db import connection
    from django.urls import reverse

    from tests.admin_helpers import csrf_client
    from tests.vendors.setup_pages import submit_form

    private = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # -----BEGIN RSA PRIVATE KEY-----
        serialization.NoEncryption(),
    ).decode()
    assert len(pem) > 3000
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    box.sftp.authorize_key(public.decode())
    integration = wired(box, libfine)
    integration.credentials = {"username": sandbox.DEFAULT_USERNAME}  # no password: key only
    integration.save()

    client = csrf_client(district_admin)
    setup = reverse("admin:vendors_integration_change", args=[integration.pk])
    response = submit_form(client, setup, "connection-form", {"private_key": pem})
    assert response.status_code == 200
    integration.refresh_from_db()
    assert integration.credentials["private_key"] == pem.strip()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT credentials_encrypted FROM vendors_integration WHERE id = %s", [integration.pk]
        )
        assert "PRIVATE KEY" not in cursor.fetchone()[0]
    page = client.get(setup).content.decode()
    body = pem.splitlines()[5]
    assert body not in page and "Stored:" in page

    make_fee(amount="5.00", category=libfine)
    assert ok(integration, "export-fees").counts["rows"] == 1
    assert len(state(box)["fees"]) == 1


def test_nightly_validation_compares_the_export_with_what_the_financials_side_holds(box, libfine):
    student = StudentFactory(student_number="800004")
    same, changed, third = (
        make_fee(student=student, amount="10.00", category=libfine) for _ in "abc"
    )
    integration = wired(box, libfine)
    ok(integration, "export-fees")
    counts = ok(integration, "validate-exports").counts
    assert (counts["round_trip_checked"], counts["round_trip_disagreements"]) == (3, 0)
    assert not Discrepancy.objects.exists()

    # The financials side loads a file FeeSync never wrote: one fee at another amount and
    # one FeeSync does not have; and a later export of ours never reaches its loader.
    outbound = box.root / "outbound"
    first = sorted(outbound.glob("*.csv"))[0]
    lines = list(csv.reader(io.StringIO(first.read_text(encoding="utf-8-sig"))))
    header, rows = lines[0], lines[1:]
    keys = [sandbox.HEADER_KEYS.get(h, h) for h in header]
    amount, reference = keys.index("amount"), keys.index("reference")
    edited = next(r for r in rows if r[reference] == changed.reference)
    edited[amount] = "99.00"
    if "version" in keys:  # a newer version than ours, as a later load would be
        edited[keys.index("version")] = "99"
    foreign = [*edited]
    foreign[reference] = "FOREIGN-1"
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([header, edited, foreign])
    (outbound / "by_hand_999999.csv").write_text(out.getvalue())
    state(box)  # the sandbox picks files up on each call
    lost = make_fee(student=student, amount="7.00", category=libfine)
    run = ok(integration, "export-fees")
    (outbound / str(run.counts["file"])).unlink()  # gone before the loader saw it

    counts = ok(integration, "validate-exports").counts
    assert counts["round_trip_disagreements"] == 3, list(
        Discrepancy.objects.values_list("kind", "detail")
    )
    found = {d.kind: d for d in Discrepancy.objects.all()}
    assert set(found) == {
        Discrepancy.Kind.DIFFERENT_AT_VENDOR,
        Discrepancy.Kind.FOREIGN_FEE,
        Discrepancy.Kind.MISSING_AT_VENDOR,
    }
    assert found[Discrepancy.Kind.DIFFERENT_AT_VENDOR].fee_ref == changed.reference
    assert "$10.00" in found[Discrepancy.Kind.DIFFERENT_AT_VENDOR].detail
    assert "$99.00" in found[Discrepancy.Kind.DIFFERENT_AT_VENDOR].detail
    assert found[Discrepancy.Kind.FOREIGN_FEE].fee_ref == "FOREIGN-1"
    assert found[Discrepancy.Kind.MISSING_AT_VENDOR].fee_ref == lost.reference
    assert {same.reference, third.reference}.isdisjoint(d.fee_ref for d in found.values())


# --- every layout, read back as a loader set up for it reads it ------------------------------

LAYOUTS = {
    "builtin": {"layout": "peoplesoft"},
    "builtin-pipe-bom": {"layout": "peoplesoft", "delimiter": "|", "encoding": "utf-8-sig"},
    "district-no-header": {
        "layout": "district",
        "columns": "amount,reference,student_id,effective_date,due_date",
        "header": False,
    },
    "district-no-header-tab-us-dates-bom": {
        "layout": "district",
        "columns": "student_id,due_date,reference,amount_due,amount,effective_date,status",
        "header": False,
        "delimiter": "\t",
        "date_format": "%m/%d/%Y",
        "encoding": "utf-8-sig",
    },
    "district-header-other-delimiter-month-names": {
        "layout": "district",
        "columns": "reference,description,amount,effective_date,student_id",
        "header": True,
        "delimiter": "other",
        "delimiter_other": "~",
        "date_format": "%d-%b-%Y",
    },
}


@pytest.mark.parametrize("options", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_the_nightly_round_trip_reads_every_layout_back(box, libfine, options):
    """The financials side's loader is set up with the integration's layout (the columns in
    its order, its header or none, its delimiter, date format and encoding): it holds every
    exported fee at its amount and dates, the round trip compares them all, a line changed
    there is found, and its result file comes back in the same delimiter and is applied."""
    student = StudentFactory(student_number="800005")
    first = make_fee(
        student=student,
        amount="12.50",
        category=libfine,
        description="Lost atlas, hardcover",
        fee_date=dt.date(2026, 9, 15),
        due_date=dt.date(2026, 10, 1),
    )
    second = make_fee(student=student, amount="4.00", category=libfine)
    integration = wired(box, libfine)
    integration.options = {**integration.options, **options}
    integration.save()
    control(box, "layout", **integration.options)

    assert ok(integration, "export-fees").counts["rows"] == 2
    seen = state(box)
    assert seen["files_refused"] == {}
    held = {f["fee_ref"]: f for f in seen["fees"]}
    assert set(held) == {first.reference, second.reference}
    assert (held[first.reference]["amount"], held[second.reference]["amount"]) == ("12.50", "4.00")
    if "effective_date" in seen["layout"]["columns"]:
        assert held[first.reference]["fee_date"] == "2026-09-15"
    counts = ok(integration, "validate-exports").counts
    assert (counts["round_trip_checked"], counts["round_trip_disagreements"]) == (2, 0)
    assert not Discrepancy.objects.exists()

    # The financials side pays the first fee: its result file is read in the same layout.
    control(box, "pay", fee_ref=first.reference, amount="12.50")
    counts = ok(integration, "import-payments").counts
    assert (counts["files"], counts["recorded"], counts["quarantined"]) == (1, 1, 0)
    first.refresh_from_db()
    assert first.status == Fee.Status.PAID


def test_a_loader_not_set_up_for_a_header_less_file_refuses_it_and_every_fee_is_missing(
    box, libfine
):
    """Nothing is skipped for a header-less layout: if the financials side's loader reads
    it wrongly, the round trip says what it does not hold."""
    fee = make_fee(amount="6.00", category=libfine)
    integration = wired(box, libfine)
    integration.options = {
        **integration.options,
        "layout": "district",
        "columns": "reference,amount",
        "header": False,
    }
    integration.save()
    run = ok(integration, "export-fees")

    refused = state(box)["files_refused"]
    assert list(refused) == [run.counts["file"]]
    why = refused[run.counts["file"]]
    assert "a file without a header line is read only once the loader" in why
    counts = ok(integration, "validate-exports").counts
    assert (counts["round_trip_checked"], counts["round_trip_disagreements"]) == (0, 1)
    missing = Discrepancy.objects.get()
    assert (missing.kind, missing.fee_ref) == (Discrepancy.Kind.MISSING_AT_VENDOR, fee.reference)


def test_a_loader_set_up_for_another_layout_refuses_the_file_naming_why(box, libfine):
    make_fee(amount="6.00", category=libfine)
    integration = wired(box, libfine)
    control(box, "layout", layout="district", columns="reference,amount", header=False)
    run = ok(integration, "export-fees")  # the built-in layout: a header, twelve columns
    assert state(box)["files_refused"] == {
        run.counts["file"]: "Line 1 has 12 fields; the layout has 2 columns (reference, amount)."
    }
    assert state(box)["fees"] == []


def test_the_layout_call_names_a_column_that_does_not_exist(box):
    response = requests.post(
        f"{box.url}/_sandbox/layout",
        json={"layout": "district", "columns": "reference,amout"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "Unknown column “amout”" in response.json()["error"]
