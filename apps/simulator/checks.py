"""The invariants: cheap ones after every step, strong ones after the settlement phase.

Each check raises `SimulationFailure(invariant, detail)`; the names are what a failing run
prints, in the words of issue 16."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from django.db.models import Count, Sum

from apps.fees.models import Fee, LedgerEntry
from apps.fees.selectors import ledger_report
from apps.partner_api.models import ApiUser
from apps.vendors.models import Discrepancy, HeldMovement, OutboxItem, SyncedFee
from apps.vendors.scope import Scope

from .operations import SimulationFailure
from .parts import FILE_KINDS
from .world import World

LEDGER_CLEAN = "ledger_check is clean"
ONCE = "every vendor/file/API movement is recorded exactly once"
AT_VENDOR = "every fee in an integration's scope is at that vendor at its latest version"
OUT_OF_SCOPE = "nothing out of scope is at a vendor"
APPLIED_AND_HELD = "no payment is both applied and held as unmatched"
NOTHING_PARKED = "no change is waiting or parked after the settlement"
AGREE = "the sandbox's view and FeeSync's agree fee by fee"
DECIDED = "every finding staff can answer is answered in the settlement"


def check_ledger() -> None:
    report = ledger_report()
    if not report.ok:
        shown = "; ".join(f"{b.check}: {b.detail}" for b in report.breaches[:5])
        raise SimulationFailure(LEDGER_CLEAN, shown)


def _api_source(world: World) -> str:
    return str(ApiUser.objects.get(integration=world.partner).external_source)


def check_api_postings(world: World) -> None:
    """Every partner-API payment answered as posted is one ledger entry, of its amount."""
    if not world.api_postings:
        return
    source = _api_source(world)
    vids = [a.vendor_transaction_id for a in world.api_postings]
    rows = (
        LedgerEntry.objects.filter(external_source=source, external_id__in=vids)
        .values("external_id")
        .annotate(n=Count("pk"), total=Sum("amount"))
    )
    found = {r["external_id"]: (r["n"], r["total"]) for r in rows}
    for posting in world.api_postings:
        n, total = found.get(posting.vendor_transaction_id, (0, Decimal(0)))
        if n != 1 or total != posting.amount:
            raise SimulationFailure(
                ONCE,
                f"partner-API payment {posting.vendor_transaction_id} of ${posting.amount} is "
                f"{n} ledger entries totalling ${total}",
            )


def check_step(world: World) -> None:
    check_ledger()
    check_api_postings(world)


def check_vendor_movements(world: World, kind: str, state: dict[str, Any]) -> None:
    integration = world.integrations[kind]
    source = integration.external_source
    ids = [p["payment_id"] for p in state["payments"]]
    entries = Counter(
        LedgerEntry.objects.filter(external_source=source).values_list("external_id", flat=True)
    )
    held = set(
        HeldMovement.objects.filter(
            integration=integration, status=HeldMovement.Status.OPEN
        ).values_list("vendor_ref", flat=True)
    )
    # Dismissed by staff: never posted, for good (and never posted by a later pull).
    dismissed = set(
        HeldMovement.objects.filter(
            integration=integration, status=HeldMovement.Status.DISMISSED
        ).values_list("vendor_ref", flat=True)
    )
    unmatched = set(
        Discrepancy.objects.filter(
            integration=integration,
            kind=Discrepancy.Kind.UNMATCHED_PAYMENT,
            resolved_at__isnull=True,
        ).values_list("vendor_ref", flat=True)
    )
    for pid in ids:
        n = entries.get(pid, 0)
        if pid in world.broken_ids:  # in a file the simulator broke: never to be posted
            if n:
                raise SimulationFailure(
                    ONCE, f"{kind} movement {pid} came in a broken file and was posted"
                )
            continue
        if n > 1:
            raise SimulationFailure(ONCE, f"{kind} movement {pid} is {n} ledger entries")
        if n == 0 and pid not in held and pid not in unmatched and pid not in dismissed:
            raise SimulationFailure(
                ONCE,
                f"{kind} movement {pid} is neither recorded, held, dismissed by staff nor "
                "reported unmatched",
            )
        if n == 1 and (pid in held or pid in unmatched or pid in dismissed):
            raise SimulationFailure(
                APPLIED_AND_HELD,
                f"{kind} movement {pid} is posted and also held for staff (or dismissed)",
            )
    known = set(ids) | world.file_line_ids
    strays = [e for e in entries if e and e not in known]
    if strays:
        raise SimulationFailure(
            ONCE, f"ledger entries from {kind} that {kind} never reported: {strays[:5]}"
        )


def check_vendor_fees(world: World, kind: str, state: dict[str, Any]) -> None:
    integration = world.integrations[kind]
    at_vendor = {f["fee_ref"]: f for f in state["fees"] if not f.get("foreign")}
    acknowledged = dict(
        SyncedFee.objects.filter(integration=integration).values_list(
            "fee__reference", "acknowledged_version"
        )
    )
    # Before the settlement's last round staff answered every held movement and every
    # refund made at the vendor, and applied every student's credit to their open fees
    # (runner._staff_decide_all), so the two sides may differ only where:
    # - a movement the ledger refused is still reported for staff (a waiver of more than is
    #   owed, made at the vendor on a figure FeeSync had already lowered; a dispute of a fee
    #   with nothing owed): no answer makes the two agree; counted as `awaiting_staff`;
    # - staff kept the fee owed after a refund at the vendor, which holds it settled (only
    #   the office can take the rest now), or staff dismissed a movement of the fee:
    #   counted as `decided_by_staff`.
    awaiting_staff = set(
        Discrepancy.objects.filter(
            integration=integration,
            kind=Discrepancy.Kind.UNMATCHED_PAYMENT,
            resolved_at__isnull=True,
        ).values_list("fee_ref", flat=True)
    )
    in_scope = set()
    for fee in Scope.of(integration).fees().order_by("pk"):
        in_scope.add(fee.reference)
        if fee.reference in world.broken_refs:
            continue  # the financials side counts a payment FeeSync rightly refused
        held = at_vendor.get(fee.reference)
        if held is None:
            raise SimulationFailure(AT_VENDOR, f"{fee.reference} is not at {kind}")
        if acknowledged.get(fee.reference) != fee.version:
            raise SimulationFailure(
                AT_VENDOR,
                f"{fee.reference} is at version {fee.version}; {kind} acknowledged "
                f"{acknowledged.get(fee.reference)}",
            )
        ours = (fee.amount, fee.balance, fee.status == "open")
        theirs = (Decimal(held["amount"]), Decimal(held["amount_due"]), bool(held["active"]))
        if kind in FILE_KINDS:  # a charge load line has no "active": amounts only
            ours, theirs = ours[:2] + (True,), theirs[:2] + (True,)
        if ours == theirs:
            continue
        if fee.reference in awaiting_staff:
            world.awaiting_staff.add(fee.reference)
        elif (fee.reference in world.kept_owed and ours[1] > theirs[1]) or (
            fee.reference in world.dismissed_refs
        ):
            world.decided_by_staff.add(fee.reference)
        else:
            raise SimulationFailure(
                AGREE,
                f"{fee.reference}: FeeSync has amount/due/open {ours}, {kind} has {theirs}",
            )
    strays = sorted(set(at_vendor) - in_scope)
    if strays:
        raise SimulationFailure(OUT_OF_SCOPE, f"{kind} holds {strays[:5]}")
    if "disputed" in state:  # the file exchange: disputes and restores agree too
        # A dispute FeeSync refused (nothing owed on the fee) is a finding for staff.
        aside = world.broken_refs | awaiting_staff
        theirs_disputed = set(state["disputed"]) - aside
        ours_disputed = (
            set(
                Fee.objects.filter(disputed=True, reference__in=in_scope).values_list(
                    "reference", flat=True
                )
            )
            - aside
        )
        if theirs_disputed != ours_disputed:
            raise SimulationFailure(
                AGREE,
                f"disputed at {kind}: {sorted(theirs_disputed)}, in FeeSync: "
                f"{sorted(ours_disputed)}",
            )


def check_delivered(world: World) -> None:
    """Once the outbox has drained after the faults, and before any validation repairs
    anything: every fee in an API vendor's scope is acknowledged at its latest version. The
    transactional outbox alone must get there (a change lost while a delivery was in flight
    would be put right by the nightly validation, and so be hidden from the checks after
    it)."""
    for kind, integration in world.integrations.items():
        if kind in FILE_KINDS:
            continue
        acknowledged = dict(
            SyncedFee.objects.filter(integration=integration).values_list(
                "fee_id", "acknowledged_version"
            )
        )
        for pk, ref, version in (
            Scope.of(integration).fees().values_list("pk", "reference", "version")
        ):
            if acknowledged.get(pk) != version:
                raise SimulationFailure(
                    AT_VENDOR,
                    f"{ref} is at version {version}; once the outbox drained {kind} had "
                    f"acknowledged {acknowledged.get(pk)} (before validation)",
                )


def check_decided(world: World) -> None:
    """Staff answered every held movement and every refund made at a vendor in the
    settlement: none is left open (an answer the ledger refused was followed by one it
    cannot refuse)."""
    integrations = list(world.integrations.values())
    held = list(
        HeldMovement.objects.filter(
            integration__in=integrations, status=HeldMovement.Status.OPEN
        ).values_list("vendor_ref", flat=True)[:5]
    )
    refunds = list(
        Discrepancy.objects.filter(
            integration__in=integrations,
            kind=Discrepancy.Kind.REFUNDED_AT_VENDOR,
            resolved_at__isnull=True,
        ).values_list("vendor_ref", flat=True)[:5]
    )
    if held or refunds:
        raise SimulationFailure(
            DECIDED, f"still open: held movements {held}, refunds at the vendor {refunds}"
        )


def check_settled(world: World) -> None:
    """The strong invariants, once faults are off and every queue is drained."""
    check_step(world)
    left = OutboxItem.objects.values("state").annotate(n=Count("pk"))
    if left:
        raise SimulationFailure(NOTHING_PARKED, f"outbox: {list(left)}")
    check_decided(world)
    for kind, box in world.sandboxes.items():
        state = box.state()
        check_vendor_movements(world, kind, state)
        check_vendor_fees(world, kind, state)
