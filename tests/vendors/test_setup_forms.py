"""The setup page's forms, driven through their real URLs as a district admin: every bad
input is refused in plain words, next to the field, and nothing is saved."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.vendors.kinds.payschools.sandbox import DEFAULT_PASSWORD, DEFAULT_USERNAME
from apps.vendors.models import Integration, MerchantAccountMapping
from tests.admin_helpers import csrf_client
from tests.factories import CategoryFactory, MerchantAccountFactory, make_fee
from tests.vendors.setup_pages import (
    IMPORT_AFTER,
    field_errors,
    gated_vendor_kind,
    make_integration,
    section_text,
    section_url,
    setup_url,
    submit_form,
    texts,
)

pytestmark = pytest.mark.django_db

PS_CREDENTIALS = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def snapshot(integration: Integration) -> dict[str, object]:
    integration.refresh_from_db()
    return {
        "service_url": integration.service_url,
        "timeout": integration.timeout_seconds,
        "credentials": integration.credentials,
        "import_after": integration.import_after,
        "threshold": integration.lunch_balance_threshold,
        "button_url": integration.button_url,
        "categories": list(integration.categories.all()),
        "mappings": list(MerchantAccountMapping.objects.values_list("pk", "vendor_merchant_id")),
        "enabled": integration.enabled,
    }


# --- adding an integration -----------------------------------------------------------------------


def test_adding_an_integration_picks_the_vendor_and_lands_on_its_setup_page(district_admin):
    client = csrf_client(district_admin)
    add = reverse("admin:vendors_integration_add")

    page = client.get(add)
    assert "PaySchools" in texts(page) and "Community Pass" in texts(page)
    response = client.post(
        add,
        {"vendor_kind": "payschools", "service_url": "https://ps.example.org/soap"},
        follow=True,
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )

    integration = Integration.objects.get()
    assert (integration.vendor_kind, integration.name, integration.slug) == (
        "payschools",
        "PaySchools",
        "payschools",
    )
    assert not integration.enabled
    assert response.redirect_chain[-1][0] == setup_url(integration)
    assert "nothing is sent to the vendor until you enable it" in texts(response)


def test_adding_an_integration_with_a_malformed_url_or_a_taken_short_name_is_refused(
    district_admin,
):
    make_integration(slug="payschools")
    client = csrf_client(district_admin)
    add = reverse("admin:vendors_integration_add")

    response = submit_form_simple(client, add, {"vendor_kind": "payschools", "service_url": "ps"})
    assert "is not a web address: it must start with https://" in texts(response)
    response = submit_form_simple(
        client, add, {"vendor_kind": "payschools", "service_url": "https://x.example/"}
    )
    assert "Another integration is already called “payschools”" in texts(response)
    assert Integration.objects.count() == 1


def submit_form_simple(client, url, data):
    client.get(url)
    return client.post(url, data, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)


# --- 1. connection -------------------------------------------------------------------------------


def test_connection_with_a_malformed_url_is_refused_and_nothing_is_saved(district_admin):
    integration = make_integration(credentials=PS_CREDENTIALS)
    before = snapshot(integration)
    client = csrf_client(district_admin)

    response = submit_form(
        client,
        setup_url(integration),
        "connection-form",
        {"service_url": "payschools dot example", "password": "new-secret-1"},
    )

    assert response.status_code == 200
    assert texts(response).startswith("Error: ")  # the page title says it first
    assert "“payschools dot example” is not a web address" in field_errors(response, "connection")
    assert "Nothing was saved" in texts(response)
    assert snapshot(integration) == before


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeout_seconds", "0", "greater than or equal to 1"),
        ("timeout_seconds", "500", "less than or equal to 120"),
        ("transfer_port", "70000", "less than or equal to 65535"),
    ],
)
def test_connection_numbers_out_of_range_are_refused(district_admin, field, value, message):
    integration = make_integration(credentials=PS_CREDENTIALS)
    before = snapshot(integration)
    response = submit_form(
        csrf_client(district_admin), setup_url(integration), "connection-form", {field: value}
    )
    assert message in field_errors(response, "connection")
    assert snapshot(integration) == before


def test_community_pass_needs_an_api_key_on_first_setup(district_admin):
    integration = make_integration(gated_vendor_kind())  # nothing stored yet
    client = csrf_client(district_admin)

    response = submit_form(
        client,
        setup_url(integration),
        "connection-form",
        {"service_url": "https://api.communitypass.example/v1", "api_key": ""},
    )

    assert "Enter the api key: Community Pass needs it." in field_errors(response, "connection")
    integration.refresh_from_db()
    assert integration.credentials == {}
    assert integration.service_url != "https://api.communitypass.example/v1"

    response = submit_form(
        client, setup_url(integration), "connection-form", {"api_key": "cp-key-123456"}
    )
    assert "Connection settings saved." in section_text(response, "connection")
    integration.refresh_from_db()
    assert integration.credentials == {"api_key": "cp-key-123456"}


def test_a_blank_secret_keeps_the_stored_one_and_a_typed_one_replaces_it(district_admin):
    integration = make_integration(credentials=PS_CREDENTIALS, tests_passed=True)
    client = csrf_client(district_admin)

    page = client.get(setup_url(integration))
    html = page.content.decode()
    assert DEFAULT_PASSWORD not in html  # never shown back, not even in a value=""
    assert "Stored: ••••••••et" in section_text(page, "connection")

    response = submit_form(
        client, setup_url(integration), "connection-form", {"timeout_seconds": "7"}
    )
    assert "Connection settings saved." in section_text(response, "connection")
    integration.refresh_from_db()
    assert integration.credentials == PS_CREDENTIALS
    assert integration.timeout_seconds == 7
    assert integration.test_pull_ok  # nothing the tests checked has changed

    response = submit_form(
        client, setup_url(integration), "connection-form", {"password": "a-new-secret-9"}
    )
    integration.refresh_from_db()
    assert integration.credentials == {"username": DEFAULT_USERNAME, "password": "a-new-secret-9"}
    # New credentials make the earlier test results meaningless: they are cleared.
    assert integration.test_pull_ok is None and integration.test_push_ok is None
    assert "run Test Pull and Test Push again" in section_text(response, "connection")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"transfer_protocol": "sftp", "transfer_host": ""}, "transfer_host", "host name"),
        (
            {"transfer_protocol": "sftp", "transfer_host": "sftp.example", "transfer_host_key": ""},
            "transfer_host_key",
            "SFTP needs the server's public host key",
        ),
        (
            {
                "transfer_protocol": "sftp",
                "transfer_host": "sftp.example",
                "transfer_host_key": "not a key",
            },
            "transfer_host_key",
            "not an OpenSSH public key line",
        ),
    ],
)
def test_demographics_server_needs_a_host_and_for_sftp_a_valid_pinned_key(
    district_admin, data, field, message
):
    integration = make_integration(credentials=PS_CREDENTIALS)
    response = submit_form(
        csrf_client(district_admin), setup_url(integration), "connection-form", data
    )
    assert message in field_errors(response, "connection")
    integration.refresh_from_db()
    assert integration.transfer_protocol == ""


def test_demographics_server_is_saved_with_its_credentials_encrypted(district_admin):
    integration = make_integration(credentials=PS_CREDENTIALS)
    response = submit_form(
        csrf_client(district_admin),
        setup_url(integration),
        "connection-form",
        {
            "transfer_protocol": "sftp",
            "transfer_host": "sftp.payschools.example",
            "transfer_port": "2222",
            "transfer_directory": "inbound",
            "transfer_host_key": ED25519,
            "transfer_username": "district-42",
            "transfer_password": "ftp-secret-77",
        },
    )
    assert "Connection settings saved." in section_text(response, "connection")
    integration.refresh_from_db()
    assert (integration.transfer_protocol, integration.transfer_port) == ("sftp", 2222)
    assert integration.credentials["transfer_password"] == "ftp-secret-77"
    assert "ftp-secret-77" not in integration.credentials_encrypted


# --- 2. merchant accounts ------------------------------------------------------------------------


def test_merchant_accounts_are_mapped_to_the_vendors_ids(district_admin):
    general = MerchantAccountFactory(name="General Fund", merchant_id="MID-1")
    athletics = MerchantAccountFactory(name="Athletics", merchant_id="MID-2")
    MerchantAccountFactory(name="Old fund", merchant_id="MID-3", active=False)
    integration = make_integration()
    client = csrf_client(district_admin)

    page = client.get(setup_url(integration))
    assert "Old fund" not in section_text(page, "accounts")  # only active accounts
    response = submit_form(
        client,
        setup_url(integration),
        "accounts-form",
        {f"use_{general.pk}": "on", f"mid_{general.pk}": "PS-77", f"mid_{athletics.pk}": ""},
    )

    assert "1 account used with PaySchools" in section_text(response, "accounts")
    mapping = MerchantAccountMapping.objects.get()
    assert (mapping.merchant_account, mapping.vendor_merchant_id) == (general, "PS-77")


def test_choosing_no_merchant_account_is_refused(district_admin):
    account = MerchantAccountFactory()
    integration = make_integration()
    response = submit_form(
        csrf_client(district_admin),
        setup_url(integration),
        "accounts-form",
        {},
        drop=(f"use_{account.pk}",),
    )
    assert "Choose at least one merchant account" in field_errors(response, "accounts")
    assert not MerchantAccountMapping.objects.exists()


def test_a_vendor_id_longer_than_the_vendor_allows_is_refused(district_admin):
    account = MerchantAccountFactory()
    integration = make_integration()
    response = submit_form(
        csrf_client(district_admin),
        setup_url(integration),
        "accounts-form",
        {f"use_{account.pk}": "on", f"mid_{account.pk}": "X" * 61},
    )
    assert "at most 60 characters" in field_errors(response, "accounts")
    assert not MerchantAccountMapping.objects.exists()


# --- 3. categories -------------------------------------------------------------------------------


def test_categories_show_open_fee_counts_from_the_import_after_date(district_admin):
    trip = CategoryFactory(code="TRIP", description="Field trips")
    ath = CategoryFactory(code="ATH", description="Athletics")
    make_fee(category=trip, fee_date=dt.date(2026, 9, 1))
    make_fee(category=trip, fee_date=dt.date(2026, 9, 2))
    make_fee(category=trip, fee_date=dt.date(2026, 1, 5))  # before the date: not counted
    make_fee(category=ath, fee_date=dt.date(2026, 9, 1))
    integration = make_integration(import_after=IMPORT_AFTER)

    page = csrf_client(district_admin).get(setup_url(integration))

    text = section_text(page, "categories")
    assert "TRIP – Field trips (2 open fees)" in text
    assert "ATH – Athletics (1 open fee)" in text
    # None selected means all: every box is checked.
    assert page.content.decode().count('name="categories"') == 2
    assert page.content.decode().count("checked") >= 2


def test_checking_some_categories_limits_the_scope_and_all_of_them_means_every_category(
    district_admin,
):
    trip, ath = CategoryFactory(code="TRIP"), CategoryFactory(code="ATH")
    integration = make_integration()
    client = csrf_client(district_admin)

    response = submit_form(
        client, setup_url(integration), "categories-form", {"categories": [str(trip.pk)]}
    )
    assert "1 category sent" in section_text(response, "categories")
    assert list(integration.categories.all()) == [trip]

    response = submit_form(
        client,
        setup_url(integration),
        "categories-form",
        {"categories": [str(trip.pk), str(ath.pk)]},
    )
    assert "every category is sent, including ones added later" in section_text(
        response, "categories"
    )
    assert not integration.categories.exists()


def test_unchecking_every_category_is_refused(district_admin):
    trip = CategoryFactory()
    integration = make_integration(categories=[trip])
    response = submit_form(
        csrf_client(district_admin),
        setup_url(integration),
        "categories-form",
        {},
        drop=("categories",),
    )
    assert "Check at least one category" in field_errors(response, "categories")
    assert list(integration.categories.all()) == [trip]


# --- 5. import-after date ------------------------------------------------------------------------


def test_import_after_preview_is_a_get_that_counts_without_saving(district_admin):
    cat = CategoryFactory()
    make_fee(category=cat, fee_date=dt.date(2026, 9, 1))
    make_fee(category=cat, fee_date=dt.date(2026, 3, 1))
    integration = make_integration(tests_passed=True)
    client = csrf_client(district_admin)

    page = client.get(setup_url(integration), {"import_after": "2026-07-01"})

    text = section_text(page, "import-after")
    assert (
        "Fees dated on or after this date in the selected categories will be sent; earlier "
        "fees never will." in text
    )
    assert "With July 1, 2026: 1 fee in the selected categories would be sent (1 open" in text
    assert "1 open fee dated earlier would never be sent" in text
    integration.refresh_from_db()
    assert integration.import_after is None

    response = submit_form(
        client, setup_url(integration) + "?import_after=2026-07-01", "import-after-form", {}
    )
    assert "Import-after date set to July 1, 2026" in section_text(response, "import-after")
    integration.refresh_from_db()
    assert integration.import_after == IMPORT_AFTER


def test_a_malformed_preview_date_says_so_and_counts_nothing(district_admin):
    integration = make_integration()
    page = csrf_client(district_admin).get(setup_url(integration), {"import_after": "31/31/2026"})
    assert "Enter a valid date." in section_text(page, "import-after")
    assert "would be sent" not in section_text(page, "import-after")


def test_an_import_after_date_decades_away_is_refused_on_the_setup_page(district_admin):
    integration = make_integration()
    client = csrf_client(district_admin)
    client.get(setup_url(integration))  # the page hands out the CSRF token
    response = client.post(
        section_url(integration, "import-after"),
        {"import_after": "2062-07-01"},
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )
    assert response.status_code == 200
    assert "The import-after date 07/01/2062 is more than 5 years ahead" in field_errors(
        response, "import-after"
    )
    integration.refresh_from_db()
    assert integration.import_after is None


def test_community_pass_refuses_an_import_after_date_before_both_tests_pass(district_admin):
    integration = make_integration(gated_vendor_kind(), credentials={"api_key": "k-123456789"})
    integration.test_push_ok = True  # Test Pull has not passed
    integration.save()
    client = csrf_client(district_admin)

    page = client.get(setup_url(integration), {"import_after": "2026-07-01"})
    assert "requires both Test Pull and Test Push to pass" in section_text(page, "import-after")
    response = client.post(
        section_url(integration, "import-after"),
        {"import_after": "2026-07-01"},
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )

    assert response.status_code == 200
    errors = field_errors(response, "import-after")
    assert (
        "Community Pass requires both Test Pull and Test Push to pass before the "
        "import-after date can be set. Run the tests first." in errors
    )
    integration.refresh_from_db()
    assert integration.import_after is None


# --- 6. parent options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"button_url": "parents.payschools"}, "is not a web address"),
        ({"lunch_payment_url": "ftp://lunch.example"}, "is not a web address"),
        (
            {"lunch_balance_threshold": "-1.00"},
            "Lunch balance threshold “-1.00” cannot be negative.",
        ),
        ({"lunch_balance_threshold": "1.005"}, "“1.005” has more than two decimal places"),
        ({"lunch_balance_threshold": "five"}, "Lunch balance threshold “five” is not a number."),
        ({"lunch_balance_threshold": "5,00"}, "“5,00” uses a comma as the decimal mark"),
        ({"lunch_balance_threshold": "1e1"}, "“1e1” uses exponent notation"),
        (
            {"show_lunch_balance": "on", "sync_lunch_balance": ""},
            "Lunch balances can be shown only if they are synced from the vendor.",
        ),
    ],
)
def test_parent_options_refuse_bad_input_and_save_nothing(district_admin, data, message):
    integration = make_integration()
    before = snapshot(integration)
    response = submit_form(
        csrf_client(district_admin),
        setup_url(integration),
        "parent-options-form",
        data,
        drop=tuple(k for k, v in data.items() if v == ""),
    )
    assert response.status_code == 200
    assert message in field_errors(response, "parent-options")
    assert snapshot(integration) == before


def test_parent_options_offer_only_what_the_vendor_can_back_up(district_admin):
    payschools = make_integration()
    text = section_text(csrf_client(district_admin).get(setup_url(payschools)), "parent-options")
    assert "Show lunch balance" in text
    assert "Show vendor balance" not in text
    assert "PaySchools does not report account balances" in text
    assert (
        'placeholder="Go to PaySchools"'
        in csrf_client(district_admin).get(setup_url(payschools)).content.decode()
    )


def test_parent_message_preview_shows_it_as_parents_will_without_saving(district_admin):
    integration = make_integration()
    client = csrf_client(district_admin)
    response = submit_form(
        client,
        setup_url(integration),
        "parent-options-form",
        {
            "parent_message": "Pay by the 15th.\n\nQuestions? Call the office.",
            "preview": "1",
            "button_text": "Pay now",
        },
    )
    preview = section_text(response, "parent-options")
    assert "Preview only: nothing was saved." in preview
    assert "Message from the district Pay by the 15th. Questions? Call the office." in preview
    assert "Pay now" in preview
    integration.refresh_from_db()
    assert integration.parent_message == ""

    response = submit_form(
        client,
        setup_url(integration),
        "parent-options-form",
        {"parent_message": "Pay by the 15th.", "lunch_balance_threshold": "2.50"},
    )
    assert "Parent options saved." in section_text(response, "parent-options")
    integration.refresh_from_db()
    assert integration.parent_message == "Pay by the 15th."
    assert integration.lunch_balance_threshold == Decimal("2.50")


# --- enabling ------------------------------------------------------------------------------------


def test_enabling_before_the_checklist_is_complete_is_refused_with_the_services_reason(
    district_admin,
):
    integration = make_integration(credentials=PS_CREDENTIALS)
    response = submit_form(csrf_client(district_admin), setup_url(integration), "enable-form", {})
    text = section_text(response, "enable")
    assert (
        "Before enabling, complete the checklist: Test Pull passed; Test Push passed; "
        "Merchant accounts mapped; Import-after date set." in text
    )
    integration.refresh_from_db()
    assert not integration.enabled


def test_every_field_has_a_label_and_help_text(district_admin):
    """Accessibility: each input of the setup page is labelled and described."""
    import lxml.html

    MerchantAccountFactory()
    CategoryFactory()
    integration = make_integration(credentials=PS_CREDENTIALS, tests_passed=True)
    page = csrf_client(district_admin).get(setup_url(integration), {"import_after": "2026-07-01"})
    doc = lxml.html.fromstring(page.content.decode())
    labels = {label.get("for") for label in doc.xpath("//label[@for]")}
    described = 0
    for element in doc.xpath(
        "//div[@id='content-main']//input[not(@type='hidden') and not(@type='submit')]"
        " | //div[@id='content-main']//select | //div[@id='content-main']//textarea"
    ):
        assert element.get("id") in labels or element.xpath("ancestor::label"), element.get("name")
        in_described_group = element.xpath("ancestor::fieldset[@aria-describedby]")
        if element.get("name") == "check" or element.get("type") == "radio":
            continue
        assert element.get("aria-describedby") or in_described_group, element.get("name")
        described += 1
    assert described > 15
