"""Roster import: OneRoster 1.2 / 1.1 (bulk and delta) and the plain CSV, matched on the
SIS's sourcedId, with its preview, guard and refused rows."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import CommandError, call_command

from apps.fees.models import Fee
from apps.roster.models import AcademicSession
from apps.students.models import Guardian, School, Student
from tests.factories import make_fee
from tests.roster.files import Person, family, oneroster_files, write_folder, zip_bytes

pytestmark = pytest.mark.django_db


def run(path: Path, *flags: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("roster_import", str(path), "--json", *flags, stdout=out)
    return json.loads(out.getvalue())


def folder(tmp_path: Path, name: str, people: list[Person], **kw: Any) -> Path:
    return write_folder(tmp_path / name, oneroster_files(people, **kw))


@pytest.mark.parametrize("version", ["1.2", "1.1"])
def test_bulk_import_then_the_same_file_again_changes_nothing(tmp_path: Path, version: str) -> None:
    path = folder(tmp_path, "r", family(5), version=version)
    first = run(path)
    assert first["applied"] and first["counts"]["students_added"] == 5
    assert first["counts"]["guardians_added"] == 5 and first["counts"]["guardians_linked"] == 5
    assert School.objects.get(sourced_id="s1").code == "LES"
    kid = Student.objects.get(sourced_id="stu3")
    assert (kid.student_number, kid.grade, kid.school.code, kid.active) == (
        "100003",
        "5",
        "LES",
        True,
    )
    parent = Guardian.objects.get(sourced_id="par3")
    assert list(parent.students.all()) == [kid]
    # A portal login without a password: they set one through an invitation.
    assert parent.user.email == "parent3@example.org" and not parent.user.has_usable_password()
    assert AcademicSession.objects.get(sourced_id="t1").parent.sourced_id == "y2026"

    again = run(path)
    assert again["counts"]["changes"] == 0
    assert Student.objects.count() == 5 and Guardian.objects.count() == 5
    assert get_user_model().objects.count() == 5


def test_dry_run_shows_changes_with_before_and_after_and_writes_nothing(tmp_path: Path) -> None:
    run(folder(tmp_path, "a", family(3)))
    people = family(3)
    people[0].grade = "06"
    people[0].family = "Renamed"
    preview = run(folder(tmp_path, "b", people), "--dry-run")
    assert not preview["applied"]
    change = preview["students_changed"][0]
    assert change["sourced_id"] == "stu0"
    assert {"field": "grade", "before": "5", "after": "6"} in change["changes"]
    assert {"field": "last name", "before": "Family", "after": "Renamed"} in change["changes"]
    assert Student.objects.get(sourced_id="stu0").grade == "5"


def test_matched_on_sourced_id_never_on_name(tmp_path: Path) -> None:
    run(folder(tmp_path, "a", family(2)))
    # Two students of the same name are two students; a renamed one is the same student.
    people = family(2)
    people[0].given, people[0].family = "Kid1", "Family"
    result = run(folder(tmp_path, "b", people))
    assert result["counts"]["students_added"] == 0
    assert Student.objects.filter(first_name="Kid1", last_name="Family").count() == 2


def test_delta_changes_only_what_it_lists(tmp_path: Path) -> None:
    run(folder(tmp_path, "bulk", family(40)))
    delta = [
        Person(
            "stu1",
            "Kid1",
            "Family",
            number="100001",
            grade="07",
            status="active",
            modified="2026-11-02T10:00:00.000Z",
        ),
        Person(
            "stu2",
            "Kid2",
            "Family",
            number="100002",
            status="tobedeleted",
            modified="2026-11-02T10:00:00.000Z",
        ),
    ]
    result = run(folder(tmp_path, "delta", delta, mode="delta", sessions=False))
    assert result["counts"]["students_changed"] == 1
    assert result["counts"]["students_deactivated"] == 1
    assert Student.objects.get(sourced_id="stu1").grade == "7"
    left = Student.objects.get(sourced_id="stu2")
    assert not left.active  # inactive, never deleted
    # Students the delta does not mention stay as they were, links included.
    assert Student.objects.get(sourced_id="stu3").active
    assert Guardian.objects.get(sourced_id="par1").students.count() == 1
    # An older row delivered late is ignored (dateLastModified).
    old = [
        Person(
            "stu1",
            "Kid1",
            "Family",
            number="100001",
            grade="03",
            status="active",
            modified="2026-10-01T10:00:00.000Z",
        )
    ]
    late = run(folder(tmp_path, "late", old, mode="delta", sessions=False))
    assert late["counts"]["rows_stale"] == 1 and late["counts"]["changes"] == 0
    assert Student.objects.get(sourced_id="stu1").grade == "7"


def test_delta_rows_need_status_and_date(tmp_path: Path) -> None:
    run(folder(tmp_path, "bulk", family(2)))
    rows = [Person("stu1", "Kid1", "Family", number="100001", grade="07")]
    result = run(folder(tmp_path, "d", rows, mode="delta", sessions=False))
    assert result["counts"]["rows_refused"] >= 1
    assert "status" in result["refused"][-1]["reason"]


def test_bad_rows_are_listed_and_good_rows_applied(tmp_path: Path) -> None:
    people = family(3) + [
        Person("bad1", "", "Nobody", number="900001"),
        Person("bad2", "Grade", "Less", number="900002", grade="5th"),
        Person("bad3", "No", "Number", number=""),
        Person("bad4", "Far", "Away", number="900004", org="nowhere"),
        Person("stu0", "Twice", "Listed", number="900005"),
    ]
    result = run(folder(tmp_path, "r", people))
    assert result["applied"]
    assert Student.objects.count() == 3
    reasons = {r["line"]: r["reason"] for r in result["refused"] if r["file"] == "users.csv"}
    assert "first name" in reasons[8]
    assert "grade “5th”" in reasons[9]
    assert "identifier" in reasons[10]
    assert "school “nowhere”" in reasons[11]
    assert "appears twice" in reasons[12]


def test_truncated_bulk_file_is_held_by_the_guard(tmp_path: Path) -> None:
    run(folder(tmp_path, "full", family(40)))
    with pytest.raises(CommandError, match="guard"):
        run(folder(tmp_path, "cut", family(30)))
    assert Student.objects.filter(active=True).count() == 40
    # One leaving (2.5%) is within the 5% guard.
    run(folder(tmp_path, "one", family(39)))
    assert Student.objects.filter(active=True).count() == 39
    # The override applies it: the end of a school year.
    result = run(folder(tmp_path, "cut2", family(30)), "--allow-deactivate")
    assert result["counts"]["students_deactivated"] == 9
    assert Student.objects.filter(active=True).count() == 30 and Student.objects.count() == 40


def test_guardian_linked_to_three_students_across_two_schools(tmp_path: Path) -> None:
    people = [
        Person("a", "Ana", "Ortiz", number="1", org="s1", grade="KG"),
        Person("b", "Ben", "Ortiz", number="2", org="s1", grade="03"),
        Person("c", "Cruz", "Ortiz", number="3", org="s2", grade="10"),
        Person(
            "g",
            "Gloria",
            "Ortiz",
            role="guardian",
            org="s1",
            email="gloria@example.org",
            agents=["a", "b", "c"],
        ),
    ]
    schools = [("s1", "LES", "Lincoln Elementary"), ("s2", "JHS", "Jefferson High")]
    run(folder(tmp_path, "r", people, schools=schools))
    gloria = Guardian.objects.get(sourced_id="g")
    assert {(s.student_number, s.school.code) for s in gloria.students.all()} == {
        ("1", "LES"),
        ("2", "LES"),
        ("3", "JHS"),
    }
    # Cruz's link goes when the SIS no longer lists it.
    people[3].agents = ["a", "b"]
    result = run(folder(tmp_path, "r2", people, schools=schools))
    assert result["counts"]["guardians_unlinked"] == 1
    assert set(gloria.students.values_list("student_number", flat=True)) == {"1", "2"}


def test_unreadable_file_applies_nothing_and_says_why(tmp_path: Path) -> None:
    files = oneroster_files(family(3))
    files["users.csv"] = files["users.csv"].replace("givenName", "firstName")
    with pytest.raises(CommandError, match="users.csv does not have the column givenName"):
        run(write_folder(tmp_path / "cols", files))
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(
        "student_id,first_name,last_name,grade,school_code\n1,Jos\xe9,P,5,LES\n".encode("latin-1")
    )
    with pytest.raises(CommandError, match="not UTF-8"):
        run(bad)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(zip_bytes(oneroster_files(family(3)))[:300])
    with pytest.raises(CommandError, match="cannot be opened|cut short"):
        run(cut)
    assert Student.objects.count() == 0 and School.objects.count() == 0


def test_names_with_accents_apostrophes_and_cjk(tmp_path: Path) -> None:
    people = [
        Person("x1", "José", "Núñez", number="11"),
        Person("x2", "Siobhán", "O'Connor", number="12"),
        Person("x3", "美咲", "山田", number="13"),
        Person(
            "x4",
            "Zoë",
            "D'Angelo-Łukasik",
            role="parent",
            email="zoe@example.org",
            agents=["x1", "x2", "x3"],
        ),
    ]
    path = tmp_path / "r.zip"
    path.write_bytes(zip_bytes(oneroster_files(people)))
    run(path)
    names = set(Student.objects.values_list("first_name", "last_name"))
    assert names == {("José", "Núñez"), ("Siobhán", "O'Connor"), ("美咲", "山田")}
    assert Guardian.objects.get(sourced_id="x4").last_name == "D'Angelo-Łukasik"
    assert run(path)["counts"]["changes"] == 0


def test_plain_csv(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(
        "student_id,first_name,last_name,grade,school_code,school_name,status,"
        "guardian1_id,guardian1_first_name,guardian1_last_name,guardian1_email,guardian1_phone\n"
        "5001,Maya,Lee,K,LES,Lincoln Elementary,active,G1,Ann,Lee,ann@example.org,555-0101\n"
        "5002,Leo,Lee,4,LES,Lincoln Elementary,,G1,Ann,Lee,ann@example.org,555-0101\n"
        "5003,Ivy,Park,9,JHS,Jefferson High,active,,Bo,Park,,\n",
        encoding="utf-8",
    )
    result = run(path)
    assert result["counts"]["students_added"] == 3 and result["counts"]["guardians_added"] == 1
    assert "matched on their id" in result["refused"][0]["reason"]
    assert result["refused"][0]["line"] == 4
    ann = Guardian.objects.get(sourced_id="G1")
    assert set(ann.students.values_list("student_number", flat=True)) == {"5001", "5002"}
    assert Student.objects.get(student_number="5003").school.name == "Jefferson High"
    assert run(path)["counts"]["changes"] == 0
    # A plain file is the whole district: a student missing from it becomes inactive.
    path.write_text(
        path.read_text().replace(
            "5002,Leo,Lee,4,LES,Lincoln Elementary,,G1,Ann,Lee,ann@example.org,555-0101\n", ""
        )
    )
    result = run(path, "--allow-deactivate")
    assert not Student.objects.get(student_number="5002").active


def test_students_typed_in_before_the_first_import_are_taken_over(tmp_path: Path) -> None:
    school = School.objects.create(code="LES", name="Lincoln")
    Student.objects.create(
        student_number="100000", first_name="Kid0", last_name="Family", grade="5", school=school
    )
    result = run(folder(tmp_path, "r", family(1)))
    assert result["counts"]["students_added"] == 0 and result["counts"]["students_changed"] == 1
    assert Student.objects.get().sourced_id == "stu0"
    assert School.objects.get().sourced_id == "s1"


def test_changed_email_moves_the_login_and_tells_the_old_address(
    tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    run(folder(tmp_path, "a", family(1)))
    people = family(1)
    people[1].email = "new-address@example.org"
    with django_capture_on_commit_callbacks(execute=True):
        run(folder(tmp_path, "b", people))
    user = Guardian.objects.get(sourced_id="par0").user
    assert user.email == user.username == "new-address@example.org"
    assert [m.to for m in mail.outbox] == [["parent0@example.org"]]
    assert "new-address@example.org" in mail.outbox[0].body


def test_guardians_without_email_are_counted_for_the_office(tmp_path: Path) -> None:
    people = family(2)
    people[1].email = ""
    result = run(folder(tmp_path, "r", people))
    assert result["counts"]["guardians_without_email"] == 1
    assert Guardian.objects.get(sourced_id="par0").user is None


def test_a_renamed_student_fees_get_a_new_version_for_the_vendors(tmp_path: Path) -> None:
    run(folder(tmp_path, "a", family(1)))
    student = Student.objects.get(sourced_id="stu0")
    fee = make_fee(student=student)
    before = fee.version
    people = family(1)
    people[0].family = "Married-Name"
    run(folder(tmp_path, "b", people))
    assert Fee.objects.get(pk=fee.pk).version == before + 1


def test_a_student_not_attending_is_imported_inactive_with_their_enrollment_date(
    tmp_path: Path,
) -> None:
    from datetime import date

    files = oneroster_files(family(2))
    files["users.csv"] = files["users.csv"].replace("stu1,,,true", "stu1,,,false")
    files["roles.csv"] = files["roles.csv"].replace(
        "r-stu0,,,stu0,primary,student,,", "r-stu0,,,stu0,primary,student,2024-09-03,"
    )
    result = run(write_folder(tmp_path / "r", files))
    assert result["counts"]["students_added"] == 2
    assert not Student.objects.get(sourced_id="stu1").active
    assert Student.objects.get(sourced_id="stu0").enrollment_date == date(2024, 9, 3)
    # Later the SIS marks stu0 as not attending: a deactivation, counted by the guard.
    files["users.csv"] = files["users.csv"].replace("stu0,,,true", "stu0,,,false")
    preview = run(write_folder(tmp_path / "r2", files), "--dry-run")
    assert preview["counts"]["students_deactivated"] == 1
    assert preview["guard"]["blocks"]  # one of one active student is more than 5%
