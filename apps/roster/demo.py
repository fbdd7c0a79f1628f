"""The demo district as a OneRoster 1.2 roster (seed_demo imports it through the roster
importer, so the demo exercises the same path a real district's SIS file takes).

A *delta* roster: every row `active` with one fixed dateLastModified. Delta rather than bulk
because `seed_demo --students N` with a smaller N than an earlier run must add nothing and
make nobody inactive (the command's contract: it only completes the district)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from typing import Any

#: FeeSync grade -> OneRoster (CEDS) grade code.
CEDS = {"K": "KG", **{str(n): f"{n:02d}" for n in range(1, 13)}}
MODIFIED = "2025-08-01T00:00:00.000Z"


def student_sid(number: str) -> str:
    return f"demo-student-{number}"


def guardian_sid(username: str) -> str:
    return f"demo-{username}"


def school_sid(code: str) -> str:
    return f"demo-school-{code}"


def _csv(header: Sequence[str], rows: Any) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def demo_roster_files(
    *,
    students: Sequence[Any],
    guardians: Sequence[Any],
    schools: Sequence[tuple[str, str, Any]],
    school_of_grade: dict[str, str],
    year_start: date,
) -> dict[str, str]:
    """The files of the roster: file name -> CSV text."""
    manifest = [
        ("manifest.version", "1.0"),
        ("oneroster.version", "1.2"),
        ("file.orgs", "delta"),
        ("file.users", "delta"),
        ("file.roles", "delta"),
        ("file.academicSessions", "delta"),
        ("file.enrollments", "absent"),
        ("file.demographics", "absent"),
        ("source.systemName", "FeeSync demo district"),
    ]
    grade_of = {s.number: s.grade for s in students}
    guardians_of: dict[str, list[str]] = {}
    for g in guardians:
        for number in g.children:
            guardians_of.setdefault(number, []).append(guardian_sid(g.username))
    user_header = [
        "sourcedId",
        "status",
        "dateLastModified",
        "enabledUser",
        "username",
        "userIds",
        "givenName",
        "familyName",
        "middleName",
        "identifier",
        "email",
        "sms",
        "phone",
        "agentSourcedIds",
        "grades",
        "password",
    ]
    role_header = [
        "sourcedId",
        "status",
        "dateLastModified",
        "userSourcedId",
        "roleType",
        "role",
        "beginDate",
        "endDate",
        "orgSourcedId",
        "userProfileSourcedId",
    ]
    users = []
    roles = []
    for s in students:
        sid = student_sid(s.number)
        users.append(
            [
                sid,
                "active",
                MODIFIED,
                "true" if s.active else "false",
                s.number,
                "",
                s.first_name,
                s.last_name,
                "",
                s.number,
                "",
                "",
                "",
                ",".join(guardians_of.get(s.number, [])),
                CEDS[s.grade],
                "",
            ]
        )
        roles.append(
            [
                f"{sid}-role",
                "active",
                MODIFIED,
                sid,
                "primary",
                "student",
                s.enrollment_date.isoformat(),
                "",
                school_sid(school_of_grade[s.grade]),
                "",
            ]
        )
    for g in guardians:
        sid = guardian_sid(g.username)
        users.append(
            [
                sid,
                "active",
                MODIFIED,
                "true",
                g.username,
                "",
                g.first_name,
                g.last_name,
                "",
                "",
                g.email,
                "",
                g.phone,
                "",
                "",
                "",
            ]
        )
        roles.append(
            [
                f"{sid}-role",
                "active",
                MODIFIED,
                sid,
                "primary",
                "parent",
                "",
                "",
                school_sid(school_of_grade[grade_of[g.children[0]]])
                if g.children
                else school_sid(schools[0][0]),
                "",
            ]
        )
    year = year_start.year + 1
    return {
        "manifest.csv": _csv(["propertyName", "value"], manifest),
        "orgs.csv": _csv(
            [
                "sourcedId",
                "status",
                "dateLastModified",
                "name",
                "type",
                "identifier",
                "parentSourcedId",
            ],
            [
                [school_sid(code), "active", MODIFIED, name, "school", code, ""]
                for code, name, _ in schools
            ],
        ),
        "academicSessions.csv": _csv(
            [
                "sourcedId",
                "status",
                "dateLastModified",
                "title",
                "type",
                "startDate",
                "endDate",
                "parentSourcedId",
                "schoolYear",
            ],
            [
                [
                    f"demo-{year}",
                    "active",
                    MODIFIED,
                    f"{year - 1}-{year}",
                    "schoolYear",
                    year_start.isoformat(),
                    date(year, 6, 12).isoformat(),
                    "",
                    str(year),
                ]
            ],
        ),
        "users.csv": _csv(user_header, users),
        "roles.csv": _csv(role_header, roles),
    }
