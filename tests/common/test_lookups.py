"""`__any` (apps/common/lookups.py) finds exactly what `__in` finds, by ids, references and
relations, with the list sent as one array parameter on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.students.models import School, Student
from tests.factories import StudentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def students() -> list[Student]:
    return StudentFactory.create_batch(5)


def test_ids_references_and_relations_match_in(students: list[Student]) -> None:
    ids = [s.pk for s in students[:3]] + [999_999]
    numbers = {s.student_number for s in students[1:4]} | {"no-such-number"}
    schools = [students[0].school_id, students[4].school_id]

    for lookup, values in (("pk", ids), ("student_number", numbers), ("school", schools)):
        expected = set(Student.objects.filter(**{f"{lookup}__in": values}))
        found = set(Student.objects.filter(**{f"{lookup}__any": values}))
        assert found == expected and found, lookup


def test_an_empty_list_matches_nothing_and_a_single_value_is_refused(
    students: list[Student],
) -> None:
    assert list(Student.objects.filter(pk__any=[])) == []
    assert Student.objects.exclude(pk__any=[]).count() == len(students)
    with pytest.raises(TypeError, match="list of values"):
        Student.objects.filter(student_number__any="100001").count()


def test_a_thousand_ids_are_one_parameter(students: list[Student]) -> None:
    ids = [s.pk for s in students] + list(range(10_000_000, 10_001_000))
    with CaptureQueriesContext(connection) as queries:
        assert Student.objects.filter(pk__any=ids).count() == len(students)
    (sql,) = [q["sql"] for q in queries.captured_queries]
    assert "= ANY(" in sql and " IN (" not in sql  # one array, not a thousand placeholders
    assert School.objects.filter(students__pk__any=ids).distinct().count() == len(
        {s.school_id for s in students}
    )
