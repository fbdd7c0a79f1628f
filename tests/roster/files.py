"""Writing roster files for tests: OneRoster 1.2 / 1.1 folders or zips, and plain CSVs."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ORGS = ["sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"]
USERS_12 = [
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
    "userMasterIdentifier",
    "preferredGivenName",
    "preferredMiddleName",
    "preferredFamilyName",
    "primaryOrgSourcedId",
    "pronouns",
]
USERS_11 = [
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
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
ROLES = [
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
SESSIONS = [
    "sourcedId",
    "status",
    "dateLastModified",
    "title",
    "type",
    "startDate",
    "endDate",
    "parentSourcedId",
    "schoolYear",
]


@dataclass
class Person:
    sid: str
    given: str
    family: str
    role: str = "student"
    org: str = "s1"
    number: str = ""
    grade: str = "05"
    email: str = ""
    phone: str = ""
    agents: list[str] = field(default_factory=list)
    status: str = ""
    modified: str = ""


def _csv(header: list[str], rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=header, lineterminator="\r\n")
    w.writeheader()
    for r in rows:
        w.writerow({h: r.get(h, "") for h in header})
    return out.getvalue()


def oneroster_files(
    people: list[Person],
    *,
    version: str = "1.2",
    mode: str = "bulk",
    schools: list[tuple[str, str, str]] = (("s1", "LES", "Lincoln Elementary"),),  # type: ignore[assignment]
    sessions: bool = True,
) -> dict[str, str]:
    files: dict[str, str] = {}
    manifest = [
        ("manifest.version", "1.0"),
        ("oneroster.version", version),
        ("file.academicSessions", mode if sessions else "absent"),
        ("file.categories", "absent"),
        ("file.classes", "absent"),
        ("file.classResources", "absent"),
        ("file.courses", "absent"),
        ("file.demographics", "absent"),
        ("file.enrollments", "absent"),
        ("file.orgs", mode),
        ("file.users", mode),
        ("file.roles", mode if version == "1.2" else "absent"),
        ("source.systemName", "Test SIS"),
        ("source.systemCode", "test"),
    ]
    files["manifest.csv"] = _csv(
        ["propertyName", "value"], [{"propertyName": k, "value": v} for k, v in manifest]
    )
    files["orgs.csv"] = _csv(
        ORGS,
        [{"sourcedId": "d1", "name": "Riverside USD", "type": "district", "identifier": "RUSD"}]
        + [
            {"sourcedId": s, "name": n, "type": "school", "identifier": c, "parentSourcedId": "d1"}
            for s, c, n in schools
        ],
    )
    users, roles = [], []
    for p in people:
        row = {
            "sourcedId": p.sid,
            "status": p.status,
            "dateLastModified": p.modified,
            "enabledUser": "true",
            "username": p.sid,
            "givenName": p.given,
            "familyName": p.family,
            "identifier": p.number,
            "email": p.email,
            "phone": p.phone,
            "agentSourcedIds": ",".join(p.agents),
            "grades": p.grade if p.role == "student" else "",
        }
        if version == "1.1":
            row["role"] = p.role
            row["orgSourcedIds"] = p.org
        users.append(row)
        roles.append(
            {
                "sourcedId": f"r-{p.sid}",
                "status": p.status,
                "dateLastModified": p.modified,
                "userSourcedId": p.sid,
                "roleType": "primary",
                "role": p.role,
                "orgSourcedId": p.org,
            }
        )
    files["users.csv"] = _csv(USERS_12 if version == "1.2" else USERS_11, users)
    if version == "1.2":
        files["roles.csv"] = _csv(ROLES, roles)
    if sessions:
        files["academicSessions.csv"] = _csv(
            SESSIONS,
            [
                {
                    "sourcedId": "y2026",
                    "title": "2025-2026",
                    "type": "schoolYear",
                    "startDate": "2025-08-26",
                    "endDate": "2026-06-12",
                    "schoolYear": "2026",
                },
                {
                    "sourcedId": "t1",
                    "title": "Fall 2025",
                    "type": "term",
                    "startDate": "2025-08-26",
                    "endDate": "2025-12-19",
                    "parentSourcedId": "y2026",
                    "schoolYear": "2026",
                },
            ],
        )
    return files


def write_folder(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text, encoding="utf-8")
    return path


def zip_bytes(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text.encode("utf-8"))
    return buf.getvalue()


def family(n: int, school: str = "s1", start: int = 0) -> list[Person]:
    """n students, each with one guardian who has an email."""
    people: list[Person] = []
    for i in range(start, start + n):
        people.append(
            Person(
                f"stu{i}",
                f"Kid{i}",
                "Family",
                number=f"{100000 + i}",
                org=school,
                agents=[f"par{i}"],
            )
        )
        people.append(
            Person(
                f"par{i}",
                f"Parent{i}",
                "Family",
                role="parent",
                org=school,
                email=f"parent{i}@example.org",
                agents=[f"stu{i}"],
            )
        )
    return people
