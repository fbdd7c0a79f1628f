"""Infrastructure shared by every vendor sandbox (PaySchools, Community Pass).

A sandbox is a real HTTP server on loopback that speaks one vendor's contract, so adapters
and tests exercise real sockets, real serialisation and real failures. This module holds
everything that is not vendor-specific:

* `SandboxState` - the vendor's side of the world (fees, payments, lunch balances) in its
  own SQLite file, never FeeSync's database. Money is stored as two-decimal strings and
  computed with `Decimal`.
* `SandboxServer` - a threaded HTTP/1.1 server that routes `/_sandbox/...` to the JSON
  control API and everything else to a `VendorProtocol` (the vendor module), after
  applying the injected fault mode.
* `ControlAPI` - the JSON control API from DESIGN.md ("Vendor contracts and sandboxes").
* `SandboxControl` - a small client for that API, for tests, benchmarks and demos.

Nothing here imports Django: sandboxes run standalone under `manage.py sandbox`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

import requests

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

#: Fault modes accepted by `POST /_sandbox/faults`, with what each does to the vendor
#: endpoints. The control API itself is never affected.
FAULT_MODES: dict[str, str] = {
    "ok": "answer normally",
    "down": "every vendor endpoint (service description included) answers 503 with Retry-After",
    "drop": "every vendor endpoint closes the connection without answering",
    "throttle": "every vendor endpoint answers 429 Too Many Requests with Retry-After",
    "slow": "every vendor endpoint waits delay_ms before answering (and then does the work)",
    "error": "operations answer HTTP 500 with an HTML error page; the description is served",
    "no_wsdl": "the service description (WSDL / API document) answers 404; operations work",
    "malformed": "operations answer HTTP 200 with a truncated, unparseable body",
    "fault": "operations answer with a protocol-level error (a SOAP Fault, a JSON error)",
}

#: Options of `POST /_sandbox/faults` besides `mode`, valid with any mode.
FAULT_OPTIONS: dict[str, str] = {
    "delay_ms": "slow: how long to wait before answering (default 2000)",
    "retry_after": "down, throttle: the Retry-After header, in seconds (default 30)",
    "duplicate_payments": "every payment of a payments page is sent twice",
    "count": "only the next N vendor requests get the fault; then the mode is ok again",
    "every": "only every Nth vendor request gets the fault (N >= 2); the others are answered",
    "status": "fault: the HTTP status of the protocol-level error (400-599; vendor default)",
    "throttle_count": "shorthand for a 429 storm: mode throttle, count N, retry_after 1",
}


# --- money and small parsing helpers -----------------------------------------------------


def parse_money(value: object, *, what: str = "amount", allow_negative: bool = False) -> Decimal:
    """Parse an amount into a two-place `Decimal`. Rejects floats (they are not money),
    more than two decimal places, non-finite values and (unless allowed) negatives."""
    if isinstance(value, bool | float):
        raise ValueError(f'{what} must be a decimal string such as "12.50", not {value!r}')
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise ValueError(f"{what} {value!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError(f"{what} {value!r} is not a number")
    if amount != amount.quantize(CENT):
        raise ValueError(f"{what} {value} has more than two decimal places")
    if amount < 0 and not allow_negative:
        raise ValueError(f"{what} {value} is negative")
    return amount.quantize(CENT)


def money_str(amount: Decimal) -> str:
    """Two-decimal string, the only form money takes in state and on the wire."""
    return str(amount.quantize(CENT))


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeeInput:
    """A fee as a vendor receives it (already parsed from the wire)."""

    fee_ref: str
    version: int
    student_id: str
    student_name: str
    school_code: str
    category_code: str
    merchant_id: str
    description: str
    amount: Decimal
    amount_due: Decimal
    fee_date: str  # ISO date
    due_date: str | None
    active: bool


@dataclass(frozen=True)
class FeeProblem:
    """A fee in a batch that could not even be parsed; it is answered `rejected`."""

    fee_ref: str
    message: str


@dataclass(frozen=True)
class UpsertOutcome:
    """What the vendor did with one fee: `version` is the version it now holds (0: none)."""

    fee_ref: str
    version: int
    status: str  # accepted | stale | rejected
    message: str | None = None


@dataclass(frozen=True)
class PaymentRow:
    seq: int
    payment_id: str
    fee_ref: str
    student_id: str
    amount: Decimal
    kind: str  # payment | refund | waiver | void
    closed: bool
    occurred_at: str  # ISO UTC, "Z"
    refers_to: str | None
    hidden: bool = False


@dataclass(frozen=True)
class HeldFee:
    seq: int
    fee_ref: str
    version: int
    student_id: str
    student_name: str
    school_code: str
    category_code: str
    merchant_id: str
    description: str
    amount: Decimal
    amount_due: Decimal
    paid: Decimal
    fee_date: str | None
    due_date: str | None
    status: str  # open | paid | closed | waived | inactive
    active: bool
    foreign: bool


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):  # noqa: UP046 - the project still supports Python 3.11
    """One page of rows in sequence order. `last_seq` is the sequence of the last row (the
    resume point), None when the page is empty."""

    rows: list[T]
    last_seq: int | None
    has_more: bool


class ControlError(Exception):
    """A control-API request the sandbox refuses; becomes a JSON error with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class CursorError(ValueError):
    """A cursor the vendor cannot read."""


# --- the state store ------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fees (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    fee_ref TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    student_id TEXT NOT NULL,
    student_name TEXT NOT NULL DEFAULT '',
    school_code TEXT NOT NULL DEFAULT '',
    category_code TEXT NOT NULL DEFAULT '',
    merchant_id TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    amount TEXT NOT NULL,
    amount_due TEXT NOT NULL,
    paid TEXT NOT NULL DEFAULT '0.00',
    fee_date TEXT,
    due_date TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    closed INTEGER NOT NULL DEFAULT 0,
    waived INTEGER NOT NULL DEFAULT 0,
    foreign_fee INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    received_at REAL
);
CREATE TABLE IF NOT EXISTS payments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id TEXT NOT NULL UNIQUE,
    fee_ref TEXT NOT NULL,
    student_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    kind TEXT NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0,
    occurred_at TEXT NOT NULL,
    refers_to TEXT,
    hidden INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS payments_student_seq ON payments (student_id, seq);
CREATE INDEX IF NOT EXISTS payments_refers_to ON payments (refers_to);
CREATE TABLE IF NOT EXISTS lunch_balances (
    student_id TEXT PRIMARY KEY,
    balance TEXT NOT NULL
);
"""

_FEE_COLUMNS = (
    "seq, fee_ref, version, student_id, student_name, school_code, category_code, merchant_id,"
    " description, amount, amount_due, paid, fee_date, due_date, active, closed, waived,"
    " foreign_fee"
)
_PAYMENT_COLUMNS = (
    "seq, payment_id, fee_ref, student_id, amount, kind, closed, occurred_at, refers_to, hidden"
)


def fee_status(*, amount_due: Decimal, active: bool, closed: bool, waived: bool) -> str:
    """The vendor's status of a fee, in the order a vendor would report it."""
    if waived:
        return "waived"
    if closed:
        return "closed"
    if amount_due == 0:
        return "paid"
    if not active:
        return "inactive"
    return "open"


def _held_fee(row: sqlite3.Row) -> HeldFee:
    amount_due = Decimal(row["amount_due"])
    active, closed, waived = bool(row["active"]), bool(row["closed"]), bool(row["waived"])
    return HeldFee(
        seq=row["seq"],
        fee_ref=row["fee_ref"],
        version=row["version"],
        student_id=row["student_id"],
        student_name=row["student_name"],
        school_code=row["school_code"],
        category_code=row["category_code"],
        merchant_id=row["merchant_id"],
        description=row["description"],
        amount=Decimal(row["amount"]),
        amount_due=amount_due,
        paid=Decimal(row["paid"]),
        fee_date=row["fee_date"],
        due_date=row["due_date"],
        status=fee_status(amount_due=amount_due, active=active, closed=closed, waived=waived),
        active=active,
        foreign=bool(row["foreign_fee"]),
    )


def _payment_row(row: sqlite3.Row) -> PaymentRow:
    return PaymentRow(
        seq=row["seq"],
        payment_id=row["payment_id"],
        fee_ref=row["fee_ref"],
        student_id=row["student_id"],
        amount=Decimal(row["amount"]),
        kind=row["kind"],
        closed=bool(row["closed"]),
        occurred_at=row["occurred_at"],
        refers_to=row["refers_to"],
        hidden=bool(row["hidden"]),
    )


def fee_json(fee: HeldFee) -> dict[str, Any]:
    return {
        "fee_ref": fee.fee_ref,
        "version": fee.version,
        "student_id": fee.student_id,
        "student_name": fee.student_name,
        "school_code": fee.school_code,
        "category_code": fee.category_code,
        "merchant_id": fee.merchant_id,
        "description": fee.description,
        "amount": money_str(fee.amount),
        "amount_due": money_str(fee.amount_due),
        "paid": money_str(fee.paid),
        "fee_date": fee.fee_date,
        "due_date": fee.due_date,
        "status": fee.status,
        "active": fee.active,
        "foreign": fee.foreign,
    }


def payment_json(payment: PaymentRow) -> dict[str, Any]:
    return {
        "payment_id": payment.payment_id,
        "fee_ref": payment.fee_ref,
        "student_id": payment.student_id,
        "amount": money_str(payment.amount),
        "kind": payment.kind,
        "closed": payment.closed,
        "occurred_at": payment.occurred_at,
        "refers_to": payment.refers_to,
        "hidden": payment.hidden,
        "seq": payment.seq,
    }


class SandboxState:
    """The vendor's records, in their own SQLite file.

    One connection guarded by one lock: SQLite serialises writers anyway, and a single
    connection keeps every batch in exactly one transaction. Payment and fee sequences are
    AUTOINCREMENT and survive `reset()`, so cursors and payment ids handed out before a
    reset are never reused. `epoch` (random, per state file) is part of payment ids and
    cursors so that a fresh state file cannot collide with ids FeeSync already recorded.
    """

    def __init__(self, path: str | None = None, *, id_prefix: str = "SB") -> None:
        self._owns_file = path is None
        if path is None:
            # A throwaway state for tests; removed again by close().
            fd, path = tempfile.mkstemp(prefix=f"sandbox-{id_prefix.lower()}-", suffix=".sqlite3")
            os.close(fd)
        else:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.id_prefix = id_prefix
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # WAL + NORMAL: durable enough for a sandbox and an order of magnitude faster per
        # commit than the default rollback journal with FULL sync.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(fees)")}
        if "received_at" not in columns:  # a state file from before `received_at`
            self._db.execute("ALTER TABLE fees ADD COLUMN received_at REAL")
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
            if row is None:
                self.epoch = secrets.token_hex(3).upper()
                db.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", (self.epoch,))
            else:
                self.epoch = row["value"]

    # --- plumbing ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        if self._owns_file:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.remove(self.path + suffix)

    def reset(self) -> None:
        """Empty every table but keep the sequences and the epoch (see class docstring)."""
        with self._tx() as db:
            db.execute("DELETE FROM fees")
            db.execute("DELETE FROM payments")
            db.execute("DELETE FROM lunch_balances")

    # --- cursors -----------------------------------------------------------------------
    def encode_cursor(self, kind: str, seq: int) -> str:
        raw = f"{kind}:{self.epoch}:{seq}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode_cursor(self, kind: str, cursor: str | None) -> int:
        """Sequence after which to resume. A cursor issued by another state file (another
        epoch) means "from the beginning": that vendor state no longer exists, and
        payment ids of the new one cannot collide with the old ones."""
        if not cursor:
            return 0
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            got_kind, epoch, seq_text = base64.urlsafe_b64decode(padded).decode().split(":")
            seq = int(seq_text)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise CursorError(f"The cursor {cursor!r} is not one this service issued.") from None
        if got_kind != kind or seq < 0:
            raise CursorError(f"The cursor {cursor!r} does not belong to this list.")
        return seq if epoch == self.epoch else 0

    # --- vendor operations: fees --------------------------------------------------------
    @staticmethod
    def _validate(fee: FeeInput) -> str | None:
        if not fee.fee_ref:
            return "FeeRef is empty"
        if fee.version < 1:
            return f"Version must be 1 or more (got {fee.version})"
        if not fee.student_id:
            return "StudentId is empty"
        if fee.amount < 0 or fee.amount_due < 0:
            return "amounts may not be negative"
        if fee.amount_due > fee.amount:
            return f"AmountDue {fee.amount_due} is more than Amount {fee.amount}"
        return None

    def upsert_fees(self, fees: Sequence[FeeInput | FeeProblem]) -> list[UpsertOutcome]:
        """Upsert a batch by fee_ref and version, in one transaction.

        A version not higher than the one held changes nothing ("stale", the held version
        is returned). An update keeps what parents already paid at the vendor: amount_due
        becomes min(AmountDue sent, Amount - net paid here), and a fee the vendor closed or
        waived stays settled.
        """
        now = utc_now_iso()
        outcomes: list[UpsertOutcome] = []
        with self._tx() as db:
            received = time.time()  # epoch seconds, for latency measurements (`receipts`)
            for fee in fees:
                held = db.execute(
                    "SELECT version, paid, closed, waived FROM fees WHERE fee_ref = ?",
                    (fee.fee_ref,),
                ).fetchone()
                held_version = held["version"] if held else 0
                if isinstance(fee, FeeProblem):
                    outcomes.append(
                        UpsertOutcome(fee.fee_ref, held_version, "rejected", fee.message)
                    )
                    continue
                problem = self._validate(fee)
                if problem is not None:
                    outcomes.append(UpsertOutcome(fee.fee_ref, held_version, "rejected", problem))
                    continue
                if held is not None and fee.version <= held_version:
                    outcomes.append(UpsertOutcome(fee.fee_ref, held_version, "stale"))
                    continue
                values = (
                    fee.version,
                    fee.student_id,
                    fee.student_name,
                    fee.school_code,
                    fee.category_code,
                    fee.merchant_id,
                    fee.description,
                    money_str(fee.amount),
                    fee.fee_date,
                    fee.due_date,
                    int(fee.active),
                    now,
                )
                if held is None:
                    db.execute(
                        "INSERT INTO fees (version, student_id, student_name, school_code,"
                        " category_code, merchant_id, description, amount, fee_date, due_date,"
                        " active, updated_at, fee_ref, amount_due, received_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (*values, fee.fee_ref, money_str(fee.amount_due), received),
                    )
                else:
                    if held["closed"] or held["waived"]:
                        due = ZERO
                    else:
                        left = fee.amount - Decimal(held["paid"])
                        due = max(ZERO, min(fee.amount_due, left))
                    db.execute(
                        "UPDATE fees SET version = ?, student_id = ?, student_name = ?,"
                        " school_code = ?, category_code = ?, merchant_id = ?, description = ?,"
                        " amount = ?, fee_date = ?, due_date = ?, active = ?, updated_at = ?"
                        " , amount_due = ?, received_at = ? WHERE fee_ref = ?",
                        (*values, money_str(due), received, fee.fee_ref),
                    )
                outcomes.append(UpsertOutcome(fee.fee_ref, fee.version, "accepted"))
        return outcomes

    def mark_inactive(self, fee_ref: str, version: int) -> UpsertOutcome:
        with self._tx() as db:
            held = db.execute("SELECT version FROM fees WHERE fee_ref = ?", (fee_ref,)).fetchone()
            if held is None:
                return UpsertOutcome(fee_ref, 0, "rejected", f"No fee {fee_ref} is held here")
            if version <= held["version"]:
                return UpsertOutcome(fee_ref, held["version"], "stale")
            db.execute(
                "UPDATE fees SET active = 0, version = ?, updated_at = ? WHERE fee_ref = ?",
                (version, utc_now_iso(), fee_ref),
            )
            return UpsertOutcome(fee_ref, version, "accepted")

    def fees_page(self, after: int, limit: int) -> Page[HeldFee]:
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_FEE_COLUMNS} FROM fees WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608 - constant column list
                (after, limit + 1),
            ).fetchall()
        fees = [_held_fee(r) for r in rows[:limit]]
        return Page(fees, fees[-1].seq if fees else None, len(rows) > limit)

    def receipts(self) -> dict[str, float]:
        """fee_ref -> when (epoch seconds) the vendor last accepted an upsert of that fee,
        for every fee FeeSync sent (not foreign fees). For latency benchmarks: one read at
        the end instead of polling the state."""
        with self._read() as db:
            rows = db.execute(
                "SELECT fee_ref, received_at FROM fees WHERE received_at IS NOT NULL"
            ).fetchall()
        return {r["fee_ref"]: r["received_at"] for r in rows}

    def get_fee(self, fee_ref: str) -> HeldFee | None:
        with self._read() as db:
            row = db.execute(
                f"SELECT {_FEE_COLUMNS} FROM fees WHERE fee_ref = ?",  # noqa: S608 - constant column list
                (fee_ref,),
            ).fetchone()
        return _held_fee(row) if row else None

    # --- vendor operations: payments and balances ----------------------------------------
    def payments_page(
        self, after: int, limit: int, student_ids: Sequence[str] | None = None
    ) -> Page[PaymentRow]:
        """Visible payments after sequence `after`, in recorded order: an indexed range
        scan on the sequence (on (student_id, seq) when filtered)."""
        with self._read() as db:
            if student_ids is None:
                rows = db.execute(
                    f"SELECT {_PAYMENT_COLUMNS} FROM payments"  # noqa: S608 - constant column list
                    " WHERE seq > ? AND hidden = 0 ORDER BY seq LIMIT ?",
                    (after, limit + 1),
                ).fetchall()
            else:
                # json_each keeps the statement constant however many students are asked.
                rows = db.execute(
                    f"SELECT {_PAYMENT_COLUMNS} FROM payments"  # noqa: S608 - constant column list
                    " WHERE student_id IN (SELECT value FROM json_each(?))"
                    " AND seq > ? AND hidden = 0 ORDER BY seq LIMIT ?",
                    (json.dumps(list(student_ids)), after, limit + 1),
                ).fetchall()
        payments = [_payment_row(r) for r in rows[:limit]]
        return Page(payments, payments[-1].seq if payments else None, len(rows) > limit)

    def lunch_balances(self, student_ids: Sequence[str]) -> dict[str, Decimal]:
        with self._read() as db:
            rows = db.execute(
                "SELECT student_id, balance FROM lunch_balances"
                " WHERE student_id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(student_ids)),),
            ).fetchall()
        return {r["student_id"]: Decimal(r["balance"]) for r in rows}

    # --- control operations (parents and vendor staff) ------------------------------------
    def _fee_for_update(self, db: sqlite3.Connection, fee_ref: str) -> HeldFee:
        row = db.execute(
            f"SELECT {_FEE_COLUMNS} FROM fees WHERE fee_ref = ?",  # noqa: S608 - constant column list
            (fee_ref,),
        ).fetchone()
        if row is None:
            raise ControlError(f"No fee {fee_ref!r} is held at the vendor.", 404)
        return _held_fee(row)

    def _insert_payment(
        self,
        db: sqlite3.Connection,
        *,
        fee_ref: str,
        student_id: str,
        amount: Decimal,
        kind: str,
        closed: bool = False,
        refers_to: str | None = None,
        hidden: bool = False,
        occurred_at: str | None = None,
    ) -> PaymentRow:
        # Inserted with a placeholder id, then named after its sequence: the id is then
        # unique, ordered and readable without a second counter.
        cur = db.execute(
            "INSERT INTO payments (payment_id, fee_ref, student_id, amount, kind, closed,"
            " occurred_at, refers_to, hidden) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f"pending-{secrets.token_hex(8)}",
                fee_ref,
                student_id,
                money_str(amount),
                kind,
                int(closed),
                occurred_at or utc_now_iso(),
                refers_to,
                int(hidden),
            ),
        )
        seq = int(cur.lastrowid or 0)
        payment_id = f"{self.id_prefix}-{self.epoch}-{seq:08d}"
        db.execute("UPDATE payments SET payment_id = ? WHERE seq = ?", (payment_id, seq))
        row = db.execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE seq = ?",  # noqa: S608 - constant column list
            (seq,),
        ).fetchone()
        return _payment_row(row)

    def _set_fee_money(
        self,
        db: sqlite3.Connection,
        fee_ref: str,
        *,
        amount_due: Decimal,
        paid: Decimal,
        closed: bool | None = None,
        waived: bool | None = None,
    ) -> None:
        db.execute(
            "UPDATE fees SET amount_due = ?, paid = ?, closed = COALESCE(?, closed),"
            " waived = COALESCE(?, waived), updated_at = ? WHERE fee_ref = ?",
            (
                money_str(amount_due),
                money_str(paid),
                None if closed is None else int(closed),
                None if waived is None else int(waived),
                utc_now_iso(),
                fee_ref,
            ),
        )

    def _pay(self, db: sqlite3.Connection, spec: dict[str, Any]) -> dict[str, Any]:
        fee_ref = _required_str(spec, "fee_ref")
        amount = _money_field(spec, "amount")
        closed = _bool_field(spec, "closed")
        hidden = _bool_field(spec, "hidden")
        fee = self._fee_for_update(db, fee_ref)
        if fee.status in ("waived", "closed"):
            raise ControlError(f"Fee {fee_ref} is {fee.status} at the vendor; nothing is due.")
        if not fee.active:
            raise ControlError(f"Fee {fee_ref} is inactive; the vendor no longer collects it.")
        if amount <= 0:
            raise ControlError("amount must be more than 0.00")
        if amount > fee.amount_due:
            raise ControlError(
                f"amount {money_str(amount)} is more than the {money_str(fee.amount_due)}"
                f" still due on fee {fee_ref}"
            )
        payment = self._insert_payment(
            db,
            fee_ref=fee_ref,
            student_id=fee.student_id,
            amount=amount,
            kind="payment",
            closed=closed,
            hidden=hidden,
            occurred_at=_optional_str(spec, "occurred_at"),
        )
        due = ZERO if closed else fee.amount_due - amount
        self._set_fee_money(
            db, fee_ref, amount_due=due, paid=fee.paid + amount, closed=True if closed else None
        )
        return {
            "payment": payment_json(payment),
            "fee": fee_json(self._fee_for_update(db, fee_ref)),
        }

    def pay(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One or many parent payments, all in one transaction (all or nothing)."""
        with self._tx() as db:
            return [self._pay(db, spec) for spec in specs]

    def _given_back(self, db: sqlite3.Connection, payment_id: str) -> Decimal:
        rows = db.execute(
            "SELECT amount FROM payments WHERE refers_to = ? AND kind IN ('refund', 'void')",
            (payment_id,),
        ).fetchall()
        return sum((Decimal(r["amount"]) for r in rows), ZERO)

    def _original(self, db: sqlite3.Connection, payment_id: str) -> PaymentRow:
        row = db.execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE payment_id = ?",  # noqa: S608 - constant column list
            (payment_id,),
        ).fetchone()
        if row is None:
            raise ControlError(f"No payment {payment_id!r} is recorded at the vendor.", 404)
        original = _payment_row(row)
        if original.kind != "payment":
            raise ControlError(f"{payment_id} is a {original.kind}, not a payment.")
        return original

    def _give_back(
        self, db: sqlite3.Connection, original: PaymentRow, amount: Decimal, kind: str
    ) -> dict[str, Any]:
        record = self._insert_payment(
            db,
            fee_ref=original.fee_ref,
            student_id=original.student_id,
            amount=amount,
            kind=kind,
            refers_to=original.payment_id,
        )
        fee_row = db.execute("SELECT 1 FROM fees WHERE fee_ref = ?", (original.fee_ref,)).fetchone()
        fee_data = None
        if fee_row is not None:  # the fee may have been deleted at the vendor since
            fee = self._fee_for_update(db, original.fee_ref)
            paid = fee.paid - amount
            reopen = kind == "void" and original.closed
            if fee.status == "waived" or (fee.status == "closed" and not reopen):
                due = ZERO
            elif reopen:
                due = max(ZERO, fee.amount - paid)
            else:
                due = min(fee.amount, fee.amount_due + amount)
            self._set_fee_money(
                db, fee.fee_ref, amount_due=due, paid=paid, closed=False if reopen else None
            )
            fee_data = fee_json(self._fee_for_update(db, fee.fee_ref))
        return {"payment": payment_json(record), "fee": fee_data}

    def refund(self, payment_id: str, amount: Decimal) -> dict[str, Any]:
        with self._tx() as db:
            original = self._original(db, payment_id)
            left = original.amount - self._given_back(db, payment_id)
            if amount <= 0:
                raise ControlError("amount must be more than 0.00")
            if amount > left:
                raise ControlError(
                    f"amount {money_str(amount)} is more than the {money_str(left)}"
                    f" of payment {payment_id} not yet given back"
                )
            return self._give_back(db, original, amount, "refund")

    def void(self, payment_id: str) -> dict[str, Any]:
        with self._tx() as db:
            original = self._original(db, payment_id)
            if self._given_back(db, payment_id) > 0:
                raise ControlError(f"Payment {payment_id} was already refunded or voided.")
            return self._give_back(db, original, original.amount, "void")

    def waive(self, fee_ref: str, amount: Decimal | None = None) -> dict[str, Any]:
        with self._tx() as db:
            fee = self._fee_for_update(db, fee_ref)
            amount = fee.amount_due if amount is None else amount
            if fee.amount_due <= 0:
                raise ControlError(f"Nothing is due on fee {fee_ref}; there is nothing to waive.")
            if amount <= 0 or amount > fee.amount_due:
                raise ControlError(
                    f"amount must be between 0.01 and the {money_str(fee.amount_due)} due"
                )
            full = amount == fee.amount_due
            record = self._insert_payment(
                db,
                fee_ref=fee_ref,
                student_id=fee.student_id,
                amount=amount,
                kind="waiver",
                closed=full,
            )
            self._set_fee_money(
                db,
                fee_ref,
                amount_due=fee.amount_due - amount,
                paid=fee.paid,
                waived=True if full else None,
            )
            return {
                "payment": payment_json(record),
                "fee": fee_json(self._fee_for_update(db, fee_ref)),
            }

    def foreign_fee(
        self,
        student_id: str,
        amount: Decimal,
        *,
        fee_ref: str | None = None,
        description: str = "Fee entered at the vendor",
        student_name: str = "",
    ) -> dict[str, Any]:
        if amount <= 0:
            raise ControlError("amount must be more than 0.00")
        with self._tx() as db:
            if fee_ref is None:
                row = db.execute("SELECT value FROM meta WHERE key = 'foreign_seq'").fetchone()
                number = int(row["value"]) + 1 if row else 1
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('foreign_seq', ?)",
                    (str(number),),
                )
                fee_ref = f"{self.id_prefix}F-{self.epoch}-{number:06d}"
            elif db.execute("SELECT 1 FROM fees WHERE fee_ref = ?", (fee_ref,)).fetchone():
                raise ControlError(f"A fee {fee_ref!r} already exists.", 409)
            db.execute(
                "INSERT INTO fees (fee_ref, version, student_id, student_name, description,"
                " amount, amount_due, fee_date, foreign_fee, updated_at)"
                " VALUES (?, 1, ?, ?, ?, ?, ?, ?, 1, ?)",
                (
                    fee_ref,
                    student_id,
                    student_name,
                    description,
                    money_str(amount),
                    money_str(amount),
                    datetime.now(UTC).date().isoformat(),
                    utc_now_iso(),
                ),
            )
            return {"fee": fee_json(self._fee_for_update(db, fee_ref))}

    def set_lunch(self, student_id: str, balance: Decimal) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO lunch_balances (student_id, balance) VALUES (?, ?)"
                " ON CONFLICT (student_id) DO UPDATE SET balance = excluded.balance",
                (student_id, money_str(balance)),
            )

    def delete_fee(self, fee_ref: str) -> None:
        with self._tx() as db:
            if db.execute("DELETE FROM fees WHERE fee_ref = ?", (fee_ref,)).rowcount == 0:
                raise ControlError(f"No fee {fee_ref!r} is held at the vendor.", 404)

    def hide_payments(self, payment_ids: Sequence[str] | None, hidden: bool) -> int:
        with self._tx() as db:
            if payment_ids is None:
                cur = db.execute("UPDATE payments SET hidden = ?", (int(hidden),))
            else:
                cur = db.execute(
                    "UPDATE payments SET hidden = ?"
                    " WHERE payment_id IN (SELECT value FROM json_each(?))",
                    (int(hidden), json.dumps(list(payment_ids))),
                )
            return int(cur.rowcount)

    def snapshot(self, student_id: str | None = None) -> dict[str, Any]:
        """Everything, as the vendor sees it (optionally for one student)."""
        with self._read() as db:
            where, args = ("WHERE student_id = ?", (student_id,)) if student_id else ("", ())
            fees = db.execute(
                f"SELECT {_FEE_COLUMNS} FROM fees {where} ORDER BY seq",  # noqa: S608 - constant column list
                args,
            ).fetchall()
            payments = db.execute(
                f"SELECT {_PAYMENT_COLUMNS} FROM payments {where} ORDER BY seq",  # noqa: S608 - constant column list
                args,
            ).fetchall()
            balances = db.execute(
                f"SELECT student_id, balance FROM lunch_balances {where} ORDER BY student_id",  # noqa: S608 - constant
                args,
            ).fetchall()
        return {
            "fees": [fee_json(_held_fee(r)) for r in fees],
            "payments": [payment_json(_payment_row(r)) for r in payments],
            "balances": {r["student_id"]: r["balance"] for r in balances},
        }


# --- request / response and the vendor protocol hook ----------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    #: The fault the server applies to this request (set before the protocol sees it).
    faults: FaultConfig | None = None

    @property
    def host(self) -> str | None:
        return self.headers.get("host")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: object, status: int = 200) -> Response:
        body = json.dumps(data, default=_json_default, separators=(",", ":")).encode()
        return cls(status, body, "application/json")

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode())


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return money_str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class VendorProtocol(ABC):
    """What a vendor module supplies: its endpoints, and how its protocol breaks.

    The server applies the generic fault modes (down, drop, throttle, slow, error,
    no_wsdl) itself and asks the protocol only for the vendor-shaped ones.
    """

    #: The vendor's name as staff read it, e.g. "PaySchools".
    name: ClassVar[str] = ""
    server: SandboxServer

    def attach(self, server: SandboxServer) -> None:
        self.server = server

    @abstractmethod
    def is_description(self, request: Request) -> bool:
        """True for a request for the service description (WSDL, OpenAPI document)."""

    @abstractmethod
    def handle(self, request: Request) -> Response:
        """Answer a vendor request normally."""

    @abstractmethod
    def malformed_response(self, request: Request) -> Response:
        """A 200 answer whose body cannot be parsed (fault mode "malformed")."""

    @abstractmethod
    def protocol_fault_response(self, request: Request) -> Response:
        """A well-formed protocol-level error (fault mode "fault"), e.g. a SOAP Fault.
        `request.faults.status`, when not 0, is the HTTP status asked for."""

    def busy_response(self, request: Request, status: int, retry_after: int) -> Response:
        """The answer of fault modes "down" (503) and "throttle" (429). The server adds the
        Retry-After header. Plain text by default, as a proxy in front of a SOAP service
        would send; a JSON vendor answers with its own error body."""
        if status == 429:
            return Response.text("Too Many Requests (sandbox).\n", 429)
        return Response.text("Service Unavailable: the vendor is down (sandbox).\n", status)


@dataclass
class FaultConfig:
    """The injected fault (see FAULT_MODES and FAULT_OPTIONS).

    `count` > 0 limits the fault to the next `count` vendor requests (the server counts
    down and returns to "ok"), so a test can say "the next 3 requests get 429, then it
    recovers". `every` >= 2 faults only every Nth vendor request. `status` is the HTTP
    status of a "fault"-mode error (0: the vendor's usual one).
    """

    mode: str = "ok"
    delay_ms: int = 2000
    duplicate_payments: bool = False
    retry_after: int = 30
    count: int = 0
    every: int = 0
    status: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultConfig:
        mode = str(data.get("mode", "ok"))
        storm = data.get("throttle_count")
        if storm is not None:
            if "mode" in data and mode != "throttle":
                raise ControlError("throttle_count goes with mode throttle (or no mode).")
            mode = "throttle"
        if mode not in FAULT_MODES:
            raise ControlError(f"Unknown fault mode {mode!r}; use one of {', '.join(FAULT_MODES)}.")
        numbers: dict[str, int] = {}
        defaults = {
            "delay_ms": 2000,
            "retry_after": 1 if storm is not None else 30,
            "count": storm if storm is not None else 0,
            "every": 0,
            "status": 0,
        }
        for key, default in defaults.items():
            value = data.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
                raise ControlError(f"{key} must be a whole number.")
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise ControlError(f"{key} must be a whole number.") from None
            if number < 0:
                raise ControlError(f"{key} may not be negative.")
            numbers[key] = number
        if numbers["every"] == 1:
            numbers["every"] = 0  # every request: the same as no `every`
        if numbers["status"] and not 400 <= numbers["status"] <= 599:
            raise ControlError("status must be an HTTP error status (400-599).")
        return cls(
            mode,
            numbers["delay_ms"],
            _bool_field(data, "duplicate_payments"),
            numbers["retry_after"],
            numbers["count"],
            numbers["every"],
            numbers["status"],
        )


# --- the HTTP server ------------------------------------------------------------------------


class _DropConnection(Exception):
    """Raised to close the connection without an answer (fault mode "drop")."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a benchmark must not pay a TCP setup per call
    disable_nagle_algorithm = True  # headers and body go out together; no 40 ms ACK stalls
    timeout = 120  # idle keep-alive connections are closed eventually
    server: SandboxServer
    server_version = "FeeSyncSandbox/1"

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            response = self.server.respond(request)
        except _DropConnection:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except Exception:  # a bug in a sandbox must answer 500, not kill the connection
            if self.server.closed:
                # A "slow" request still asleep when the sandbox was shut down finds its
                # state closed: not a bug, and nobody is waiting for the answer.
                self.close_connection = True
                return
            traceback.print_exc(file=sys.stderr)
            response = Response.text("Internal Server Error (sandbox bug)\n", 500)
        self._send(response)

    def _send(self, response: Response) -> None:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
        head = [f"HTTP/1.1 {response.status} {reason}"]
        head.append(f"Server: {self.server_version}")
        head.append(f"Content-Type: {response.content_type}")
        head.append(f"Content-Length: {len(response.body)}")
        head.extend(f"{k}: {v}" for k, v in response.headers.items())
        if self.close_connection:
            head.append("Connection: close")
        # One write for head and body: fewer syscalls and no Nagle/delayed-ACK stall.
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            payload += response.body
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout in a "slow" test): nothing left to tell it.
            self.close_connection = True
            return
        if self.server.verbose:
            self.log_request(response.status, len(response.body))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            super().log_message(format, *args)


class SandboxServer(ThreadingHTTPServer):
    """A vendor sandbox: control API under `/_sandbox/`, the vendor protocol elsewhere.

    `url` is the root (e.g. "http://127.0.0.1:8101"). `shutdown()` also works when the
    server was never started, and closes open keep-alive connections so that a stopped
    sandbox really stops answering.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self,
        protocol: VendorProtocol,
        state: SandboxState,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.protocol = protocol
        self.state = state
        self.verbose = verbose
        self.host = host
        self.port = int(self.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self.control_url = f"{self.url}/_sandbox"
        self._faults = FaultConfig()
        self._faults_lock = threading.Lock()
        self._every_seen = 0  # vendor requests since the fault was set (for `every`)
        self._requests: dict[str, int] = {}  # "METHOD /path" -> vendor requests received
        self._faulted = 0  # vendor requests answered with a fault
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._serving = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.control = ControlAPI(self)
        protocol.attach(self)

    @property
    def closed(self) -> bool:
        """True once `shutdown()` has begun."""
        return self._closed

    # --- faults -------------------------------------------------------------------------
    @property
    def faults(self) -> FaultConfig:
        with self._faults_lock:
            return FaultConfig(**asdict(self._faults))

    def set_faults(self, faults: FaultConfig) -> None:
        with self._faults_lock:
            self._faults = faults
            self._every_seen = 0

    def _fault_for_request(self, request: Request) -> FaultConfig:
        """Count one vendor request and decide which fault it gets: the configured one,
        or "ok" when `every` spares it; a `count`-limited fault is used up here."""
        with self._faults_lock:
            key = f"{request.method} {request.path}"
            self._requests[key] = self._requests.get(key, 0) + 1
            faults = self._faults
            if faults.mode == "ok":
                return FaultConfig(**asdict(faults))
            spared = FaultConfig(duplicate_payments=faults.duplicate_payments)
            if faults.every:
                self._every_seen += 1
                if self._every_seen % faults.every:
                    return spared
            if faults.count:
                # The last one of the storm: the vendor recovers for the next request.
                self._faults = (
                    replace(faults, count=faults.count - 1) if faults.count > 1 else spared
                )
            self._faulted += 1
            return FaultConfig(**asdict(faults))

    def request_counts(self) -> dict[str, Any]:
        """Vendor requests received (control calls excluded) since start or the last clear."""
        with self._faults_lock:
            return {
                "total": sum(self._requests.values()),
                "faulted": self._faulted,
                "by_endpoint": dict(sorted(self._requests.items())),
            }

    def clear_request_counts(self) -> None:
        with self._faults_lock:
            self._requests.clear()
            self._faulted = 0

    # --- routing ------------------------------------------------------------------------
    def respond(self, request: Request) -> Response:
        if request.path == "/_sandbox" or request.path.startswith("/_sandbox/"):
            return self.control.handle(request)
        return self._vendor_response(request)

    def _vendor_response(self, request: Request) -> Response:
        faults = self._fault_for_request(request)
        request.faults = faults
        mode = faults.mode
        if mode in ("down", "throttle"):
            status = 503 if mode == "down" else 429
            response = self.protocol.busy_response(request, status, faults.retry_after)
            response.headers.setdefault("Retry-After", str(faults.retry_after))
            return response
        if mode == "drop":
            raise _DropConnection
        if mode == "slow":
            time.sleep(faults.delay_ms / 1000)
        if self.protocol.is_description(request):
            if mode == "no_wsdl":
                return Response.text("Not Found: no service description here (sandbox).\n", 404)
            return self.protocol.handle(request)
        if mode == "error":
            page = "<html><body><h1>500 Internal Server Error</h1></body></html>\n"
            return Response(500, page.encode(), "text/html; charset=utf-8")
        if mode == "malformed":
            return self.protocol.malformed_response(request)
        if mode == "fault":
            return self.protocol.protocol_fault_response(request)
        return self.protocol.handle(request)

    def payments_page(
        self, after: int, limit: int, student_ids: Sequence[str] | None = None
    ) -> Page[PaymentRow]:
        """`SandboxState.payments_page` with the duplicate_payments fault applied: each
        payment of the page is sent twice (the engine must record it once)."""
        page = self.state.payments_page(after, limit, student_ids)
        if self.faults.duplicate_payments:
            doubled = [p for p in page.rows for _ in (0, 1)]
            return Page(doubled, page.last_seq, page.has_more)
        return page

    # --- lifecycle ----------------------------------------------------------------------
    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-request are normal here (timeouts, dropped faults).
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def serve_forever(self, poll_interval: float = 0.2) -> None:
        self._serving.set()
        try:
            super().serve_forever(poll_interval)
        finally:
            self._serving.clear()

    def start(self) -> threading.Thread:
        """Serve in a daemon thread (tests, embedded use); returns the thread."""
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"sandbox-{self.protocol.name}", daemon=True
        )
        self._thread.start()
        self._serving.wait(5)
        return self._thread

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._serving.is_set():
            super().shutdown()
        self.server_close()
        with self._connections_lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
        self.state.close()


# --- the control API --------------------------------------------------------------------------


def _required_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ControlError(f"{key} is required.")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ControlError(f"{key} must be a string.")
    return str(value)


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


def _money_field(data: dict[str, Any], key: str, *, allow_negative: bool = False) -> Decimal:
    if data.get(key) is None:
        raise ControlError(f"{key} is required.")
    try:
        return parse_money(data[key], what=key, allow_negative=allow_negative)
    except ValueError as exc:
        raise ControlError(str(exc)) from None


def _bool_field(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ControlError(f"{key} must be true or false.")
    return value


def _fee_input(data: dict[str, Any]) -> FeeInput:
    """A fee for `seed_fees`, with the same names as FeeSync's FeeRecord."""
    try:
        return FeeInput(
            fee_ref=_required_str(data, "fee_ref"),
            version=int(data.get("version", 1)),
            student_id=_required_str(data, "student_id"),
            student_name=str(data.get("student_name", "")),
            school_code=str(data.get("school_code", "")),
            category_code=str(data.get("category_code", "")),
            merchant_id=str(data.get("merchant_id", "")),
            description=str(data.get("description", "")),
            amount=_money_field(data, "amount"),
            amount_due=_money_field(data, "amount_due" if "amount_due" in data else "amount"),
            fee_date=str(data.get("fee_date") or datetime.now(UTC).date().isoformat()),
            due_date=_optional_str(data, "due_date"),
            active=bool(data.get("active", True)),
        )
    except (TypeError, ValueError) as exc:
        raise ControlError(f"Bad fee {data.get('fee_ref')!r}: {exc}") from None


class ControlAPI:
    """The JSON control API (DESIGN.md, "Vendor contracts and sandboxes"), plus extras for
    validation tests and benchmarks. Unauthenticated: it only ever listens on loopback."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.state = server.state
        self.routes: dict[tuple[str, str], Callable[[dict[str, Any], Request], object]] = {
            ("GET", ""): self.index,
            ("GET", "health"): self.health,
            ("GET", "state"): self.get_state,
            ("GET", "faults"): self.get_faults,
            ("POST", "faults"): self.post_faults,
            ("POST", "pay"): self.pay,
            ("POST", "refund"): self.refund,
            ("POST", "void"): self.void,
            ("POST", "waive"): self.waive,
            ("POST", "foreign_fee"): self.foreign_fee,
            ("POST", "lunch"): self.lunch,
            ("POST", "delete_fee"): self.delete_fee,
            ("POST", "hide_payments"): self.hide_payments,
            ("POST", "seed_fees"): self.seed_fees,
            ("POST", "reset"): self.reset,
            ("GET", "requests"): self.get_requests,
            ("GET", "receipts"): self.get_receipts,
            ("POST", "requests"): self.clear_requests,
        }

    def handle(self, request: Request) -> Response:
        name = request.path.removeprefix("/_sandbox").strip("/")
        route = self.routes.get((request.method, name))
        if route is None:
            if any(n == name for _, n in self.routes):
                return Response.json({"error": f"{request.method} is not allowed here."}, 405)
            return Response.json({"error": f"No control endpoint /_sandbox/{name}."}, 404)
        try:
            data = json.loads(request.body, parse_float=Decimal) if request.body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return Response.json({"error": "The body is not valid JSON."}, 400)
        if not isinstance(data, dict):
            return Response.json({"error": "The body must be a JSON object."}, 400)
        try:
            return Response.json(route(data, request))
        except ControlError as exc:
            return Response.json({"error": exc.message}, exc.status)

    # --- endpoints ----------------------------------------------------------------------
    def index(self, data: dict[str, Any], request: Request) -> object:
        return {
            "vendor": self.server.protocol.name,
            "endpoints": sorted(f"{m} /_sandbox/{n}".rstrip("/") for m, n in self.routes),
            "fault_modes": FAULT_MODES,
            "fault_options": FAULT_OPTIONS,
        }

    def health(self, data: dict[str, Any], request: Request) -> object:
        return {"ok": True, "vendor": self.server.protocol.name, "state": self.state.path}

    def get_state(self, data: dict[str, Any], request: Request) -> object:
        student = request.query.get("student_id", [None])[0]
        return self.state.snapshot(student)

    def get_faults(self, data: dict[str, Any], request: Request) -> object:
        return asdict(self.server.faults)

    def post_faults(self, data: dict[str, Any], request: Request) -> object:
        faults = FaultConfig.from_json(data)
        self.server.set_faults(faults)
        return asdict(faults)

    def pay(self, data: dict[str, Any], request: Request) -> object:
        if "payments" in data:
            specs = data["payments"]
            if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
                raise ControlError("payments must be a list of objects.")
            return {"results": self.state.pay(specs)}
        return self.state.pay([data])[0]

    def refund(self, data: dict[str, Any], request: Request) -> object:
        return self.state.refund(_required_str(data, "payment_id"), _money_field(data, "amount"))

    def void(self, data: dict[str, Any], request: Request) -> object:
        return self.state.void(_required_str(data, "payment_id"))

    def waive(self, data: dict[str, Any], request: Request) -> object:
        amount = _money_field(data, "amount") if data.get("amount") is not None else None
        return self.state.waive(_required_str(data, "fee_ref"), amount)

    def foreign_fee(self, data: dict[str, Any], request: Request) -> object:
        return self.state.foreign_fee(
            _required_str(data, "student_id"),
            _money_field(data, "amount"),
            fee_ref=_optional_str(data, "fee_ref"),
            description=str(data.get("description") or "Fee entered at the vendor"),
            student_name=str(data.get("student_name") or ""),
        )

    def lunch(self, data: dict[str, Any], request: Request) -> object:
        student_id = _required_str(data, "student_id")
        balance = _money_field(data, "balance", allow_negative=True)
        self.state.set_lunch(student_id, balance)
        return {"student_id": student_id, "balance": money_str(balance)}

    def delete_fee(self, data: dict[str, Any], request: Request) -> object:
        fee_ref = _required_str(data, "fee_ref")
        self.state.delete_fee(fee_ref)
        return {"deleted": fee_ref}

    def hide_payments(self, data: dict[str, Any], request: Request) -> object:
        ids = data.get("payment_ids")
        if ids is not None and (
            not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)
        ):
            raise ControlError("payment_ids must be a list of strings.")
        hidden = data.get("hidden", True)
        if not isinstance(hidden, bool):
            raise ControlError("hidden must be true or false.")
        return {"updated": self.state.hide_payments(ids, hidden), "hidden": hidden}

    def seed_fees(self, data: dict[str, Any], request: Request) -> object:
        fees = data.get("fees")
        if not isinstance(fees, list) or not all(isinstance(f, dict) for f in fees):
            raise ControlError("fees must be a list of objects.")
        outcomes = self.state.upsert_fees([_fee_input(f) for f in fees])
        return {"results": [asdict(o) for o in outcomes]}

    def reset(self, data: dict[str, Any], request: Request) -> object:
        self.state.reset()
        self.server.set_faults(FaultConfig())
        self.server.clear_request_counts()
        return {"reset": True}

    def get_receipts(self, data: dict[str, Any], request: Request) -> object:
        return {"receipts": self.state.receipts()}

    def get_requests(self, data: dict[str, Any], request: Request) -> object:
        return self.server.request_counts()

    def clear_requests(self, data: dict[str, Any], request: Request) -> object:
        self.server.clear_request_counts()
        return self.server.request_counts()


# --- a client for the control API ------------------------------------------------------------


class SandboxControl:
    """Drive a sandbox's control API over HTTP, as tests, benchmarks and demos do.

    Every method raises `SandboxControlError` (with the sandbox's message) on a 4xx/5xx.
    """

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def call(self, name: str, payload: dict[str, Any] | None = None) -> Any:
        address = f"{self.url}/_sandbox/{name}"
        if payload is None:
            response = self.session.get(address, timeout=self.timeout)
        else:
            body = json.dumps(payload, default=_json_default)
            response = self.session.post(
                address,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
        data = response.json()
        if response.status_code >= 400:
            raise SandboxControlError(data.get("error", response.text), response.status_code)
        return data

    def state(self) -> dict[str, Any]:
        return self.call("state")

    def pay(
        self, fee_ref: str, amount: Decimal | str, *, closed: bool = False, hidden: bool = False
    ) -> dict[str, Any]:
        return self.call(
            "pay", {"fee_ref": fee_ref, "amount": str(amount), "closed": closed, "hidden": hidden}
        )

    def pay_many(self, payments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.call("pay", {"payments": list(payments)})["results"]

    def refund(self, payment_id: str, amount: Decimal | str) -> dict[str, Any]:
        return self.call("refund", {"payment_id": payment_id, "amount": str(amount)})

    def void(self, payment_id: str) -> dict[str, Any]:
        return self.call("void", {"payment_id": payment_id})

    def waive(self, fee_ref: str, amount: Decimal | str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"fee_ref": fee_ref}
        if amount is not None:
            payload["amount"] = str(amount)
        return self.call("waive", payload)

    def foreign_fee(self, student_id: str, amount: Decimal | str, **extra: Any) -> dict[str, Any]:
        return self.call("foreign_fee", {"student_id": student_id, "amount": str(amount), **extra})

    def lunch(self, student_id: str, balance: Decimal | str) -> dict[str, Any]:
        return self.call("lunch", {"student_id": student_id, "balance": str(balance)})

    def delete_fee(self, fee_ref: str) -> dict[str, Any]:
        return self.call("delete_fee", {"fee_ref": fee_ref})

    def hide_payments(
        self, payment_ids: Sequence[str] | None = None, *, hidden: bool = True
    ) -> int:
        payload: dict[str, Any] = {"hidden": hidden}
        if payment_ids is not None:
            payload["payment_ids"] = list(payment_ids)
        return int(self.call("hide_payments", payload)["updated"])

    def seed_fees(self, fees: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.call("seed_fees", {"fees": list(fees)})["results"]

    def receipts(self) -> dict[str, float]:
        """fee_ref -> epoch seconds of the last accepted upsert (see SandboxState.receipts)."""
        return {k: float(v) for k, v in self.call("receipts")["receipts"].items()}

    def faults(self, mode: str = "ok", **options: Any) -> dict[str, Any]:
        return self.call("faults", {"mode": mode, **options})

    def reset(self) -> None:
        self.call("reset", {})

    def requests(self) -> dict[str, Any]:
        """Vendor requests the sandbox received: `total`, `faulted`, `by_endpoint`."""
        return self.call("requests")

    def clear_requests(self) -> None:
        self.call("requests", {})


class SandboxControlError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(f"{status}: {message}")
        self.message = message
        self.status = status


# --- running a sandbox as a process ------------------------------------------------------------


def serve_until_stopped(server: SandboxServer, banner: str) -> None:
    """Print `banner`, serve until Ctrl-C or SIGTERM, then shut down cleanly."""
    import signal
    import threading

    print(banner, flush=True)
    if threading.current_thread() is threading.main_thread():
        # honcho and friends stop processes with SIGTERM: leave as cleanly as on Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def sandbox_main(
    argv: list[str] | None,
    *,
    description: str,
    default_port: int,
    run: Callable[..., None],
) -> None:
    """The command line of a sandbox module (`python -m apps.vendors.sandboxes.NAME`)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state", default=None, help="SQLite state file (default: temporary)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    run(args.port, args.state, args.host, verbose=args.verbose)
