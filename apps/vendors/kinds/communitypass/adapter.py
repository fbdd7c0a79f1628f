"""The Community Pass adapter: FeeSync's side of Community Pass' JSON fee API (v1).

Contract: apps/vendors/kinds/communitypass/contract.md (JSON over HTTPS, `X-Api-Key` header, cursor
pagination, money as two-decimal strings). Built on one `requests.Session` per adapter;
every failure leaves as a `VendorError` in plain words.

`AdapterConfig.base_url` is the API root, e.g. "http://127.0.0.1:8102" (the adapter adds
"/v1") or "https://api.example.com/v1" (used as is).

Retries happen here, inside one call, only where a retry can help and cannot do harm:
on 5xx, on 429 (honouring Retry-After) and on connection failures; never on another 4xx,
and never on a read timeout (a slow vendor is backed off by the engine, not hammered).
Every request is safe to repeat: reads change nothing, and a fee upsert is keyed by fee
reference and version, so a batch that landed before its answer was lost is merely
"stale" the second time. The total time spent waiting between attempts is bounded; when
the vendor asks for a longer pause than is left, the adapter stops at once and hands the
vendor's Retry-After to the engine (`VendorError.retry_after`).

Options (`AdapterConfig.options`): `max_retries` (default 4), `retry_budget` (seconds of
waiting per call, default 20), `max_retry_after` (cap on one Retry-After, default 30),
`backoff_base` / `backoff_cap` (seconds, defaults 0.5 / 8: exponential backoff with
jitter when the vendor gives no Retry-After), `connect_timeout` (default: the smaller of
the timeout and 5 s), `page_size` (list_fees, default 1000). When a person is waiting
(`AdapterConfig.deadline`, a page's deadline), retries and every attempt end by then,
whatever the retry budget.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from apps.fees.money import MoneyError, parse_money
from apps.vendors.kinds.base import (
    BALANCE_SETTINGS,
    AdapterConfig,
    Capability,
    CheckResult,
    FeePage,
    FeeRecord,
    PaymentPage,
    PushResult,
    StudentBalance,
    VendorAdapter,
    VendorError,
    VendorFee,
    VendorPayment,
    movement_kind,
    secret_text,
)

API_VERSION = "v1"
MAX_PAGE = 1000  # the contract's largest `limit`
MAX_STUDENTS = 200  # student ids per payments or balances request
CENT = Decimal("0.01")
KINDS = frozenset({"payment", "refund", "waiver", "void"})
#: 4xx statuses that say "not now" rather than "never": not retried here (only 429 is),
#: but not permanent either, so the engine tries again later.
TRANSIENT_4XX = frozenset({404, 408, 409, 425, 429})
#: A cursor the adapter made up to walk a student filter longer than MAX_STUDENTS in
#: chunks: "<prefix><chunk index>:<the vendor's cursor within that chunk>".
_CHUNK_PREFIX = "feesync-chunk:"

T = TypeVar("T")


# --- small helpers ---------------------------------------------------------------------------


def _money_out(value: Any) -> str:
    """Money to the wire: a two-decimal string. Floats are refused: they are not money."""
    if isinstance(value, float):
        raise TypeError(f"money must be Decimal, not float ({value!r})")
    return str(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP))


def _money_in(value: Any, what: str) -> Decimal:
    """Money from the wire, read by the ledger's one strict parser (`parse_money`): "1e3",
    "12,50", "NaN" or three places are a breach of contract, never an amount. The contract
    sends decimal strings; a JSON number (which the decoder turns into a Decimal, never a
    float) is refused too. Zero and negative amounts are the ledger's to judge (a balance
    may be in credit), so they are read as sent."""
    if not isinstance(value, str):
        raise _BadReply(f'{what} was sent as {value!r}, not as a decimal string like "12.50"')
    try:
        return parse_money(value, label=what, allow_zero=True, allow_negative=True)
    except MoneyError as exc:
        raise _BadReply(" ".join(exc.messages)) from None


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP-date; None if absent or unreadable."""
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _seconds(value: float) -> str:
    return "1 second" if value == 1 else f"{value:g} seconds"


class _BadReply(Exception):
    """A reply that parsed but does not say what the contract says it must."""


class _Failure(Exception):
    """One failed attempt: the VendorError to raise, and whether another attempt may help."""

    def __init__(self, error: VendorError, *, retryable: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.retryable = retryable


class CommunityPassAdapter(VendorAdapter):
    kind = "communitypass"
    name = "Community Pass"
    description = (
        "JSON API with an API key. Fees, payments, account balances and portal lockout, "
        "nightly validation, demographics export."
    )
    capabilities = frozenset(
        {
            Capability.SEND,
            Capability.PULL,
            Capability.VALIDATE,
            Capability.BALANCES,
            Capability.DEMOGRAPHICS,
        }
    )
    requires_tests_before_import_date = True
    settings = {"api_key": secret_text("API key"), **BALANCE_SETTINGS}
    sandbox_module = "apps.vendors.kinds.communitypass.sandbox"
    contract = "apps/vendors/kinds/communitypass/contract.md"
    service_url_help = (
        "The root of Community Pass' API, e.g. https://api.communitypass.example (FeeSync "
        "adds /v1)."
    )
    push_batch_size = 200

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        self.api_root = self._api_root(config.base_url)
        options = config.options
        self.max_retries = max(0, int(options.get("max_retries", 4)))
        self.retry_budget = max(0.0, float(options.get("retry_budget", 20.0)))
        self.max_retry_after = max(0.0, float(options.get("max_retry_after", 30.0)))
        self.backoff_base = max(0.0, float(options.get("backoff_base", 0.5)))
        self.backoff_cap = max(0.0, float(options.get("backoff_cap", 8.0)))
        self.page_size = max(1, min(int(options.get("page_size", MAX_PAGE)), MAX_PAGE))
        connect = options.get("connect_timeout")
        self.timeouts = (
            float(connect) if connect is not None else min(config.timeout, 5.0),
            config.timeout,
        )
        self.session = requests.Session()
        # Retries are this adapter's (see the module docstring), never urllib3's as well.
        transport = HTTPAdapter(max_retries=0, pool_connections=4, pool_maxsize=8)
        self.session.mount("http://", transport)
        self.session.mount("https://", transport)
        self.session.headers.update(
            {"Accept": "application/json", "User-Agent": "FeeSync Community Pass adapter"}
        )
        #: Attempts made by the last request, retries included (for logs and tests).
        self.last_attempts = 0

    @staticmethod
    def _api_root(base_url: str) -> str:
        root = base_url.strip().rstrip("/")
        return root if root.endswith(f"/{API_VERSION}") else f"{root}/{API_VERSION}"

    # --- HTTP with retries --------------------------------------------------------------
    def _api_key(self) -> str:
        key = (self.config.credentials.get("api_key") or "").strip()
        if not key:
            raise VendorError(
                "Community Pass needs an API key; enter it in the integration's settings.",
                permanent=True,
            )
        return key

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        budget: float | None = None,
    ) -> Any:
        """One API call, retried as the module docstring says; returns the decoded JSON."""
        headers = {"X-Api-Key": self._api_key()}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, separators=(",", ":")).encode()
        url = f"{self.api_root}{path}"
        # The page that called (if any) caps the retry budget: a person waits on it.
        deadline = time.monotonic() + self.config.seconds_left(
            self.retry_budget if budget is None else budget
        )
        attempt = 0
        while True:
            attempt += 1
            self.last_attempts = attempt
            try:
                return self._attempt(method, url, params, data, headers)
            except _Failure as failure:
                error = failure.error
                if not failure.retryable or attempt > self.max_retries:
                    raise error from failure.__cause__
                wait = self._wait(attempt, error.retry_after)
                if wait is None or time.monotonic() + wait > deadline:
                    raise error from failure.__cause__
                time.sleep(wait)

    def _wait(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt; None when the vendor asks for a longer
        pause than this adapter waits (the engine then backs off for that long)."""
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        # Exponential backoff with "full jitter", so that workers do not retry in step.
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security

    def _attempt(
        self,
        method: str,
        url: str,
        params: dict[str, str] | None,
        data: bytes | None,
        headers: dict[str, str],
    ) -> Any:
        timeouts = self.timeouts
        if self.config.deadline is not None:
            # A retry late in a page's deadline gets only what is left of it.
            left = max(0.1, self.config.deadline - time.monotonic())
            timeouts = (min(timeouts[0], left), min(timeouts[1], left))
        try:
            response = self.session.request(
                method, url, params=params, data=data, headers=headers, timeout=timeouts
            )
        except requests.exceptions.ConnectTimeout as exc:  # before "Timeout": it is both
            raise _Failure(self._unreachable("the connection timed out"), retryable=True) from exc
        except requests.Timeout as exc:
            # The request may have arrived; a read timeout is not retried here.
            raise _Failure(
                VendorError(
                    f"Community Pass did not answer within {_seconds(self.config.timeout)}."
                ),
                retryable=False,
            ) from exc
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ) as exc:
            raise _Failure(
                VendorError(
                    f"The Community Pass address is not a valid URL ({exc}); check the"
                    " service address.",
                    permanent=True,
                ),
                retryable=False,
            ) from exc
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            # Community Pass began to answer and the connection broke: like a read timeout,
            # the request may have taken effect, so it is not repeated inside this call; the
            # engine asks again (a push is upserted by reference and version, a pull resumes
            # from the stored cursor).
            raise _Failure(
                VendorError(
                    "The connection was dropped while Community Pass was answering (the"
                    " request may have reached it); FeeSync will ask again."
                ),
                retryable=False,
            ) from exc
        except requests.ConnectionError as exc:
            raise _Failure(self._unreachable(self._why(exc)), retryable=True) from exc
        except requests.RequestException as exc:
            raise _Failure(
                VendorError(f"The request to Community Pass failed: {exc}."), retryable=False
            ) from exc
        if response.status_code >= 400:
            status = response.status_code
            raise _Failure(self._http_error(response), retryable=status == 429 or status >= 500)
        try:
            return json.loads(response.content, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Failure(
                VendorError(
                    "Community Pass sent a reply that is not valid JSON, so it could not be read."
                ),
                retryable=False,
            ) from exc

    # --- failures in plain words ----------------------------------------------------------
    def _unreachable(self, why: str) -> VendorError:
        host = urlsplit(self.api_root).netloc
        return VendorError(f"Community Pass' server could not be reached at {host}: {why}.")

    @staticmethod
    def _why(exc: BaseException) -> str:
        text = str(exc).lower()
        if "refused" in text:
            return "the connection was refused"
        if "name or service not known" in text or "getaddrinfo" in text or "resolve" in text:
            return "its host name could not be found"
        if any(w in text for w in ("aborted", "reset", "closed", "remotedisconnected")):
            return "the connection was dropped before Community Pass answered"
        if "ssl" in text or "certificate" in text:
            return "the secure connection (TLS) could not be set up"
        return "the network connection failed"

    @staticmethod
    def _vendor_says(response: requests.Response) -> tuple[str, str]:
        """The contract's error code and message, if the body is the contract's error."""
        try:
            error = json.loads(response.content).get("error")
        except (ValueError, UnicodeDecodeError, AttributeError):
            return "", ""
        if not isinstance(error, dict):
            return "", ""
        code, message = error.get("code"), error.get("message")
        return (
            code if isinstance(code, str) else "",
            message.strip().rstrip(".") if isinstance(message, str) else "",
        )

    def _http_error(self, response: requests.Response) -> VendorError:
        status = response.status_code
        label = f"HTTP {status} {response.reason or ''}".strip()
        retry_after = _retry_after(response.headers)
        code, said = self._vendor_says(response)
        because = f": {said}" if said else ""
        if status == 401:
            return VendorError(
                f"The API key was refused by Community Pass ({label}{because}). Check the"
                " API key in the integration's settings.",
                permanent=True,
            )
        if status == 403:
            return VendorError(
                f"Community Pass does not allow this API key to do that ({label}{because}).",
                permanent=True,
            )
        if status == 429:
            return VendorError(
                f"Community Pass is limiting requests ({label}); FeeSync will try again later.",
                retry_after=retry_after,
            )
        if status == 503:
            return VendorError(
                f"Community Pass' server is unavailable ({label}); FeeSync will try again later.",
                retry_after=retry_after,
            )
        if status >= 500:
            return VendorError(
                f"Community Pass' server failed ({label}{because}); FeeSync will try again later.",
                retry_after=retry_after,
            )
        if status == 404:
            # Every endpoint this adapter calls is a collection that always exists: a 404
            # means the address is wrong (or a proxy in front of Community Pass is).
            return VendorError(
                f"Community Pass answered {label} at {response.url}{because}: check the"
                " service address.",
                retry_after=retry_after,
            )
        detail = f"{said} ({code})" if said and code else said or label
        return VendorError(
            f"Community Pass rejected the request: {detail}.",
            permanent=status not in TRANSIENT_4XX,
            retry_after=retry_after,
        )

    @staticmethod
    def _unreadable(exc: Exception) -> VendorError:
        return VendorError(f"Community Pass' reply could not be understood: {exc}.")

    # --- checks -------------------------------------------------------------------------
    def test_pull(self) -> CheckResult:
        """Ping (authenticated, harmless), then read one payment."""
        started = time.monotonic()
        tried = (
            f"Ping Community Pass at {self.api_root}/ping and read one payment"
            " (it changes nothing there)."
        )
        try:
            self._request("GET", "/ping", budget=5.0)
            page = self.pull_payments(limit=1)
        except VendorError as exc:
            return CheckResult(False, tried, exc.message, self._elapsed_ms(started))
        except Exception as exc:  # never raise from a check
            return CheckResult(
                False,
                tried,
                f"Unexpected error talking to Community Pass: {type(exc).__name__}: {exc}.",
                self._elapsed_ms(started),
            )
        if page.payments:
            answer = "Community Pass accepted the API key and returned a payment"
            answer += " (more are waiting)." if page.has_more else "."
        else:
            answer = "Community Pass accepted the API key; it has no payments to report yet."
        return CheckResult(True, tried, answer, self._elapsed_ms(started))

    def test_push(self) -> CheckResult:
        """Send one made-up fee to the upsert endpoint as a dry run: validated, not kept."""
        started = time.monotonic()
        tried = (
            f"Send a test fee to Community Pass at {self.api_root}/fees/batch as a dry run"
            " (dry_run=true; it changes nothing there)."
        )
        fee_ref = f"FEESYNC-TEST-{uuid.uuid4().hex[:12].upper()}"
        today = datetime.now(UTC).date()
        probe = FeeRecord(
            fee_ref=fee_ref,
            version=1,
            student_id="FEESYNC-TEST",
            student_name="FeeSync test push",
            school_code="TEST",
            category_code="TEST",
            merchant_id="TEST",
            description="FeeSync connection test (dry run, never stored)",
            amount=Decimal("1.00"),
            amount_due=Decimal("1.00"),
            fee_date=today,
            due_date=None,
            active=True,
        )
        try:
            reply = self._request(
                "POST",
                "/fees/batch",
                params={"dry_run": "true"},
                body={"fees": [self._fee_payload(probe)]},
                budget=5.0,
            )
            dry_run = reply.get("dry_run") if isinstance(reply, dict) else None
            results = reply.get("results") if isinstance(reply, dict) else None
            result = results[0] if isinstance(results, list) and results else {}
        except VendorError as exc:
            return CheckResult(False, tried, exc.message, self._elapsed_ms(started))
        except Exception as exc:  # never raise from a check
            return CheckResult(
                False,
                tried,
                f"Unexpected error talking to Community Pass: {type(exc).__name__}: {exc}.",
                self._elapsed_ms(started),
            )
        if dry_run is not True:
            return CheckResult(
                False,
                tried,
                "Community Pass answered but did not confirm a dry run, so the test fee may"
                " have been stored; ask Community Pass to remove fee " + fee_ref + ".",
                self._elapsed_ms(started),
            )
        status = result.get("status") if isinstance(result, dict) else None
        if status != "accepted":
            message = result.get("message") if isinstance(result, dict) else None
            return CheckResult(
                False,
                tried,
                f"Community Pass would not accept a valid test fee ({status or 'no answer'}"
                f"{': ' + message if message else ''}).",
                self._elapsed_ms(started),
            )
        return CheckResult(
            True,
            tried,
            "Community Pass accepted the API key and would accept the test fee (nothing was"
            " stored).",
            self._elapsed_ms(started),
        )

    # --- fees ---------------------------------------------------------------------------
    @staticmethod
    def _fee_payload(fee: FeeRecord) -> dict[str, Any]:
        return {
            "fee_ref": fee.fee_ref,
            "version": int(fee.version),
            "student_id": fee.student_id,
            "student_name": fee.student_name,
            "school_code": fee.school_code,
            "category_code": fee.category_code,
            "merchant_id": fee.merchant_id,
            "description": fee.description,
            "amount": _money_out(fee.amount),
            "amount_due": _money_out(fee.amount_due),
            "fee_date": fee.fee_date.isoformat(),
            "due_date": fee.due_date.isoformat() if fee.due_date else None,
            "active": bool(fee.active),
        }

    def push_fees(self, fees: Sequence[FeeRecord]) -> PushResult:
        acknowledged: dict[str, int] = {}
        rejected: dict[str, str] = {}
        # More than one batch goes as several calls; if a later one fails the whole push
        # raises, and redelivering the earlier ones is harmless (versions).
        for batch in _chunks(list(fees), self.push_batch_size):
            try:
                payload = {"fees": [self._fee_payload(fee) for fee in batch]}
            except (TypeError, ArithmeticError, ValueError, AttributeError) as exc:
                raise VendorError(
                    f"FeeSync could not build the fees for Community Pass: {exc}.", permanent=True
                ) from exc
            reply = self._request("POST", "/fees/batch", body=payload)
            try:
                for result in reply["results"]:
                    fee_ref, status = str(result["fee_ref"]), result["status"]
                    if status in ("accepted", "stale"):
                        acknowledged[fee_ref] = int(result["version"])
                    else:
                        rejected[fee_ref] = str(
                            result.get("message") or "Community Pass rejected the fee."
                        )
            except (KeyError, TypeError, ValueError) as exc:
                raise self._unreadable(exc) from exc
        return PushResult(acknowledged=acknowledged, rejected=rejected)

    def list_fees(self, *, cursor: str | None = None) -> FeePage:
        params = {"limit": str(self.page_size)}
        if cursor:
            params["cursor"] = cursor
        reply = self._request("GET", "/fees", params=params)
        try:
            fees = [
                VendorFee(
                    fee_ref=str(f["fee_ref"]),
                    student_id=str(f["student_id"]),
                    amount=_money_in(f["amount"], "amount"),
                    amount_due=_money_in(f["amount_due"], "amount_due"),
                    version=int(f["version"]),
                    active=bool(f["active"]),
                    foreign=bool(f.get("foreign", False)),
                )
                for f in reply["data"]
            ]
            return FeePage(
                fees=fees,
                cursor=reply.get("next_cursor") or cursor,
                has_more=bool(reply.get("has_more")),
            )
        except (KeyError, TypeError, ValueError, _BadReply) as exc:
            raise self._unreadable(exc) from exc

    # --- payments -----------------------------------------------------------------------
    def pull_payments(
        self,
        *,
        cursor: str | None = None,
        student_ids: Sequence[str] | None = None,
        limit: int = 500,
    ) -> PaymentPage:
        params = {"limit": str(max(1, min(int(limit), MAX_PAGE)))}
        if student_ids is None:
            return self._payments_page(params, cursor)
        ids = list(dict.fromkeys(str(s) for s in student_ids))
        if not ids:  # nobody asked about: nothing to pull
            return PaymentPage(payments=[], cursor=cursor, has_more=False)
        if len(ids) <= MAX_STUDENTS:
            return self._payments_page({**params, "student_id": ",".join(ids)}, cursor)
        # More students than one request may name: walk them in chunks, one chunk after
        # the other, and keep the position in a cursor of our own.
        chunk, inner = self._chunk_cursor(cursor)
        chunks = list(_chunks(ids, MAX_STUDENTS))
        if chunk >= len(chunks):
            return PaymentPage(payments=[], cursor=cursor, has_more=False)
        page = self._payments_page({**params, "student_id": ",".join(chunks[chunk])}, inner)
        if page.has_more:
            next_cursor = f"{_CHUNK_PREFIX}{chunk}:{page.cursor or ''}"
        else:
            next_cursor = f"{_CHUNK_PREFIX}{chunk + 1}:"
        return PaymentPage(
            payments=page.payments,
            cursor=next_cursor,
            has_more=page.has_more or chunk + 1 < len(chunks),
        )

    @staticmethod
    def _chunk_cursor(cursor: str | None) -> tuple[int, str | None]:
        if not cursor:
            return 0, None
        if not cursor.startswith(_CHUNK_PREFIX):
            raise VendorError(
                "This cursor does not belong to a pull of this many students; start again"
                " without a cursor.",
                permanent=True,
            )
        index, _, inner = cursor.removeprefix(_CHUNK_PREFIX).partition(":")
        try:
            return int(index), inner or None
        except ValueError:
            raise VendorError(
                "The pull's cursor is damaged; start again.", permanent=True
            ) from None

    def _payments_page(self, params: dict[str, str], cursor: str | None) -> PaymentPage:
        if cursor:
            params = {**params, "cursor": cursor}
        reply = self._request("GET", "/payments", params=params)
        try:
            payments = [self._payment(p) for p in reply["data"]]
            # No next_cursor (an empty first page): keep the caller's position.
            return PaymentPage(
                payments=payments,
                cursor=reply.get("next_cursor") or cursor,
                has_more=bool(reply.get("has_more")),
            )
        except (KeyError, TypeError, ValueError, _BadReply) as exc:
            raise self._unreadable(exc) from exc

    @staticmethod
    def _payment(p: dict[str, Any]) -> VendorPayment:
        kind = str(p["kind"]).lower()
        if kind not in KINDS:
            raise _BadReply(f"payment {p.get('payment_id')} has an unknown kind {kind!r}")
        closed = p.get("closed", False)
        if not isinstance(closed, bool):
            raise _BadReply(f"payment {p.get('payment_id')} has closed={closed!r}")
        occurred = None
        if p.get("occurred_at"):
            occurred = datetime.fromisoformat(str(p["occurred_at"]).replace("Z", "+00:00"))
            if occurred.tzinfo is None:
                occurred = occurred.replace(tzinfo=UTC)  # the contract says UTC
        return VendorPayment(
            payment_id=str(p["payment_id"]),
            fee_ref=str(p["fee_ref"]),
            student_id=str(p["student_id"]),
            amount=_money_in(p["amount"], "amount"),
            kind=movement_kind(kind),
            closed=closed,
            occurred_at=occurred,
            refers_to=str(p["refers_to"]) if p.get("refers_to") else None,
        )

    # --- balances -----------------------------------------------------------------------
    def get_balances(self, student_ids: Sequence[str]) -> list[StudentBalance]:
        """Account balance per student as Community Pass reports it: everything owed
        there, fees entered only at Community Pass (foreign fees) included."""
        balances: list[StudentBalance] = []
        for batch in _chunks(list(dict.fromkeys(str(s) for s in student_ids)), MAX_STUDENTS):
            reply = self._request("GET", "/balances", params={"student_id": ",".join(batch)})
            try:
                balances.extend(
                    StudentBalance(
                        student_id=str(b["student_id"]),
                        balance=_money_in(b["balance"], "balance"),
                    )
                    for b in reply["data"]
                )
            except (KeyError, TypeError, ValueError, _BadReply) as exc:
                raise self._unreadable(exc) from exc
        return balances
