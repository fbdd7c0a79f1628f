"""The PaySchools sandbox: PaySchools' SOAP 1.1 fee service, served on loopback.

It speaks the contract in contract.md (beside this file): the WSDL next to this file (served at
`GET /soap?wsdl` with the real address filled in), document/literal operations at
`POST /soap`, WS-Security UsernameToken (PasswordText or PasswordDigest) on every
operation. State, the control API under `/_sandbox/` and fault injection come from
`apps.vendors.sandboxes`.

Start it with `manage.py sandbox payschools --port 8101`, `python -m
apps.vendors.kinds.payschools.sandbox --port 8101`, or in a test with `make_server(0).start()`.
No Django import here: it runs standalone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from lxml import etree

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
    SandboxState,
    UpsertOutcome,
)
from apps.vendors.sandboxes.values import money_str, parse_money, utc_now_iso

DEFAULT_PORT = 8101
DEFAULT_USERNAME = "feesync"
DEFAULT_PASSWORD = "sandbox-secret"  # noqa: S105 - documented sandbox credential, not a secret
SERVICE_PATH = "/soap"
WSDL_FILE = Path(__file__).with_name("payschools.wsdl")

NS = "urn:payschools:fees:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSS_DIGEST_TYPE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)

MAX_BATCH = 200
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
MAX_STUDENTS = 1000

_XML = "text/xml; charset=utf-8"
# No entities, no network, no DTD: a SOAP endpoint must not be an XXE endpoint.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


class SoapFault(Exception):
    """Answered as a SOAP 1.1 Fault (HTTP 500). `code` goes into the PaySchoolsFault detail."""

    def __init__(self, faultcode: str, faultstring: str, code: str) -> None:
        super().__init__(faultstring)
        self.faultcode = faultcode
        self.faultstring = faultstring
        self.code = code


def _client_fault(message: str, code: str = "InvalidRequest") -> SoapFault:
    return SoapFault("soap:Client", message, code)


def fault_response(fault: SoapFault) -> Response:
    nsmap = {"soap": SOAP_ENV, "ps": NS, "wsse": WSSE}
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap)
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    node = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    # faultcode/faultstring/detail are unqualified in SOAP 1.1.
    etree.SubElement(node, "faultcode").text = fault.faultcode
    etree.SubElement(node, "faultstring").text = fault.faultstring
    detail = etree.SubElement(node, "detail")
    info = etree.SubElement(detail, _q("PaySchoolsFault"))
    etree.SubElement(info, _q("Code")).text = fault.code
    etree.SubElement(info, _q("Message")).text = fault.faultstring
    return Response(500, etree.tostring(envelope, xml_declaration=True, encoding="utf-8"), _XML)


def _envelope(payload: etree._Element) -> Response:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(payload)
    return Response(200, etree.tostring(envelope, xml_declaration=True, encoding="utf-8"), _XML)


def _add(parent: etree._Element, name: str, text: str) -> None:
    etree.SubElement(parent, _q(name)).text = text


def _bool(value: bool) -> str:
    return "true" if value else "false"


# --- reading request elements ------------------------------------------------------------------


def _children(element: etree._Element) -> dict[str, str]:
    """Child element texts by local name (namespaces are checked on the operation only)."""
    return {
        etree.QName(child).localname: (child.text or "").strip()
        for child in element
        if isinstance(child.tag, str)
    }


def _text(element: etree._Element, name: str) -> str | None:
    child = element.find(_q(name))
    if child is None:
        return None
    return (child.text or "").strip()


def _int(value: str | None, what: str, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise _client_fault(f"{what} is required.")
        return default
    try:
        return int(value)
    except ValueError:
        raise _client_fault(f"{what} must be a whole number, not {value!r}.") from None


def _xsd_bool(value: str, what: str) -> bool:
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError(f"{what} must be true or false, not {value!r}")


def _xsd_date(value: str, what: str) -> str:
    # xsd:date may carry a time zone ("2025-09-01Z", "2025-09-01+02:00"); the date is what counts.
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a date (YYYY-MM-DD)") from None


def _student_ids(element: etree._Element | None) -> list[str]:
    if element is None:
        return []
    ids = [(child.text or "").strip() for child in element.iter(_q("StudentId"))]
    if len(ids) > MAX_STUDENTS:
        raise _client_fault(
            f"At most {MAX_STUDENTS} StudentIds may be sent at once (got {len(ids)}).",
            "TooManyStudents",
        )
    return [i for i in ids if i]


def _limit(payload: etree._Element) -> int:
    limit = _int(_text(payload, "Limit"), "Limit", DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise _client_fault(f"Limit must be between 1 and {MAX_LIMIT} (got {limit}).", "BadLimit")
    return limit


def _fee_from_xml(element: etree._Element) -> FeeInput | FeeProblem:
    fields = _children(element)
    fee_ref = fields.get("FeeRef", "")
    try:
        missing = [
            name
            for name in (
                "FeeRef",
                "Version",
                "StudentId",
                "Amount",
                "AmountDue",
                "FeeDate",
                "Active",
            )
            if not fields.get(name)
        ]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        due = fields.get("DueDate")
        return FeeInput(
            fee_ref=fee_ref,
            version=int(fields["Version"]),
            student_id=fields["StudentId"],
            student_name=fields.get("StudentName", ""),
            school_code=fields.get("SchoolCode", ""),
            category_code=fields.get("CategoryCode", ""),
            merchant_id=fields.get("MerchantId", ""),
            description=fields.get("Description", ""),
            amount=parse_money(fields["Amount"], what="Amount"),
            amount_due=parse_money(fields["AmountDue"], what="AmountDue"),
            fee_date=_xsd_date(fields["FeeDate"], "FeeDate"),
            due_date=_xsd_date(due, "DueDate") if due else None,
            active=_xsd_bool(fields["Active"], "Active"),
        )
    except ValueError as exc:
        return FeeProblem(fee_ref, f"Fee not accepted: {exc}.")


def _result(parent: etree._Element, name: str, outcome: UpsertOutcome) -> None:
    node = etree.SubElement(parent, _q(name))
    _add(node, "FeeRef", outcome.fee_ref)
    _add(node, "Version", str(outcome.version))
    _add(node, "Status", outcome.status)
    if outcome.message:
        _add(node, "Message", outcome.message)


# --- the protocol --------------------------------------------------------------------------


class PaySchoolsProtocol(VendorProtocol):
    name = "PaySchools"

    def __init__(self, username: str = DEFAULT_USERNAME, password: str = DEFAULT_PASSWORD) -> None:
        self.username = username
        self.password = password
        self._wsdl_template = WSDL_FILE.read_text(encoding="utf-8")
        self._operations: dict[str, Callable[[etree._Element], etree._Element]] = {
            "UpsertFees": self.upsert_fees,
            "MarkFeeInactive": self.mark_fee_inactive,
            "GetPayments": self.get_payments,
            "ListFees": self.list_fees,
            "GetLunchBalances": self.get_lunch_balances,
            "TestConnection": self.test_connection,
        }

    # --- routing ------------------------------------------------------------------------
    def is_description(self, request: Request) -> bool:
        if request.method not in ("GET", "HEAD"):
            return False
        if request.path.rstrip("/") in ("", SERVICE_PATH):
            return any(key.lower() == "wsdl" for key in request.query)
        return request.path == f"{SERVICE_PATH}/payschools.wsdl"

    def handle(self, request: Request) -> Response:
        if self.is_description(request):
            return self.wsdl(request)
        if request.path.rstrip("/") != SERVICE_PATH:
            return Response.text(f"Not Found: the PaySchools service is at {SERVICE_PATH}.\n", 404)
        if request.method in ("GET", "HEAD"):
            return Response.text(
                f"PaySchools fee service (sandbox). POST SOAP 1.1 requests here; "
                f"the WSDL is at {SERVICE_PATH}?wsdl.\n"
            )
        if request.method != "POST":
            return Response.text("Method Not Allowed\n", 405)
        try:
            return self.dispatch(request.body)
        except SoapFault as fault:
            return fault_response(fault)

    def wsdl(self, request: Request) -> Response:
        # The address clients reached us at, so the WSDL stays right behind a port-forward.
        root = f"http://{request.host}" if request.host else self.server.url
        text = self._wsdl_template.replace("{{SERVICE_URL}}", root + SERVICE_PATH)
        return Response(200, text.encode("utf-8"), _XML)

    def malformed_response(self, request: Request) -> Response:
        body = (
            b'<?xml version="1.0" encoding="utf-8"?>\n'
            b'<soap:Envelope xmlns:soap="' + SOAP_ENV.encode() + b'"><soap:Body>'
            b'<ps:GetPaymentsResponse xmlns:ps="' + NS.encode() + b'"><ps:Payments><ps:Pay'
        )
        return Response(200, body, _XML)

    def protocol_fault_response(self, request: Request) -> Response:
        return fault_response(
            SoapFault(
                "soap:Server",
                "PaySchools could not process the request because of an internal error."
                " Try again later.",
                "InternalError",
            )
        )

    # --- SOAP -----------------------------------------------------------------------------
    def dispatch(self, body: bytes) -> Response:
        try:
            root = etree.fromstring(body, _PARSER)  # noqa: S320 - hardened parser above
        except etree.XMLSyntaxError as exc:
            raise _client_fault(f"The request is not well-formed XML: {exc}.", "BadXml") from None
        if root.getroottree().docinfo.doctype:
            raise _client_fault("Document type declarations are not accepted.", "BadXml")
        if root.tag == f"{{{SOAP12_ENV}}}Envelope":
            raise SoapFault(
                "soap:VersionMismatch", "PaySchools speaks SOAP 1.1.", "VersionMismatch"
            )
        if root.tag != f"{{{SOAP_ENV}}}Envelope":
            raise _client_fault("The request is not a SOAP 1.1 envelope.", "NotSoap")
        body_el = root.find(f"{{{SOAP_ENV}}}Body")
        payload = None
        if body_el is not None:
            payload = next((c for c in body_el if isinstance(c.tag, str)), None)
        if payload is None:
            raise _client_fault("The SOAP Body is empty.", "NotSoap")
        self.authenticate(root.find(f"{{{SOAP_ENV}}}Header"))
        qname = etree.QName(payload)
        operation = self._operations.get(qname.localname) if qname.namespace == NS else None
        if operation is None:
            raise _client_fault(
                f"PaySchools has no operation {qname.localname!r} in namespace {qname.namespace}.",
                "UnknownOperation",
            )
        return _envelope(operation(payload))

    def authenticate(self, header: etree._Element | None) -> None:
        token = None
        if header is not None:
            token = header.find(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            raise SoapFault(
                "wsse:InvalidSecurity",
                "The request has no WS-Security UsernameToken; PaySchools requires one.",
                "AuthenticationRequired",
            )
        username = (token.findtext(f"{{{WSSE}}}Username") or "").strip()
        password_el = token.find(f"{{{WSSE}}}Password")
        given = (password_el.text or "") if password_el is not None else ""
        if password_el is not None and password_el.get("Type") == WSS_DIGEST_TYPE:
            # PasswordDigest = Base64(SHA-1(nonce + created + password)).
            try:
                nonce = base64.b64decode(token.findtext(f"{{{WSSE}}}Nonce") or "")
            except binascii.Error:
                nonce = b""
            created = token.findtext(f"{{{WSU}}}Created") or ""
            raw = nonce + created.encode() + self.password.encode()
            expected = base64.b64encode(hashlib.sha1(raw).digest()).decode()  # noqa: S324 - WSS spec
        else:
            expected = self.password
        user_ok = hmac.compare_digest(username.encode(), self.username.encode())
        password_ok = hmac.compare_digest(given.encode(), expected.encode())
        if not (user_ok and password_ok):
            raise SoapFault(
                "wsse:FailedAuthentication",
                "Authentication failed: the username or password is not correct.",
                "AuthenticationFailed",
            )

    # --- operations -------------------------------------------------------------------------
    @property
    def state(self) -> SandboxState:
        return self.server.state

    def upsert_fees(self, payload: etree._Element) -> etree._Element:
        container = payload.find(_q("Fees"))
        fees = [] if container is None else container.findall(_q("Fee"))
        if not fees:
            raise _client_fault("UpsertFees needs at least one Fee.", "EmptyBatch")
        if len(fees) > MAX_BATCH:
            raise _client_fault(
                f"At most {MAX_BATCH} fees may be sent in one UpsertFees (got {len(fees)}).",
                "BatchTooLarge",
            )
        outcomes = self.state.upsert_fees([_fee_from_xml(f) for f in fees])
        response = etree.Element(_q("UpsertFeesResponse"), nsmap={None: NS})
        results = etree.SubElement(response, _q("Results"))
        for outcome in outcomes:
            _result(results, "Result", outcome)
        return response

    def mark_fee_inactive(self, payload: etree._Element) -> etree._Element:
        fee_ref = _text(payload, "FeeRef")
        if not fee_ref:
            raise _client_fault("FeeRef is required.")
        outcome = self.state.mark_inactive(fee_ref, _int(_text(payload, "Version"), "Version"))
        response = etree.Element(_q("MarkFeeInactiveResponse"), nsmap={None: NS})
        _result(response, "Result", outcome)
        return response

    def _after(self, kind: str, cursor: str | None) -> int:
        try:
            return self.state.decode_cursor(kind, cursor)
        except CursorError as exc:
            raise _client_fault(f"{exc} Start again without a cursor.", "InvalidCursor") from None

    def get_payments(self, payload: etree._Element) -> etree._Element:
        cursor = _text(payload, "Cursor") or None
        limit = _limit(payload)
        ids_el = payload.find(_q("StudentIds"))
        student_ids = None if ids_el is None else _student_ids(ids_el)
        page = self.server.payments_page(self._after("p", cursor), limit, student_ids)
        response = etree.Element(_q("GetPaymentsResponse"), nsmap={None: NS})
        payments = etree.SubElement(response, _q("Payments"))
        for p in page.rows:
            node = etree.SubElement(payments, _q("Payment"))
            _add(node, "PaymentId", p.payment_id)
            _add(node, "FeeRef", p.fee_ref)
            _add(node, "StudentId", p.student_id)
            _add(node, "Amount", money_str(p.amount))
            _add(node, "Kind", p.kind)
            _add(node, "Closed", _bool(p.closed))
            _add(node, "OccurredAt", p.occurred_at)
            if p.refers_to:
                _add(node, "RefersTo", p.refers_to)
        # An empty page hands the caller's cursor back: its position is still right.
        next_cursor = (
            self.state.encode_cursor("p", page.last_seq)
            if page.rows and page.last_seq is not None
            else cursor
        )
        if next_cursor:
            _add(response, "NextCursor", next_cursor)
        _add(response, "HasMore", _bool(page.has_more))
        return response

    def list_fees(self, payload: etree._Element) -> etree._Element:
        cursor = _text(payload, "Cursor") or None
        page = self.state.fees_page(self._after("f", cursor), _limit(payload))
        response = etree.Element(_q("ListFeesResponse"), nsmap={None: NS})
        fees = etree.SubElement(response, _q("Fees"))
        for f in page.rows:
            node = etree.SubElement(fees, _q("Fee"))
            _add(node, "FeeRef", f.fee_ref)
            _add(node, "Version", str(f.version))
            _add(node, "StudentId", f.student_id)
            _add(node, "StudentName", f.student_name)
            _add(node, "Description", f.description)
            _add(node, "Amount", money_str(f.amount))
            _add(node, "AmountDue", money_str(f.amount_due))
            if f.fee_date:
                _add(node, "FeeDate", f.fee_date)
            if f.due_date:
                _add(node, "DueDate", f.due_date)
            _add(node, "Status", f.status)
            _add(node, "Active", _bool(f.active))
            _add(node, "Foreign", _bool(f.foreign))
        next_cursor = (
            self.state.encode_cursor("f", page.last_seq)
            if page.rows and page.last_seq is not None
            else cursor
        )
        if next_cursor:
            _add(response, "NextCursor", next_cursor)
        _add(response, "HasMore", _bool(page.has_more))
        return response

    def get_lunch_balances(self, payload: etree._Element) -> etree._Element:
        ids = _student_ids(payload.find(_q("StudentIds")))
        balances = self.state.lunch_balances(ids)
        response = etree.Element(_q("GetLunchBalancesResponse"), nsmap={None: NS})
        container = etree.SubElement(response, _q("Balances"))
        for student_id in ids:  # in the order asked; students without an account are left out
            if student_id in balances:
                node = etree.SubElement(container, _q("Balance"))
                _add(node, "StudentId", student_id)
                _add(node, "Balance", money_str(balances[student_id]))
        return response

    def test_connection(self, payload: etree._Element) -> etree._Element:
        response = etree.Element(_q("TestConnectionResponse"), nsmap={None: NS})
        _add(response, "Echo", _text(payload, "Echo") or "")
        _add(response, "ServerTime", utc_now_iso())
        return response


# --- entry points -----------------------------------------------------------------------------


def make_server(
    port: int,
    state_path: str | None = None,
    host: str = "127.0.0.1",
    *,
    username: str = DEFAULT_USERNAME,
    password: str = DEFAULT_PASSWORD,
    verbose: bool = False,
) -> SandboxServer:
    """A PaySchools sandbox bound to host:port (port 0: any free port), not yet serving.

    Call `serve_forever()` (blocking) or `start()` (a daemon thread), and `shutdown()`.
    `server.url` is the root; the SOAP endpoint is `url + "/soap"`, the WSDL
    `url + "/soap?wsdl"`, the control API `url + "/_sandbox/"`. `state_path=None` keeps
    the state in a temporary file that `shutdown()` removes.
    """
    state = SandboxState(state_path, id_prefix="PS")
    try:
        return SandboxServer(
            PaySchoolsProtocol(username, password), state, host=host, port=port, verbose=verbose
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
    """Serve until interrupted. Credentials come from PAYSCHOOLS_SANDBOX_USERNAME and
    PAYSCHOOLS_SANDBOX_PASSWORD, defaulting to feesync / sandbox-secret."""
    server = make_server(
        port,
        state_path,
        host,
        username=os.environ.get("PAYSCHOOLS_SANDBOX_USERNAME", DEFAULT_USERNAME),
        password=os.environ.get("PAYSCHOOLS_SANDBOX_PASSWORD", DEFAULT_PASSWORD),
        verbose=verbose,
    )
    serve_until_stopped(
        server,
        f"PaySchools sandbox on {server.url}{SERVICE_PATH} "
        f"(WSDL {server.url}{SERVICE_PATH}?wsdl, control {server.url}/_sandbox/, "
        f"state {server.state.path})",
    )


def main(argv: list[str] | None = None) -> None:
    sandbox_main(
        argv, description="Run the PaySchools sandbox.", default_port=DEFAULT_PORT, run=run
    )


if __name__ == "__main__":
    main(sys.argv[1:])
