"""seed_demo's business office: an enrollment period and academic year for every demo
student, fund sources, banks and bank accounts tied to the merchant accounts, and a drawer
per school set aside for partner-demo with an open session, enough for the demo vendor to
post PostAccountTransactionPayment at a school with cashiering on. Idempotent."""

from __future__ import annotations

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.accounting.models import (
    BankAccount,
    CashDrawer,
    CashDrawerSession,
    EnrollmentPeriod,
    FundSource,
    StudentAcademicYear,
)
from apps.partner_api.models import ApiUser
from apps.students.models import Student

from .conftest import COMMAND

MODELS = [EnrollmentPeriod, StudentAcademicYear, FundSource, BankAccount, CashDrawer]


@pytest.mark.django_db
def test_seed_demo_makes_what_a_fund_source_payment_names_once():
    call_command("seed_demo", students=8, stdout=StringIO())
    counts = [m.objects.count() for m in MODELS + [CashDrawerSession]]
    call_command("seed_demo", students=8, stdout=StringIO())
    assert [m.objects.count() for m in MODELS + [CashDrawerSession]] == counts
    assert EnrollmentPeriod.objects.count() == Student.objects.count() == 8
    api_user = ApiUser.objects.get(user__username="partner")
    assert BankAccount.objects.exclude(merchant_account=None).count() == BankAccount.objects.count()

    student = Student.objects.select_related("school").order_by("student_number").first()
    assert student is not None
    school = student.school
    school.cashiering = True
    school.save()
    session = CashDrawerSession.objects.get(drawer__school=school, api_user=api_user, status="open")
    period = EnrollmentPeriod.objects.get(student=student)
    year = StudentAcademicYear.objects.get(enrollment_period=period)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {settings.PARTNER_DEMO_KEY}")
    response = client.post(
        COMMAND,
        {
            "payload": {
                "AcademicYearSequence": year.sequence,
                "AwardYear": year.academic_year.code,
                "BankAccountId": BankAccount.objects.filter(bank__school=school).first().pk,
                "Description": "Demo payment",
                "FundSourceId": FundSource.objects.get(code="FAMILY").pk,
                "PaymentMode": 2,
                "PaymentType": "C",
                "StudentAcademicYearId": year.pk,
                "StudentEnrollmentPeriodId": period.pk,
                "StudentId": student.student_number,
                "TransactionAmount": "10.00",
                "TransactionDate": f"{period.start_date.isoformat()}T00:00:00",
                "IsNewPaymentSuccessful": 1,
                "CashDrawerId": session.drawer_id,
                "CashDrawerSessionId": session.pk,
                "CashierUserId": api_user.user_id,
            }
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
