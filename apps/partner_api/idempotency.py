"""`Idempotency-Key`: the first response to a POST/PATCH with a key is stored with a hash of
the request, in the same transaction as what the request posted, and replayed to a retry
with the same key and body; the same key with another body is a 422.

Concurrent requests with one key are serialized by the key's row: the first inserts it and
holds it until it commits (its response stored); the others wait on the insert
(`ON CONFLICT DO NOTHING` waits for the first to commit on PostgreSQL) and then replay it.
So twenty simultaneous posts with one key record one payment."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from django.db import connection, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from apps.common.sql import insert_statement, prepared_cursor

from .calls import call_log, call_row
from .models import ApiUser, IdempotencyRecord
from .problems import problem_response

HEADER = "Idempotency-Key"
TABLE = IdempotencyRecord._meta.db_table
RESPONSE = IdempotencyRecord._meta.get_field("response")


def request_hash(request: Request) -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    digest.update(request.body)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord) -> Response:
    return Response(
        record.response,
        status=record.status_code,
        headers={"Idempotent-Replayed": "true"},
        content_type="application/problem+json" if (record.status_code or 0) >= 400 else None,
    )


def _claim(api_user: ApiUser, key: str, operation: str, digest: str) -> IdempotencyRecord:
    """The key's row: ours and new (one `INSERT ... ON CONFLICT DO NOTHING RETURNING`), or
    the first request's (then one SELECT). A conflicting insert waits until the first
    request's transaction ends, so the row read after it holds that request's response,
    and no lock is needed to read it; a new row stays locked by our insert until commit."""
    with prepared_cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (api_user_id, key, operation, request_hash, created_at) "  # noqa: S608 - our table name, parameters bound
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (api_user_id, key) DO NOTHING "
            "RETURNING id",
            [api_user.pk, key, operation, digest, timezone.now()],
        )
        row = cursor.fetchone()
    if row is not None:
        return IdempotencyRecord(
            pk=row[0], api_user=api_user, key=key, operation=operation, request_hash=digest
        )
    return IdempotencyRecord.objects.get(api_user=api_user, key=key)


def _key_of(request: Request) -> tuple[str, Response | None]:
    """The request's key ("" for none), or a problem answer when it is too long."""
    key = request.headers.get(HEADER, "").strip()
    if len(key) > 255:
        return key, problem_response(
            400,
            "Invalid request",
            f"The {HEADER} header is longer than 255 characters.",
            errors=[{"property": HEADER, "detail": "At most 255 characters."}],
        )
    return key, None


def _reused(key: str) -> Response:
    return problem_response(
        422,
        "Idempotency key reused",
        f"The {HEADER} “{key}” was used for another request; use a new key for a new request.",
        errors=[{"property": HEADER, "detail": "Already used with another body."}],
    )


def replayed(request: Request, api_user: ApiUser) -> Response | None:
    """The answer to a retry whose first request has been answered (its replay, or the 422
    for another body), read with one indexed SELECT outside any transaction, before the body
    is parsed; None for everything else (no key, a new key, a first request still in
    flight), which `idempotent` handles. Call it only once the caller is authenticated and
    authorized: keys are the API user's own, so a retry never sees another user's answer."""
    key, _ = _key_of(request)
    if not key or len(key) > 255:
        return None
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT request_hash, status_code, response FROM {TABLE} "  # noqa: S608 - our table, values bound
            "WHERE api_user_id = %s AND key = %s AND status_code IS NOT NULL",
            [api_user.pk, key],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    if row[0] != request_hash(request):
        return _reused(key)
    response = RESPONSE.from_db_value(row[2], None, connection)  # type: ignore[arg-type]
    return _replay(IdempotencyRecord(request_hash=row[0], status_code=row[1], response=response))


def idempotent(
    request: Request,
    api_user: ApiUser,
    operation: str,
    handler: Callable[[], Response],
    *,
    log: bool = False,
) -> Response:
    """Run `handler` (which answers errors as problem responses, never raises for them)
    at most once per key, in the caller's transaction (the key's row is held until it
    commits). With `log`, the call's log row is written too (`calls.call_log`): when the
    answer is stored, by the same statement."""
    key, refusal = _key_of(request)
    if refusal is None and key:
        digest = request_hash(request)
        with transaction.atomic(savepoint=False):
            record = _claim(api_user, key, operation, digest)
            if record.request_hash != digest:
                response = _reused(key)
            elif record.status_code is not None:
                response = _replay(record)
            else:
                response = handler()
                _store(record, response, api_user, operation if log else None)
                return response
    else:
        response = refusal or handler()
    if log:
        call_log(api_user=api_user, operation=operation, response=response)
    return response


def _store(
    record: IdempotencyRecord, response: Response, api_user: ApiUser, logged: str | None
) -> None:
    """Keep `response` as the key's answer and, when `logged` names the operation, write the
    call's log row in the same statement (an UPDATE in a CTE, then the INSERT): one round
    trip, on every new partner payment's path. Two statements where that is not PostgreSQL."""
    update = f"UPDATE {TABLE} SET status_code = %s, response = %s WHERE id = %s"  # noqa: S608 - our table, values bound
    params = [
        response.status_code,
        RESPONSE.get_db_prep_save(response.data, connection),
        record.pk,
    ]
    if logged is None or connection.vendor != "postgresql":
        with prepared_cursor() as cursor:
            cursor.execute(update, params)
        if logged is not None:
            call_log(api_user=api_user, operation=logged, response=response)
        return
    row = call_row(api_user=api_user, operation=logged, response=response)
    fields, insert_sql = insert_statement(row)
    values = [f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields]
    with prepared_cursor() as cursor:
        cursor.execute(f"WITH stored AS ({update}) {insert_sql}", [*params, *values])
