"""The Community Pass sandbox: Community Pass' JSON fee API (v1), served on loopback.

It speaks the contract in contract.md (beside this file): JSON over HTTP under `/v1`, an
API key in the `X-Api-Key` header, cursor pagination, money as two-decimal strings, and
errors as `{"error": {"code", "message", "request_id"}}`. State, the control API under
`/_sandbox/` and fault injection come from `apps.vendors.sandboxes`; this module adds the
endpoints, the JSON shape of every failure, and account balances that include fees entered
at the vendor (foreign fees).

Start it with `manage.py sandbox communitypass --port 8102`, `python -m
apps.vendors.kinds.communitypass.sandbox --port 8102`, or in a test with
`make_server(0).start()`. No Django import here: it runs standalone.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from apps.vendors.sandboxes.messages import Request, Response
from apps.vendors.sandboxes.server import (
    SandboxServer,
    VendorProtocol,
    sandbox_main,
    serve_until_stopped,
)
from apps.vendors.sandboxes.state import (
    CursorError,
    FeeInput,
    FeeProblem,
    PaymentRow,
    SandboxState,
    UpsertOutcome,
    fee_json,
)
from apps.vendors.sandboxes.values import ZERO, json_default, money_str, parse_money, utc_now_iso

DEFAULT_PORT = 8102
DEFAULT_API_KEY = "sandbox-key"  # documented sandbox credential, not a secret
API_VERSION = "v1"
API_ROOT = f"/{API_VERSION}"
API_KEY_HEADER = "x-api-key"

MAX_BATCH = 200  # fees per POST /v1/fees/batch
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
MAX_STUDENTS = 200  # student ids per GET /v1/payments or /v1/balances

_JSON = "application/json; charset=utf-8"
_FEE_REQUIRED = ("fee_ref", "version", "student_id", "amount", "amount_due", "fee_date", "active")

#: The error code and default wording of each HTTP status Community Pass answers with.
ERROR_CODES: dict[int, tuple[str, str]] = {
    400: ("invalid_request", "The request is not valid."),
    401: ("unauthorized", "The API key is missing or not valid."),
    403: ("forbidden", "This API key may not do that."),
    404: ("not_found", "There is nothing here."),
    405: ("method_not_allowed", "This method is not allowed here."),
    409: ("conflict", "The request conflicts with the current state."),
    415: ("unsupported_media_type", "Send the body as application/json."),
    422: ("unprocessable", "The request could not be processed."),
    429: ("rate_limited", "Too many requests."),
    500: (
        "internal_error",
        "Community Pass could not process the request because of an internal error."
        " Try again later.",
    ),
    502: ("bad_gateway", "Community Pass' gateway got no answer from its servers."),
    503: ("unavailable", "Community Pass is unavailable (maintenance). Try again later."),
    504: ("gateway_timeout", "Community Pass' gateway timed out."),
}


class ApiError(Exception):
    """Answered as a JSON error with `status`; `code` is the contract's error code."""

    def __init__(
        self, status: int, message: str | None = None, *, code: str | None = None, **extra: Any
    ) -> None:
        default_code, default_message = ERROR_CODES.get(status, ("error", "The request failed."))
        self.status = status
        self.code = code or default_code
        self.message = message or default_message
        self.extra = extra
        super().__init__(self.message)


def error_response(error: ApiError) -> Response:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    body.update(error.extra)
    body["request_id"] = f"req_{secrets.token_hex(8)}"
    response = Response(error.status, _dumps({"error": body}), _JSON)
    response.headers["X-Request-Id"] = body["request_id"]
    return response


def _dumps(data: object) -> bytes:
    return json.dumps(data, default=json_default, separators=(",", ":")).encode()


def _seconds(n: int) -> str:
    return "1 second" if n == 1 else f"{n} seconds"


def _ok(data: object, status: int = 200) -> Response:
    return Response(status, _dumps(data), _JSON)


# --- reading requests ------------------------------------------------------------------------


def _json_body(request: Request) -> dict[str, Any]:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media.lower() not in ("application/json", ""):
        raise ApiError(415, f"Send the body as application/json, not {media}.")
    try:
        # Floats become Decimal here only so that a money field sent as a JSON number can be
        # refused with a clear message (the contract wants strings) rather than mis-read.
        data = json.loads(request.body or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The body must be a JSON object.")
    return data


def _query_flag(request: Request, name: str) -> bool:
    value = request.query.get(name, ["false"])[-1].strip().lower()
    if value in ("true", "1", "yes", ""):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ApiError(400, f"{name} must be true or false, not {value!r}.")


def _limit(request: Request) -> int:
    raw = request.query.get("limit", [str(DEFAULT_LIMIT)])[-1]
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(
            400, f"limit must be a whole number, not {raw!r}.", code="bad_limit"
        ) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(
            400, f"limit must be between 1 and {MAX_LIMIT} (got {limit}).", code="bad_limit"
        )
    return limit


def _student_ids(request: Request, *, required: bool) -> list[str] | None:
    """`student_id=A,B` or `student_id=A&student_id=B` (both may be mixed)."""
    values = request.query.get("student_id")
    if values is None:
        if required:
            raise ApiError(400, "student_id is required (one or more, comma-separated).")
        return None
    ids = list(dict.fromkeys(s.strip() for v in values for s in v.split(",") if s.strip()))
    if not ids:
        raise ApiError(400, "student_id is empty.")
    if len(ids) > MAX_STUDENTS:
        raise ApiError(
            400,
            f"At most {MAX_STUDENTS} student ids may be sent at once (got {len(ids)}).",
            code="too_many_students",
        )
    return ids


def _money(value: object, what: str) -> Decimal:
    if not isinstance(value, str):
        # As it was written: 12.5 (read as a Decimal), not Decimal('12.5').
        shown = str(value) if isinstance(value, Decimal) else json.dumps(value)
        raise ValueError(f'{what} must be a decimal string such as "12.50", not {shown}')
    return parse_money(value, what=what)


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _fee_from_json(data: object) -> FeeInput | FeeProblem:
    if not isinstance(data, dict):
        return FeeProblem("", "Fee not accepted: each fee must be a JSON object.")
    raw_ref = data.get("fee_ref")
    fee_ref = raw_ref if isinstance(raw_ref, str) else ""
    try:
        missing = [k for k in _FEE_REQUIRED if data.get(k) in (None, "")]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        if not isinstance(raw_ref, str):
            raise ValueError("fee_ref must be a string")
        version = data["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError(f"version must be a whole number, not {version!r}")
        student_id = data["student_id"]
        if not isinstance(student_id, str):
            raise ValueError("student_id must be a string")
        active = data["active"]
        if not isinstance(active, bool):
            raise ValueError("active must be true or false")
        due = data.get("due_date")
        return FeeInput(
            fee_ref=raw_ref,
            version=version,
            student_id=student_id,
            student_name=_text(data, "student_name"),
            school_code=_text(data, "school_code"),
            category_code=_text(data, "category_code"),
            merchant_id=_text(data, "merchant_id"),
            description=_text(data, "description"),
            amount=_money(data["amount"], "amount"),
            amount_due=_money(data["amount_due"], "amount_due"),
            fee_date=_iso_date(data["fee_date"], "fee_date"),
            due_date=_iso_date(due, "due_date") if due is not None else None,
            active=active,
        )
    except ValueError as exc:
        return FeeProblem(fee_ref, f"Fee not accepted: {exc}.")


def _iso_date(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a date string YYYY-MM-DD")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a date (YYYY-MM-DD)") from None


def payment_out(payment: PaymentRow) -> dict[str, Any]:
    """A payment as the API shows it (the control API's `hidden`/`seq` are internal)."""
    return {
        "payment_id": payment.payment_id,
        "fee_ref": payment.fee_ref,
        "student_id": payment.student_id,
        "amount": money_str(payment.amount),
        "kind": payment.kind,
        "closed": payment.closed,
        "occurred_at": payment.occurred_at,
        "refers_to": payment.refers_to,
    }


# --- the state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountBalance:
    """What a student owes at Community Pass: every fee it is collecting, foreign included."""

    student_id: str
    balance: Decimal
    foreign_balance: Decimal
    open_fees: int


class CommunityPassState(SandboxState):
    """The common state with Community Pass' additions: account balances and a dry-run
    upsert (Test Push). Payment ids look like `CP-<epoch>-00000042`."""

    def __init__(self, path: str | None = None) -> None:
        super().__init__(path, id_prefix="CP")

    def account_balances(self, student_ids: Sequence[str]) -> dict[str, AccountBalance]:
        """Balance per student asked (0.00 for a student without fees): the sum of
        `amount_due` of every active fee, including fees only Community Pass has. A fee
        the district made inactive is no longer collected, so it is not owed here."""
        # Per student: what is due, what of it is Community Pass's own, how many fees owe.
        totals: dict[str, list[Decimal | int]] = {s: [ZERO, ZERO, 0] for s in student_ids}
        with self._read() as db:
            rows = db.execute(
                "SELECT student_id, amount_due, foreign_fee FROM fees"
                " WHERE active = 1 AND student_id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(student_ids)),),
            ).fetchall()
        for row in rows:
            due = Decimal(row["amount_due"])
            entry = totals[row["student_id"]]
            entry[0] += due
            if row["foreign_fee"]:
                entry[1] += due
            if due > 0:
                entry[2] += 1
        return {
            s: AccountBalance(s, Decimal(t[0]), Decimal(t[1]), int(t[2])) for s, t in totals.items()
        }

    def preview_upsert(self, fees: Sequence[FeeInput | FeeProblem]) -> list[UpsertOutcome]:
        """What `upsert_fees` would answer, without writing anything (dry run)."""
        outcomes: list[UpsertOutcome] = []
        would_hold: dict[str, int] = {}
        for fee in fees:
            if fee.fee_ref not in would_hold:
                held = self.get_fee(fee.fee_ref) if fee.fee_ref else None
                would_hold[fee.fee_ref] = held.version if held else 0
            held_version = would_hold[fee.fee_ref]
            if isinstance(fee, FeeProblem):
                outcomes.append(UpsertOutcome(fee.fee_ref, held_version, "rejected", fee.message))
                continue
            problem = self._validate(fee)
            if problem is not None:
                outcomes.append(UpsertOutcome(fee.fee_ref, held_version, "rejected", problem))
            elif held_version and fee.version <= held_version:
                outcomes.append(UpsertOutcome(fee.fee_ref, held_version, "stale"))
            else:
                would_hold[fee.fee_ref] = fee.version
                outcomes.append(UpsertOutcome(fee.fee_ref, fee.version, "accepted"))
        return outcomes

    def snapshot(self, student_id: str | None = None) -> dict[str, Any]:
        """The common snapshot, with `balances` as Community Pass reports them: the
        account balance of every student that has a fee here (see `account_balances`)."""
        data = super().snapshot(student_id)
        totals: dict[str, Decimal] = {}
        for fee in data["fees"]:
            due = Decimal(fee["amount_due"]) if fee["active"] else ZERO
            totals[fee["student_id"]] = totals.get(fee["student_id"], ZERO) + due
        data["balances"] = {s: money_str(b) for s, b in sorted(totals.items())}
        return data


# --- the protocol -------------------------------------------------------------------------------

Handler = Callable[[Request, dict[str, str]], Response]


class CommunityPassProtocol(VendorProtocol):
    """Routes `/v1/...` to the endpoints of the contract. Every endpoint but the API index
    needs the API key; every failure is a JSON error."""

    name = "Community Pass"

    def __init__(self, api_key: str = DEFAULT_API_KEY) -> None:
        self.api_key = api_key
        # (method, path pattern, handler, needs the key); the first match wins.
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = [
            ("GET", re.compile(r"/v1/?"), self.index, False),
            ("GET", re.compile(r"/v1/ping"), self.ping, True),
            ("POST", re.compile(r"/v1/fees/batch"), self.upsert_fees, True),
            ("GET", re.compile(r"/v1/fees"), self.list_fees, True),
            ("GET", re.compile(r"/v1/fees/(?P<fee_ref>[^/]+)"), self.get_fee, True),
            ("GET", re.compile(r"/v1/payments"), self.list_payments, True),
            ("GET", re.compile(r"/v1/balances"), self.balances, True),
        ]

    @property
    def state(self) -> CommunityPassState:
        state = self.server.state
        assert isinstance(state, CommunityPassState)  # noqa: S101 - wiring invariant
        return state

    # --- routing ------------------------------------------------------------------------
    def is_description(self, request: Request) -> bool:
        return request.method in ("GET", "HEAD") and request.path in (API_ROOT, API_ROOT + "/")

    def handle(self, request: Request) -> Response:
        try:
            response = self._route(request)
        except ApiError as error:
            response = error_response(error)
        response.headers.setdefault("X-Request-Id", f"req_{secrets.token_hex(8)}")
        return response

    def _route(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        allowed: list[str] = []
        for route_method, pattern, handler, needs_key in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            if needs_key:
                self.authenticate(request)
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            return handler(request, params)
        if allowed:
            error = error_response(ApiError(405, f"{request.method} is not allowed here."))
            error.headers["Allow"] = ", ".join(sorted(set(allowed)))
            return error
        raise ApiError(404, f"There is no endpoint {request.path}; the API is under {API_ROOT}/.")

    def authenticate(self, request: Request) -> None:
        given = request.headers.get(API_KEY_HEADER)
        if not given:
            raise ApiError(401, "The X-Api-Key header is missing; Community Pass requires one.")
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise ApiError(401, "The API key is not valid.")

    # --- faults in this vendor's shape ---------------------------------------------------
    def malformed_response(self, request: Request) -> Response:
        return Response(200, b'{"data":[{"payment_id":"CP-', _JSON)

    def protocol_fault_response(self, request: Request) -> Response:
        status = request.faults.status if request.faults is not None else 0
        return error_response(ApiError(status or 500))

    def busy_response(self, request: Request, status: int, retry_after: int) -> Response:
        if status == 429:
            error = ApiError(
                429,
                f"Too many requests for this API key; retry after {_seconds(retry_after)}.",
                retry_after=retry_after,
            )
        else:
            error = ApiError(
                status,
                "Community Pass is unavailable (maintenance);"
                f" retry after {_seconds(retry_after)}.",
                retry_after=retry_after,
            )
        return error_response(error)

    # --- endpoints -------------------------------------------------------------------------
    def index(self, request: Request, params: dict[str, str]) -> Response:
        return _ok(
            {
                "service": "Community Pass fee API (sandbox)",
                "version": API_VERSION,
                "authentication": "X-Api-Key header",
                "endpoints": [
                    "GET /v1/ping",
                    "POST /v1/fees/batch[?dry_run=true]",
                    "GET /v1/fees[?cursor=&limit=]",
                    "GET /v1/fees/{fee_ref}",
                    "GET /v1/payments[?cursor=&limit=&student_id=]",
                    "GET /v1/balances?student_id=",
                ],
                "documentation": "apps/vendors/kinds/communitypass/contract.md",
            }
        )

    def ping(self, request: Request, params: dict[str, str]) -> Response:
        return _ok({"ok": True, "version": API_VERSION, "server_time": utc_now_iso()})

    def upsert_fees(self, request: Request, params: dict[str, str]) -> Response:
        dry_run = _query_flag(request, "dry_run") if "dry_run" in request.query else False
        body = _json_body(request)
        fees = body.get("fees")
        if not isinstance(fees, list):
            raise ApiError(400, 'The body must be {"fees": [ ... ]}.')
        if not fees:
            raise ApiError(400, "Send at least one fee.", code="empty_batch")
        if len(fees) > MAX_BATCH:
            raise ApiError(
                400,
                f"At most {MAX_BATCH} fees may be sent in one batch (got {len(fees)}).",
                code="batch_too_large",
            )
        parsed = [_fee_from_json(f) for f in fees]
        outcomes = self.state.preview_upsert(parsed) if dry_run else self.state.upsert_fees(parsed)
        results = []
        for outcome in outcomes:
            result: dict[str, Any] = {
                "fee_ref": outcome.fee_ref,
                "version": outcome.version,
                "status": outcome.status,
            }
            if outcome.message:
                result["message"] = outcome.message
            results.append(result)
        return _ok({"dry_run": dry_run, "results": results})

    def _after(self, kind: str, request: Request) -> tuple[str | None, int]:
        cursor = request.query.get("cursor", [""])[-1] or None
        try:
            return cursor, self.state.decode_cursor(kind, cursor)
        except CursorError as exc:
            raise ApiError(
                400, f"{exc} Start again without a cursor.", code="invalid_cursor"
            ) from None

    def list_fees(self, request: Request, params: dict[str, str]) -> Response:
        cursor, after = self._after("f", request)
        page = self.state.fees_page(after, _limit(request))
        next_cursor = (
            self.state.encode_cursor("f", page.last_seq)
            if page.rows and page.last_seq is not None
            else cursor
        )
        return _ok(
            {
                "data": [fee_json(f) for f in page.rows],
                "next_cursor": next_cursor,
                "has_more": page.has_more,
            }
        )

    def get_fee(self, request: Request, params: dict[str, str]) -> Response:
        fee = self.state.get_fee(params["fee_ref"])
        if fee is None:
            raise ApiError(404, f"No fee {params['fee_ref']!r} is held at Community Pass.")
        return _ok(fee_json(fee))

    def list_payments(self, request: Request, params: dict[str, str]) -> Response:
        cursor, after = self._after("p", request)
        limit = _limit(request)
        student_ids = _student_ids(request, required=False)
        page = self.server.payments_page(after, limit, student_ids)
        # An empty page hands the caller's cursor back: its position is still right.
        next_cursor = (
            self.state.encode_cursor("p", page.last_seq)
            if page.rows and page.last_seq is not None
            else cursor
        )
        return _ok(
            {
                "data": [payment_out(p) for p in page.rows],
                "next_cursor": next_cursor,
                "has_more": page.has_more,
            }
        )

    def balances(self, request: Request, params: dict[str, str]) -> Response:
        ids = _student_ids(request, required=True) or []
        balances = self.state.account_balances(ids)
        return _ok(
            {
                "data": [
                    {
                        "student_id": b.student_id,
                        "balance": money_str(b.balance),
                        "foreign_balance": money_str(b.foreign_balance),
                        "open_fees": b.open_fees,
                    }
                    for b in (balances[s] for s in ids)
                ]
            }
        )


# --- entry points -----------------------------------------------------------------------------


def make_server(
    port: int,
    state_path: str | None = None,
    host: str = "127.0.0.1",
    *,
    api_key: str = DEFAULT_API_KEY,
    verbose: bool = False,
) -> SandboxServer:
    """A Community Pass sandbox bound to host:port (port 0: any free port), not yet serving.

    Call `serve_forever()` (blocking) or `start()` (a daemon thread), and `shutdown()`.
    `server.url` is the root; the API is under `url + "/v1"`, the control API under
    `url + "/_sandbox/"`. `state_path=None` keeps the state in a temporary file that
    `shutdown()` removes.
    """
    state = CommunityPassState(state_path)
    try:
        return SandboxServer(
            CommunityPassProtocol(api_key), state, host=host, port=port, verbose=verbose
        )
    except BaseException:
        state.close()
        raise


def run(
    port: int = DEFAULT_PORT,
    state_path: str | None = None,
    host: str = "127.0.0.1",
    *,
    verbose: bool = False,
) -> None:
    """Serve until interrupted. The API key comes from COMMUNITYPASS_SANDBOX_API_KEY,
    defaulting to sandbox-key."""
    server = make_server(
        port,
        state_path,
        host,
        api_key=os.environ.get("COMMUNITYPASS_SANDBOX_API_KEY", DEFAULT_API_KEY),
        verbose=verbose,
    )
    serve_until_stopped(
        server,
        f"Community Pass sandbox on {server.url}{API_ROOT} "
        f"(control {server.url}/_sandbox/, state {server.state.path})",
    )


def main(argv: list[str] | None = None) -> None:
    sandbox_main(
        argv, description="Run the Community Pass sandbox.", default_port=DEFAULT_PORT, run=run
    )


if __name__ == "__main__":
    main(sys.argv[1:])
