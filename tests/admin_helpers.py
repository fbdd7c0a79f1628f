"""Helpers for driving the staff site in tests the way a browser does (CSRF included)."""

from __future__ import annotations

from typing import Any

import lxml.html
from django.test import Client


def csrf_client(user: Any) -> Client:
    """A logged-in client that, like a browser, must send the CSRF token it was given."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def submit(
    client: Client,
    url: str,
    data: dict[str, Any],
    *,
    form_id: str | None = None,
    follow: bool = False,
) -> Any:
    """GET the page, take its form's current values and CSRF token, override with `data`,
    and POST it back."""
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    values = page_form_values(page.content, form_id=form_id)
    values.update(data)
    return client.post(url, _clean(values), follow=follow)


def page_form_values(
    content: bytes, *, form_id: str | None = None, action_contains: str | None = None
) -> dict[str, Any]:
    """The values the page's last POST form would send (or the one with `form_id`, or the
    one whose action contains `action_contains`), hidden one-time tokens included."""
    doc = lxml.html.fromstring(content)
    forms = [f for f in doc.forms if f.get("method", "get").lower() == "post"]
    if form_id:
        forms = [f for f in forms if f.get("id") == form_id]
    if action_contains:
        forms = [f for f in forms if action_contains in (f.get("action") or "")]
    form = forms[-1]
    values: dict[str, Any] = {}
    for name, value in form.form_values():
        if name in values:
            current = values[name]
            values[name] = [*current, value] if isinstance(current, list) else [current, value]
        else:
            values[name] = value
    return values


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
