"""factory-boy factories for every app's models, typed so tests read clearly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from apps.accounts.models import MerchantAccount
from apps.categories.models import FeeCategory
from apps.fees.models import Fee
from apps.fees.services import Origin, fee_create
from apps.students.models import Activity, Guardian, School, Student, StudentList


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-1")

    @factory.post_generation
    def groups(self, create: bool, extracted: list[str] | None, **kwargs: object) -> None:
        if create and extracted:
            for name in extracted:
                self.groups.add(Group.objects.get(name=name))
        if create:
            self.save()


class StaffFactory(UserFactory):
    is_staff = True


class SchoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = School
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"S{n:03d}")
    name = factory.Sequence(lambda n: f"School {n}")


class StudentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Student

    student_number = factory.Sequence(lambda n: f"{100000 + n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    grade = "5"
    school = factory.SubFactory(SchoolFactory)
    active = True
    enrollment_date = dt.date(2025, 9, 2)


class GuardianFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Guardian

    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda g: f"{g.first_name.lower()}@example.org")
    user = factory.SubFactory(UserFactory)


class ActivityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Activity

    name = factory.Sequence(lambda n: f"Activity {n}")
    is_sport = True


class StudentListFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StudentList

    name = factory.Sequence(lambda n: f"List {n}")


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FeeCategory
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"CAT{n}")
    description = factory.Sequence(lambda n: f"Category {n}")


class MerchantAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MerchantAccount
        django_get_or_create = ("merchant_id",)

    name = factory.Sequence(lambda n: f"Fund {n}")
    merchant_id = factory.Sequence(lambda n: f"MID{n:05d}")


def make_fee(
    *,
    student: Student | None = None,
    amount: str | Decimal = "50.00",
    category: FeeCategory | None = None,
    merchant_account: MerchantAccount | None = None,
    description: str = "Field trip",
    fee_date: dt.date = dt.date(2026, 9, 15),
    due_date: dt.date | None = None,
    user: object | None = None,
) -> Fee:
    """A fee created the way the product creates one: through the ledger service."""
    return fee_create(
        student=student or StudentFactory(),
        category=category or CategoryFactory(),
        merchant_account=merchant_account or MerchantAccountFactory(),
        description=description,
        amount=amount,
        fee_date=fee_date,
        due_date=due_date,
        origin=Origin(user=user),
    )
