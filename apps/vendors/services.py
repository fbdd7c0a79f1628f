"""Writes about integrations: settings, credentials, test connections, enabling, findings.

The tasks themselves (what they are and how a run is recorded) are in `apps.vendors.jobs`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from apps.categories.models import FeeCategory
from apps.fees.money import MoneyError, parse_money
from apps.fees.services import LedgerError, date_in_window

from . import engine
from .errors import CredentialsUnreadable, IntegrationError
from .jobs import TASKS, prerequisite_missing, tasks_for
from .kinds.base import (
    BALANCE_SETTINGS,
    LUNCH_SETTINGS,
    Capability,
    CheckResult,
    Setting,
    VendorError,
    VendorFee,
)
from .models import Discrepancy, Integration, option_json
from .registry import get_adapter_class, kinds
from .tasks import run_integration_task

if TYPE_CHECKING:
    from django_celery_beat.models import PeriodicTask

# --- settings ---------------------------------------------------------------------------------


def _readable_credentials(integration: Integration) -> dict[str, str]:
    """The stored credentials to merge what was typed into. When this server has lost the
    key they were encrypted with, there is nothing to keep: entering them again (all the
    required ones, which the usual checks ask for) is how staff recover."""
    try:
        return integration.credentials
    except CredentialsUnreadable:
        return {}


@transaction.atomic
def integration_set_credentials(*, integration: Integration, values: dict[str, str]) -> None:
    """Replace the secrets that were typed again; keep the others (secrets are write-only)."""
    current = _readable_credentials(integration)
    for key, value in values.items():
        if value:
            current[key] = value
    integration.credentials = current
    integration.save(update_fields=["credentials_encrypted", "updated_at"])


@transaction.atomic
def integration_set_import_after(
    *, integration: Integration, import_after: date | None
) -> Integration:
    """Set the date from which fees sync. Vendors that ask for it (Community Pass) need both
    Test Pull and Test Push to have passed first; enforced here, not only in a form."""
    adapter_cls = get_adapter_class(integration.vendor_kind)
    if import_after is not None:
        try:
            date_in_window(import_after, label="The import-after date")
        except LedgerError as exc:
            raise IntegrationError(exc.message) from None
    if (
        import_after is not None
        and adapter_cls.requires_tests_before_import_date
        and not (integration.test_pull_ok and integration.test_push_ok)
    ):
        raise IntegrationError(
            f"{integration.vendor_name} requires both Test Pull and Test Push to pass before "
            "the import-after date can be set. Run the tests first."
        )
    integration.import_after = import_after
    integration.save(update_fields=["import_after", "updated_at"])
    _send_newly_in_scope(integration)
    return integration


def _send_newly_in_scope(integration: Integration) -> None:
    """The scope of an enabled integration changed: send the fees that came into it (the
    send-fees task sends only what the vendor does not hold yet), after commit."""
    if not integration.enabled:
        return
    integration_id = integration.pk

    def send() -> None:
        from .tasks import run_integration_task

        run_integration_task.delay(integration_id, "send-fees", trigger="scope changed")

    transaction.on_commit(send)


#: The parent options every kind has (columns); a kind adds its declared "parent" settings.
PARENT_COLUMNS = ("button_url", "button_text", "parent_message")
#: Options of the lunch and balances capabilities: named here so that asking for one on a
#: kind without the capability is refused in words, not as an unknown name.
CAPABILITY_OPTIONS = {
    **{name: Capability.LUNCH for name in LUNCH_SETTINGS},
    **{name: Capability.BALANCES for name in BALANCE_SETTINGS},
}


def _clean_declared(setting: Setting, value: Any) -> Any:
    """A declared option's value through its own form field (the same rules as the page)."""
    field = setting.form_field()
    if isinstance(value, Decimal):
        value = str(value)
    return field.clean(value)


@transaction.atomic
def integration_update_parent_options(*, integration: Integration, **options: Any) -> Integration:
    """Store the parent-portal options, refusing what the vendor cannot back up: the
    columns every kind has, and the kind's declared "parent" settings (in `options`)."""
    kind = integration.kind
    declared = kind.settings_for(step="parent", secret=False)
    unknown = set(options) - set(PARENT_COLUMNS) - set(declared) - set(CAPABILITY_OPTIONS)
    if unknown:
        raise IntegrationError(f"Unknown parent options: {', '.join(sorted(unknown))}.")
    errors: dict[str, str] = {}
    for field in ("button_url", "lunch_payment_url"):
        value = (options.get(field, getattr(integration, field)) or "").strip()
        if value:
            try:
                URLValidator(schemes=["http", "https"])(value)
            except ValidationError:
                errors[field] = f"“{value}” is not a web address (it must start with https://)."
        if field in options:
            options[field] = value
    if "lunch_balance_threshold" in options:
        # The one money parser, as for every amount (0.00 is a threshold: nothing is low).
        try:
            options["lunch_balance_threshold"] = parse_money(
                options["lunch_balance_threshold"],
                label="The lunch balance threshold",
                allow_zero=True,
            )
        except MoneyError as exc:
            errors["lunch_balance_threshold"] = " ".join(exc.messages)
    merged = {f: options.get(f, getattr(integration, f)) for f in CAPABILITY_OPTIONS}
    if (merged["show_lunch_balance"] or merged["sync_lunch_balance"]) and not kind.can(
        Capability.LUNCH
    ):
        errors["show_lunch_balance"] = f"{integration.vendor_name} does not report lunch balances."
    if (merged["show_vendor_balance"] or merged["lock_portal_on_balance"]) and not kind.can(
        Capability.BALANCES
    ):
        errors["show_vendor_balance"] = (
            f"{integration.vendor_name} does not report account balances."
        )
    if merged["show_lunch_balance"] and not merged["sync_lunch_balance"]:
        errors["sync_lunch_balance"] = (
            "Lunch balances can be shown only if they are synced from the vendor."
        )
    # A kind's own parent settings follow the rules of their declared form fields.
    for name, setting in declared.items():
        if name in options and name not in CAPABILITY_OPTIONS and name not in errors:
            try:
                options[name] = _clean_declared(setting, options[name])
            except ValidationError as exc:
                errors[name] = " ".join(exc.messages)
    if errors:
        raise IntegrationError(errors)
    for field in PARENT_COLUMNS:
        if field in options:
            setattr(integration, field, options[field])
    stored = {name: option_json(v) for name, v in options.items() if name in declared}
    integration.options = {**integration.options, **stored}
    integration.save()
    return integration


# --- one vendor per fee -------------------------------------------------------------------------


@dataclass(frozen=True)
class Overlap:
    """Another enabled integration that sends fees of some of the same categories."""

    other: Integration
    categories: list[str]  # names; ["every category"] when both send everything

    @property
    def message(self) -> str:
        return (
            f"{self.other.name} is enabled and already sends {_and_list(self.categories)}: "
            "a fee must go to one vendor only."
        )


def _and_list(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _sends_fees(integration: Integration) -> bool:
    kind = kinds().get(integration.vendor_kind)
    return bool(kind and {Capability.SEND, Capability.FILE_EXPORT} & set(kind.capabilities))


def category_overlaps(
    *, integration: Integration, categories: list[FeeCategory] | None = None
) -> list[Overlap]:
    """The other enabled integrations that send fees of the same categories as this one
    would with `categories` (its own when None; an empty list means every category). Two
    vendors holding the same fee would both show it to parents and could both take it."""
    if not _sends_fees(integration):
        return []
    mine = {c.pk: c for c in (integration.categories.all() if categories is None else categories)}
    others = (
        Integration.objects.filter(enabled=True)
        .exclude(pk=integration.pk)
        .prefetch_related("categories")
        .order_by("name")
    )
    found: list[Overlap] = []
    for other in others:
        if not _sends_fees(other):
            continue
        theirs = {c.pk: c for c in other.categories.all()}
        if not mine and not theirs:
            shared = ["every category"]
        elif not mine:
            shared = sorted(c.description for c in theirs.values())
        elif not theirs:
            shared = sorted(c.description for c in mine.values())
        else:
            shared = sorted(mine[pk].description for pk in mine.keys() & theirs.keys())
        if shared:
            found.append(Overlap(other, shared))
    return found


def categories_sent_elsewhere(*, integration: Integration) -> dict[int | None, list[str]]:
    """Category id -> the names of the other enabled integrations sending it (None: the
    ones sending every category), for the setup page to show before anything is saved."""
    taken: dict[int | None, list[str]] = {}
    others = (
        Integration.objects.filter(enabled=True)
        .exclude(pk=integration.pk)
        .prefetch_related("categories")
        .order_by("name")
    )
    for other in others:
        if not _sends_fees(other):
            continue
        pks: list[int | None] = [c.pk for c in other.categories.all()] or [None]
        for pk in pks:
            taken.setdefault(pk, []).append(other.name)
    return taken


def _refuse_overlaps(overlaps: list[Overlap], action: str) -> None:
    if overlaps:
        raise IntegrationError(
            {"categories": f"{action}: " + " ".join(o.message for o in overlaps)}
        )


@dataclass(frozen=True)
class ChecklistItem:
    label: str
    ok: bool
    required: bool
    detail: str = ""


def enable_checklist(*, integration: Integration) -> list[ChecklistItem]:
    """What must be true before an integration is enabled for the first time."""
    mapped = integration.account_mappings.count()
    categories = integration.categories.count()
    overlaps = [] if integration.enabled else category_overlaps(integration=integration)
    return [
        ChecklistItem(
            "Test Pull passed", bool(integration.test_pull_ok), True, integration.test_pull_detail
        ),
        ChecklistItem(
            "Test Push passed", bool(integration.test_push_ok), True, integration.test_push_detail
        ),
        ChecklistItem(
            "Merchant accounts mapped", mapped > 0, True, f"{mapped} merchant account(s) mapped."
        ),
        ChecklistItem(
            "Categories chosen",
            True,
            False,
            f"{categories} selected."
            if categories
            else "None selected: every category will be sent.",
        ),
        ChecklistItem(
            "No other vendor sends these categories",
            not overlaps,
            True,
            " ".join(o.message for o in overlaps)
            if overlaps
            else "No other enabled integration sends fees of these categories.",
        ),
        ChecklistItem(
            "Import-after date set",
            integration.import_after is not None,
            True,
            f"Fees dated on or after {integration.import_after:%B %-d, %Y} will be sent."
            if integration.import_after
            else "No date set: nothing will be sent.",
        ),
    ]


def vendor_unpaid_fees_that_would_duplicate(
    *, integration: Integration, limit: int = 200
) -> list[VendorFee]:
    """Unpaid fees already at the vendor that FeeSync did not send: the vendors advise
    purging them before enabling, or parents would see both. Raises VendorError."""
    # A person waits on the setup page for this: one short deadline for every page of it
    # (retries included), not the task's timeout per call.
    seconds = 5.0
    adapter = engine.adapter_for(integration, timeout=seconds)
    deadline = time.monotonic() + seconds
    found: list[VendorFee] = []
    cursor = None
    while len(found) < limit:
        if time.monotonic() > deadline:
            raise VendorError(
                f"{integration.vendor_name} did not list its fees within {seconds:g} seconds."
            )
        page = adapter.list_fees(cursor=cursor)
        found.extend(f for f in page.fees if f.foreign and f.amount_due > 0)
        cursor = page.cursor
        if not page.has_more:
            break
    return found[:limit]


@transaction.atomic
def integration_set_enabled(*, integration: Integration, enabled: bool) -> Integration:
    """Switch an integration on (after its checklist passes) or off. Switching on queues
    every in-scope fee the vendor does not hold yet (the backfill)."""
    if enabled and not integration.enabled:
        # Locked so that two integrations enabled at the same moment cannot both pass.
        Integration.objects.select_for_update().filter(enabled=True).exists()
        _refuse_overlaps(
            category_overlaps(integration=integration),
            f"{integration.name} cannot be enabled",
        )
        missing = [
            i.label for i in enable_checklist(integration=integration) if i.required and not i.ok
        ]
        if missing:
            raise IntegrationError(
                "Before enabling, complete the checklist: " + "; ".join(missing) + "."
            )
    fields = ["enabled", "updated_at"]
    if enabled and not integration.enabled:
        integration.enabled_at = timezone.now()
        fields.append("enabled_at")
    integration.enabled = enabled
    integration.save(update_fields=fields)
    if enabled:
        integration_id = integration.pk

        def backfill() -> None:
            run_integration_task.delay(integration_id, "send-fees", trigger="enabled")

        transaction.on_commit(backfill)
    return integration


@transaction.atomic
def discrepancy_resolve(*, discrepancy: Discrepancy, note: str, user: User) -> Discrepancy:
    note = (note or "").strip()
    if not note:
        raise IntegrationError("Say how it was resolved (a short note is kept with it).")
    if discrepancy.resolved_at is not None:
        raise IntegrationError("This discrepancy is already resolved.")
    discrepancy.resolved_at = timezone.now()
    discrepancy.resolved_by = user
    discrepancy.resolution_note = note
    discrepancy.save(update_fields=["resolved_at", "resolved_by", "resolution_note"])
    return discrepancy


def _check_detail(result: CheckResult) -> str:
    return f"{result.tried} — {result.answer} ({result.elapsed_ms} ms)"


def integration_test_connection(*, integration: Integration) -> tuple[CheckResult, CheckResult]:
    """Run Test Pull and Test Push and keep their results on the integration."""
    adapter = engine.adapter_for(integration)
    pull = adapter.test_pull()
    push = adapter.test_push()
    now = timezone.now()
    Integration.objects.filter(pk=integration.pk).update(
        test_pull_ok=pull.ok,
        test_pull_at=now,
        test_pull_detail=_check_detail(pull),
        test_push_ok=push.ok,
        test_push_at=now,
        test_push_detail=_check_detail(push),
    )
    integration.refresh_from_db()
    return pull, push


def integration_user_may_see_secrets(user: User | AnonymousUser) -> bool:
    return bool(user.has_perm("vendors.view_credentials"))


# --- setup screens ------------------------------------------------------------------------------
# Added with the staff setup screens (issue 5). Each setup change is one call here, and each
# saves through the model (never a bare UPDATE), so django-auditlog (registered in apps.py)
# records it with before and after; secrets only ever as masked ciphertext.

CONNECTION_FIELDS = (
    "service_url",
    "timeout_seconds",
    "transfer_protocol",
    "transfer_host",
    "transfer_port",
    "transfer_directory",
    "transfer_host_key",
)
#: Credentials of the demographics server, kept with the vendor's in the encrypted dict.
TRANSFER_CREDENTIAL_FIELDS = {"transfer_username": "Username", "transfer_password": "Password"}


@transaction.atomic
def integration_create(*, vendor_kind: str, name: str, slug: str, service_url: str) -> Integration:
    """A new, disabled integration with nothing in scope yet; its task schedules are
    created by the post_save receiver in apps.py."""
    try:
        get_adapter_class(vendor_kind)
    except LookupError:
        raise IntegrationError({"vendor_kind": "Choose one of the vendors listed."}) from None
    if Integration.objects.filter(slug=slug).exists():
        raise IntegrationError({"slug": f"Another integration is already called “{slug}”."})
    integration = Integration(
        vendor_kind=vendor_kind, name=name, slug=slug, service_url=service_url
    )
    integration.full_clean(exclude=["credentials_encrypted"])
    integration.save()
    return integration


def connection_options_clean(
    *, integration: Integration, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The kind's connection options as typed, each through its own form field, then the
    kind's rules across them (`VendorAdapter.clean_options`, with the stored value of any
    option not given): (cleaned options, {option: what is wrong}). Writes nothing; the
    setup page's save and its live file preview both use it."""
    declared = get_adapter_class(integration.vendor_kind).settings_for(
        step="connection", secret=False
    )
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in options.items():
        if key not in declared:
            errors[key] = f"There is no setting “{key}” here."
            continue
        try:
            cleaned[key] = _clean_declared(declared[key], value)
        except ValidationError as exc:
            errors[key] = " ".join(exc.messages)
    whole = {k: integration.option(k) for k in declared} | {
        k: option_json(v) for k, v in cleaned.items()
    }
    for key, problem in integration.kind.clean_options(whole).items():
        # A field's own error says more than a rule across fields built on its bad value.
        errors.setdefault(key, problem)
    return cleaned, errors


@transaction.atomic
def integration_update_connection(
    *,
    integration: Integration,
    credentials: dict[str, str],
    options: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Store where the vendor is, how long to wait for it, its credentials and the
    demographics server. Secrets are write-only: a blank value keeps the stored one.

    When the address or the vendor's credentials change, earlier Test Pull / Test Push
    results no longer say anything, so they are cleared; returns True in that case."""
    from .transfer import fingerprint

    unknown = set(fields) - set(CONNECTION_FIELDS)
    adapter_cls = get_adapter_class(integration.vendor_kind)
    allowed_keys = set(adapter_cls.credential_labels())
    if "demographics" in adapter_cls.capabilities:
        allowed_keys |= set(TRANSFER_CREDENTIAL_FIELDS)
    unknown |= set(credentials) - allowed_keys
    declared = adapter_cls.settings_for(step="connection", secret=False)
    options = dict(options or {})
    unknown |= set(options) - set(declared)
    if unknown:
        raise IntegrationError(f"Unknown connection settings: {', '.join(sorted(unknown))}.")

    current = _readable_credentials(integration)
    merged = dict(current)
    for key, value in credentials.items():
        if value:
            merged[key] = value
    merged_fields = {f: fields.get(f, getattr(integration, f)) for f in CONNECTION_FIELDS}

    errors: dict[str, str] = {}
    optional = {k for k, s in adapter_cls.settings_for(secret=True).items() if s.optional}
    for key, label in adapter_cls.credential_labels().items():
        if not merged.get(key) and key not in optional:
            errors[key] = f"Enter the {label.lower()}: {integration.vendor_name} needs it."
    protocol = merged_fields["transfer_protocol"] or ""
    if protocol:
        if not (merged_fields["transfer_host"] or "").strip():
            errors["transfer_host"] = "Enter the demographics server's host name."
        port = merged_fields["transfer_port"]
        if port is not None and not 1 <= int(port) <= 65535:
            errors["transfer_port"] = "A port is a number from 1 to 65535."
        if protocol == "sftp":
            key_line = (merged_fields["transfer_host_key"] or "").strip()
            if not key_line:
                errors["transfer_host_key"] = (
                    "SFTP needs the server's public host key (a line like 'ssh-ed25519 AAAA...'"
                    "): ask the vendor for it. FeeSync never trusts an unknown server."
                )
            else:
                try:
                    fingerprint(key_line)
                except ValueError:
                    errors["transfer_host_key"] = (
                        "This is not an OpenSSH public key line (expected something like "
                        "'ssh-ed25519 AAAA...')."
                    )
    options, option_errors = connection_options_clean(integration=integration, options=options)
    errors.update(option_errors)
    if errors:
        raise IntegrationError(errors)

    stored = {k: option_json(v) for k, v in options.items()}
    # A connection option changes how FeeSync talks to the vendor: tests must be redone
    # (not for one that only shapes what FeeSync writes, such as a file's columns).
    retest = (
        merged_fields["service_url"] != integration.service_url
        or any(merged.get(k) != current.get(k) for k in adapter_cls.credential_labels())
        or any(integration.option(k) != v for k, v in stored.items() if declared[k].retest)
    )
    integration.options = {**integration.options, **stored}
    for field, value in merged_fields.items():
        setattr(integration, field, value)
    integration.transfer_host_key = (integration.transfer_host_key or "").strip()
    integration.credentials = merged
    if retest:
        for check in ("pull", "push"):
            setattr(integration, f"test_{check}_ok", None)
            setattr(integration, f"test_{check}_at", None)
            setattr(integration, f"test_{check}_detail", "")
    integration.save()
    return retest


@transaction.atomic
def integration_set_account_mappings(
    *, integration: Integration, mappings: dict[int, str | None]
) -> dict[str, int]:
    """Which merchant accounts are used with this vendor, and the vendor's id for each.

    `mappings`: merchant account id -> the vendor's merchant id ("" means the account's own
    MID), or None for an account not used with this vendor. Accounts not named are left as
    they are. Rows are saved one by one so that each change is audited."""
    from .models import MerchantAccountMapping

    existing = {
        m.merchant_account_id: m
        for m in MerchantAccountMapping.objects.select_for_update().filter(integration=integration)
    }
    counts = {"added": 0, "changed": 0, "removed": 0}
    for account_id, vendor_id in mappings.items():
        row = existing.get(account_id)
        if vendor_id is None:
            if row is not None:
                row.delete()
                counts["removed"] += 1
            continue
        vendor_id = vendor_id.strip()
        if len(vendor_id) > 60:
            raise IntegrationError({f"mid_{account_id}": "A merchant ID is 60 characters at most."})
        if row is None:
            MerchantAccountMapping.objects.create(
                integration=integration,
                merchant_account_id=account_id,
                vendor_merchant_id=vendor_id,
            )
            counts["added"] += 1
        elif row.vendor_merchant_id != vendor_id:
            row.vendor_merchant_id = vendor_id
            row.save(update_fields=["vendor_merchant_id"])
            counts["changed"] += 1
    return counts


@transaction.atomic
def integration_set_categories(*, integration: Integration, categories: list[FeeCategory]) -> None:
    """The fee categories this integration sends; an empty list means every category,
    including ones added later. Audited through the m2m field (apps.py).

    While it is enabled, a change that would send a category another enabled integration
    already sends is refused (narrowing is always allowed, even out of an overlap made
    before this rule existed)."""
    with transaction.atomic():
        if integration.enabled:
            Integration.objects.select_for_update().filter(enabled=True).exists()
            before = {
                (o.other.pk, name)
                for o in category_overlaps(integration=integration)
                for name in o.categories
            }
            everything = {pk for pk, name in before if name == "every category"}
            new = [
                Overlap(o.other, [n for n in o.categories if (o.other.pk, n) not in before])
                for o in category_overlaps(integration=integration, categories=categories)
                if o.other.pk not in everything
            ]
            _refuse_overlaps([o for o in new if o.categories], "These categories cannot be saved")
        integration.categories.set(categories)
        # updated_at marks the change for what caches the integration's scope (the portal).
        integration.save(update_fields=["updated_at"])
        _send_newly_in_scope(integration)


def integration_run_check(*, integration: Integration, check: str) -> CheckResult:
    """Run Test Pull (`check="pull"`) or Test Push (`"push"`) and keep its result on the
    integration. Never raises for the vendor's trouble: the result says what happened."""
    if check not in ("pull", "push"):
        raise IntegrationError(f"Unknown check {check!r}.")
    try:
        adapter = engine.adapter_for(integration)
    except CredentialsUnreadable as exc:
        # Nothing was asked of the vendor: the check failed on this server, say why.
        tried = "Reading the stored credentials"
        result = CheckResult(ok=False, tried=tried, answer=exc.message, elapsed_ms=0)
    else:
        result = adapter.test_pull() if check == "pull" else adapter.test_push()
    values = {
        f"test_{check}_ok": result.ok,
        f"test_{check}_at": timezone.now(),
        f"test_{check}_detail": _check_detail(result),
    }
    Integration.objects.filter(pk=integration.pk).update(**values)
    for field, value in values.items():
        setattr(integration, field, value)
    return result


@transaction.atomic
def integration_task_set_schedule(*, integration: Integration, task: str, text: str) -> str:
    """Change when one task runs (its django-celery-beat row): minutes between runs for a
    task that runs every so often, district times of day for one that runs at set times
    (the file exchange's export at 08:00 and 20:00). Returns the schedule in words. Like
    on/off, a change made here survives deploys and is audited on the integration."""
    from auditlog.models import LogEntry as AuditEntry
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    from .display import schedule_text
    from .schedules import (
        district_timezone,
        parse_every,
        parse_times,
        schedule_form_value,
        schedule_name,
        schedules_sync,
    )

    spec = TASKS.get(task)
    if spec is None or spec not in tasks_for(integration):
        raise IntegrationError(f"{integration.vendor_name} has no task “{task}”.")
    name = schedule_name(integration, spec.label)
    if not PeriodicTask.objects.filter(name=name).exists():
        schedules_sync(integration=integration)
    periodic = PeriodicTask.objects.select_for_update().filter(name=name).first()
    kind, _value = schedule_form_value(periodic)
    if periodic is None or not kind:
        raise IntegrationError(
            f"“{spec.label}” has no schedule that can be changed here: change it under "
            "System → Periodic tasks."
        )
    before = schedule_text(periodic)
    try:
        if kind == "interval":
            every = parse_every(text)
            periodic.interval, _ = IntervalSchedule.objects.get_or_create(
                every=every, period=IntervalSchedule.MINUTES
            )
        else:
            minute, hours = parse_times(text)
            old = periodic.crontab
            periodic.crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=str(minute),
                hour=",".join(str(h) for h in hours),
                day_of_month=old.day_of_month if old else "*",
                month_of_year=old.month_of_year if old else "*",
                day_of_week=old.day_of_week if old else "*",
                timezone=district_timezone(),
            )
    except ValueError as exc:
        raise IntegrationError({"schedule": f"{spec.label}: {exc}"}) from None
    periodic.save()  # save(), not update(): beat notices changes through it
    after = schedule_text(periodic)
    if after != before:
        AuditEntry.objects.log_create(
            integration,
            action=AuditEntry.Action.UPDATE,
            changes={f"schedule of “{spec.label}”": [before, after]},
        )
    return after


@transaction.atomic
def integration_task_set_enabled(
    *, integration: Integration, task: str, enabled: bool
) -> PeriodicTask:
    """Switch one task's schedule on or off (its django-celery-beat row). A change staff
    make here survives deploys (schedules_sync never overwrites a row). Audited on the
    integration, since the beat row itself is not an audited model."""
    from auditlog.models import LogEntry as AuditEntry
    from django_celery_beat.models import PeriodicTask

    from .schedules import schedule_name, schedules_sync

    spec = TASKS.get(task)
    if spec is None or spec not in tasks_for(integration):
        raise IntegrationError(f"{integration.vendor_name} has no task “{task}”.")
    missing = prerequisite_missing(integration, task)
    if enabled and missing:
        raise IntegrationError(f"“{spec.label}” cannot be switched on. {missing}")
    name = schedule_name(integration, spec.label)
    if not PeriodicTask.objects.filter(name=name).exists():
        schedules_sync(integration=integration)
    periodic = PeriodicTask.objects.select_for_update().get(name=name)
    if periodic.enabled != enabled:
        words = {True: "on", False: "off"}
        before = periodic.enabled
        periodic.enabled = enabled
        periodic.save()  # save(), not update(): beat notices changes through it
        AuditEntry.objects.log_create(
            integration,
            action=AuditEntry.Action.UPDATE,
            changes={f"schedule of “{spec.label}”": [words[before], words[enabled]]},
        )
    return periodic


def discrepancy_resend(*, discrepancy: Discrepancy) -> int:
    """Send a discrepancy's fee to its integration again (through the outbox). Raises
    IntegrationError when there is nothing FeeSync may send."""
    from apps.fees.models import Fee

    fee_id = discrepancy.fee_id or (
        Fee.objects.filter(reference=discrepancy.fee_ref).values_list("pk", flat=True).first()
        if discrepancy.fee_ref
        else None
    )
    if fee_id is None:
        raise IntegrationError(
            "FeeSync has no fee to send for this finding (the fee exists only at the vendor)."
        )
    with transaction.atomic():
        queued = engine.outbox_enqueue(integration=discrepancy.integration, fee_ids=[fee_id])
    if not queued:
        raise IntegrationError(
            f"Fee {discrepancy.fee_ref or fee_id} is outside this integration's scope "
            "(its date or category), so it is not sent."
        )
    return queued
