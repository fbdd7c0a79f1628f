"""Helpers for the setup-page and dashboard tests: integrations in a known state, and a way
to submit one of a page's several forms the way a browser does (its own action URL, its
current values, the CSRF token)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import lxml.html
from django.test import Client
from django.urls import reverse

from apps.vendors.models import Integration
from apps.vendors.registry import get_adapter_class
from tests.admin_helpers import page_form_values

CLOSED_URL = "http://127.0.0.1:9/soap"  # nothing listens on the discard port


def setup_url(integration: Integration) -> str:
    return reverse("admin:vendors_integration_change", args=[integration.pk])


def section_url(integration: Integration, section: str) -> str:
    return reverse("admin:vendors_integration_section", args=[integration.pk, section])


def dashboard_url(integration: Integration) -> str:
    return reverse("admin:vendors_integration_dashboard", args=[integration.pk])


def make_integration(
    kind: str = "payschools",
    *,
    credentials: dict[str, str] | None = None,
    tests_passed: bool = False,
    **fields: Any,
) -> Integration:
    values: dict[str, Any] = {
        "vendor_kind": kind,
        "slug": f"{kind}-setup",
        "name": get_adapter_class(kind).name,
        "service_url": CLOSED_URL,
        "timeout_seconds": 3,
        **fields,
    }
    categories = values.pop("categories", None)
    integration = Integration(**values)
    if credentials is not None:
        integration.credentials = credentials
    if tests_passed:
        integration.test_pull_ok = integration.test_push_ok = True
    integration.save()
    if categories:
        integration.categories.set(categories)
    return integration


def submit_form(
    client: Client,
    page_url: str,
    form_id: str,
    data: dict[str, Any],
    *,
    follow: bool = True,
    drop: tuple[str, ...] = (),
) -> Any:
    """GET the page, take the form `form_id` (values, action), override with `data`, POST."""
    page = client.get(page_url)
    assert page.status_code == 200, (page_url, page.status_code)
    doc = lxml.html.fromstring(page.content.decode())
    forms = [f for f in doc.forms if f.get("id") == form_id]
    assert forms, f"no form #{form_id} on {page_url}"
    action = forms[0].get("action") or page_url
    values = page_form_values(page.content, form_id=form_id)
    for name in drop:
        values.pop(name, None)
    values.update(data)
    return client.post(
        action.split("#")[0], {k: v for k, v in values.items() if v is not None}, follow=follow
    )


def texts(response: Any) -> str:
    """The page as plain text (whitespace collapsed), for assertions on what people read."""
    doc = lxml.html.fromstring(response.content.decode())
    for bad in doc.xpath("//script|//style"):
        bad.drop_tree()
    return " ".join(doc.text_content().split())


def section_text(response: Any, anchor: str) -> str:
    doc = lxml.html.fromstring(response.content.decode())
    found = doc.xpath(f"//section[@id='{anchor}']")
    assert found, f"no section #{anchor}"
    return " ".join(found[0].text_content().split())


def field_errors(response: Any, anchor: str) -> str:
    doc = lxml.html.fromstring(response.content.decode())
    found = doc.xpath(
        f"//section[@id='{anchor}']//*[contains(@class,'errorlist') or "
        "contains(@class,'errornote')]"
    )
    return " ".join(" ".join(e.text_content().split()) for e in found)


def gated_vendor_kind() -> str:
    """Community Pass: required on first setup, an API key; tests before the date."""
    cls = get_adapter_class("communitypass")
    assert cls.requires_tests_before_import_date
    assert "api_key" in cls.credential_labels()
    return "communitypass"


IMPORT_AFTER = dt.date(2026, 7, 1)
