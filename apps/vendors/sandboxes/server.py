"""The HTTP side of a sandbox: `SandboxServer`, a threaded HTTP/1.1 server on loopback that
routes `/_sandbox/...` to the JSON control API and everything else to a `VendorProtocol`
(the kind's sandbox module), after applying the injected fault mode; and what runs a
sandbox as a process (`serve_until_stopped`, `sandbox_main`).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from apps.vendors.sandboxes.control import ControlAPI
from apps.vendors.sandboxes.faults import FaultConfig
from apps.vendors.sandboxes.messages import Request, Response
from apps.vendors.sandboxes.state import Page, PaymentRow, SandboxState

# --- the vendor protocol hook ---------------------------------------------------------------


class VendorProtocol(ABC):
    """What a vendor module supplies: its endpoints, and how its protocol breaks.

    The server applies the generic fault modes (down, drop, drop_mid_answer, throttle,
    slow, error, no_wsdl) itself and asks the protocol only for the vendor-shaped ones.
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


# --- the HTTP server ------------------------------------------------------------------------


class _DropConnection(Exception):
    """Raised to close the connection without an answer (fault mode "drop")."""


class _CutConnection(Exception):
    """Raised with the answer the vendor computed (its work is done) to send only part of
    it and close the connection (fault mode "drop_mid_answer")."""

    def __init__(self, response: Response, cut_at: str) -> None:
        super().__init__(cut_at)
        self.response = response
        self.cut_at = cut_at


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
        except _CutConnection as cut:
            self._send_cut(cut.response, cut.cut_at)
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

    def _head(self, response: Response) -> bytes:
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
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")

    def _send_cut(self, response: Response, cut_at: str) -> None:
        """The answer's status line and headers (its full Content-Length announced), then
        half its body or none, then the connection closed: the client heard that the
        vendor answered but never the whole answer."""
        payload = self._head(response)
        if cut_at == "body":
            payload += response.body[: len(response.body) // 2]
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.write(payload)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response) -> None:
        # One write for head and body: fewer syscalls and no Nagle/delayed-ACK stall.
        payload = self._head(response)
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
        if mode == "drop_mid_answer":
            # The vendor does the work (stores the push, reads the page) and the answer is
            # lost on the way back: FeeSync must not take it for a failure it can forget,
            # nor for a success.
            raise _CutConnection(self.protocol.handle(request), faults.cut_at)
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


# --- running a sandbox as a process ------------------------------------------------------------


def serve_until_stopped(server: SandboxServer, banner: str) -> None:
    """Print `banner`, serve until Ctrl-C or SIGTERM, then shut down cleanly."""
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
    """The command line of a sandbox module (`python -m apps.vendors.kinds.KIND.sandbox`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state", default=None, help="SQLite state file (default: temporary)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    run(args.port, args.state, args.host, verbose=args.verbose)
