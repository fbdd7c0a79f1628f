"""The file-exchange sandbox: the district's student financials system (PeopleSoft-like)
on loopback. It serves SFTP (demo host key below, printed for pinning) over a directory
with `outbound/` (FeeSync's fee files, picked up and kept as its state) and `inbound/`
(the result files it writes), and the shared JSON control API under `/_sandbox/` on its
HTTP port: `pay`, `waive`, `dispute`, `restore` write a result file (with its `.done`
marker) into `inbound/`; `faults` with `{"file": "half_written"|"malformed"|"bad_amount"}`
makes the next result file broken that way; `layout` (the integration's layout options:
`layout`, `columns`, `header`, `delimiter`, `delimiter_other`, `date_format`, `encoding`)
sets up its loader the way the financials team would for that layout (until then it works
the columns out from each file's header line). No Django (contract.md beside this).
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import logging
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import SFTP_FAILURE, SFTP_OK

from apps.vendors.sandboxes.control import ControlAPI
from apps.vendors.sandboxes.fields import ControlError, required_str
from apps.vendors.sandboxes.messages import Request, Response
from apps.vendors.sandboxes.server import (
    SandboxServer,
    VendorProtocol,
    sandbox_main,
    serve_until_stopped,
)
from apps.vendors.sandboxes.state import FeeInput, SandboxState
from apps.vendors.sandboxes.values import money_str

from .layouts import (
    COLUMNS,
    FeeFileError,
    Layout,
    layout_from_options,
    read_fee_file,
    result_file_text,
)

DEFAULT_PORT = 8103
DEFAULT_USERNAME = "feesync"
DEFAULT_PASSWORD = "sandbox-secret"  # noqa: S105 - the demo's published sandbox login
#: The demo's fixed host key (a sandbox's, published on purpose so it can be pinned).
DEMO_HOST_KEY_PEM = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz
c2gtZWQyNTUxOQAAACCbFvlFWiqsIhWBo+rUxo78oriuN5N5i6ts+POXBwI/OgAA
AIicKr5VnCq+VQAAAAtzc2gtZWQyNTUxOQAAACCbFvlFWiqsIhWBo+rUxo78oriu
N5N5i6ts+POXBwI/OgAAAECc0oKW/BxHkVAXEZ6LQWRt2HQdZuO8LKwKnME+9r3I
hZsW+UVaKqwiFYGj6tTGjvyiuK43k3mLq2z485cHAj86AAAAAAECAwQF
-----END OPENSSH PRIVATE KEY-----
"""
HEADER_KEYS = {c.header: k for k, c in COLUMNS.items()}
FILE_FAULTS = ("half_written", "malformed", "bad_amount")


def demo_host_key() -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key(io.StringIO(DEMO_HOST_KEY_PEM))


def host_key_line(key: paramiko.PKey | None = None) -> str:
    key = key or demo_host_key()
    return f"{key.get_name()} {key.get_base64()} feesync-fileexchange-sandbox"


# --- SFTP over a directory -------------------------------------------------------------------


class _Handle(paramiko.SFTPHandle):
    def __init__(self, flags: int, fileobj: Any) -> None:
        super().__init__(flags)
        self.readfile = fileobj
        self.writefile = fileobj

    def stat(self) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.writefile.fileno()))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 0)


class DirectorySFTP(paramiko.SFTPServerInterface):
    """A directory on disk seen as '/'."""

    def __init__(self, server: paramiko.ServerInterface, root: str, *args: object) -> None:
        super().__init__(server)
        self.root = Path(root).resolve()

    def canonicalize(self, path: str) -> str:
        return os.path.normpath("/" + path.lstrip("/")).replace("//", "/")

    def _real(self, path: str) -> str:
        return str(self.root / self.canonicalize(path).lstrip("/"))

    def _errno(self, exc: OSError) -> int:
        return int(paramiko.SFTPServer.convert_errno(exc.errno or 0))

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> Any:
        try:
            fd = os.open(self._real(path), flags, 0o644)
        except OSError as exc:
            return self._errno(exc)
        if flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            mode = "r+b"
        else:
            mode = "rb"
        return _Handle(flags, os.fdopen(fd, mode))

    def list_folder(self, path: str) -> Any:
        real = self._real(path)
        try:
            out = []
            for name in os.listdir(real):
                attr = paramiko.SFTPAttributes.from_stat(os.lstat(os.path.join(real, name)))
                attr.filename = name
                out.append(attr)
            return out
        except OSError as exc:
            return self._errno(exc)

    def stat(self, path: str) -> Any:
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(self._real(path)))
        except OSError as exc:
            return self._errno(exc)

    lstat = stat

    def remove(self, path: str) -> int:
        try:
            os.remove(self._real(path))
        except OSError as exc:
            return self._errno(exc)
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        if os.path.exists(self._real(newpath)):
            return SFTP_FAILURE
        return self.posix_rename(oldpath, newpath)

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        try:
            os.replace(self._real(oldpath), self._real(newpath))
        except OSError as exc:
            return self._errno(exc)
        return SFTP_OK

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        try:
            os.mkdir(self._real(path))
        except OSError as exc:
            return self._errno(exc)
        return SFTP_OK

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_OK


class _Login(paramiko.ServerInterface):
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        #: Public keys (base64 blobs) that may sign in as `username` (`authorize_key`).
        self.keys: set[str] = set()

    def get_allowed_auths(self, username: str) -> str:
        return "password,publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == self.username and key.get_base64() in self.keys
        return AUTH_SUCCESSFUL if ok else AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        ok = username == self.username and password == self.password
        return AUTH_SUCCESSFUL if ok else AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class SFTPService:
    """SFTP on host:port over `root`, in daemon threads."""

    def __init__(self, root: Path, host: str, port: int, *, username: str, password: str) -> None:
        self.root = root
        self.key = demo_host_key()
        self.login = _Login(username, password)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.host, self.port = self.listener.getsockname()[:2]
        self._stop = threading.Event()
        self._transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._serve, name="sandbox-sftp", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def authorize_key(self, public_key_line: str) -> None:
        """Let the key of this OpenSSH public key line sign in (besides the password)."""
        self.login.keys.add(public_key_line.split()[1])

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.key)
            transport.set_subsystem_handler(
                "sftp", paramiko.SFTPServer, DirectorySFTP, str(self.root)
            )
            self._transports = [t for t in self._transports if t.is_active()] + [transport]
            with contextlib.suppress(Exception):
                transport.start_server(event=threading.Event(), server=self.login)

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()
        if self._thread.is_alive():
            self._thread.join(5)
        for t in self._transports:
            t.close()


# --- the financials side -----------------------------------------------------------------------


class FinancialsProtocol(VendorProtocol):
    """Nothing but the control API speaks HTTP here: the files move over SFTP."""

    name = "File exchange (financials sandbox)"

    def is_description(self, request: Request) -> bool:
        return False

    def handle(self, request: Request) -> Response:
        return Response.text(
            "This sandbox exchanges files over SFTP; its control API is under /_sandbox/.\n",
            404,
        )

    def malformed_response(self, request: Request) -> Response:
        return Response.text("<<not json", 200)

    def protocol_fault_response(self, request: Request) -> Response:
        return Response.text("Financials system error (sandbox).\n", 500)


class FileExchangeServer(SandboxServer):
    """The control API's server, with the SFTP service and the exchange directory."""

    def __init__(self, root: Path, sftp: SFTPService, **kwargs: Any) -> None:
        self.root = root
        self.sftp = sftp
        self.picked: set[str] = set()
        self.disputed: set[str] = set()
        self.next_file_fault = ""
        #: How its loader is set up to read fee files (`layout` control call); None: from
        #: each file's header line.
        self.layout: Layout | None = None
        #: Fee files its loader could not take: name -> why, in words.
        self.files_refused: dict[str, str] = {}
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        super().__init__(FinancialsProtocol(), **kwargs)
        self.control = FileControlAPI(self)
        for d in ("outbound", "inbound"):
            (root / d).mkdir(parents=True, exist_ok=True)

    # Fee files in, as the financials system's loader would take them.
    def pick_up(self) -> int:
        taken = 0
        with self._lock:
            for path in sorted((self.root / "outbound").glob("*.csv")):
                if path.name in self.picked:
                    continue
                fees = self._load(path)
                self.state.upsert_fees(fees)
                self.picked.add(path.name)
                taken += len(fees)
        return taken

    def _load(self, path: Path) -> list[FeeInput]:
        """The fee lines of one file, or none when the loader cannot take it (kept in
        `files_refused` with the reason, as a financials loader's error log would)."""
        try:
            return _fee_lines(path, self.layout)
        except (FeeFileError, UnicodeDecodeError) as exc:
            self.files_refused[path.name] = str(exc)
            return []

    def write_result(self, rows: list[dict[str, Any]]) -> str:
        fault, self.next_file_fault = self.next_file_fault, ""
        name = f"results_{next(self._seq):06d}_{os.getpid()}.csv"
        if fault == "bad_amount" and rows:
            # One bad line among good ones: FeeSync must reject it alone, by its number.
            rows = [{**rows[0], "amount": "12,34"}, *rows[1:]]
        # The result file in the delimiter of the fee files, as its layout says (the
        # contract: "the same delimiter as the fee files").
        text = result_file_text(rows, delimiter=self.layout.delimiter if self.layout else ",")
        if fault == "malformed":
            text = "who,what\r\n" + "x,y\r\n" * len(rows)
        inbound = self.root / "inbound"
        data = text.encode()
        if fault == "half_written":
            (inbound / name).write_bytes(data[: max(1, len(data) // 2)])  # no marker either
            return name
        temp = inbound / (name + ".part")
        temp.write_bytes(data)
        os.replace(temp, inbound / name)
        (inbound / (name + ".done")).write_bytes(b"")
        return name

    def shutdown(self) -> None:
        super().shutdown()
        self.sftp.stop()


def _file_sequence(path: Path) -> int:
    """The export's sequence number, the last part of its name (…_000012.csv); 1 if none."""
    tail = path.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 1


def _delimiter_of(header: str) -> str:
    """The delimiter of a fee file, from its header line: of the characters in it that are
    not part of a column name, the one that splits it into the most known column names (a
    district layout may use any; the loader is told which, the sandbox works it out)."""
    known = set(HEADER_KEYS) | set(COLUMNS)
    best, best_count = ",", 0
    for candidate in sorted({c for c in header.rstrip("\r\n") if not (c.isalnum() or c == "_")}):
        count = sum(1 for name in header.rstrip("\r\n").split(candidate) if name.strip() in known)
        if count > best_count:
            best, best_count = candidate, count
    return best


def _header_rows(f: Any) -> Iterator[tuple[int, dict[str, str]]]:
    """A loader not told the layout: the columns are named by the file's header line (the
    built-in layout's names or a district layout's keys), the delimiter worked out from it."""
    first = f.readline()
    f.seek(0)
    if first.startswith("\ufeff"):
        first = first[1:]
    reader = csv.reader(f, delimiter=_delimiter_of(first))
    header = next(reader, [])
    keys = [HEADER_KEYS.get(h.strip(), h.strip().lower()) for h in header]
    if header and "reference" not in keys:
        raise FeeFileError(
            f"The first line ({first.strip()!r}) names no reference column: a file without "
            "a header line is read only once the loader is set up with its layout."
        )
    for fields in reader:
        yield reader.line_num, dict(zip(keys, fields, strict=False))


def _day(text: str, layout: Layout | None, number: int, what: str) -> str:
    """An ISO date from a date column as the layout writes it."""
    if layout is None or not text:
        return text
    try:
        return datetime.strptime(text, layout.date_format).date().isoformat()  # noqa: DTZ007 - a day, no time
    except ValueError:
        raise FeeFileError(
            f"Line {number}: the {what} {text!r} is not a date written as {layout.date_format}."
        ) from None


def _fee_lines(path: Path, layout: Layout | None = None) -> list[FeeInput]:
    """The fee lines of an export file, read as the loader is set up (`layout`), or by the
    file's header line. Raises FeeFileError when it cannot take the file."""
    # The built-in layout carries no version: a later file's line is the newer one, so the
    # file's sequence stands in for it (else a changed fee sent again would be "stale").
    sequence = _file_sequence(path)
    # A byte-order mark or not, as the layout's encoding says: both are UTF-8 to a loader.
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = _header_rows(f) if layout is None else read_fee_file(f, layout=layout)
        out = []
        for number, row in rows:
            if not row.get("reference"):
                continue
            try:
                amount = Decimal(row.get("amount") or "0")
                due = Decimal(row.get("amount_due") or row.get("amount") or "0")
            except ArithmeticError:
                raise FeeFileError(f"Line {number}: an amount is not a number.") from None
            out.append(
                FeeInput(
                    fee_ref=row["reference"],
                    version=int(row.get("version") or sequence),
                    student_id=row.get("student_id", ""),
                    student_name=row.get("student_name", ""),
                    school_code=row.get("school", ""),
                    category_code=row.get("item_type", ""),
                    merchant_id=row.get("business_unit", ""),
                    description=row.get("description", ""),
                    amount=amount,
                    amount_due=due,
                    fee_date=_day(row.get("effective_date", ""), layout, number, "effective date")
                    or "2026-01-01",
                    due_date=_day(row.get("due_date", ""), layout, number, "due date") or None,
                    active=(row.get("status") or "open") == "open",
                )
            )
        return out


class FileControlAPI(ControlAPI):
    """The shared control API; every call first picks up new fee files, and what changes
    money at the financials side is written back as a result file."""

    server: FileExchangeServer

    def __init__(self, server: FileExchangeServer) -> None:
        super().__init__(server)
        self.routes[("POST", "dispute")] = self.dispute
        self.routes[("POST", "restore")] = self.restore
        self.routes[("POST", "pick_up")] = lambda d, r: {"fees": self.server.pick_up()}
        self.routes[("POST", "layout")] = self.set_layout

    def set_layout(self, data: dict[str, Any], request: Request) -> object:
        """Set the loader up for the integration's layout (its options, as stored): fee
        files picked up from now on are read that way."""
        try:
            layout = layout_from_options(data)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        self.server.layout = layout
        return {"layout": _layout_json(layout)}

    def handle(self, request: Request) -> Response:
        self.server.pick_up()
        return super().handle(request)

    @staticmethod
    def _row(op: str, record: dict[str, Any], reason: str = "") -> dict[str, Any]:
        payment = record["payment"]
        return {
            "reference": payment["fee_ref"],
            "student_id": payment.get("student_id", ""),
            "operation": op,
            "amount": payment["amount"],
            "method": "card",
            "reason": reason,
            "transaction_id": payment["payment_id"],
        }

    def _result(self, op: str, record: dict[str, Any], **extra: Any) -> dict[str, Any]:
        name = self.server.write_result([self._row(op, record, extra.get("reason", ""))])
        return {**record, "file": name}

    def pay(self, data: dict[str, Any], request: Request) -> object:
        if "payments" in data:  # the shared API's batch form: one result file, a line each
            many = data["payments"]
            if not isinstance(many, list) or not many:
                raise ControlError("payments must be a non-empty list.")
            records = self.state.pay([{**p, "allow_over": True} for p in many])
            name = self.server.write_result([self._row("pay", r) for r in records])
            return {"results": records, "file": name}
        record = self.state.pay([{**data, "allow_over": True}])[0]
        return self._result("pay", record)

    def waive(self, data: dict[str, Any], request: Request) -> object:
        record = super().waive(data, request)
        assert isinstance(record, dict)  # noqa: S101 - the shared API's own answer
        return self._result("waive", record, reason="Waived at the financials office")

    def _line(self, op: str, fee_ref: str) -> dict[str, Any]:
        fee = self.state.get_fee(fee_ref)
        if fee is None:
            raise ControlError(f"The financials side has no fee {fee_ref}.", 404)
        tid = f"FX-{op[:1].upper()}{next(self.server._seq):06d}"
        name = self.server.write_result(
            [
                {
                    "reference": fee_ref,
                    "student_id": fee.student_id,
                    "operation": op,
                    "amount": money_str(Decimal("0.00")),
                    "transaction_id": tid,
                }
            ]
        )
        return {"fee_ref": fee_ref, "transaction_id": tid, "file": name}

    def dispute(self, data: dict[str, Any], request: Request) -> object:
        fee_ref = required_str(data, "fee_ref")
        out = self._line("dispute", fee_ref)
        self.server.disputed.add(fee_ref)
        return out

    def restore(self, data: dict[str, Any], request: Request) -> object:
        fee_ref = required_str(data, "fee_ref")
        out = self._line("restore", fee_ref)
        self.server.disputed.discard(fee_ref)
        return out

    def get_state(self, data: dict[str, Any], request: Request) -> object:
        snapshot = super().get_state(data, request)
        assert isinstance(snapshot, dict)  # noqa: S101
        return {
            **snapshot,
            "disputed": sorted(self.server.disputed),
            "files_picked_up": sorted(self.server.picked),
            "files_refused": dict(sorted(self.server.files_refused.items())),
            "layout": _layout_json(self.server.layout) if self.server.layout else None,
            "sftp": {"port": self.server.sftp.port, "host_key": host_key_line()},
        }

    def post_faults(self, data: dict[str, Any], request: Request) -> object:
        file_fault = data.pop("file", None)
        if file_fault is not None:
            if file_fault not in FILE_FAULTS:
                raise ControlError(f"file must be one of {', '.join(FILE_FAULTS)}.")
            self.server.next_file_fault = str(file_fault)
            if not data:
                return {"file": file_fault}
        return super().post_faults(data, request)

    def reset(self, data: dict[str, Any], request: Request) -> object:
        out = super().reset(data, request)
        self.server.picked.clear()
        self.server.files_refused.clear()
        self.server.layout = None
        self.server.disputed.clear()
        self.server.next_file_fault = ""
        for d in ("outbound", "inbound"):
            for p in (self.server.root / d).rglob("*"):
                if p.is_file():
                    p.unlink()
        return out


def _layout_json(layout: Layout) -> dict[str, Any]:
    return {
        "columns": list(layout.columns),
        "header": layout.header,
        "delimiter": layout.delimiter,
        "date_format": layout.date_format,
        "encoding": layout.encoding,
    }


def make_server(
    port: int,
    state_path: str | None = None,
    host: str = "127.0.0.1",
    *,
    sftp_port: int | None = None,
    root: str | None = None,
    verbose: bool = False,
) -> FileExchangeServer:
    """The sandbox bound to host:port (0: any free port) with SFTP on `sftp_port` (None:
    port + 1, or any free port when port is 0), over `root` (None: beside the state file,
    or a temporary directory)."""
    if root is None:
        root = (
            str(Path(state_path).with_suffix("")) + "-files"
            if state_path
            else tempfile.mkdtemp(prefix="fileexchange-sandbox-")
        )
    files = Path(root)
    files.mkdir(parents=True, exist_ok=True)
    if sftp_port is None:
        sftp_port = port + 1 if port else 0
    sftp = SFTPService(files, host, sftp_port, username=DEFAULT_USERNAME, password=DEFAULT_PASSWORD)
    return FileExchangeServer(
        files,
        sftp,
        state=SandboxState(state_path, id_prefix="FX"),
        host=host,
        port=port,
        verbose=verbose,
    )


def start(server: FileExchangeServer) -> None:
    server.sftp.start()
    server.start()


def run(
    port: int = DEFAULT_PORT,
    state_path: str | None = None,
    host: str = "127.0.0.1",
    *,
    verbose: bool = False,
) -> None:
    # One line per SSH connection (and per client hanging up) would drown the demo's log.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    sftp_port = int(os.environ.get("FILEEXCHANGE_SANDBOX_SFTP_PORT", port + 1))
    server = make_server(port, state_path, host, sftp_port=sftp_port, verbose=verbose)
    server.sftp.start()
    serve_until_stopped(
        server,
        f"File-exchange sandbox: control API on {server.url}/_sandbox/, SFTP on "
        f"{host}:{server.sftp.port} (user {DEFAULT_USERNAME}, password {DEFAULT_PASSWORD}), "
        f"files in {server.root}\nPin this host key: {host_key_line()}",
    )


def main(argv: list[str] | None = None) -> None:
    sandbox_main(
        argv, description="Run the file-exchange sandbox.", default_port=DEFAULT_PORT, run=run
    )


if __name__ == "__main__":
    main(sys.argv[1:])
