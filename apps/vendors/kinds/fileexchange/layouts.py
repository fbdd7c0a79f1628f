"""The column layouts of the file exchange: what a fee line and a result line look like.

Kept free of Django so the sandbox can read and write the same files. The built-in layout
is PeopleSoft Campus Solutions' student financials item charge load (docs/vendors/
fileexchange.md is its contract); a district-defined layout picks and orders the same
columns, with its own header, delimiter, date format and encoding.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple, Protocol


class FeeLine(Protocol):
    """What a fee line is made of (`apps.vendors.kinds.base.FeeRecord` is one)."""

    @property
    def fee_ref(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def student_id(self) -> str: ...
    @property
    def student_name(self) -> str: ...
    @property
    def school_code(self) -> str: ...
    @property
    def category_code(self) -> str: ...
    @property
    def merchant_id(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def amount_due(self) -> Decimal: ...
    @property
    def fee_date(self) -> date: ...
    @property
    def due_date(self) -> date | None: ...
    @property
    def active(self) -> bool: ...


@dataclass(frozen=True)
class Column:
    key: str
    header: str  # the built-in layout's header for it
    label: str  # what staff read on the setup page


#: Every column a fee line can have, in the built-in layout's order first.
COLUMNS: dict[str, Column] = {
    c.key: c
    for c in [
        Column("student_id", "EMPLID", "Student id"),
        Column("item_type", "ITEM_TYPE", "Item type"),
        Column("amount", "ITEM_AMT", "Amount"),
        Column("effective_date", "ITEM_EFFECTIVE_DT", "Effective date (fee date)"),
        Column("due_date", "DUE_DT", "Due date"),
        Column("reference", "REF1_DESCR", "FeeSync reference"),
        Column("term", "ITEM_TERM", "Term"),
        Column("description", "DESCR", "Description"),
        Column("business_unit", "BUSINESS_UNIT", "Merchant account (business unit)"),
        Column("amount_due", "FEESYNC_AMOUNT_DUE", "Amount still owed"),
        Column("status", "FEESYNC_STATUS", "Status (open, paid, waived, void, closed)"),
        Column("version", "FEESYNC_VERSION", "Version"),
        Column("student_name", "STUDENT_NAME", "Student name"),
        Column("school", "SCHOOL", "School code"),
        Column("category", "FEE_CATEGORY", "FeeSync fee category"),
    ]
}
BUILTIN_COLUMNS: tuple[str, ...] = (
    "student_id",
    "item_type",
    "amount",
    "effective_date",
    "due_date",
    "reference",
    "term",
    "description",
    "business_unit",
    "amount_due",
    "status",
    "version",
)
DATE_FORMATS: dict[str, str] = {
    "%Y-%m-%d": "2026-12-01",
    "%m/%d/%Y": "12/01/2026",
    "%d/%m/%Y": "01/12/2026",
    "%Y%m%d": "20261201",
    "%d-%b-%Y": "01-Dec-2026",
}
DELIMITERS: dict[str, str] = {",": "Comma", "|": "Pipe |", "\t": "Tab", ";": "Semicolon"}
#: The delimiter choice that means "the character typed in `delimiter_other`".
OTHER_DELIMITER = "other"
#: A day whose every part differs (01, 12, 2026, Dec), to show and check date formats.
SAMPLE_DAY = date(2026, 12, 1)


@dataclass(frozen=True)
class Layout:
    columns: tuple[str, ...] = BUILTIN_COLUMNS
    header: bool = True
    delimiter: str = ","
    date_format: str = "%Y-%m-%d"
    encoding: str = "utf-8"  # or "utf-8-sig" (with a byte-order mark)
    builtin: bool = True

    def headers(self) -> list[str]:
        if self.builtin:
            return [COLUMNS[c].header for c in self.columns]
        return list(self.columns)


def options_delimiter(options: Mapping[str, Any]) -> str:
    """The delimiter an integration's options choose (a listed one, or the character typed
    in `delimiter_other`)."""
    choice = str(options.get("delimiter") or ",")
    if choice == OTHER_DELIMITER:
        return str(options.get("delimiter_other") or ",")
    return choice


def _flag(value: Any) -> bool:
    """A yes/no option: stored as a boolean, or sent as text to the sandbox's control API."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "off", "no")
    return bool(value)


def layout_from_options(options: Mapping[str, Any]) -> Layout:
    """The layout an integration's options describe: what the export writes, and what a
    financials loader configured the same way reads (the sandbox's `layout` control call).
    ValueError names a column that does not exist."""
    delimiter = options_delimiter(options)
    encoding = str(options.get("encoding") or "utf-8")
    if str(options.get("layout") or "peoplesoft") != "district":
        return Layout(delimiter=delimiter, encoding=encoding)
    return Layout(
        columns=parse_columns(str(options.get("columns") or "reference")),
        header=_flag(options.get("header", True)),
        delimiter=delimiter,
        date_format=str(options.get("date_format") or "%Y-%m-%d"),
        encoding=encoding,
        builtin=False,
    )


def parse_columns(text: str) -> tuple[str, ...]:
    """A district layout's columns, names separated by commas (or spaces) in file order (what the
    setup page's column picker writes, or staff type without JavaScript), or ValueError
    naming what is wrong."""
    keys = tuple(k.lower() for k in re.split(r"[\s,;]+", text) if k)
    unknown = [k for k in keys if k not in COLUMNS]
    if unknown:
        raise ValueError(
            f"Unknown column{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(f'“{k}”' for k in unknown)}; use any of: {', '.join(COLUMNS)}."
        )
    if not keys:
        raise ValueError("Pick at least one column for the district-defined layout.")
    twice = sorted({k for k in keys if keys.count(k) > 1}, key=keys.index)
    if twice:
        names = " and ".join(f"“{COLUMNS[k].label}” ({k})" for k in twice)
        raise ValueError(
            f"The column{'s' if len(twice) > 1 else ''} {names} "
            f"{'are' if len(twice) > 1 else 'is'} listed twice: a column can appear once."
        )
    return keys


def delimiter_problem(delimiter: str, *, date_format: str) -> str:
    """Why `delimiter` cannot separate this layout's fields ("" when it can): a loader that
    splits on it would cut a date or an amount in two, or CSV itself cannot use it."""
    if len(delimiter) != 1:
        return "The delimiter is one character, e.g. ~ or ^."
    if delimiter in '\r\n"':
        return "A line break or a double quote cannot be the delimiter."
    if delimiter.isalnum() or delimiter == " ":
        return (
            f"“{delimiter}” cannot be the delimiter: letters, digits and spaces appear in "
            "student ids, names and descriptions."
        )
    if delimiter == ".":
        return "“.” cannot be the delimiter: it appears in every amount (4.50)."
    sample = SAMPLE_DAY.strftime(date_format)
    if delimiter in sample:
        return (
            f"The delimiter “{delimiter}” also appears in the dates ({sample}): choose "
            "another delimiter or another date format."
        )
    return ""


def parse_item_types(text: str) -> dict[str, str]:
    """ "LIBFINE = 800000000001" lines: fee category code -> item type. ValueError names the
    line that is not one."""
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        code, sep, item = line.partition("=")
        if not sep or not code.strip() or not item.strip():
            raise ValueError(
                f"Line {n} ({line!r}) is not CATEGORY = ITEM TYPE (e.g. LIBFINE = 800000000001)."
            )
        out[code.strip().upper()] = item.strip()
    return out


def _status(fee: FeeLine) -> str:
    if fee.active:
        return "open"
    return "closed" if fee.amount_due == 0 else "inactive"


def _cell_makers(
    layout: Layout, *, item_types: dict[str, str], term: str
) -> list[Callable[[FeeLine], str]]:
    """One function per column of the layout, the values of each column: a 200,000
    line export built a dict of them all (every column, every date formatted) for each line
    (bench fileexchange.export_200k_s); dates repeat, so each is formatted once."""
    days: dict[date, str] = {}

    def day(d: date | None) -> str:
        if d is None:
            return ""
        text = days.get(d)
        if text is None:
            text = days[d] = d.strftime(layout.date_format)
        return text

    makers: dict[str, Callable[[FeeLine], str]] = {
        "student_id": lambda f: f.student_id,
        "item_type": lambda f: item_types.get(f.category_code.upper(), f.category_code),
        "amount": lambda f: f"{f.amount:.2f}",
        "effective_date": lambda f: day(f.fee_date),
        "due_date": lambda f: day(f.due_date),
        "reference": lambda f: f.fee_ref,
        "term": lambda f: term,
        "description": lambda f: f.description,
        "business_unit": lambda f: f.merchant_id,
        "amount_due": lambda f: f"{f.amount_due:.2f}",
        "status": lambda f: getattr(f, "status", "") or _status(f),
        "version": lambda f: str(f.version),
        "student_name": lambda f: f.student_name,
        "school": lambda f: f.school_code,
        "category": lambda f: f.category_code,
    }
    return [makers[c] for c in layout.columns]


class _Sink:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)


@dataclass
class Totals:
    rows: int = 0
    total: Decimal = Decimal("0.00")


def fee_file_chunks(
    fees: Iterable[FeeLine],
    *,
    layout: Layout,
    item_types: dict[str, str],
    term: str,
    totals: Totals,
    lines_per_chunk: int = 2000,
) -> Iterator[bytes]:
    """The fee file as byte chunks, counting rows and summing amounts into `totals`."""
    sink = _Sink()
    writer = csv.writer(sink, delimiter=layout.delimiter, lineterminator="\r\n")
    encoding = layout.encoding
    if encoding == "utf-8-sig":
        yield "\ufeff".encode()
        encoding = "utf-8"
    if layout.header:
        writer.writerow(layout.headers())
    cells = _cell_makers(layout, item_types=item_types, term=term)
    n = 0
    for fee in fees:
        writer.writerow([cell(fee) for cell in cells])
        totals.rows += 1
        totals.total += fee.amount
        n += 1
        if n >= lines_per_chunk:
            yield "".join(sink.parts).encode(encoding)
            sink.parts.clear()
            n = 0
    if sink.parts:
        yield "".join(sink.parts).encode(encoding)


def control_text(name: str, totals: Totals) -> bytes:
    return f"file={name}\r\nrows={totals.rows}\r\ntotal={totals.total:.2f}\r\n".encode()


# --- result files (payments back) -------------------------------------------------------------

OPERATIONS = ("pay", "waive", "dispute", "restore")
RESULT_COLUMNS: tuple[str, ...] = (
    "reference",
    "student_id",
    "operation",
    "amount",
    "method",
    "reason",
    "transaction_id",
    "original_transaction_id",
)
#: Other names accepted for a result column (the financials side's own words).
RESULT_ALIASES: dict[str, str] = {
    "fee_ref": "reference",
    "item_ref": "reference",
    "ref1_descr": "reference",
    "emplid": "student_id",
    "op": "operation",
    "item_amt": "amount",
    "txn_id": "transaction_id",
    "refers_to": "original_transaction_id",
}
REQUIRED_RESULT_COLUMNS = ("reference", "operation", "amount", "transaction_id")


def result_file_text(rows: Sequence[dict[str, Any]], *, delimiter: str = ",") -> str:
    """A result file as the financials side writes it (used by the sandbox and tests)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(RESULT_COLUMNS)
    for row in rows:
        writer.writerow([row.get(c, "") for c in RESULT_COLUMNS])
    return out.getvalue()


def result_header(fields: Sequence[str]) -> dict[str, int]:
    """Column -> position, from a result file's header; ValueError says what is missing."""
    positions: dict[str, int] = {}
    for i, raw in enumerate(fields):
        key = raw.strip().lower().lstrip("\ufeff")
        key = RESULT_ALIASES.get(key, key)
        positions.setdefault(key, i)
    missing = [c for c in REQUIRED_RESULT_COLUMNS if c not in positions]
    if missing:
        raise ValueError(
            "The header line does not name the column"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)} (it has: "
            f"{', '.join(f.strip() for f in fields) or 'nothing'})."
        )
    return positions


class Row(NamedTuple):
    """One non-blank line of a result file: its number (the header is line 1), its text, its
    fields, and, when CSV itself cannot split it, why not (`fields` is then empty)."""

    number: int
    text: str
    fields: list[str]
    problem: str = ""


def read_rows(text_lines: Iterable[str], *, delimiter: str) -> Iterator[Row]:
    """A `Row` for each non-blank line. A line CSV cannot split (a field longer than any a
    result file has) is a row with its problem, so that one bad line fails alone."""
    for number, raw in enumerate(text_lines, start=1):
        stripped = raw.rstrip("\r\n")
        if not stripped.strip():
            continue
        try:
            fields = next(csv.reader([stripped], delimiter=delimiter))
        except csv.Error as exc:
            yield Row(number, stripped, [], f"The line cannot be read as CSV ({exc}).")
            continue
        yield Row(number, stripped, fields)


# --- fee files read back (the financials side's loader) ------------------------------------------


class FeeFileError(ValueError):
    """A fee file a loader configured with its layout cannot take at all (the reason in
    words)."""


def read_fee_file(lines: Iterable[str], *, layout: Layout) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, column key -> text) for each fee line of a fee file, read as a loader
    configured with `layout` reads it: the fields in the layout's column order, split on its
    delimiter; with a header, the first line must be the layout's header and is not a fee.
    A line with another number of fields than the layout has columns raises FeeFileError
    naming it (a loader set up for another layout, or a file cut short)."""
    rows = csv.reader(lines, delimiter=layout.delimiter)
    expected = layout.headers()
    for fields in rows:
        number = rows.line_num
        if number == 1 and fields and fields[0].startswith("\ufeff"):
            fields[0] = fields[0][1:]
        if not any(f.strip() for f in fields):
            continue
        if layout.header and number == 1:
            if [f.strip() for f in fields] != expected:
                raise FeeFileError(
                    f"The header line is {layout.delimiter.join(fields)!r}; the layout "
                    f"expects {layout.delimiter.join(expected)!r}."
                )
            continue
        if len(fields) != len(layout.columns):
            raise FeeFileError(
                f"Line {number} has {len(fields)} fields; the layout has "
                f"{len(layout.columns)} columns ({', '.join(layout.columns)})."
            )
        yield number, dict(zip(layout.columns, fields, strict=True))
