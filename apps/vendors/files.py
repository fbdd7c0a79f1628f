"""Fees out as files and payments back as files, for any kind that can (`Capability.
FILE_EXPORT` / `FILE_IMPORT`; today the file exchange): the database side of the tasks
`export-fees`, `export-all-fees`, `import-payments` and `validate-exports`.

* Export: the fees in scope that are new or changed since the version last exported (one
  set-based query, streamed), written by the adapter as one file; only once the file is
  complete are the exported versions recorded, like a vendor's acknowledgements
  (`SyncedFee`), and their outbox rows cleared. A failed export records nothing, so the
  next run sends the same fees again, whole.
* Import: each complete inbound file is fetched to a local spool and read twice: first to
  check it can be read at all (otherwise it goes to quarantine, nothing applied), then in
  batches through `engine.payments_record`, the one door. Lines that cannot be applied go
  to the file's rejects file with their line number and reason, and the file to the
  archive; the counts are the task run's.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import F, FilteredRelation, Q
from django.utils import timezone

from apps.fees.models import Fee

from . import engine
from .kinds.base import (
    FeeRecord,
    InboundLine,
    RefusedMovement,
    UnreadableFile,
    VendorAdapter,
    VendorError,
    VendorPayment,
)
from .models import Discrepancy, Integration, OutboxItem, SyncedFee, TaskRun, option_json
from .scope import Scope

#: Lines handed to the one door at once: big enough that its per-batch queries are
#: amortised, small enough that a batch's locks and memory stay small.
IMPORT_BATCH = 5000


@dataclass(frozen=True)
class FeeVersion(FeeRecord):
    """A fee line as exported: the fee record with its FeeSync status."""

    status: str = ""


# --- export --------------------------------------------------------------------------------


EXPORT_TASKS = ("export-fees", "export-all-fees")


def _changed_fees(integration: Integration, *, full: bool) -> Any:
    fees = Scope.of(integration).fees()
    if full:
        return fees.filter(status=Fee.Status.OPEN)
    # One LEFT JOIN on this integration's SyncedFee rows (PostgreSQL hashes it), not a
    # correlated subquery probed once per fee (bench fileexchange.export_200k_s).
    return fees.alias(
        exported=FilteredRelation("synced", condition=Q(synced__integration=integration))
    ).filter(
        Q(exported__acknowledged_version__isnull=True)
        | Q(exported__acknowledged_version__lt=F("version"))
    )


def _records(
    integration: Integration, *, full: bool, ids: list[int], versions: list[int]
) -> Iterator[FeeRecord]:
    mids = {
        m.merchant_account_id: m.vendor_merchant_id
        for m in integration.account_mappings.all()
        if m.vendor_merchant_id
    }
    rows = (
        _changed_fees(integration, full=full)
        .order_by("pk")
        .values_list(
            "pk",
            "reference",
            "version",
            "student__student_number",
            "student__first_name",
            "student__last_name",
            "student__school__code",
            "category__code",
            "merchant_account_id",
            "merchant_account__merchant_id",
            "description",
            "amount",
            "balance",
            "fee_date",
            "due_date",
            "status",
        )
        .iterator(chunk_size=5000)
    )
    for (
        pk,
        ref,
        version,
        number,
        first,
        last,
        school,
        category,
        account_id,
        mid,
        description,
        amount,
        balance,
        fee_date,
        due_date,
        status,
    ) in rows:
        ids.append(pk)
        versions.append(version)
        yield FeeVersion(
            fee_ref=ref,
            version=version,
            student_id=number,
            student_name=f"{first} {last}".strip(),
            school_code=school,
            category_code=category,
            merchant_id=mids.get(account_id, mid),
            description=description,
            amount=amount,
            amount_due=balance,
            fee_date=fee_date,
            due_date=due_date,
            active=status == Fee.Status.OPEN,
            status=status,
        )


#: The exported versions arrive by COPY into a temporary table (binding 200,000 ids as
#: array literals cost more than the whole upload: bench fileexchange.export_200k_s), then
#: one upsert and one delete join it.
_EXPORTED_TEMP_SQL = (
    "CREATE TEMPORARY TABLE feesync_exported (fee_id bigint, version integer) ON COMMIT DROP"
)
_EXPORTED_SQL = """
INSERT INTO vendors_syncedfee
    (integration_id, fee_id, acknowledged_version, first_sent_at, acknowledged_at,
     vendor_caused_version)
SELECT %(integration)s, v.fee_id, v.version, %(now)s, %(now)s, 0
FROM feesync_exported AS v
ON CONFLICT (integration_id, fee_id) DO UPDATE
SET acknowledged_version = GREATEST(vendors_syncedfee.acknowledged_version,
                                    EXCLUDED.acknowledged_version),
    acknowledged_at = EXCLUDED.acknowledged_at
"""

_OUTBOX_DONE_SQL = """
DELETE FROM vendors_outboxitem AS o
USING feesync_exported AS v
WHERE o.integration_id = %(integration)s AND o.fee_id = v.fee_id AND o.version <= v.version
"""


def exported_record(*, integration: Integration, ids: list[int], versions: list[int]) -> None:
    """The financials side has been given these fee versions: record them as acknowledged
    and clear their outbox rows (one statement each on PostgreSQL)."""
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            params: dict[str, Any] = {"integration": integration.pk, "now": now}
            with connection.cursor() as cursor:
                # Within one long transaction (a test's) an earlier export's is still there.
                cursor.execute("DROP TABLE IF EXISTS pg_temp.feesync_exported")
                cursor.execute(_EXPORTED_TEMP_SQL)
                with cursor.cursor.copy(
                    "COPY feesync_exported (fee_id, version) FROM STDIN"
                ) as copy:
                    for row in zip(ids, versions, strict=True):
                        copy.write_row(row)
                cursor.execute(_EXPORTED_SQL, params)
                cursor.execute(_OUTBOX_DONE_SQL, params)
            return
        for start in range(0, len(ids), 2000):
            part = list(zip(ids[start : start + 2000], versions[start : start + 2000], strict=True))
            SyncedFee.objects.bulk_create(
                [
                    SyncedFee(
                        integration=integration,
                        fee_id=fee_id,
                        acknowledged_version=version,
                        acknowledged_at=now,
                    )
                    for fee_id, version in part
                ],
                update_conflicts=True,
                unique_fields=["integration", "fee"],
                update_fields=["acknowledged_version", "acknowledged_at"],
            )
            for fee_id, version in part:
                OutboxItem.objects.filter(
                    integration=integration, fee_id=fee_id, version__lte=version
                ).delete()


def fees_export(
    *, integration: Integration, full: bool = False, allow_empty: bool = False
) -> dict[str, int | str]:
    """Write the fee file (`full`: every open fee in scope; otherwise what changed since
    its last export). Raises VendorError; nothing is recorded then."""
    adapter = engine.adapter_for(integration)
    # One export at a time per integration: two at once (beat firing twice, staff asking
    # for a file while the schedule runs) would take the same sequence number and, in the
    # same second, write the same file name, the second replacing the first after the
    # financials side may have loaded it. The sequence is taken and kept under the lock; a
    # failed export rolls it back with everything else, so the retry takes it again.
    with transaction.atomic():
        _export_lock(integration)
        kept = Integration.objects.filter(pk=integration.pk).values_list(
            "export_sequence", flat=True
        )
        # The integration keeps its last sequence (migration vendors 0013 filled it from the
        # export runs made before it did).
        sequence = (kept.first() or 0) + 1
        ids: list[int] = []
        versions: list[int] = []
        exported = adapter.export_fees(
            _records(integration, full=full, ids=ids, versions=versions),
            sequence=sequence,
            when=timezone.localtime(),
            allow_empty=allow_empty or full,
        )
        if exported is None:
            return {"rows": 0, "file": ""}
        exported_record(integration=integration, ids=ids, versions=versions)
        Integration.objects.filter(pk=integration.pk).update(export_sequence=sequence)
    return {
        "rows": exported.rows,
        "total": f"{exported.total:.2f}",
        "bytes": exported.bytes,
        "file": exported.name,
        "sequence": sequence,
    }


#: The advisory lock class of file exports (the second key is the integration's id).
_EXPORT_LOCK = 0x46455850  # "FEXP"


def _export_lock(integration: Integration) -> None:
    """Wait for any other export of this integration to finish (until the transaction
    ends). An advisory lock, not the integration's row, so that imports, deliveries and
    setup saves of the integration are not held up by a long export. SQLite (`make run`)
    runs one writer at a time already."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_EXPORT_LOCK, integration.pk])


# --- import --------------------------------------------------------------------------------


def _finding(integration: Integration, kind: str, ref: str, detail: str) -> None:
    # The ref is the file's name (and line): a long name keeps its end, the line number.
    engine.discrepancy_record(
        integration=integration, kind=kind, vendor_ref=ref[-100:], detail=detail
    )


def payments_import(*, integration: Integration) -> dict[str, int]:
    """Apply every complete result file in the inbound directory."""
    adapter = engine.adapter_for(integration)
    # The stored cursor, not the caller's copy of it: what the last poll saw.
    cursor = Integration.objects.filter(pk=integration.pk).values_list("payment_cursor", flat=True)
    poll = adapter.inbound_poll(cursor=cursor.first() or None)
    Integration.objects.filter(pk=integration.pk).update(payment_cursor=poll.cursor)
    counts = dict.fromkeys(
        ["files", "lines", "recorded", "already_recorded", "held", "rejected", "quarantined"], 0
    )
    for name in poll.ready:
        with tempfile.TemporaryFile() as local:
            adapter.inbound_read(name, local)
            try:
                for _line in adapter.inbound_lines(local, check_only=True):
                    pass  # the whole file read through: readable, or quarantined below
            except UnreadableFile as exc:
                where = adapter.inbound_quarantine(name, exc.message)
                counts["quarantined"] += 1
                _finding(
                    integration,
                    Discrepancy.Kind.UNREADABLE_FILE,
                    name,
                    f"The result file {name} could not be read and nothing of it was "
                    f"applied: {exc.message} It was moved to {where}; ask the financials "
                    "team to send it again.",
                )
                continue
            _apply_file(integration, adapter, name, local, counts)
        counts["files"] += 1
    Integration.objects.filter(pk=integration.pk).update(payments_pulled_at=timezone.now())
    return counts


def _apply_file(
    integration: Integration,
    adapter: VendorAdapter,
    name: str,
    local: Any,
    counts: dict[str, int],
) -> None:
    rejects: list[InboundLine] = []
    batch: list[InboundLine] = []

    def flush() -> None:
        report = engine.PullReport()
        payments: list[VendorPayment] = [line.payment for line in batch if line.payment]
        engine.payments_record(
            integration=integration, payments=payments, report=report, adapter=adapter
        )
        counts["recorded"] += report.recorded
        counts["already_recorded"] += report.already_recorded
        counts["held"] += report.held
        refused: list[RefusedMovement] = getattr(adapter, "take_refused", list)()
        if refused:
            first_line: dict[str, InboundLine] = {}
            for line in batch:
                if line.payment is not None:
                    first_line.setdefault(line.payment.payment_id, line)
            for r in refused:
                found = first_line.get(r.payment.payment_id)
                if found is not None:
                    found.error = r.reason
                    rejects.append(found)
        batch.clear()

    for line in adapter.inbound_lines(local):
        counts["lines"] += 1
        if line.payment is None:
            rejects.append(line)
            _finding(
                integration,
                Discrepancy.Kind.UNMATCHED_PAYMENT,
                f"{name}:{line.number}",
                f"Line {line.number} of {name} was not applied: {line.error}",
            )
            continue
        batch.append(line)
        if len(batch) >= IMPORT_BATCH:
            flush()
    if batch:
        flush()
    rejects.sort(key=lambda line: line.number)
    counts["rejected"] += len(rejects)
    adapter.inbound_done(name, rejects=rejects)


# --- nightly validation ----------------------------------------------------------------------


def exports_validate(*, integration: Integration) -> dict[str, int]:
    """Every fee version in scope that changed before the last successful export must have
    been exported, once: a finding for each that was not (the next export sends it)."""
    last = (
        TaskRun.objects.filter(
            integration=integration, task__in=EXPORT_TASKS, outcome=TaskRun.Outcome.OK
        )
        .order_by("-started")
        .values_list("started", flat=True)
        .first()
    )
    counts = {"checked": Scope.of(integration).fees().count(), "not_exported": 0}
    counts.update(_round_trip(integration))
    if last is None:
        return counts
    missing = _changed_fees(integration, full=False).filter(updated_at__lt=last)
    for pk, ref, version in missing.values_list("pk", "reference", "version")[:1000]:
        counts["not_exported"] += 1
        engine.discrepancy_record(
            integration=integration,
            kind=Discrepancy.Kind.MISSING_AT_VENDOR,
            fee_id=pk,
            fee_ref=ref,
            detail=f"Version {version} of fee {ref} changed before the last export but was "
            "not in it; the next export sends it.",
        )
    return counts


def _round_trip(integration: Integration) -> dict[str, int]:
    """The full-file round trip, where the financials side can report what it holds (the
    sandbox does): each fee whose current version was exported must be held there with the
    amount exported, and nothing may be held there that was never exported. A finding for
    each disagreement; {"round_trip_checked": 0} when the other side cannot say."""
    held = engine.adapter_for(integration).holdings()
    if held is None:
        return {"round_trip_checked": 0, "round_trip_disagreements": 0}
    disagreements = 0
    exported: set[str] = set()
    current = SyncedFee.objects.filter(
        integration=integration, acknowledged_version=F("fee__version")
    ).values_list("fee_id", "fee__reference", "fee__amount", "fee__version")
    for fee_id, ref, amount, version in current.iterator(chunk_size=5000):
        exported.add(ref)
        there = held.get(ref)
        if there is None:
            kind, detail = (
                Discrepancy.Kind.MISSING_AT_VENDOR,
                f"Fee {ref} (version {version}) was exported, but the financials system "
                "does not hold it: ask the financials team whether the file was loaded; "
                "a full export sends it again.",
            )
        elif there != amount:
            kind, detail = (
                Discrepancy.Kind.DIFFERENT_AT_VENDOR,
                f"Fee {ref} was exported for ${amount:.2f}, but the financials system holds "
                f"${there:.2f}.",
            )
        else:
            continue
        disagreements += 1
        engine.discrepancy_record(
            integration=integration, kind=kind, fee_id=fee_id, fee_ref=ref, detail=detail
        )
    # A fee changed since its export is not compared (the next export sends it); it is
    # still one FeeSync sent, so only references never exported count as foreign.
    sent = (
        set(
            SyncedFee.objects.filter(
                integration=integration, fee__reference__any=list(held)
            ).values_list("fee__reference", flat=True)
        )
        if held
        else set()
    )
    for ref in sorted(set(held) - exported - sent):
        disagreements += 1
        engine.discrepancy_record(
            integration=integration,
            kind=Discrepancy.Kind.FOREIGN_FEE,
            fee_ref=ref,
            detail=f"The financials system holds fee {ref}, which FeeSync never exported.",
        )
    return {"round_trip_checked": len(held), "round_trip_disagreements": disagreements}


def fee_file_preview(
    *, integration: Integration, limit: int = 5, options: dict[str, Any] | None = None
) -> str:
    """The first lines of the fee file as the integration's saved layout writes them, from
    fees in its scope (the setup page's preview); "" when the settings cannot be read.
    `options`: unsaved option values (already cleaned) to draw it with instead."""
    return fee_file_sample(integration=integration, limit=limit, options=options)[0]


def fee_file_sample(
    *, integration: Integration, limit: int = 5, options: dict[str, Any] | None = None
) -> tuple[str, int]:
    """(the first lines of the fee file, how many of them are fees): what
    `fee_file_preview` shows, with the count the live preview says in words."""
    if options:
        # A copy that is never saved: the unsaved values over the stored ones.
        integration = copy.copy(integration)
        integration.options = {
            **integration.options,
            **{k: option_json(v) for k, v in options.items()},
        }
    try:
        adapter = engine.adapter_for(integration)
    except (VendorError, ValueError):
        return "", 0
    records: list[FeeRecord] = []
    for record in _records(integration, full=True, ids=[], versions=[]):
        records.append(record)
        if len(records) >= limit:
            break
    return adapter.file_preview(records), len(records)
