"""The contract every payment-vendor adapter fulfils.

The sync engine talks to vendors only through `VendorAdapter`; it never names a vendor.
A new kind is one package beside this module (`kinds/<kind>/__init__.py` exposing
`Adapter`) plus one line in `apps.vendors.registry.KIND_PACKAGES`; see
docs/writing-an-integration.md.

Rules for every adapter:

* Every network call has an explicit timeout (`AdapterConfig.timeout`, seconds).
* Every failure leaves the adapter as a `VendorError`, whose message is plain words a fees
  clerk can read ("The vendor's server did not answer within 10 seconds.") and whose
  `permanent` flag says whether trying again can help (a refused credential: permanent;
  a timeout, a 5xx, a 429: not permanent).
* Money is `Decimal` with two places, in and out; never float.
* Adapters are stateless between calls apart from connection reuse; cursors are returned
  to the engine, which stores them.
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import IO, Any, ClassVar

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from apps.fees.money import MoneyField
from apps.fees.movements import MovementKind


class Capability(StrEnum):
    """What a kind can do. The tasks an integration offers, and the dashboard, follow these."""

    SEND = "send"  # push fees (send-fees, instant delivery)
    PULL = "pull"  # pull payments (get-payments, fee page, parent login)
    VALIDATE = "validate"  # list the vendor's fees (nightly validation)
    BALANCES = "balances"  # whole vendor-account balance per student (display, lockout)
    LUNCH = "lunch"  # lunch balances
    DEMOGRAPHICS = "demographics"  # nightly student file over FTP/FTPS/SFTP
    FILE_EXPORT = "file_export"  # fees out as files
    FILE_IMPORT = "file_import"  # payments back as files


class VendorError(Exception):
    """A failure at the vendor boundary.

    `message` is shown to staff as is. `permanent=True` means retrying the same request
    cannot succeed (bad credentials, a request the vendor rejects); `False` means it may
    (timeouts, connection refused, 5xx, 429). `retry_after` is the vendor's own hint, in
    seconds, when it gave one.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class AdapterConfig:
    """What an integration tells its adapter. `credentials` is already decrypted."""

    base_url: str
    credentials: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    #: The integration's stored options (the kind's declared non-secret settings), merged
    #: over the declared initial values.
    options: dict[str, Any] = field(default_factory=dict)
    #: When a person is waiting (a page), the `time.monotonic()` by which every call of this
    #: adapter must have ended, its own retries and their pauses included; None otherwise.
    #: An adapter that retries stops retrying by then (`seconds_left`).
    deadline: float | None = None

    def seconds_left(self, budget: float) -> float:
        """`budget` seconds (an adapter's own retry budget), cut to what is left before
        `deadline`; never below zero."""
        if self.deadline is None:
            return budget
        return max(0.0, min(budget, self.deadline - time.monotonic()))


@dataclass(frozen=True)
class Setting:
    """One setting a kind declares for its setup page (pretix's `settings_form_fields`).

    `field` is a Django form field with its label and help text (copied for each form).
    `secret=True`: stored encrypted with the credentials, never shown back in full.
    `step`: the setup step that shows it, "connection" or "parent" (parent portal options).
    `optional`: a secret the setup page does not insist on."""

    field: forms.Field
    secret: bool = False
    step: str = "connection"
    #: A secret the kind can do without (one of two ways to sign in, or a transport that
    #: needs none): the setup page does not insist on it.
    optional: bool = False
    #: False for an option that changes only what FeeSync writes (a file's columns), not
    #: how it reaches the vendor: changing it keeps the Test Pull / Test Push results.
    retest: bool = True

    def form_field(self) -> forms.Field:
        return copy.deepcopy(self.field)


@dataclass(frozen=True)
class FeeRecord:
    """A fee as FeeSync sends it. The vendor upserts by `fee_ref`; a `version` lower than or
    equal to the one it holds changes nothing there (so redelivery is harmless)."""

    fee_ref: str
    version: int
    student_id: str  # the district's student number
    student_name: str
    school_code: str
    category_code: str
    merchant_id: str
    description: str
    amount: Decimal
    amount_due: Decimal
    fee_date: date
    due_date: date | None
    active: bool  # False once paid, waived, voided or closed: the vendor stops collecting


@dataclass(frozen=True)
class VendorFee:
    """A fee as the vendor holds it (for validation)."""

    fee_ref: str
    student_id: str
    amount: Decimal
    amount_due: Decimal
    version: int
    active: bool
    foreign: bool = False  # True: the vendor has it but FeeSync never sent it


def movement_kind(word: str) -> MovementKind | str:
    """The vendor's word for a movement as a `MovementKind` (case-insensitive), or the
    word itself when it is none of them."""
    try:
        return MovementKind(word.strip().lower())
    except ValueError:
        return word


@dataclass(frozen=True)
class VendorPayment:
    """A money movement at the vendor. `kind` is a `MovementKind` (payment, waiver, refund,
    void, dispute, restore), or, for something the vendor said that is none of those, the
    vendor's own word as a string (`movement_kind`): the engine then refuses it in words
    instead of guessing.

    For a refund or void, `refers_to` is the `payment_id` it gives back. `closed=True` on a
    payment means the vendor considers the fee settled even if `amount` is lower than
    what was due (free or reduced price handled at the vendor)."""

    payment_id: str
    fee_ref: str
    student_id: str
    amount: Decimal
    kind: MovementKind | str
    closed: bool = False
    occurred_at: datetime | None = None
    refers_to: str | None = None
    #: How the money was taken there, a `LedgerEntry.Method` value ("cash", "check",
    #: "card", "online"); "" for a vendor's own online payment.
    method: str = ""
    #: The vendor's own words about it (a waiver's reason), kept on the ledger entry.
    note: str = ""


@dataclass(frozen=True)
class RefusedMovement:
    """A reported movement FeeSync did not record, and why in a clerk's words (told back to
    the adapter with `movements_refused`, e.g. for a file exchange's rejects file)."""

    payment: VendorPayment
    reason: str
    held: bool = False  # True: kept for staff to decide; False: refused outright


@dataclass(frozen=True)
class PushResult:
    """`acknowledged`: fee_ref -> version the vendor now holds. `rejected`: fee_ref -> the
    vendor's reason, for fees it refused (permanent for that version)."""

    acknowledged: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PaymentPage:
    """One page of payments. `cursor` is where the next call resumes (store it);
    `has_more` says whether to call again straight away."""

    payments: list[VendorPayment]
    cursor: str | None
    has_more: bool


@dataclass(frozen=True)
class FeePage:
    fees: list[VendorFee]
    cursor: str | None
    has_more: bool


@dataclass(frozen=True)
class CheckResult:
    """The outcome of Test Pull or Test Push, shown to staff as is."""

    ok: bool
    tried: str  # what was attempted, in plain words
    answer: str  # the vendor's answer, in plain words
    elapsed_ms: int


@dataclass(frozen=True)
class ExportedFile:
    """A fee file written: its final name, its control totals, and its archive copy."""

    name: str
    rows: int
    total: Decimal
    bytes: int
    archived: str = ""


@dataclass(frozen=True)
class InboundPoll:
    ready: list[str]
    cursor: str


@dataclass
class InboundLine:
    """One line of a payment file: its number in the file (the header is line 1), its text,
    and either the movement it says or why it cannot be read."""

    number: int
    text: str
    payment: VendorPayment | None = None
    error: str = ""


class UnreadableFile(VendorError):
    """A file that cannot be read as a whole (wrong columns, bad encoding, truncated):
    nothing of it is applied; it goes to quarantine."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


@dataclass(frozen=True)
class StudentBalance:
    student_id: str
    balance: Decimal  # everything owed at the vendor, including fees only the vendor has


class VendorAdapter(ABC):
    """Base class of every integration kind's adapter; its attributes are the kind's
    declaration, read by the registry, the setup page, the tasks and the portal.

    Subclasses set:

    * `kind`: the registry key and the value stored in `Integration.vendor_kind`
      ("payschools"); `name`: what staff and parents read ("PaySchools");
    * `description`: one or two sentences for the "Add an integration" page;
    * `capabilities`: the `Capability` values it supports; the tasks follow them;
    * `settings`: `Setting`s by name: credentials (secret) and options, each with its
      label and help text; the setup page builds its forms from them, and the values
      reach the adapter as `config.credentials` (secret ones) and `config.options`;
    * `sandbox_module`: the dotted path of its sandbox (`manage.py sandbox KIND`), if any;
    * `service_url_help`: what the service URL is for this kind (the setup page says it);
    * `contract`: where its wire contract is described, relative to the repository.

    and implement `test_pull`, `test_push` and the methods of its capabilities.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    settings: ClassVar[dict[str, Setting]] = {}
    sandbox_module: ClassVar[str] = ""
    contract: ClassVar[str] = ""
    #: What the service URL is for this kind, for the setup page's help text.
    service_url_help: ClassVar[str] = ""
    #: Largest number of fees `push_fees` accepts in one call.
    push_batch_size: ClassVar[int] = 200
    #: Vendors that require both tests to pass before an import-after date may be set.
    requires_tests_before_import_date: ClassVar[bool] = False
    #: A section of the kind's own on the integration's dashboard (a template included there
    #: with `dashboard_context`'s keys), for what only this kind knows; "" for none.
    dashboard_template: ClassVar[str] = ""

    #: ("file_export") The options `file_preview` depends on: the setup page sends their
    #: unsaved values to redraw the preview of the file while staff change them.
    file_preview_options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def clean_options(cls, options: dict[str, Any]) -> dict[str, str]:
        """Rules across the kind's options, checked after each field's own: gets every
        option as it would be stored (cleaned values, the stored ones for options not being
        changed); returns {setting name: what is wrong, in words}, empty when all is well.
        Never raises."""
        return {}

    @classmethod
    def dashboard_context(cls, integration: Any) -> dict[str, Any]:
        """What `dashboard_template` shows for this integration (a read; never calls out)."""
        return {}

    def __init__(self, config: AdapterConfig) -> None:
        self.config = config

    # --- the declaration, for the registry's readers --------------------------------------
    @classmethod
    def settings_for(
        cls, *, step: str | None = None, secret: bool | None = None
    ) -> dict[str, Setting]:
        """The declared settings, optionally only one step's, or only (non-)secret ones."""
        return {
            name: s
            for name, s in cls.settings.items()
            if (step is None or s.step == step) and (secret is None or s.secret == secret)
        }

    @classmethod
    def credential_labels(cls) -> dict[str, str]:
        """Secret settings: name -> label (what the setup page asks for)."""
        return {name: str(s.field.label) for name, s in cls.settings_for(secret=True).items()}

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """Non-secret settings: name -> the declared initial value."""
        return {name: s.field.initial for name, s in cls.settings_for(secret=False).items()}

    @classmethod
    def can(cls, capability: Capability | str) -> bool:
        return capability in cls.capabilities

    # --- checks -----------------------------------------------------------------------
    @abstractmethod
    def test_pull(self) -> CheckResult:
        """Read something harmless from the vendor (e.g. one page of payments). Never
        raises: a failure is a `CheckResult(ok=False, ...)` whose `answer` says why."""

    @abstractmethod
    def test_push(self) -> CheckResult:
        """Call the vendor's write path with an operation that changes nothing there
        (a test/echo operation). Never raises."""

    # --- fees -------------------------------------------------------------------------
    def push_fees(self, fees: Sequence[FeeRecord]) -> PushResult:
        """("send") Upsert up to `push_batch_size` fees by `fee_ref` and `version`. Raises
        `VendorError` when the call as a whole fails (nothing may be assumed delivered)."""
        raise VendorError(f"{self.name} does not take fees.", permanent=True)

    def list_fees(self, *, cursor: str | None = None) -> FeePage:
        """("validate") One page of every fee the vendor holds for this district,
        including fees FeeSync never sent (`foreign=True`). Raises `VendorError`."""
        raise VendorError(f"{self.name} does not list its fees.", permanent=True)

    # --- payments ---------------------------------------------------------------------
    def pull_payments(
        self,
        *,
        cursor: str | None = None,
        student_ids: Sequence[str] | None = None,
        limit: int = 500,
    ) -> PaymentPage:
        """("pull") Payments, refunds, waivers and voids in the order the vendor recorded
        them, after `cursor` (None: from the beginning), optionally only for `student_ids`.
        The same payment may come back again on a later call: the engine records each
        `payment_id` once. Raises `VendorError`."""
        raise VendorError(f"{self.name} does not report payments.", permanent=True)

    def movements_refused(self, refused: Sequence[RefusedMovement]) -> None:
        """Told after each page of `pull_payments`: the movements FeeSync did not record
        (held for staff, or refused) and why. The default does nothing; a file exchange
        writes them to its rejects file. Must not raise for the vendor's trouble."""
        return None

    # --- files (FILE_EXPORT, FILE_IMPORT) ---------------------------------------------------
    def holdings(self) -> dict[str, Decimal] | None:
        """("file_export") {fee reference: amount} of what the other side holds from the
        exported files, for the nightly round trip; None (the default) where it cannot say,
        and then validation checks only that every change was exported once."""
        return None

    def export_fees(
        self, fees: Iterable[FeeRecord], *, sequence: int, when: datetime, allow_empty: bool
    ) -> ExportedFile | None:
        """("file_export") Write `fees` (one line each, streamed: never held whole) as one
        file under its final name only once complete, with its control totals and an archive
        copy. Returns None, writing nothing, when there are no fees and not `allow_empty`.
        Raises `VendorError`; then no file is left under the final name."""
        raise VendorError(f"{self.name} does not take fee files.", permanent=True)

    def file_preview(self, fees: Iterable[FeeRecord]) -> str:
        """("file_export") The first lines of a fee file as the current settings write
        them, as text, for the setup page. Never raises; "" when there is nothing to show."""
        return ""

    def inbound_poll(self, *, cursor: str | None) -> InboundPoll:
        """("file_import") The inbound files complete and ready to read, and the cursor to
        store for the next poll (what was seen, for a rule like "unchanged over two
        polls"). Raises `VendorError`."""
        raise VendorError(f"{self.name} does not send payment files.", permanent=True)

    def inbound_read(self, name: str, into: IO[bytes]) -> None:
        """Copy inbound file `name` into the local file `into`. Raises `VendorError`."""
        raise VendorError(f"{self.name} does not send payment files.", permanent=True)

    def inbound_lines(self, local: IO[bytes], *, check_only: bool = False) -> Iterator[InboundLine]:
        """The lines of a fetched inbound file, in order. Raises `UnreadableFile` (nothing
        of it may be applied) when the file as a whole cannot be read. `check_only`: read
        it through for that, yielding nothing (the first of the importer's two passes)."""
        raise VendorError(f"{self.name} does not send payment files.", permanent=True)

    def inbound_done(self, name: str, *, rejects: Sequence[InboundLine]) -> str:
        """The file was applied: write the lines that were not (with their reasons) to a
        rejects file, and move the file to the archive. Returns the rejects file's name
        ("" when none). Raises `VendorError`."""
        raise VendorError(f"{self.name} does not send payment files.", permanent=True)

    def inbound_quarantine(self, name: str, reason: str) -> str:
        """Move an unreadable file to quarantine; returns where it went."""
        raise VendorError(f"{self.name} does not send payment files.", permanent=True)

    # --- optional capabilities ----------------------------------------------------------
    def get_balances(self, student_ids: Sequence[str]) -> list[StudentBalance]:
        """("balances") The whole vendor account balance per student. Raises `VendorError`."""
        raise VendorError(f"{self.name} does not report account balances.", permanent=True)

    def get_lunch_balances(self, student_ids: Sequence[str]) -> dict[str, Decimal]:
        """("lunch") Lunch balance per student number. Raises `VendorError`."""
        raise VendorError(f"{self.name} does not report lunch balances.", permanent=True)

    # --- helpers for subclasses -----------------------------------------------------------
    @staticmethod
    def _elapsed_ms(started: float) -> int:
        return int((time.monotonic() - started) * 1000)


# --- settings shared by every kind that has a capability ------------------------------------
# A kind includes these in its `settings` (e.g. `{**CREDENTIALS, **LUNCH_SETTINGS}`): the
# portal and the tasks read them by these names, whatever the kind.

URL_HELP = "The full web address, starting with https:// (http:// only for a test server)."


class WebAddressField(forms.CharField):
    """A URL that must say its scheme: a setup screen never guesses "http://"."""

    default_error_messages = {
        "invalid": "“%(value)s” is not a web address: it must start with https:// "
        "(or http:// for a test server).",
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 300)
        super().__init__(**kwargs)
        self.widget = forms.URLInput(attrs={"inputmode": "url", "spellcheck": "false"})

    def validate(self, value: str) -> None:
        super().validate(value)
        if value:
            try:
                URLValidator(schemes=["http", "https"])(value)
            except ValidationError:
                raise ValidationError(
                    self.error_messages["invalid"], code="invalid", params={"value": value}
                ) from None


def secret_text(label: str, *, help_text: str = "") -> Setting:
    """A credential: a write-only text box, stored encrypted."""
    return Setting(
        forms.CharField(label=label, required=False, max_length=500, help_text=help_text),
        secret=True,
    )


LUNCH_SETTINGS: dict[str, Setting] = {
    "lunch_payment_url": Setting(
        WebAddressField(
            label="Lunch payment URL",
            required=False,
            initial="",
            help_text="Where parents add lunch money (a link shown with the lunch balance). "
            + URL_HELP,
        ),
        step="parent",
    ),
    "lunch_balance_threshold": Setting(
        # The ledger's one money parser: "5,00" is refused, never read as $500.00.
        MoneyField(
            label="Lunch balance threshold",
            allow_zero=True,
            initial=Decimal("5.00"),
            help_text="A lunch balance under this amount is shown in red, in dollars (e.g. 5.00).",
        ),
        step="parent",
    ),
    "show_lunch_balance": Setting(
        forms.BooleanField(
            label="Show lunch balance",
            required=False,
            initial=False,
            help_text="Show each child's lunch balance on the parents' Fees page.",
        ),
        step="parent",
    ),
    "sync_lunch_balance": Setting(
        forms.BooleanField(
            label="Sync lunch balance",
            required=False,
            initial=False,
            help_text="Fetch lunch balances from the vendor every night (needed to show them).",
        ),
        step="parent",
    ),
}

BALANCE_SETTINGS: dict[str, Setting] = {
    "show_vendor_balance": Setting(
        forms.BooleanField(
            label="Show vendor balance",
            required=False,
            initial=False,
            help_text="Show parents their whole account balance at the vendor.",
        ),
        step="parent",
    ),
    "lock_portal_on_balance": Setting(
        forms.BooleanField(
            label="Lock the portal while a balance is owed",
            required=False,
            initial=False,
            help_text="Count the family's balance at the vendor in the district's portal "
            "lockout (Parent portal → Portal lockout) as if it was a district fee.",
        ),
        step="parent",
    ),
    "balance_message": Setting(
        forms.CharField(
            label="Balance message",
            required=False,
            initial="",
            widget=forms.Textarea(attrs={"rows": 4}),
            help_text="Shown to parents next to their vendor balance, e.g. how to pay it.",
        ),
        step="parent",
    ),
}
