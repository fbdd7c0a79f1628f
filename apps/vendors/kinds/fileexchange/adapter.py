"""File exchange (the Alma/PeopleSoft model): fees go out as files dropped in a directory
the district's student financials system loads from, and payments, waivers, disputes and
restores come back as result files in another directory (contract.md beside this).

The directories are reached over SFTP (host key pinned), FTPS or a local/mounted path.
Transfers reuse `apps.vendors.transfer` (the demographics export's uploader: temporary
name, rename when complete). This module only knows files and lines; the database work
(what to export, recording what comes back through the one door) is
`apps.vendors.files`'.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import requests
from django import forms
from django.core.exceptions import ValidationError

from apps.fees.money import MoneyError, parse_money
from apps.fees.movements import MovementKind

from ...transfer import (
    TEMP_SUFFIX,
    FileSession,
    Protocol,
    RemoteFile,
    TransferError,
    TransferTarget,
    upload_stream,
)
from ..base import (
    AdapterConfig,
    Capability,
    CheckResult,
    ExportedFile,
    FeeRecord,
    InboundLine,
    InboundPoll,
    RefusedMovement,
    Setting,
    UnreadableFile,
    VendorAdapter,
    VendorError,
    VendorPayment,
)
from .layouts import (
    DATE_FORMATS,
    DELIMITERS,
    OTHER_DELIMITER,
    Layout,
    Row,
    Totals,
    control_text,
    delimiter_problem,
    fee_file_chunks,
    layout_from_options,
    options_delimiter,
    parse_columns,
    parse_item_types,
    read_rows,
    result_header,
)
from .widgets import LayoutColumnsWidget

#: Result columns FeeSync keeps whole, with their words and longest length (the ledger's
#: and the held movement's fields): longer is a damaged or foreign line, refused by name.
FIELD_LIMITS: dict[str, tuple[str, int]] = {
    "reference": ("fee reference", 40),
    "student_id": ("student id", 40),
    "transaction_id": ("transaction id", 100),
    "original_transaction_id": ("original transaction id", 100),
}

SHORTEST_LIMIT = min(limit for _words, limit in FIELD_LIMITS.values())

OPERATION_KINDS: dict[str, MovementKind] = {
    "pay": MovementKind.PAYMENT,
    "payment": MovementKind.PAYMENT,
    "waive": MovementKind.WAIVER,
    "waiver": MovementKind.WAIVER,
    "dispute": MovementKind.DISPUTE,
    "restore": MovementKind.RESTORE,
}
#: A result line's method, in the financials office's words -> `LedgerEntry.Method`.
METHODS: dict[str, str] = {
    "cash": "cash",
    "check": "check",
    "cheque": "check",
    "chk": "check",
    "card": "card",
    "credit card": "card",
    "debit card": "card",
    "cc": "card",
    "online": "online",
    "web": "online",
    "ach": "online",
    "eft": "online",
}
SKIPPED_SUFFIXES = (TEMP_SUFFIX, ".done", ".tmp", ".ctl", ".rejects.csv")


# --- settings fields ----------------------------------------------------------------------------


class ColumnsField(forms.CharField):
    def validate(self, value: str) -> None:
        super().validate(value)
        if value:
            try:
                parse_columns(value)
            except ValueError as exc:
                raise ValidationError(str(exc)) from None

    def clean(self, value: Any) -> str:
        # Stored as the picker writes it ("reference,amount"), however it was typed.
        cleaned = super().clean(value)
        return ",".join(parse_columns(cleaned)) if cleaned else ""


class ItemTypesField(forms.CharField):
    def validate(self, value: str) -> None:
        super().validate(value)
        try:
            mapped = parse_item_types(value or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if not mapped:
            return
        # Imported here, not at the top: the sandbox loads this package (for the layouts)
        # in processes where no model needs to exist.
        from apps.categories.models import FeeCategory

        known = {code.upper() for code in FeeCategory.objects.values_list("code", flat=True)}
        unknown = [code for code in mapped if code not in known]
        if unknown:
            raise ValidationError(
                f"There is no fee category {' or '.join(unknown)} (a typing mistake would "
                "send its fees under their own code). FeeSync's categories: "
                f"{', '.join(sorted(known)) or 'none yet'}."
            )


class HostKeyField(forms.CharField):
    def validate(self, value: str) -> None:
        super().validate(value)
        if value.strip():
            from ...transfer import fingerprint  # the transfer layer's own parser

            try:
                fingerprint(value)
            except ValueError:
                raise ValidationError(
                    "This is not an OpenSSH public key line (expected something like "
                    "“ssh-ed25519 AAAA…”)."
                ) from None


def _text(label: str, initial: str = "", help_text: str = "", **kw: Any) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        initial=initial,
        help_text=help_text,
        max_length=kw.pop("max_length", 300),
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
        **kw,
    )


#: The options the fee file's look depends on: the setup page sends their unsaved values to
#: redraw the file's preview as staff change them (`file_preview_options`).
LAYOUT_OPTIONS: tuple[str, ...] = (
    "layout",
    "header",
    "delimiter",
    "delimiter_other",
    "date_format",
    "encoding",
    "columns",
    "item_types",
    "merchant_account",
    "term",
)

#: The longest private key the setup page takes: an RSA 4096 key in PEM is about 3,300
#: characters (the shared 500-character limit of secrets fits only Ed25519).
PRIVATE_KEY_MAX_LENGTH = 8000

SETTINGS: dict[str, Setting] = {
    "transport": Setting(
        forms.ChoiceField(
            label="How files are exchanged",
            choices=[
                ("sftp", "SFTP (recommended)"),
                ("ftps", "FTPS (FTP over TLS)"),
                ("local", "A local or mounted directory"),
            ],
            initial="sftp",
            help_text="SFTP checks the server's pinned host key before any password is sent.",
        )
    ),
    "host": Setting(
        _text("Server", help_text="Host name of the file server, e.g. sftp.sis.example.")
    ),
    "port": Setting(
        forms.IntegerField(
            label="Port",
            min_value=1,
            max_value=65535,
            required=False,
            initial=None,
            help_text="Empty: 22 for SFTP, 21 for FTPS.",
        )
    ),
    "host_key": Setting(
        HostKeyField(
            label="Pinned host key",
            required=False,
            initial="",
            widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
            help_text="SFTP only: the server's public host key line (ssh-ed25519 AAAA…), from "
            "the financials team. An unknown key is never accepted.",
        )
    ),
    "tls_certificate": Setting(
        forms.CharField(
            label="Trusted certificate (FTPS)",
            required=False,
            initial="",
            widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
            help_text="FTPS only, for a server with a private or self-signed certificate: its "
            "certificate (PEM, -----BEGIN CERTIFICATE-----). Empty: the usual public "
            "certificate authorities.",
        )
    ),
    "username": Setting(
        forms.CharField(label="User name", required=False, max_length=500),
        secret=True,
        optional=True,  # a local directory needs no login
    ),
    "password": Setting(
        forms.CharField(
            label="Password",
            required=False,
            max_length=500,
            help_text="Or a private key below (SFTP).",
        ),
        secret=True,
        optional=True,
    ),
    "private_key": Setting(
        forms.CharField(
            label="Private key (SFTP)",
            required=False,
            # An RSA 4096 key in PEM is about 3,300 characters; room for the longest usual.
            max_length=PRIVATE_KEY_MAX_LENGTH,
            widget=forms.Textarea,
            help_text="An unencrypted private key (Ed25519, ECDSA or RSA; OpenSSH or PEM), "
            "pasted whole, to log in with instead of the password.",
        ),
        secret=True,
        optional=True,
    ),
    "local_path": Setting(
        _text(
            "Local directory",
            help_text="For a local or mounted directory: the folder that holds the "
            "directories below.",
        )
    ),
    "outbound_dir": Setting(
        _text("Outbound directory", "outbound", "Where fee files are written.")
    ),
    "inbound_dir": Setting(
        _text("Inbound directory", "inbound", "Where the financials system drops result files.")
    ),
    "archive_dir": Setting(
        _text(
            "Archive directory",
            help_text="Empty: an “archive” folder under the outbound and the inbound directory.",
        )
    ),
    "rejects_dir": Setting(
        _text("Rejects directory", help_text="Empty: a “rejects” folder under the inbound one.")
    ),
    # The column layout, in the order staff decide it: which layout, then the district
    # layout's header, delimiter, date format and encoding, then its columns, whose picker
    # ends with the live preview of the file (so every layout choice sits just above it).
    "layout": Setting(
        forms.ChoiceField(
            label="Column layout",
            choices=[
                ("peoplesoft", "PeopleSoft student financials item charge load (built in)"),
                ("district", "District-defined (the columns below)"),
            ],
            initial="peoplesoft",
        ),
        retest=False,
    ),
    "header": Setting(
        forms.BooleanField(
            label="Header line",
            required=False,
            initial=True,
            help_text="District layout only: a first line naming the columns.",
        ),
        retest=False,
    ),
    "delimiter": Setting(
        forms.ChoiceField(
            label="Delimiter",
            choices=[*DELIMITERS.items(), (OTHER_DELIMITER, "Another character (type it below)")],
            initial=",",
            help_text="What separates the fields of a line, in fee files and result files.",
        ),
        retest=False,
    ),
    "delimiter_other": Setting(
        forms.CharField(
            label="Other delimiter",
            required=False,
            initial="",
            max_length=1,
            strip=False,  # a tab is a character too
            widget=forms.TextInput(attrs={"spellcheck": "false", "size": 3}),
            help_text="Only with “Another character” above: the one character, e.g. ~ or ^.",
        ),
        retest=False,
    ),
    "date_format": Setting(
        forms.ChoiceField(
            label="Date format",
            choices=[(k, v) for k, v in DATE_FORMATS.items()],
            initial="%Y-%m-%d",
            help_text="District layout only; the built-in one uses 2026-12-01.",
        ),
        retest=False,
    ),
    "encoding": Setting(
        forms.ChoiceField(
            label="Encoding",
            choices=[("utf-8", "UTF-8"), ("utf-8-sig", "UTF-8 with byte-order mark")],
            initial="utf-8",
            help_text="Some Windows loaders need the byte-order mark to read accents right.",
        ),
        retest=False,
    ),
    "columns": Setting(
        ColumnsField(
            label="Columns (district layout)",
            required=False,
            initial="student_id,item_type,amount,effective_date,due_date,reference,term,"
            "description",
            help_text="The district layout's columns, in file order.",
            widget=LayoutColumnsWidget(preview_options=LAYOUT_OPTIONS),
        ),
        retest=False,
    ),
    "item_types": Setting(
        ItemTypesField(
            label="Item types",
            required=False,
            initial="",
            widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
            help_text="One line per FeeSync fee category: CATEGORY = ITEM TYPE (e.g. "
            "LIBFINE = 800000000001). A category not listed is sent under its own code.",
        ),
        retest=False,
    ),
    "merchant_account": Setting(
        _text(
            "Merchant account",
            help_text="The financials system's business unit for these fees; empty: each "
            "fee's merchant account id.",
        ),
        retest=False,
    ),
    "term": Setting(
        _text("Term", help_text="The term sent with each fee, e.g. 2270."), retest=False
    ),
    "empty_export": Setting(
        forms.BooleanField(
            label="Write a file when nothing changed",
            required=False,
            initial=False,
            help_text="For a loader that expects a file at every export: one with no fee "
            "lines (its header, and a control file with rows=0). Off: no file is written "
            "when nothing changed.",
        ),
        retest=False,
    ),
    "completeness": Setting(
        forms.ChoiceField(
            label="A result file is complete when",
            choices=[
                ("marker", "a .done marker file sits beside it"),
                ("stable", "its size is unchanged over two polls"),
            ],
            initial="marker",
        )
    ),
}


# --- where the files live ----------------------------------------------------------------------


class _Store(ABC):
    @abstractmethod
    def listdir(self, directory: str) -> list[RemoteFile]: ...
    @abstractmethod
    def fetch(self, path: str, into: IO[bytes]) -> None: ...
    @abstractmethod
    def put(self, path: str, data: bytes) -> None: ...
    @abstractmethod
    def move(self, source: str, destination: str) -> None: ...
    @abstractmethod
    def remove(self, path: str) -> None: ...
    @abstractmethod
    def ensure_dir(self, directory: str) -> None: ...
    @abstractmethod
    def upload(self, directory: str, name: str, chunks: Iterable[bytes]) -> int: ...
    def close(self) -> None:
        return None


class _LocalStore(_Store):
    def __init__(self, root: str) -> None:
        if not root.strip():
            raise VendorError("No local directory is set for this file exchange.", permanent=True)
        self.root = Path(root)
        if not self.root.is_dir():
            raise VendorError(
                f"The local directory {root} does not exist (or is not mounted).", permanent=True
            )

    def _p(self, path: str) -> Path:
        return self.root / path

    def listdir(self, directory: str) -> list[RemoteFile]:
        d = self._p(directory)
        if not d.is_dir():
            raise VendorError(f"There is no directory {directory} in {self.root}.", permanent=True)
        return [RemoteFile(p.name, p.stat().st_size) for p in d.iterdir() if p.is_file()]

    def fetch(self, path: str, into: IO[bytes]) -> None:
        with open(self._p(path), "rb") as f:
            shutil.copyfileobj(f, into, 1 << 20)

    def put(self, path: str, data: bytes) -> None:
        self._p(path).write_bytes(data)

    def move(self, source: str, destination: str) -> None:
        os.replace(self._p(source), self._p(destination))

    def remove(self, path: str) -> None:
        self._p(path).unlink()

    def ensure_dir(self, directory: str) -> None:
        self._p(directory).mkdir(parents=True, exist_ok=True)

    def upload(self, directory: str, name: str, chunks: Iterable[bytes]) -> int:
        final = self._p(directory) / name
        temp = final.with_name(name + TEMP_SUFFIX)
        sent = 0
        try:
            with open(temp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                    sent += len(chunk)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        os.replace(temp, final)
        return sent


class _RemoteStore(_Store):
    def __init__(self, target: TransferTarget) -> None:
        self.target = target
        self._session: FileSession | None = None

    @property
    def session(self) -> FileSession:
        if self._session is None:
            self._session = FileSession(self.target).__enter__()
        return self._session

    def listdir(self, directory: str) -> list[RemoteFile]:
        return self.session.listdir(directory)

    def fetch(self, path: str, into: IO[bytes]) -> None:
        self.session.fetch(path, into)

    def put(self, path: str, data: bytes) -> None:
        self.session.put(path, data)

    def move(self, source: str, destination: str) -> None:
        self.session.move(source, destination)

    def remove(self, path: str) -> None:
        self.session.remove(path)

    def ensure_dir(self, directory: str) -> None:
        self.session.ensure_dir(directory)

    def upload(self, directory: str, name: str, chunks: Iterable[bytes]) -> int:
        target = TransferTarget(**{**self.target.__dict__, "directory": directory})
        return upload_stream(target, name, chunks).bytes_sent

    def close(self) -> None:
        if self._session is not None:
            self._session.__exit__(None, None, None)
            self._session = None


# --- the adapter -------------------------------------------------------------------------------


class FileExchangeAdapter(VendorAdapter):
    kind = "fileexchange"
    name = "File exchange"
    description = (
        "Fees out as files, payments back as files, for a student financials system such as "
        "PeopleSoft Campus Solutions: SFTP, FTPS or a shared directory."
    )
    capabilities = frozenset({Capability.FILE_EXPORT, Capability.FILE_IMPORT})
    settings = SETTINGS
    sandbox_module = "apps.vendors.kinds.fileexchange.sandbox"
    contract = "apps/vendors/kinds/fileexchange/contract.md"
    service_url_help = (
        "The financials system's web address, for staff's reference (files do not move "
        "through it); for the demo, the sandbox's address."
    )

    file_preview_options = LAYOUT_OPTIONS

    @classmethod
    def clean_options(cls, options: dict[str, Any]) -> dict[str, str]:
        """The layout's rules across fields: a district layout has columns, and the
        delimiter is one character that no date or amount of the file contains."""
        errors: dict[str, str] = {}
        district = str(options.get("layout") or "peoplesoft") == "district"
        if district and not str(options.get("columns") or "").strip():
            errors["columns"] = "Pick at least one column for the district-defined layout."
        choice = str(options.get("delimiter") or ",")
        if choice == OTHER_DELIMITER and not str(options.get("delimiter_other") or ""):
            errors["delimiter_other"] = (
                "Type the delimiter character here, or choose one from the list above."
            )
            return errors
        date_format = str(options.get("date_format") or "%Y-%m-%d") if district else "%Y-%m-%d"
        problem = delimiter_problem(_delimiter(options), date_format=date_format)
        if problem:
            errors["delimiter_other" if choice == OTHER_DELIMITER else "delimiter"] = problem
        return errors

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        o = config.options
        self.transport = str(o.get("transport") or "sftp")
        self.outbound = str(o.get("outbound_dir") or "outbound").rstrip("/") or "."
        self.inbound = str(o.get("inbound_dir") or "inbound").rstrip("/") or "."
        archive = str(o.get("archive_dir") or "").rstrip("/")
        self.out_archive = archive or posixpath.join(self.outbound, "archive")
        self.in_archive = archive or posixpath.join(self.inbound, "archive")
        self.rejects = str(o.get("rejects_dir") or "").rstrip("/") or posixpath.join(
            self.inbound, "rejects"
        )
        self.quarantine = posixpath.join(self.inbound, "quarantine")
        self.completeness = str(o.get("completeness") or "marker")
        self.write_empty = bool(o.get("empty_export"))
        self.layout: Layout = layout_from_options(o)
        self.item_types = parse_item_types(str(o.get("item_types") or ""))
        self.term = str(o.get("term") or "")
        self.merchant_account = str(o.get("merchant_account") or "")
        self._refused: list[RefusedMovement] = []

    # --- connection ---------------------------------------------------------------------
    def _target(self) -> TransferTarget:
        creds = self.config.credentials
        o = self.config.options
        protocol: Protocol = "sftp" if self.transport == "sftp" else "ftps"
        host = str(o.get("host") or "").strip()
        if not host:
            raise VendorError("No file server is set for this file exchange.", permanent=True)
        return TransferTarget(
            protocol=protocol,
            host=host,
            port=int(o.get("port") or (22 if protocol == "sftp" else 21)),
            username=creds.get("username", ""),
            password=creds.get("password", ""),
            private_key=creds.get("private_key", ""),
            host_key=str(o.get("host_key") or ""),
            tls_ca_pem=str(o.get("tls_certificate") or ""),
            timeout=self.config.timeout,
        )

    def _store(self) -> _Store:
        if self.transport == "local":
            return _LocalStore(str(self.config.options.get("local_path") or ""))
        return _RemoteStore(self._target())

    @contextlib.contextmanager
    def _open(self) -> Iterator[_Store]:
        store: _Store | None = None
        try:
            store = self._store()
            yield store
        except TransferError as exc:
            raise VendorError(exc.message, permanent=exc.permanent) from exc
        except OSError as exc:
            raise VendorError(
                f"The file exchange's directory could not be used: {exc.strerror or exc} "
                f"({exc.filename or ''}).",
                permanent=False,
            ) from exc
        finally:
            if store is not None:
                with contextlib.suppress(Exception):
                    store.close()

    def _where(self) -> str:
        if self.transport == "local":
            return f"the directory {self.config.options.get('local_path') or '(not set)'}"
        o = self.config.options
        return f"{self.transport.upper()} server {o.get('host') or '(not set)'}"

    # --- checks ---------------------------------------------------------------------------
    def test_pull(self) -> CheckResult:
        started = time.monotonic()
        tried = f"List the inbound directory “{self.inbound}” on {self._where()}."
        try:
            with self._open() as store:
                files = [f for f in store.listdir(self.inbound) if not f.name.startswith(".")]
        except VendorError as exc:
            return CheckResult(False, tried, exc.message, self._elapsed_ms(started))
        except Exception as exc:  # never raise from a check
            return CheckResult(
                False,
                tried,
                f"Unexpected error: {type(exc).__name__}: {exc}.",
                self._elapsed_ms(started),
            )
        results = [f for f in files if not f.name.endswith(SKIPPED_SUFFIXES)]
        if results:
            answer = (
                f"The inbound directory can be read; {len(results)} result "
                f"file{'s are' if len(results) != 1 else ' is'} waiting there."
            )
        else:
            answer = "The inbound directory can be read; no result files are waiting."
        return CheckResult(True, tried, answer, self._elapsed_ms(started))

    def test_push(self) -> CheckResult:
        started = time.monotonic()
        name = f"feesync-probe-{int(time.time())}.tmp"
        tried = (
            f"Write a probe file {name} in the outbound directory “{self.outbound}” on "
            f"{self._where()}, then remove it."
        )
        try:
            with self._open() as store:
                store.upload(self.outbound, name, [b"FeeSync write test; safe to delete.\r\n"])
                store.remove(posixpath.join(self.outbound, name))
        except VendorError as exc:
            return CheckResult(False, tried, exc.message, self._elapsed_ms(started))
        except Exception as exc:
            return CheckResult(
                False,
                tried,
                f"Unexpected error: {type(exc).__name__}: {exc}.",
                self._elapsed_ms(started),
            )
        return CheckResult(
            True,
            tried,
            "The outbound directory accepts files: the probe was written and removed.",
            self._elapsed_ms(started),
        )

    # --- export ---------------------------------------------------------------------------
    def export_fees(
        self, fees: Iterable[FeeRecord], *, sequence: int, when: datetime, allow_empty: bool
    ) -> ExportedFile | None:
        name = f"feesync_fees_{when:%Y%m%d_%H%M%S}_{sequence:06d}.csv"
        totals = Totals()
        records: Iterable[FeeRecord] = fees
        if self.merchant_account:
            records = (_with_merchant(f, self.merchant_account) for f in fees)
        chunks = fee_file_chunks(
            records, layout=self.layout, item_types=self.item_types, term=self.term, totals=totals
        )
        # Built into a local spool first: the control totals go with the file, an empty
        # export writes nothing, and the archive copy is the same bytes.
        with tempfile.TemporaryFile() as spool:
            for chunk in chunks:
                spool.write(chunk)
            if totals.rows == 0 and not (allow_empty or self.write_empty):
                return None
            size = spool.tell()
            control = control_text(name, totals)
            with self._open() as store:
                for directory in (self.outbound, self.out_archive):
                    store.ensure_dir(directory)
                # Each under a temporary name, renamed when complete: a connection that
                # drops leaves nothing under the final name, and the run is retried whole.
                store.upload(self.outbound, name, _read_back(spool))
                store.upload(self.outbound, name[:-4] + ".ctl", [control])
                store.upload(self.out_archive, name, _read_back(spool))
                store.upload(self.out_archive, name[:-4] + ".ctl", [control])
        return ExportedFile(
            name=name,
            rows=totals.rows,
            total=totals.total,
            bytes=size,
            archived=posixpath.join(self.out_archive, name),
        )

    def file_preview(self, fees: Iterable[FeeRecord]) -> str:
        chunks = fee_file_chunks(
            fees, layout=self.layout, item_types=self.item_types, term=self.term, totals=Totals()
        )
        return b"".join(chunks).decode("utf-8-sig").replace("\r\n", "\n")

    # --- import ---------------------------------------------------------------------------
    def inbound_poll(self, *, cursor: str | None) -> InboundPoll:
        with self._open() as store:
            files = store.listdir(self.inbound)
        names = {f.name for f in files}
        candidates = {
            f.name: f.size
            for f in files
            if not f.name.startswith(".") and not f.name.endswith(SKIPPED_SUFFIXES)
        }
        if self.completeness == "stable":
            try:
                seen = json.loads(cursor or "{}")
            except ValueError:
                seen = {}
            ready = [n for n, size in candidates.items() if size > 0 and seen.get(n) == size]
            new_cursor = json.dumps(candidates, sort_keys=True)
        else:
            ready = [
                n
                for n in candidates
                if f"{n}.done" in names or f"{posixpath.splitext(n)[0]}.done" in names
            ]
            new_cursor = ""
        return InboundPoll(ready=sorted(ready), cursor=new_cursor)

    def inbound_read(self, name: str, into: IO[bytes]) -> None:
        with self._open() as store:
            store.fetch(posixpath.join(self.inbound, name), into)

    def inbound_lines(self, local: IO[bytes], *, check_only: bool = False) -> Iterator[InboundLine]:
        local.seek(0, os.SEEK_END)
        if local.tell() == 0:
            raise UnreadableFile("The file is empty: not even a header line.")
        local.seek(-1, os.SEEK_END)
        if local.read(1) != b"\n":
            raise UnreadableFile(
                "The file ends in the middle of a line: it was cut short while being written."
            )
        local.seek(0)
        text = io.TextIOWrapper(local, encoding="utf-8-sig", newline="")
        try:
            rows = read_rows(text, delimiter=self.layout.delimiter)
            try:
                first = next(rows)
            except StopIteration:
                raise UnreadableFile("The file has no header line.") from None
            if first.problem:
                raise UnreadableFile(f"The header line: {first.problem}")
            header = first.fields
            try:
                positions = result_header(header)
            except ValueError as exc:
                raise UnreadableFile(f"Wrong columns: {exc}") from None
            for row in rows:
                if not check_only:
                    yield self._line(row, header, positions)
        except UnicodeDecodeError as exc:
            raise UnreadableFile(
                f"The file is not UTF-8 text (byte {exc.start} cannot be read)."
            ) from None
        finally:
            text.detach()

    @staticmethod
    def _line(row: Row, header: list[str], positions: dict[str, int]) -> InboundLine:
        line = InboundLine(number=row.number, text=row.text)
        fields = row.fields
        if row.problem:
            line.error = row.problem
            return line
        if len(fields) != len(header):
            line.error = f"The line has {len(fields)} fields; the header has {len(header)}."
            return line
        # NUL is no text (PostgreSQL cannot even keep it): a damaged line, said by column.
        for i, field in enumerate(fields if "\x00" in row.text else ()):
            if "\x00" in field:
                line.error = (
                    f"Column {header[i].strip() or i + 1} holds a NUL character: the line is "
                    "damaged; ask the financials team to send it again."
                )
                return line

        def get(column: str) -> str:
            i = positions.get(column)
            return fields[i].strip() if i is not None else ""

        def named(column: str, words: str) -> str:
            """The column in words and as the file's header names it (an alias maybe)."""
            return f"{words} (column {header[positions[column]].strip()})"

        # Most lines have no field as long as the shortest limit: one pass says so.
        limits = FIELD_LIMITS.items() if max(map(len, fields), default=0) > SHORTEST_LIMIT else ()
        for column, (words, limit) in limits:
            if len(value := get(column)) > limit:
                line.error = (
                    f"The {named(column, words)} is {len(value)} characters long; it can be "
                    f"at most {limit}."
                )
                return line

        operation = get("operation").lower()
        kind = OPERATION_KINDS.get(operation)
        if kind is None:
            line.error = (
                f"Unknown operation “{get('operation')}” (column "
                f"{header[positions['operation']].strip()}): use pay, waive, dispute or restore."
            )
            return line
        transaction_id = get("transaction_id")
        if not transaction_id:
            line.error = f"The {named('transaction_id', 'transaction id')} is empty."
            return line
        reference = get("reference")
        if not reference:
            line.error = f"The {named('reference', 'fee reference')} is empty."
            return line
        amount_text = get("amount")
        if kind in (MovementKind.DISPUTE, MovementKind.RESTORE) and not amount_text:
            amount = Decimal("0.00")
        else:
            try:
                amount = parse_money(
                    amount_text,
                    label=f"The {named('amount', 'amount')}",
                    allow_zero=kind in (MovementKind.DISPUTE, MovementKind.RESTORE),
                )
            except MoneyError as exc:
                line.error = str(exc.message)
                return line
        method_word = get("method")
        method = METHODS.get(method_word.lower(), "online" if not method_word else "")
        reason = get("reason")
        if method_word and not method:
            # An unknown method never refuses money already taken: the word is kept.
            method = "online"
            reason = f"{reason} (method at the financials office: {method_word})".strip()
        line.payment = VendorPayment(
            payment_id=transaction_id,
            fee_ref=reference,
            student_id=get("student_id"),
            amount=amount,
            kind=kind,
            refers_to=get("original_transaction_id") or None,
            method=method,
            note=reason[:300],
        )
        return line

    def holdings(self) -> dict[str, Decimal] | None:
        """{fee reference: amount} of the charges the financials side holds, for the nightly
        full-file round trip; None where it cannot say. The sandbox keeps the export lines
        as its state and reports them on its control API at the service address; a real
        financials system reports nothing there (files do not move through it)."""
        if not self.config.base_url:
            return None
        url = self.config.base_url.rstrip("/") + "/_sandbox/state"
        try:
            answer = requests.get(url, timeout=self.config.timeout)
            fees = answer.json()["fees"] if answer.status_code == 200 else None
            if not isinstance(fees, list):
                return None
            return {
                str(f["fee_ref"]): parse_money(str(f["amount"]), label="The held amount")
                for f in fees
            }
        except (requests.RequestException, ValueError, KeyError, TypeError, MoneyError):
            return None

    def movements_refused(self, refused: Sequence[RefusedMovement]) -> None:
        self._refused.extend(refused)

    def take_refused(self) -> list[RefusedMovement]:
        """What the engine refused since the last call (for the rejects file)."""
        out, self._refused = self._refused, []
        return out

    def inbound_done(self, name: str, *, rejects: Sequence[InboundLine]) -> str:
        rejects_name = ""
        with self._open() as store:
            store.ensure_dir(self.in_archive)
            if rejects:
                store.ensure_dir(self.rejects)
                rejects_name = posixpath.join(self.rejects, f"{name}.rejects.csv")
                store.put(rejects_name, _rejects_text(name, rejects))
            store.move(posixpath.join(self.inbound, name), posixpath.join(self.in_archive, name))
            self._drop_marker(store, name)
        return rejects_name

    def inbound_quarantine(self, name: str, reason: str) -> str:
        where = posixpath.join(self.quarantine, name)
        with self._open() as store:
            store.ensure_dir(self.quarantine)
            store.move(posixpath.join(self.inbound, name), where)
            store.put(where + ".reason.txt", (reason + "\r\n").encode())
            self._drop_marker(store, name)
        return where

    def _drop_marker(self, store: _Store, name: str) -> None:
        for marker in (f"{name}.done", f"{posixpath.splitext(name)[0]}.done"):
            with contextlib.suppress(Exception):
                store.remove(posixpath.join(self.inbound, marker))


_delimiter = options_delimiter


def _with_merchant(fee: FeeRecord, merchant: str) -> FeeRecord:
    from dataclasses import replace

    return replace(fee, merchant_id=merchant)


def _read_back(spool: IO[bytes]) -> Iterator[bytes]:
    spool.seek(0)
    while block := spool.read(1 << 20):
        yield block


def _rejects_text(name: str, rejects: Sequence[InboundLine]) -> bytes:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["file", "line", "reason", "text"])
    for line in rejects:
        writer.writerow([name, line.number, line.error, _shown_text(line.text)])
    return out.getvalue().encode()


#: The most of a rejected line's text its rejects file repeats: enough to find the line, not
#: so much that a spreadsheet or a CSV reader cannot open the rejects file (the whole line
#: is in the archived file).
REJECTED_TEXT_MAX = 1000


def _shown_text(text: str) -> str:
    if len(text) <= REJECTED_TEXT_MAX:
        return text
    return f"{text[:REJECTED_TEXT_MAX]}… ({len(text):,} characters in all)"
