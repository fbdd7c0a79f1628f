"""The PaySchools adapter: FeeSync's side of PaySchools' SOAP fee service.

Contract: apps/vendors/kinds/payschools/contract.md (SOAP 1.1, document/literal, WS-Security
UsernameToken). Built on zeep; every failure leaves as a `VendorError` in plain words.

`AdapterConfig.base_url` is the SOAP endpoint, e.g. "http://127.0.0.1:8101/soap" (a bare
"http://host:port" means "/soap" there). The WSDL is read from `<endpoint>?wsdl` unless
`options["wsdl_url"]` says otherwise; operations always go to the configured endpoint,
whatever address the WSDL names. Options: `wsdl_url`, `password_digest` (send a
PasswordDigest instead of PasswordText), `list_page_size` (ListFees page, default 1000).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from django import forms
from lxml import etree
from zeep import Client, Settings
from zeep import exceptions as zeep_exceptions
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from apps.fees.money import MoneyError, parse_money
from apps.vendors.kinds.base import (
    LUNCH_SETTINGS,
    AdapterConfig,
    Capability,
    CheckResult,
    FeePage,
    FeeRecord,
    PaymentPage,
    PushResult,
    Setting,
    VendorAdapter,
    VendorError,
    VendorFee,
    VendorPayment,
    movement_kind,
    secret_text,
)

NAMESPACE = "urn:payschools:fees:v1"
BINDING = f"{{{NAMESPACE}}}PaySchoolsFeesSoapBinding"
MAX_PAGE = 1000  # the contract's PageLimit
MAX_STUDENTS = 1000  # StudentIds per call
CENT = Decimal("0.01")
#: SOAP fault codes (local names) that mean "these credentials will not do".
AUTH_FAULTS = frozenset(
    {"FailedAuthentication", "InvalidSecurity", "InvalidSecurityToken", "FailedCheck"}
)
#: HTTP statuses a retry can fix. Other 4xx are the request's or the account's fault.
TRANSIENT_4XX = frozenset({404, 408, 409, 425, 429})

T = TypeVar("T")


class _HttpStatusError(Exception):
    """An HTTP error answer that is not a SOAP message (an HTML 500, a 503, a 429...)."""

    def __init__(self, status: int, reason: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP-date: rare, and the engine's backoff covers it
        return None


class _Transport(Transport):
    """zeep's transport, but an HTTP error that is not a SOAP Fault becomes an exception
    carrying its status and Retry-After, instead of zeep's "Unknown fault occured"."""

    def post(self, address: str, message: Any, headers: dict[str, str]) -> requests.Response:
        # zeep's Transport is unannotated (untyped_calls_exclude does not reach super()).
        response: requests.Response = super().post(  # type: ignore[no-untyped-call]
            address, message, headers
        )
        if response.status_code >= 400:
            media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            is_soap = media in ("text/xml", "application/soap+xml", "application/xml")
            # SOAP 1.1 sends Faults with HTTP 500 and an XML body: let zeep read those.
            if not (response.status_code == 500 and is_soap):
                raise _HttpStatusError(
                    response.status_code, response.reason or "", _retry_after(response.headers)
                )
        return response


def _money(value: Any) -> Decimal:
    """Money to the wire: a Decimal with two places. Floats are refused: they are not money."""
    if isinstance(value, float):
        raise TypeError(f"money must be Decimal, not float ({value!r})")
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def _money_in(value: Any, what: str) -> Decimal:
    """Money from the wire, read by the ledger's one strict parser (`parse_money`). zeep
    turns an xsd:decimal into a Decimal however it was written, so the parser reads the
    Decimal's own text: "1E+3", "NaN" or three places are a breach of the contract, never
    an amount (rounding them, as this adapter once did, would post money nobody sent).
    Zero and negative amounts are the ledger's to judge (a balance may be in credit)."""
    if value is None or isinstance(value, bool | float):
        raise VendorError(f"PaySchools sent {what} as {value!r}, which is not an amount.")
    try:
        return parse_money(str(value), label=what, allow_zero=True, allow_negative=True)
    except MoneyError as exc:
        raise VendorError(
            f"PaySchools sent {what} that is not money: {' '.join(exc.messages)}"
        ) from None


def _items(value: Any, child: str) -> list[Any]:
    """The repeated `child` elements of a list wrapper as zeep returns it: zeep unwraps
    single-child responses, and an empty wrapper comes back as None."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    items = getattr(value, child, None)
    return list(items) if items else []


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class PaySchoolsAdapter(VendorAdapter):
    kind = "payschools"
    name = "PaySchools"
    description = (
        "SOAP web service with a username and password. Fees, payments, nightly "
        "validation, lunch balances, demographics over FTP/FTPS/SFTP."
    )
    capabilities = frozenset(
        {
            Capability.SEND,
            Capability.PULL,
            Capability.VALIDATE,
            Capability.LUNCH,
            Capability.DEMOGRAPHICS,
        }
    )
    settings = {
        "username": secret_text("Username"),
        "password": secret_text("Password"),
        "password_digest": Setting(
            forms.BooleanField(
                label="Send the password as a digest",
                required=False,
                initial=False,
                help_text="WS-Security PasswordDigest instead of PasswordText; only if "
                "PaySchools asked for it.",
            )
        ),
        **LUNCH_SETTINGS,
    }
    sandbox_module = "apps.vendors.kinds.payschools.sandbox"
    contract = "apps/vendors/kinds/payschools/contract.md"
    service_url_help = (
        "PaySchools' SOAP endpoint, e.g. https://fees.payschools.example/soap; the service "
        "description (WSDL) is read from it with ?wsdl."
    )
    push_batch_size = 200

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        self.service_url = self._service_url(config.base_url)
        self.wsdl_url = str(config.options.get("wsdl_url") or f"{self.service_url}?wsdl")
        self._service: Any = None
        self._client: Client | None = None
        self._lock = threading.Lock()

    # --- connection ---------------------------------------------------------------------
    @staticmethod
    def _service_url(base_url: str) -> str:
        parts = urlsplit(base_url.strip())
        path = parts.path if parts.path not in ("", "/") else "/soap"
        return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/") or "/soap", "", ""))

    def _timeout_words(self) -> str:
        return f"{self.config.timeout:g} seconds"

    def _service_proxy(self) -> Any:
        """The zeep service proxy, built once per adapter (the WSDL is read once)."""
        if self._service is not None:
            return self._service
        with self._lock:
            if self._service is None:
                username = self.config.credentials.get("username", "")
                password = self.config.credentials.get("password", "")
                if not username or not password:
                    raise VendorError(
                        "PaySchools needs a username and a password; enter them in the"
                        " integration's settings.",
                        permanent=True,
                    )
                session = requests.Session()
                # Both timeouts explicit: zeep's operation timeout is unlimited by default.
                # _Transport keeps zeep's unannotated __init__.
                transport = _Transport(  # type: ignore[no-untyped-call]
                    session=session,
                    timeout=self.config.timeout,
                    operation_timeout=self.config.timeout,
                )
                session.headers["User-Agent"] = "FeeSync PaySchools adapter"
                wsse = UsernameToken(
                    username, password, use_digest=bool(self.config.options.get("password_digest"))
                )
                try:
                    client = Client(
                        self.wsdl_url,
                        transport=transport,
                        wsse=wsse,
                        settings=Settings(strict=True, xml_huge_tree=True),
                    )
                    service = client.create_service(BINDING, self.service_url)
                except Exception as exc:
                    problem = self._translate(exc)
                    raise VendorError(
                        f"PaySchools' service description (WSDL) could not be loaded from"
                        f" {self.wsdl_url}: {problem.message}",
                        permanent=problem.permanent,
                        retry_after=problem.retry_after,
                    ) from exc
                self._client, self._service = client, service
        return self._service

    def _call(self, operation: str, **params: Any) -> Any:
        service = self._service_proxy()
        try:
            return getattr(service, operation)(**params)
        except Exception as exc:
            raise self._translate(exc) from exc

    # --- failures in plain words ----------------------------------------------------------
    def _translate(self, exc: BaseException) -> VendorError:
        """Any failure at the boundary -> a VendorError staff can read. `permanent` only
        when the same request cannot succeed later (credentials, a request PaySchools
        rejects as invalid); everything else is retried by the engine."""
        if isinstance(exc, VendorError):
            return exc
        if isinstance(
            exc,
            requests.exceptions.InvalidURL
            | requests.exceptions.MissingSchema
            | requests.exceptions.InvalidSchema,
        ):
            return VendorError(
                f"The PaySchools address is not a valid URL ({exc}); check the service address.",
                permanent=True,
            )
        if isinstance(exc, requests.Timeout):
            return VendorError(f"PaySchools did not answer within {self._timeout_words()}.")
        if isinstance(
            exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
        ):
            # PaySchools began to answer and the connection broke: the request may have
            # taken effect. Not permanent: a push is upserted by reference and version and
            # a pull resumes from the stored cursor, so asking again is harmless.
            return VendorError(
                "The connection was dropped while PaySchools was answering (the request may"
                " have reached it); FeeSync will ask again."
            )
        if isinstance(exc, requests.ConnectionError):
            text = str(exc)
            if "refused" in text.lower():
                why = "the connection was refused"
            elif "Name or service not known" in text or "getaddrinfo" in text:
                why = "its host name could not be found"
            elif "aborted" in text.lower() or "reset" in text.lower() or "closed" in text.lower():
                why = "the connection was dropped before PaySchools answered"
            else:
                why = "the network connection failed"
            host = urlsplit(self.service_url).netloc
            return VendorError(f"PaySchools' server could not be reached at {host}: {why}.")
        if isinstance(exc, _HttpStatusError):
            return self._http_error(exc.status, exc.reason, exc.retry_after)
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            response = exc.response
            return self._http_error(
                response.status_code, response.reason or "", _retry_after(response.headers)
            )
        if isinstance(exc, zeep_exceptions.Fault):
            return self._fault_error(exc)
        if isinstance(exc, zeep_exceptions.TransportError):
            if exc.status_code and exc.status_code != 200:
                return self._http_error(exc.status_code, "", None)
            return VendorError(
                "PaySchools sent a reply that is not valid XML, so it could not be read."
            )
        if isinstance(exc, zeep_exceptions.XMLSyntaxError | etree.XMLSyntaxError):
            return VendorError(
                "PaySchools sent a reply that is not valid XML, so it could not be read."
            )
        if isinstance(exc, zeep_exceptions.ValidationError):
            return VendorError(
                f"FeeSync could not build a valid PaySchools request: {exc}.", permanent=True
            )
        if isinstance(exc, zeep_exceptions.Error):
            return VendorError(f"PaySchools' reply could not be understood: {exc}.")
        if isinstance(exc, requests.RequestException):
            return VendorError(f"The request to PaySchools failed: {exc}.")
        return VendorError(f"Unexpected error talking to PaySchools: {type(exc).__name__}: {exc}.")

    def _http_error(self, status: int, reason: str, retry_after: float | None) -> VendorError:
        label = f"HTTP {status} {reason}".strip()
        if status == 429:
            return VendorError(
                f"PaySchools is limiting requests ({label}); FeeSync will try again later.",
                retry_after=retry_after,
            )
        if status == 503:
            return VendorError(
                f"PaySchools' server is unavailable ({label}); FeeSync will try again later.",
                retry_after=retry_after,
            )
        if status >= 500:
            return VendorError(
                f"PaySchools' server failed ({label}); FeeSync will try again later.",
                retry_after=retry_after,
            )
        if status == 404:
            return VendorError(
                f"PaySchools answered {label} at {self.service_url}: check the service address.",
                retry_after=retry_after,
            )
        if status in (401, 403):
            return VendorError(
                f"PaySchools refused access ({label}); check the username and password.",
                permanent=True,
            )
        return VendorError(
            f"PaySchools refused the request ({label}).",
            permanent=status not in TRANSIENT_4XX,
            retry_after=retry_after,
        )

    @staticmethod
    def _fault_error(fault: zeep_exceptions.Fault) -> VendorError:
        code = (fault.code or "").split(":")[-1].split("}")[-1]
        text = (fault.message or "no reason given").strip().rstrip(".")
        if code in AUTH_FAULTS:
            return VendorError(
                f"PaySchools refused the username or password ({text}).", permanent=True
            )
        if code == "Client":
            return VendorError(f"PaySchools rejected the request: {text}.", permanent=True)
        if not code:
            return VendorError(f"PaySchools answered with an error it did not explain: {text}.")
        return VendorError(f"PaySchools reported an error on its side: {text}.")

    # --- checks -------------------------------------------------------------------------
    def test_pull(self) -> CheckResult:
        started = time.monotonic()
        tried = f"Read one payment from PaySchools at {self.service_url}."
        try:
            page = self.pull_payments(limit=1)
        except VendorError as exc:
            return CheckResult(False, tried, exc.message, self._elapsed_ms(started))
        except Exception as exc:  # never raise from a check
            return CheckResult(
                False, tried, self._translate(exc).message, self._elapsed_ms(started)
            )
        if page.payments:
            answer = "PaySchools accepted the credentials and returned a payment"
            answer += " (more are waiting)." if page.has_more else "."
        else:
            answer = "PaySchools accepted the credentials; it has no payments to report yet."
        return CheckResult(True, tried, answer, self._elapsed_ms(started))

    def test_push(self) -> CheckResult:
        started = time.monotonic()
        token = f"FeeSync test push {uuid.uuid4().hex[:12]}"
        tried = (
            f"Send a test message to PaySchools at {self.service_url} (TestConnection; it"
            " changes nothing there)."
        )
        try:
            reply = self._call("TestConnection", Echo=token)
        except VendorError as exc:
            return CheckResult(False, tried, exc.message, self._elapsed_ms(started))
        except Exception as exc:  # never raise from a check
            return CheckResult(
                False, tried, self._translate(exc).message, self._elapsed_ms(started)
            )
        echoed = getattr(reply, "Echo", None)
        if echoed != token:
            return CheckResult(
                False,
                tried,
                f"PaySchools answered but did not send the test message back (got {echoed!r}).",
                self._elapsed_ms(started),
            )
        return CheckResult(
            True,
            tried,
            "PaySchools accepted the credentials and sent the test message back.",
            self._elapsed_ms(started),
        )

    # --- fees -----------------------------------------------------------------------------
    @staticmethod
    def _fee_payload(fee: FeeRecord) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "FeeRef": fee.fee_ref,
            "Version": fee.version,
            "StudentId": fee.student_id,
            "StudentName": fee.student_name,
            "SchoolCode": fee.school_code,
            "CategoryCode": fee.category_code,
            "MerchantId": fee.merchant_id,
            "Description": fee.description,
            "Amount": _money(fee.amount),
            "AmountDue": _money(fee.amount_due),
            "FeeDate": fee.fee_date,
            "Active": fee.active,
        }
        if fee.due_date is not None:
            payload["DueDate"] = fee.due_date
        return payload

    def push_fees(self, fees: Sequence[FeeRecord]) -> PushResult:
        acknowledged: dict[str, int] = {}
        rejected: dict[str, str] = {}
        # More than one batch is sent as several calls; if a later one fails the whole
        # push raises, and redelivering the earlier ones is harmless (versions).
        for batch in _chunks(list(fees), self.push_batch_size):
            try:
                payload = {"Fee": [self._fee_payload(fee) for fee in batch]}
            except (TypeError, ArithmeticError, ValueError) as exc:
                raise VendorError(
                    f"FeeSync could not build the fees for PaySchools: {exc}.", permanent=True
                ) from exc
            reply = self._call("UpsertFees", Fees=payload)
            for result in _items(reply, "Result"):
                status = str(result.Status)
                if status in ("accepted", "stale"):
                    acknowledged[result.FeeRef] = int(result.Version)
                else:
                    rejected[result.FeeRef] = result.Message or "PaySchools rejected the fee."
        return PushResult(acknowledged=acknowledged, rejected=rejected)

    def list_fees(self, *, cursor: str | None = None) -> FeePage:
        limit = max(1, min(int(self.config.options.get("list_page_size", MAX_PAGE)), MAX_PAGE))
        params: dict[str, Any] = {"Limit": limit}
        if cursor:
            params["Cursor"] = cursor
        reply = self._call("ListFees", **params)
        fees = [
            VendorFee(
                fee_ref=f.FeeRef,
                student_id=f.StudentId,
                amount=_money_in(f.Amount, f"the amount of fee {f.FeeRef}"),
                amount_due=_money_in(f.AmountDue, f"the amount due of fee {f.FeeRef}"),
                version=int(f.Version),
                active=bool(f.Active),
                foreign=bool(f.Foreign),
            )
            for f in _items(reply.Fees, "Fee")
        ]
        return FeePage(fees=fees, cursor=reply.NextCursor or cursor, has_more=bool(reply.HasMore))

    # --- payments ---------------------------------------------------------------------------
    def pull_payments(
        self,
        *,
        cursor: str | None = None,
        student_ids: Sequence[str] | None = None,
        limit: int = 500,
    ) -> PaymentPage:
        params: dict[str, Any] = {"Limit": max(1, min(int(limit), MAX_PAGE))}
        if cursor:
            params["Cursor"] = cursor
        if student_ids is not None:
            ids = list(dict.fromkeys(student_ids))
            if not ids:  # nobody asked about: nothing to pull
                return PaymentPage(payments=[], cursor=cursor, has_more=False)
            if len(ids) > MAX_STUDENTS:
                raise VendorError(
                    f"PaySchools accepts at most {MAX_STUDENTS} students per pull"
                    f" ({len(ids)} were asked).",
                    permanent=True,
                )
            params["StudentIds"] = {"StudentId": ids}
        reply = self._call("GetPayments", **params)
        payments = [self._payment(p) for p in _items(reply.Payments, "Payment")]
        # No NextCursor (an empty first page): keep the caller's position.
        return PaymentPage(
            payments=payments, cursor=reply.NextCursor or cursor, has_more=bool(reply.HasMore)
        )

    @staticmethod
    def _payment(p: Any) -> VendorPayment:
        occurred = p.OccurredAt
        if isinstance(occurred, datetime) and occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)  # the contract says UTC
        return VendorPayment(
            payment_id=p.PaymentId,
            fee_ref=p.FeeRef,
            student_id=p.StudentId,
            amount=_money_in(p.Amount, f"the amount of payment {p.PaymentId}"),
            kind=movement_kind(str(p.Kind)),
            closed=bool(p.Closed),
            occurred_at=occurred,
            refers_to=p.RefersTo or None,
        )

    # --- optional capabilities ----------------------------------------------------------------
    def get_lunch_balances(self, student_ids: Sequence[str]) -> dict[str, Decimal]:
        balances: dict[str, Decimal] = {}
        for batch in _chunks(list(dict.fromkeys(student_ids)), MAX_STUDENTS):
            reply = self._call("GetLunchBalances", StudentIds={"StudentId": list(batch)})
            for item in _items(reply, "Balance"):
                balances[item.StudentId] = _money_in(
                    item.Balance, f"the lunch balance of student {item.StudentId}"
                )
        return balances
