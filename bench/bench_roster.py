"""Roster import benchmarks (issue 15): `roster.import_50k_s` (50,000 students and 80,000
guardians from a OneRoster 1.2 bulk roster, goal 60 s) and `roster.reimport_50k_s` (the same
file again, no changes, goal 20 s), each with the floor measured in the same run (a raw
`COPY` of the same rows into scratch tables) and the ratio; `roster.import_50k_peak_mb` is
the growth of the process's peak memory over the import."""

from __future__ import annotations

import csv
import resource
import tempfile
import time
from pathlib import Path

from bench import Result, ratio, result

STUDENTS = 50_000
GUARDIANS = 80_000
SCHOOLS = [
    ("bs1", "BLES", "Bench Elementary"),
    ("bs2", "BWMS", "Bench Middle"),
    ("bs3", "BJHS", "Bench High"),
]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _roster(folder: Path) -> tuple[list[list[str]], list[list[str]]]:
    manifest = [
        ["manifest.version", "1.0"],
        ["oneroster.version", "1.2"],
        ["file.orgs", "bulk"],
        ["file.users", "bulk"],
        ["file.roles", "bulk"],
        ["file.academicSessions", "absent"],
        ["file.enrollments", "absent"],
        ["file.demographics", "absent"],
    ]
    _write(folder / "manifest.csv", ["propertyName", "value"], manifest)
    _write(
        folder / "orgs.csv",
        [
            "sourcedId",
            "status",
            "dateLastModified",
            "name",
            "type",
            "identifier",
            "parentSourcedId",
        ],
        [[s, "", "", n, "school", c, ""] for s, c, n in SCHOOLS],
    )
    users: list[list[str]] = []
    roles: list[list[str]] = []
    header = [
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
    # Guardian g looks after students g*5//8 (and the next one for every other guardian):
    # 80,000 guardians, most students with two of them, siblings sharing one.
    agents: dict[int, list[str]] = {}
    for g in range(GUARDIANS):
        for s in {g * STUDENTS // GUARDIANS, min(STUDENTS - 1, g * STUDENTS // GUARDIANS + g % 2)}:
            agents.setdefault(s, []).append(f"g{g}")
    for s in range(STUDENTS):
        school = SCHOOLS[s % 3][0]
        grade = f"{(s % 12) + 1:02d}"
        users.append(
            [
                f"s{s}",
                "",
                "",
                "true",
                f"s{s}",
                "",
                f"Étudiant{s}",
                f"O'Família{s % 997}",
                "",
                f"R{s:07d}",
                "",
                "",
                "",
                ",".join(agents.get(s, [])),
                grade,
                "",
            ]
        )
        roles.append([f"rs{s}", "", "", f"s{s}", "primary", "student", "", "", school, ""])
    for g in range(GUARDIANS):
        users.append(
            [
                f"g{g}",
                "",
                "",
                "true",
                f"g{g}",
                "",
                f"Parent{g}",
                f"家{g % 500}",
                "",
                "",
                f"bench-parent{g}@example.org",
                "",
                "555-0100",
                "",
                "",
                "",
            ]
        )
        roles.append([f"rg{g}", "", "", f"g{g}", "primary", "parent", "", "", SCHOOLS[0][0], ""])
    _write(folder / "users.csv", header, users)
    _write(
        folder / "roles.csv",
        [
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
        ],
        roles,
    )
    return users, roles


def _copy_floor(users: list[list[str]], roles: list[list[str]]) -> float:
    """The same rows COPYed raw into scratch tables: what no importer can beat."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_users (sid text, first text, last text, "
            "number text, email text, agents text, grades text)"
        )
        cursor.execute("CREATE TEMP TABLE bench_roles (sid text, usid text, role text, org text)")
        started = time.perf_counter()
        with cursor.copy("COPY bench_users FROM STDIN") as copy:
            for u in users:
                copy.write_row((u[0], u[6], u[7], u[9], u[10], u[13], u[14]))
        with cursor.copy("COPY bench_roles FROM STDIN") as copy:
            for r in roles:
                copy.write_row((r[0], r[3], r[5], r[8]))
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_users; DROP TABLE bench_roles")
    return elapsed


def _import(folder: Path) -> tuple[float, int]:
    from apps.roster.formats import read_roster
    from apps.roster.services import roster_apply, roster_plan

    started = time.perf_counter()
    plan = roster_plan(roster=read_roster(path=folder))
    roster_apply(plan=plan, allow_deactivate=True)
    return time.perf_counter() - started, plan.change_count


def roster_import_50k() -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        users, roles = _roster(folder)
        floor = _copy_floor(users, roles)
        del users, roles
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        first, changes = _import(folder)
        peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        again, unchanged = _import(folder)
    if unchanged:
        raise AssertionError(f"re-import changed {unchanged} things; it must change none")
    n = STUDENTS + GUARDIANS
    return [
        result("roster.import_50k_s", first, "s", target=60, n=n),
        result("roster.import_50k_floor_s", floor, "s", n=n),
        ratio("roster.import_50k_ratio", first, floor, n=n),
        result("roster.reimport_50k_s", again, "s", target=20, n=n),
        ratio("roster.reimport_50k_ratio", again, floor, n=n),
        result("roster.import_50k_peak_mb", max(0.0, peak_after - peak_before), "MB", n=n),
        result("roster.import_50k_changes", changes, "rows", n=n),
    ]


BENCHMARKS = [roster_import_50k]
