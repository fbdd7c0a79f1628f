"""Issue 11 item 4: the setup steps and the portal's forms render through crispy-forms with
one layout (apps/common/forms.py): every field in a feesync-field block with its label, its
help text and its error tied to the input, and a refused form's note saying what to do."""

from __future__ import annotations

import lxml.html
from django.urls import reverse

from tests.admin_helpers import csrf_client
from tests.factories import CategoryFactory, MerchantAccountFactory
from tests.vendors.setup_pages import field_errors, make_integration, setup_url, submit_form


def _doc(response) -> lxml.html.HtmlElement:
    return lxml.html.fromstring(response.content.decode())


def test_every_setup_step_field_is_laid_out_by_the_shared_helper(district_admin):
    MerchantAccountFactory()
    CategoryFactory()
    integration = make_integration(credentials={"username": "u-1", "password": "p-1"})
    doc = _doc(csrf_client(district_admin).get(setup_url(integration)))
    for form_id in ("connection-form", "accounts-form", "categories-form", "parent-options-form"):
        (form,) = doc.xpath(f"//form[@id='{form_id}']")
        assert form.get("data-feesync-step"), form_id  # the unsaved-changes warning's hook
        inputs = form.xpath(
            ".//input[not(@type='hidden') and not(@type='submit')] | .//select | .//textarea"
        )
        assert inputs, form_id
        for element in inputs:
            assert element.xpath("ancestor::*[contains(@class,'feesync-field')]"), (
                form_id,
                element.get("name"),
            )
    # The demographics server is a group of its own, titled.
    legends = [
        " ".join(x.text_content().split())
        for x in doc.xpath("//form[@id='connection-form']//legend")
    ]
    assert "Demographics server (nightly student file)" in legends


def test_a_refused_step_names_the_field_ties_the_error_to_it_and_says_nothing_was_saved(
    district_admin,
):
    integration = make_integration(credentials={"username": "u-1", "password": "p-1"})
    client = csrf_client(district_admin)
    response = submit_form(
        client, setup_url(integration), "connection-form", {"timeout_seconds": "500"}, follow=False
    )
    doc = _doc(response)
    (timeout,) = doc.xpath("//input[@name='timeout_seconds']")
    assert timeout.get("aria-invalid") == "true"
    described = timeout.get("aria-describedby").split()
    assert "id_timeout_seconds_error" in described and "id_timeout_seconds_helptext" in described
    (error,) = doc.xpath("//*[@id='id_timeout_seconds_error']")
    assert "less than or equal to 120" in error.text_content()
    note = " ".join(
        doc.xpath("//section[@id='connection']//*[@role='alert']")[0].text_content().split()
    )
    assert note == "Please correct the error below; nothing was saved."
    assert "less than or equal to 120" in field_errors(response, "connection")


def test_portal_sign_in_errors_say_what_to_do_and_never_leave_an_empty_note(client, db):
    page = client.post(reverse("portal:login"), {"username": "nobody", "password": ""})
    doc = _doc(page)
    (note,) = doc.xpath("//*[@role='alert']")
    assert " ".join(note.text_content().split()) == "Please correct the error below."
    (password,) = doc.xpath("//input[@name='password']")
    assert "id_password_error" in password.get("aria-describedby")
    page = client.post(reverse("portal:login"), {"username": "nobody", "password": "wrong-pw"})
    (note,) = _doc(page).xpath("//*[@role='alert']")
    assert "That username and password do not match" in note.text_content()
    assert "saved" not in note.text_content()
