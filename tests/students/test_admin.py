"""Students, activities and student lists on the staff site."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from apps.fees.models import Fee, LedgerEntry
from apps.fees.services import Origin, assignment_create, payment_take
from apps.students.models import ActivityMembership, StudentList
from tests.admin_helpers import csrf_client, submit
from tests.factories import (
    ActivityFactory,
    CategoryFactory,
    GuardianFactory,
    MerchantAccountFactory,
    SchoolFactory,
    StudentFactory,
    StudentListFactory,
    make_fee,
)

pytestmark = pytest.mark.django_db


def url(name: str, *args: object) -> str:
    return reverse(f"admin:{name}", args=args)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- a student's page -------------------------------------------------------------------------


def test_student_page_shows_each_fee_with_a_link_and_the_total_owed(clerk):
    student = StudentFactory()
    trip = make_fee(student=student, amount="50.00", description="Zoo trip")
    book = make_fee(student=student, amount="12.00", description="Lost book")
    payment_take(fee=trip, amount="20.00", method="cash", origin=Origin())

    response = logged_in(clerk).get(url("students_student_change", student.pk))

    html = response.content.decode()
    assert response.status_code == 200
    for fee in (trip, book):
        assert f'href="{url("fees_fee_change", fee.pk)}"' in html
        assert fee.description in html
    assert "$42.00" in html  # 30.00 still owed on the trip + 12.00 on the book
    assert url("fees_fee_add") + f"?student={student.pk}" in html


def test_student_page_saves_with_its_read_only_fee_inline(clerk):
    student = StudentFactory(grade="5")
    fee = make_fee(student=student)
    guardian = GuardianFactory()

    response = submit(
        csrf_client(clerk),
        url("students_student_change", student.pk),
        {
            "grade": "6",
            "Guardian_students-TOTAL_FORMS": "1",
            "Guardian_students-0-guardian": str(guardian.pk),
            "Guardian_students-0-student": str(student.pk),
        },
        form_id="student_form",
    )

    assert response.status_code == 302, response.context and response.context["errors"]
    student.refresh_from_db()
    assert student.grade == "6"
    assert list(student.guardians.all()) == [guardian]
    assert LedgerEntry.objects.filter(fee=fee).count() == 1


def listed(client: Client, query: str) -> set[int]:
    response = client.get(url("students_student_changelist") + query)
    assert response.status_code == 200
    return {s.pk for s in response.context["cl"].result_list}


def test_student_search_by_number_and_name(clerk):
    ana = StudentFactory(first_name="Ana", last_name="Lopez", student_number="812345")
    StudentFactory(first_name="Ben", last_name="Okafor", student_number="912345")
    client = logged_in(clerk)

    assert listed(client, "?q=812345") == {ana.pk}
    assert listed(client, "?q=8123") == {ana.pk}
    assert listed(client, "?q=lopez") == {ana.pk}
    assert listed(client, "?q=Ana+Lopez") == {ana.pk}


def test_student_filters_by_school_grade_and_active(clerk):
    north = SchoolFactory()
    a = StudentFactory(school=north, grade="3")
    b = StudentFactory(grade="3", active=False)
    c = StudentFactory(school=north, grade="7")
    client = logged_in(clerk)

    assert listed(client, f"?school__id__exact={north.pk}") == {a.pk, c.pk}
    assert listed(client, "?grade=3") == {a.pk, b.pk}
    assert listed(client, "?active__exact=0") == {b.pk}


def test_student_list_shows_what_each_owes_without_a_query_per_row(
    clerk, django_assert_max_num_queries
):
    client = logged_in(clerk)
    make_fee(amount="10.00")
    client.get(url("students_student_changelist"))
    with django_assert_max_num_queries(12) as few:
        client.get(url("students_student_changelist"))
    for _ in range(20):
        make_fee(amount="7.50")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(url("students_student_changelist"))
    assert "$7.50" in response.content.decode()


def test_support_staff_see_students_but_cannot_charge_or_join(support_user):
    student = StudentFactory()
    client = logged_in(support_user)

    page = client.get(url("students_student_change", student.pk))
    assert page.status_code == 200
    assert url("fees_fee_add") not in page.content.decode()


# --- activities: joining goes through activity_join ------------------------------------------


@pytest.fixture
def football():
    activity = ActivityFactory(name="Football")
    roster = StudentListFactory(name="Football roster", activity=activity)
    assignment_create(
        student_list=roster,
        category=CategoryFactory(),
        merchant_account=MerchantAccountFactory(),
        description="Football fee",
        amount="75.00",
        fee_date=dt.date(2026, 9, 1),
        origin=Origin(),
    )
    return activity


def test_add_members_form_joins_students_and_charges_the_activity_fee(clerk, football):
    ana, ben = StudentFactory(), StudentFactory()
    client = csrf_client(clerk)

    response = submit(
        client,
        url("students_activity_add_members", football.pk),
        {"students": [str(ana.pk), str(ben.pk)]},
        follow=True,
    )

    assert "2 students joined Football; 2 activity fees charged." in messages_of(response)
    assert ActivityMembership.objects.filter(activity=football).count() == 2
    assert Fee.objects.filter(student=ana, description="Football fee").get().amount == Decimal(
        "75.00"
    )

    again = submit(
        client,
        url("students_activity_add_members", football.pk),
        {"students": [str(ana.pk)]},
        follow=True,
    )
    assert any("already a member" in m for m in messages_of(again))
    assert Fee.objects.filter(student=ana).count() == 1


def test_activity_page_does_not_edit_members_directly(clerk, football):
    page = logged_in(clerk).get(url("students_activity_change", football.pk))
    html = page.content.decode()
    assert url("students_activity_add_members", football.pk) in html
    assert "members" not in page.context["adminform"].form.fields
    assert "activitymembership_set-0-student" not in html


def test_student_list_action_adds_the_selected_students_to_an_activity(clerk, football):
    ana, ben = StudentFactory(), StudentFactory()
    client = csrf_client(clerk)
    changelist = url("students_student_changelist")
    page = client.get(changelist)
    token = page.context["csrf_token"]

    confirm = client.post(
        changelist,
        {
            "action": "add_to_activity",
            "_selected_action": [ana.pk, ben.pk],
            "csrfmiddlewaretoken": token,
        },
    )
    assert confirm.status_code == 200
    assert "Add students to an activity" in confirm.content.decode()

    done = client.post(
        changelist,
        {
            "action": "add_to_activity",
            "_selected_action": [ana.pk, ben.pk],
            "apply": "1",
            "activity": football.pk,
            "csrfmiddlewaretoken": token,
        },
        follow=True,
    )
    assert "2 students joined Football; 2 activity fees charged." in messages_of(done)
    assert Fee.objects.filter(description="Football fee").count() == 2


def test_support_staff_cannot_add_members(support_user, football):
    client = logged_in(support_user)
    assert client.get(url("students_activity_add_members", football.pk)).status_code == 403


# --- student lists ------------------------------------------------------------------------------


def test_student_list_page_counts_its_students_today(clerk):
    school = SchoolFactory()
    for _ in range(3):
        StudentFactory(school=school, grade="4")
    StudentFactory(school=school, grade="4", active=False)
    dynamic = StudentListFactory(school=school, grade="4")

    page = logged_in(clerk).get(url("students_studentlist_change", dynamic.pk))

    assert "Students on the list today" in page.content.decode()
    assert '<div class="readonly">3</div>' in page.content.decode()


def test_a_fixed_list_with_filter_fields_is_refused(clerk):
    school = SchoolFactory()
    student = StudentFactory()

    response = submit(
        csrf_client(clerk),
        url("students_studentlist_add"),
        {
            "name": "Band trip",
            "kind": "fixed",
            "school": str(school.pk),
            "status": "active",
            "students": [str(student.pk)],
        },
        form_id="studentlist_form",
    )

    assert response.status_code == 200
    assert "A fixed list names its students" in str(response.context["adminform"].form.errors)
    assert not StudentList.objects.filter(name="Band trip").exists()


def test_a_fixed_list_names_its_students(clerk):
    ana, ben = StudentFactory(), StudentFactory()

    response = submit(
        csrf_client(clerk),
        url("students_studentlist_add"),
        {
            "name": "Band trip",
            "kind": "fixed",
            "status": "any",
            "students": [str(ana.pk), str(ben.pk)],
        },
        form_id="studentlist_form",
    )

    assert response.status_code == 302
    made = StudentList.objects.get(name="Band trip")
    assert set(made.students.all()) == {ana, ben}
