"""RFC 9457 problem documents for every error the partner API answers.

Each is `application/problem+json` with `type`, `title`, `status`, `detail` and, for bad
input, `errors`: one `{"property", "detail"}` per bad property, named as the caller sent
it (`TransactionAmount`, `ScheduledPayments[1].Amount`). A request the ledger refuses is a
422 whose detail is the ledger's sentence."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

PROBLEM_TYPE = "application/problem+json"


class Problem(exceptions.APIException):
    """An error with its own status, title and property errors."""

    def __init__(
        self,
        status_code: int,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.title = title
        self.errors = errors or []
        self.extra = extra or {}


class MissingPermission(exceptions.PermissionDenied):
    def __init__(self, permission: str, detail: str) -> None:
        super().__init__(detail)
        self.permission = permission


def _printable(value: Any) -> Any:
    """A caller's text echoed back (a misspelt property name) without NUL and other control
    characters, which PostgreSQL cannot store with the response kept for replays."""
    if isinstance(value, str):
        return "".join(c if c.isprintable() or c == " " else f"\\u{ord(c):04x}" for c in value)
    if isinstance(value, list):
        return [_printable(v) for v in value]
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    return value


def problem_response(
    status_code: int,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"/api/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status_code,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    body.update(extra or {})
    return Response(
        _printable(body), status=status_code, headers=headers, content_type=PROBLEM_TYPE
    )


def flatten(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested error details as one list of {property, detail}."""
    out: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
                out.extend(flatten(value, f"{prefix}[{key}]"))
                continue
            name = "" if key in ("non_field_errors", "__all__") else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            out.extend(flatten(value, path))
    elif isinstance(detail, list):
        if all(not isinstance(v, dict | list) for v in detail):
            out.extend({"property": prefix or "(body)", "detail": str(v)} for v in detail)
        else:
            for i, value in enumerate(detail):
                if value:  # DRF lists an empty {} for each good item
                    out.extend(flatten(value, f"{prefix}[{i}]"))
    else:
        out.append({"property": prefix or "(body)", "detail": str(detail)})
    return out


_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
}


def problem_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error as a problem document."""
    # Imported here: DRF's settings import this module while rest_framework.views loads.
    from rest_framework.views import exception_handler

    if isinstance(exc, Problem):
        return problem_response(
            exc.status_code, exc.title, str(exc.detail), errors=exc.errors, extra=exc.extra
        )
    if isinstance(exc, DjangoValidationError):  # the ledger's LedgerError, a refusal
        return problem_response(422, "Refused by the ledger", "; ".join(exc.messages))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        return None
    code = response.status_code
    headers = {k: v for k, v in response.items() if k.lower() in ("www-authenticate", "allow")}
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten(exc.detail)
        names = sorted({e["property"] for e in errors})
        return problem_response(
            status.HTTP_400_BAD_REQUEST,
            "Invalid request",
            "These properties are not valid: " + ", ".join(names) + ".",
            errors=errors,
        )
    extra = {"permission": exc.permission} if isinstance(exc, MissingPermission) else None
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    return problem_response(
        code, _TITLES.get(code, "Error"), str(detail), extra=extra, headers=headers
    )
