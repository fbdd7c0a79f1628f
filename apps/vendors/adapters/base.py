"""The contract every payment-vendor adapter fulfils.

The sync engine talks to vendors only through `VendorAdapter`; it never names a vendor.
A new vendor is one module in this package plus one entry in `apps.vendors.adapters.REGISTRY`.

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

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar


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
    options: dict[str, Any] = field(default_factory=dict)


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


@dataclass(frozen=True)
class VendorPayment:
    """A money movement at the vendor. `kind` is payment, refund, waiver or void.

    For a refund or void, `refers_to` is the `payment_id` it gives back. `closed=True` on a
    payment means the vendor considers the fee settled even if `amount` is lower than
    what was due (free or reduced price handled at the vendor)."""

    payment_id: str
    fee_ref: str
    student_id: str
    amount: Decimal
    kind: str
    closed: bool = False
    occurred_at: datetime | None = None
    refers_to: str | None = None


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
class StudentBalance:
    student_id: str
    balance: Decimal  # everything owed at the vendor, including fees only the vendor has


class VendorAdapter(ABC):
    """Base class of every vendor adapter.

    Subclasses set `kind` (the registry key, e.g. "payschools"), `name` (what staff read,
    e.g. "PaySchools") and `capabilities` (a subset of {"balances", "lunch",
    "demographics"}), and implement the methods below.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: Largest number of fees `push_fees` accepts in one call.
    push_batch_size: ClassVar[int] = 200
    #: Vendors that require both tests to pass before an import-after date may be set.
    requires_tests_before_import_date: ClassVar[bool] = False
    #: Credential fields this vendor needs: name -> label (for the setup form).
    credential_fields: ClassVar[dict[str, str]] = {}

    def __init__(self, config: AdapterConfig) -> None:
        self.config = config

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
    @abstractmethod
    def push_fees(self, fees: Sequence[FeeRecord]) -> PushResult:
        """Upsert up to `push_batch_size` fees by `fee_ref` and `version`. Raises
        `VendorError` when the call as a whole fails (nothing may be assumed delivered)."""

    @abstractmethod
    def list_fees(self, *, cursor: str | None = None) -> FeePage:
        """One page of every fee the vendor holds for this district (for validation),
        including fees FeeSync never sent (`foreign=True`). Raises `VendorError`."""

    # --- payments ---------------------------------------------------------------------
    @abstractmethod
    def pull_payments(
        self,
        *,
        cursor: str | None = None,
        student_ids: Sequence[str] | None = None,
        limit: int = 500,
    ) -> PaymentPage:
        """Payments, refunds, waivers and voids in the order the vendor recorded them,
        after `cursor` (None: from the beginning), optionally only for `student_ids`.
        The same payment may come back again on a later call: the engine records each
        `payment_id` once. Raises `VendorError`."""

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
