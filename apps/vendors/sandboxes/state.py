"""The vendor's side of the world (fees, payments, lunch balances) in its own SQLite file,
never FeeSync's database, and the records the vendor protocols read and write.

Money is stored as two-decimal strings and computed with `Decimal`. The control
operations (a parent pays, vendor staff refund, void or waive) live here too, because each
must happen in one transaction with the fee it changes; they raise `ControlError`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from apps.vendors.sandboxes.fields import (
    ControlError,
    bool_field,
    money_field,
    optional_str,
    required_str,
)
from apps.vendors.sandboxes.values import ZERO, money_str, utc_now_iso

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
        fee_ref = required_str(spec, "fee_ref")
        amount = money_field(spec, "amount")
        closed = bool_field(spec, "closed")
        hidden = bool_field(spec, "hidden")
        # A parent who pays more than is due (a double payment, a fee lowered meanwhile):
        # vendors take it; FeeSync must settle the fee and keep the rest as credit.
        allow_over = bool_field(spec, "allow_over")
        fee = self._fee_for_update(db, fee_ref)
        if fee.status in ("waived", "closed"):
            raise ControlError(f"Fee {fee_ref} is {fee.status} at the vendor; nothing is due.")
        if not fee.active:
            raise ControlError(f"Fee {fee_ref} is inactive; the vendor no longer collects it.")
        if amount <= 0:
            raise ControlError("amount must be more than 0.00")
        if amount > fee.amount_due and not allow_over:
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
            occurred_at=optional_str(spec, "occurred_at"),
        )
        due = ZERO if closed else max(ZERO, fee.amount_due - amount)
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
