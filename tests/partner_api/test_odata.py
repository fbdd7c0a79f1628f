"""The OData feeds (`/api/odata/`), through the real URLconf, auth classes and PostgreSQL:
what a vendor's due-refunds query returns, every query option, paging, permissions, scope
and the errors that name what is wrong."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from django.contrib.auth.models import Permission
from django.test import override_settings
from rest_framework.test import APIClient

from apps.accounting.models import (
    AcademicYear,
    EnrollmentPeriod,
    FundSource,
    Refund,
    StudentAward,
)
from apps.fees.models import PaymentPlan, ScheduledPayment
from apps.partner_api.odata.views import v2_filter
from apps.partner_api.selectors import partner_dashboard
from apps.partner_api.services import api_key_issue, api_user_create
from apps.vendors.models import Integration
from tests.factories import CategoryFactory, StaffFactory, StudentFactory

ODATA = "/api/odata/"
ALL = ("API - Student Accounting", "API - Student Payment Plan", "API - Student Accounts")


@pytest.fixture
def odata_user(integration: Integration) -> Any:
    return api_user_create(
        user=StaffFactory(username="odata-t"), integration=integration, groups=ALL
    )


@pytest.fixture
def client(odata_user: Any) -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Api-Key {api_key_issue(api_user=odata_user, name='t')[1]}"
    )
    return client


@pytest.fixture
def awards(db: Any) -> dict[str, Any]:
    AcademicYear.objects.create(
        code="2025-26", start_date=date(2025, 7, 1), end_date=date(2026, 6, 30)
    )
    pell = FundSource.objects.create(code="PELL", name="Pell grant")
    loan = FundSource.objects.create(code="DL", name="Direct loan")
    out: dict[str, Any] = {"pell": pell, "loan": loan, "students": []}
    for i, source in enumerate([pell, pell, loan]):
        student = StudentFactory(
            student_number=f"S{i}", first_name=f"First{i}", last_name=f"Last{i}"
        )
        period = EnrollmentPeriod.objects.create(
            student=student, school=student.school, start_date=date(2025, 9, 1)
        )
        award = StudentAward.objects.create(
            student=student, enrollment_period=period, fund_source=source, award_year="2025-26"
        )
        out["students"].append(student)
        out[f"award{i}"] = award
    return out


def refund(award: StudentAward, amount: str, due: date, status: str = "N", **more: Any) -> Refund:
    return Refund.objects.create(
        student=award.student,
        student_award=award,
        fund_source=award.fund_source,
        amount=Decimal(amount),
        due_date=due,
        status=status,
        **more,
    )


def get(client: APIClient, url: str, **params: Any) -> Any:
    response = client.get(url, params)
    return response


def test_the_vendor_query_for_due_refunds_of_a_fund_source(client: APIClient, awards: Any) -> None:
    pell = awards["pell"]
    due = refund(awards["award0"], "125.50", date(2025, 10, 1))
    refund(awards["award1"], "80.00", date(2025, 9, 20))
    refund(awards["award1"], "30.00", date(2025, 11, 1))  # not due yet
    refund(awards["award0"], "10.00", date(2025, 9, 1), status="S")  # already selected
    refund(awards["award2"], "99.00", date(2025, 9, 1))  # another fund source
    response = get(
        client,
        ODATA + "Refunds",
        **{
            "$filter": "Status eq 'N' and DueDate le 2025-10-15 and "
            f"StudentAward/FundSourceId eq {pell.pk}",
            "$orderby": "DueDate",
            "$top": "100",
        },
    )
    assert response.status_code == 200, response.content
    assert response["OData-Version"] == "4.0"
    body = response.json()
    assert body["@odata.context"] == "http://testserver/api/odata/$metadata#Refunds"
    assert [(r["Amount"], r["DueDate"]) for r in body["value"]] == [
        (80.0, "2025-09-20"),
        (125.5, "2025-10-01"),
    ]
    # Money keeps its two places in the JSON text itself, never through a float.
    assert b'"Amount":125.50' in response.content
    assert body["value"][1]["RefundId"] == due.pk
    assert body["value"][1]["StudentId"] == "S0"
    assert body["value"][1]["FundSourceId"] == pell.pk
    assert "@odata.nextLink" not in body


def test_filter_operators_parentheses_and_not(client: APIClient, awards: Any) -> None:
    refund(awards["award0"], "10.00", date(2025, 9, 1))
    refund(awards["award1"], "20.00", date(2025, 9, 2), status="S")
    refund(awards["award2"], "30.00", date(2025, 9, 3))

    def amounts(expr: str) -> list[str]:
        response = get(client, ODATA + "Refunds", **{"$filter": expr, "$orderby": "Amount desc"})
        assert response.status_code == 200, (expr, response.content)
        return [f"{r['Amount']:.2f}" for r in response.json()["value"]]

    assert amounts("Amount gt 10") == ["30.00", "20.00"]
    assert amounts("Amount ge 20.00 and Amount lt 30") == ["20.00"]
    assert amounts("Amount le 20 or DueDate eq 2025-09-03") == ["30.00", "20.00", "10.00"]
    assert amounts("Status ne 'N'") == ["20.00"]
    assert amounts("not (Status eq 'N' or Amount eq 20)") == []
    assert amounts("(Status eq 'N' and Amount lt 15) or Status eq 'S'") == ["20.00", "10.00"]
    assert amounts("Status in ('S','N') and StudentAward/Student/Grade ne 'none'") == [
        "30.00",
        "20.00",
        "10.00",
    ]
    assert amounts(f"StudentAward/FundSourceId eq {awards['loan'].pk}") == ["30.00"]
    assert amounts("StudentAccountTransactionId eq null") == ["30.00", "20.00", "10.00"]
    assert amounts("startswith(StudentId, 'S1')") == ["20.00"]
    assert amounts("CreatedAt ge 2020-01-01T00:00:00Z and year(DueDate) eq 2025") == [
        "30.00",
        "20.00",
        "10.00",
    ]


def test_select_expand_orderby_top_skip_and_count(client: APIClient, awards: Any) -> None:
    for i in range(5):
        refund(awards["award0"], f"{i + 1}.00", date(2025, 9, 1 + i))
    response = get(
        client,
        ODATA + "Refunds",
        **{
            "$select": "RefundId,Amount",
            "$expand": "StudentAward($select=FundSourceCode,AwardYear),Student",
            "$orderby": "DueDate desc",
            "$top": "2",
            "$skip": "1",
            "$count": "true",
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["@odata.count"] == 5
    assert body["@odata.context"].endswith("#Refunds(RefundId,Amount,StudentAward(),Student())")
    first = body["value"][0]
    assert set(first) == {"RefundId", "Amount", "StudentAward", "Student"}
    assert first["Amount"] == 4.0
    assert first["StudentAward"] == {"FundSourceCode": "PELL", "AwardYear": "2025-26"}
    assert first["Student"]["StudentId"] == "S0" and first["Student"]["FirstName"] == "First0"
    assert [r["Amount"] for r in body["value"]] == [4.0, 3.0]
    count = client.get(ODATA + "Refunds/$count", {"$filter": "Amount gt 2"})
    assert count.status_code == 200 and count.content == b"3"
    assert count["Content-Type"].startswith("text/plain")


def test_a_refund_without_an_award_expands_to_null(client: APIClient, awards: Any) -> None:
    Refund.objects.create(
        student=awards["students"][0], amount=Decimal("5.00"), due_date=date(2025, 9, 1)
    )
    body = get(client, ODATA + "Refunds", **{"$expand": "StudentAward"}).json()
    assert body["value"][0]["StudentAward"] is None


@override_settings(FEESYNC_ODATA_MAX_PAGE_SIZE=2)
def test_server_paging_follows_next_links_to_every_row_once(client: APIClient, awards: Any) -> None:
    made = {refund(awards["award0"], "1.00", date(2025, 9, 1 + i)).pk for i in range(5)}
    seen: list[int] = []
    url: str | None = ODATA + "Refunds?$orderby=DueDate&$select=RefundId"
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["value"]) <= 2
        seen += [r["RefundId"] for r in body["value"]]
        url = body.get("@odata.nextLink")
        pages += 1
    assert pages == 3 and sorted(seen) == sorted(made) and len(seen) == 5
    # $top larger than a page: pages up to $top, no further.
    body = client.get(ODATA + "Refunds?$top=3").json()
    assert len(body["value"]) == 2 and "%24top=1" in body["@odata.nextLink"].replace("$", "%24")
    last = client.get(body["@odata.nextLink"]).json()
    assert len(last["value"]) == 1 and "@odata.nextLink" not in last


def test_prefer_maxpagesize_asks_for_smaller_pages(client: APIClient, awards: Any) -> None:
    for i in range(3):
        refund(awards["award0"], "1.00", date(2025, 9, 1 + i))
    response = client.get(ODATA + "Refunds", HTTP_PREFER="odata.maxpagesize=1")
    assert response["Preference-Applied"] == "odata.maxpagesize=1"
    assert len(response.json()["value"]) == 1 and "@odata.nextLink" in response.json()


def test_ieee754compatible_clients_get_decimals_as_strings(client: APIClient, awards: Any) -> None:
    refund(awards["award0"], "125.50", date(2025, 9, 1))
    response = client.get(
        ODATA + "Refunds",
        HTTP_ACCEPT="application/json;odata.metadata=minimal;IEEE754Compatible=true",
    )
    assert response.json()["value"][0]["Amount"] == "125.50"


def test_an_entity_by_key(client: APIClient, awards: Any) -> None:
    made = refund(awards["award0"], "7.00", date(2025, 9, 1))
    body = client.get(f"{ODATA}Refunds({made.pk})?$expand=StudentAward").json()
    assert body["@odata.context"].endswith("#Refunds(StudentAward())/$entity")
    assert body["RefundId"] == made.pk and body["StudentAward"]["FundSourceCode"] == "PELL"
    missing = client.get(f"{ODATA}Refunds({made.pk + 999})")
    assert missing.status_code == 404 and missing["Content-Type"] == "application/problem+json"
    CategoryFactory(code="ATH")
    assert (
        client.get(ODATA + "BillingTransactionCodes('ATH')").json()["BillingTransactionCodeId"]
        == "ATH"
    )


@pytest.mark.parametrize(
    ("params", "option", "says"),
    [
        ({"$filter": "Foo eq 1"}, "$filter", "Unknown property 'Foo' on Refund."),
        (
            {"$filter": "StudentAward/Bar eq 1"},
            "$filter",
            "Unknown property 'Bar' on StudentAward.",
        ),
        (
            {"$filter": "Nope/FundSourceId eq 1"},
            "$filter",
            "Unknown navigation property 'Nope' on Refund.",
        ),
        ({"$filter": "Amount eq"}, "$filter", "position"),
        ({"$filter": "Status eq 'N"}, "$filter", "position 10"),
        ({"$filter": "Amount eq 'ten'"}, "$filter", "Amount is Edm.Decimal; 'ten' is Edm.String"),
        ({"$filter": "DueDate le 2025-13-45"}, "$filter", "position"),
        ({"$filter": "Amount"}, "$filter", "must be a condition"),
        ({"$filter": "Amount add 1 gt 2"}, "$filter", "Arithmetic"),
        (
            {"$filter": "indexof(Reason, 'a') eq 1"},
            "$filter",
            "Function 'indexof' is not supported",
        ),
        ({"$filter": "substringof('a', Reason)"}, "$filter", "Unknown function: 'substringof'"),
        ({"$filter": "CreatedAt gt 2025-01-01T00:00:00"}, "$filter", "time zone"),
        ({"$select": "RefundId,Foo"}, "$select", "Unknown property 'Foo' on Refund."),
        ({"$orderby": "Foo desc"}, "$orderby", "Unknown property 'Foo' on Refund."),
        ({"$orderby": "Amount sideways"}, "$orderby", "asc or desc"),
        ({"$expand": "Fund"}, "$expand", "Unknown navigation property 'Fund' on Refund"),
        ({"$expand": "Student($filter=Grade eq '1')"}, "$expand", "Only $select"),
        ({"$top": "-1"}, "$top", "whole number"),
        ({"$skip": "x"}, "$skip", "whole number"),
        ({"$count": "yes"}, "$count", "true or false"),
        ({"$search": "x"}, "$search", "not supported"),
        ({"$filter": "Status eq '\x00'"}, "$filter", "control character"),
    ],
)
def test_a_bad_query_is_a_400_naming_what_is_wrong(
    client: APIClient, awards: Any, params: dict[str, str], option: str, says: str
) -> None:
    response = client.get(ODATA + "Refunds", params)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert says in body["detail"], body
    assert body["errors"][0]["property"] == option


def test_a_syntax_error_says_where_and_shows_on_the_dashboard(
    client: APIClient, odata_user: Any, awards: Any
) -> None:
    body = client.get(ODATA + "Refunds", {"$filter": "Status eq 'N' Amount gt 1"}).json()
    assert body["position"] == 13 and "position 13" in body["detail"]
    refused = partner_dashboard(integration=odata_user.integration)["last_error"]
    assert refused.operation == "StudentAccounts.Refund.Query" and refused.status_code == 400
    assert "position 13" in refused.reason


def test_nulls_sort_first_ascending_and_last_descending(client: APIClient, awards: Any) -> None:
    with_award = refund(awards["award0"], "1.00", date(2025, 9, 1))
    without = Refund.objects.create(
        student=awards["students"][0], amount=Decimal("2.00"), due_date=date(2025, 9, 1)
    )
    up = client.get(ODATA + "Refunds", {"$orderby": "StudentAward/FundSourceId"}).json()
    down = client.get(ODATA + "Refunds", {"$orderby": "FundSourceId desc"}).json()
    assert [r["RefundId"] for r in up["value"]] == [without.pk, with_award.pk]
    assert [r["RefundId"] for r in down["value"]] == [with_award.pk, without.pk]


def test_each_entity_set_needs_its_own_query_permission(
    integration: Integration, awards: Any
) -> None:
    user = StaffFactory(username="narrow")
    api_user = api_user_create(user=user, integration=integration, groups=())
    user.user_permissions.add(
        Permission.objects.get(codename="StudentAccounts.BillingTransactionCode.Query")
    )
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Api-Key {api_key_issue(api_user=api_user, name='n')[1]}"
    )
    assert client.get(ODATA + "BillingTransactionCodes").status_code == 200
    for entity_set, entity in [
        ("Refunds", "Refund"),
        ("ScheduledDisbursements", "ScheduledDisbursement"),
        ("StudentAwards", "StudentAward"),
        ("Students", "Student"),
    ]:
        response = client.get(ODATA + entity_set)
        assert response.status_code == 403
        assert response.json()["permission"] == f"StudentAccounts.{entity}.Query"
        assert f"StudentAccounts.{entity}.Query" in response.json()["detail"]
        assert client.get(ODATA + entity_set + "/$count").status_code == 403
    assert APIClient().get(ODATA + "Refunds").status_code == 401


def test_an_api_user_sees_only_its_integrations_refunds_plans_and_codes(
    client: APIClient, odata_user: Any, awards: Any
) -> None:
    other = Integration.objects.create(
        vendor_kind="partnerapi",
        slug="other",
        name="Other Pay",
        enabled=True,
        service_url="https://o.example.org/",
    )
    rival = api_user_create(user=StaffFactory(username="rival"), integration=other, groups=ALL)
    open_one = refund(awards["award0"], "1.00", date(2025, 9, 1))
    mine = refund(awards["award0"], "2.00", date(2025, 9, 1), status="S", selected_by=odata_user)
    refund(awards["award0"], "3.00", date(2025, 9, 1), status="S", selected_by=rival)
    ids = {r["RefundId"] for r in client.get(ODATA + "Refunds").json()["value"]}
    assert ids == {open_one.pk, mine.pk}

    student = awards["students"][0]
    plans = {
        source: PaymentPlan.objects.create(
            student=student, external_source=source, total=Decimal("10.00")
        )
        for source in (odata_user.external_source, rival.external_source, "")
    }
    for plan in plans.values():
        ScheduledPayment.objects.create(
            plan=plan, amount=Decimal("10.00"), expected_date=date(2025, 10, 1)
        )
    seen = {
        r["PaymentPlanId"] for r in client.get(ODATA + "ScheduledDisbursements").json()["value"]
    }
    assert seen == {plans[odata_user.external_source].pk, plans[""].pk}

    ath, lib = (
        CategoryFactory(code="ATH", usage="A", gl_account="4100"),
        CategoryFactory(code="LIB"),
    )
    assert {
        c["BillingTransactionCodeId"]
        for c in client.get(ODATA + "BillingTransactionCodes").json()["value"]
    } >= {
        "ATH",
        "LIB",
    }
    odata_user.integration.categories.set([ath])
    codes = client.get(ODATA + "BillingTransactionCodes").json()["value"]
    assert codes == [
        {
            "BillingTransactionCodeId": "ATH",
            "Description": ath.description,
            "IsActive": True,
            "Usage": "A",
            "GLAccount": "4100",
        }
    ]
    assert lib.code not in {c["BillingTransactionCodeId"] for c in codes}


def test_students_and_awards_feeds(client: APIClient, awards: Any) -> None:
    body = client.get(ODATA + "Students", {"$filter": "LastName eq 'Last1'"}).json()
    assert [s["StudentId"] for s in body["value"]] == ["S1"]
    assert set(body["value"][0]) == {
        "StudentId",
        "FirstName",
        "LastName",
        "Grade",
        "SchoolCode",
        "SchoolName",
        "IsActive",
        "EnrollmentDate",
    }
    awards_body = client.get(
        ODATA + "StudentAwards",
        {"$filter": "FundSourceCode eq 'PELL'", "$expand": "Student($select=LastName)"},
    ).json()
    assert sorted(a["Student"]["LastName"] for a in awards_body["value"]) == ["Last0", "Last1"]


def test_service_document_and_metadata(client: APIClient) -> None:
    doc = client.get(ODATA).json()
    names = {s["name"] for s in doc["value"]}
    assert {
        "Refunds",
        "BillingTransactionCodes",
        "ScheduledDisbursements",
        "StudentAwards",
        "Students",
    } <= names
    assert doc["@odata.context"] == "http://testserver/api/odata/$metadata"
    response = client.get(ODATA + "$metadata", HTTP_ACCEPT="application/xml")
    assert response.status_code == 200 and response["Content-Type"] == "application/xml"
    root = ET.fromstring(response.content)  # noqa: S314 - our own document
    ns = {
        "edmx": "http://docs.oasis-open.org/odata/ns/edmx",
        "edm": "http://docs.oasis-open.org/odata/ns/edm",
    }
    assert root.get("Version") == "4.0"
    refund_type = root.find(".//edm:EntityType[@Name='Refund']", ns)
    assert refund_type is not None
    amount = refund_type.find("edm:Property[@Name='Amount']", ns)
    assert amount is not None and (amount.get("Type"), amount.get("Scale")) == ("Edm.Decimal", "2")
    due = refund_type.find("edm:Property[@Name='DueDate']", ns)
    assert due is not None and due.get("Type") == "Edm.Date"
    nav = refund_type.find("edm:NavigationProperty[@Name='StudentAward']", ns)
    assert nav is not None and nav.get("Type") == "FeeSync.StudentAward"
    binding = root.find(
        ".//edm:EntitySet[@Name='Refunds']/edm:NavigationPropertyBinding[@Path='StudentAward']", ns
    )
    assert binding is not None and binding.get("Target") == "StudentAwards"


def test_version_2_literals_are_read_as_version_4_ones() -> None:
    assert (
        v2_filter("DueDate le datetime'2025-10-15T00:00:00' and Amount gt 12.50M")
        == "DueDate le 2025-10-15 and Amount gt 12.50"
    )
    assert v2_filter("CreatedAt ge datetime'2025-10-15T08:30:00'") == (
        "CreatedAt ge 2025-10-15T08:30:00Z"
    )
    # Inside a string nothing changes.
    assert v2_filter("Reason eq 'paid 12M datetime''x'''") == "Reason eq 'paid 12M datetime''x'''"


def test_the_version_2_dialect(client: APIClient, awards: Any) -> None:
    made = refund(awards["award0"], "125.50", date(2025, 10, 1))
    body = client.get(
        ODATA + "v2/Refunds",
        {"$filter": "DueDate eq datetime'2025-10-01T00:00:00'", "$inlinecount": "allpages"},
    ).json()["d"]
    assert body["__count"] == "1"
    row = body["results"][0]
    assert (row["RefundId"], row["Amount"], row["DueDate"]) == (
        made.pk,
        "125.50",
        "/Date(1759276800000)/",
    )
    assert row["__metadata"] == {
        "type": "FeeSync.Refund",
        "uri": f"http://testserver/api/odata/v2/Refunds({made.pk})",
    }
    assert client.get(ODATA + "v2/Refunds", {"$expand": "Student"}).status_code == 400
    assert client.get(ODATA + "v2/Refunds", {"$inlinecount": "some"}).status_code == 400
    assert client.get(ODATA + "v2/").json() == {
        "d": {
            "EntitySets": [
                "Refunds",
                "BillingTransactionCodes",
                "ScheduledDisbursements",
                "StudentAwards",
                "Students",
            ]
        }
    }
    metadata = client.get(ODATA + "v2/$metadata")
    assert (
        metadata["DataServiceVersion"] == "2.0"
        and b'm:DataServiceVersion="2.0"' in metadata.content
    )
