"""Reading roster files: OneRoster 1.2 and 1.1 CSV (a zip or a folder with `manifest.csv`) and
FeeSync's plain CSV, into one normalised `Roster`.

What is read, column by column, is documented in docs/roster.md. Reading never touches the
database. A file that cannot be read as a whole (not UTF-8, a required column missing, no
manifest) raises `RosterUnreadable` naming what is wrong, so nothing is applied; a single bad
row is refused (file, line, reason in words) and the other rows are read on.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO

from django.utils.dateparse import parse_datetime

#: A OneRoster sourcedId, or the id column of the plain CSV.
Sid = str

ACTIVE = "active"
TO_BE_DELETED = "tobedeleted"
STUDENT_NUMBER_MAX = 20  # Student.student_number
NAME_MAX = 60  # Student/Guardian first_name, last_name
GUARDIAN_ROLES = {"parent", "guardian", "relative"}

#: OneRoster (CEDS) grade codes to FeeSync's grades (K, 1 … 12, PK).
GRADES = {
    "PK": "PK",
    "TK": "TK",
    "KG": "K",
    "K": "K",
    **{f"{n:02d}": str(n) for n in range(1, 14)},
    **{str(n): str(n) for n in range(1, 14)},
    "PS": "PS",
    "IT": "IT",
    "PR": "PR",
    "UG": "UG",
}

PLAIN_COLUMNS = ["student_id", "first_name", "last_name", "grade", "school_code"]
PLAIN_OPTIONAL = ["school_name", "status"] + [
    f"guardian{n}_{name}"
    for n in (1, 2)
    for name in ("id", "first_name", "last_name", "email", "phone")
]


class RosterUnreadable(Exception):
    """The file as a whole cannot be read; nothing of it may be applied."""


@dataclass(frozen=True, slots=True)
class Refusal:
    file: str
    line: int
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


@dataclass(slots=True)
class SchoolRow:
    sourced_id: Sid
    code: str
    name: str
    status: str


@dataclass(slots=True)
class StudentRow:
    sourced_id: Sid
    number: str
    first_name: str
    last_name: str
    grade: str
    school: Sid
    status: str
    modified: datetime | None
    line: int
    #: False: on the roll but not attending (OneRoster enabledUser=false, plain "inactive").
    enabled: bool = True
    #: When the student's enrollment began (roles.csv beginDate), for a new student.
    enrolled: date | None = None


@dataclass(slots=True)
class GuardianRow:
    sourced_id: Sid
    first_name: str
    last_name: str
    email: str
    phone: str
    status: str
    modified: datetime | None
    line: int


@dataclass(slots=True)
class SessionRow:
    sourced_id: Sid
    title: str
    kind: str
    start: date
    end: date
    school_year: int
    parent: Sid
    status: str


@dataclass
class Roster:
    """A roster file read into memory: one small record per school, student and guardian."""

    format: str  # "oneroster-1.2", "oneroster-1.1" or "plain"
    #: file -> "bulk" / "delta" / "absent" (manifest `file.<name>`); plain CSV is bulk.
    modes: dict[str, str]
    schools: dict[Sid, SchoolRow] = field(default_factory=dict)
    students: dict[Sid, StudentRow] = field(default_factory=dict)
    guardians: dict[Sid, GuardianRow] = field(default_factory=dict)
    sessions: dict[Sid, SessionRow] = field(default_factory=dict)
    #: (guardian, student) pairs the file links.
    links: set[tuple[Sid, Sid]] = field(default_factory=set)
    #: Users whose row listed their agents: their links are exactly what the file says.
    agents_listed: set[Sid] = field(default_factory=set)
    refused: list[Refusal] = field(default_factory=list)
    #: Records whose row was refused: a bulk file does not make them leave for that.
    refused_ids: set[Sid] = field(default_factory=set)
    #: student -> the beginDate of their student role (roles.csv).
    enrolled: dict[Sid, date] = field(default_factory=dict)
    #: Rows read that are neither students nor guardians (teachers ...): not refused.
    skipped: int = 0

    def bulk(self, name: str) -> bool:
        return self.modes.get(name) == "bulk"

    def present(self, name: str) -> bool:
        return self.modes.get(name) in ("bulk", "delta")


# --- where the files are ------------------------------------------------------------------------


class _Files:
    """The CSV files of a roster, from a zip, a folder or a single CSV file."""

    def __init__(
        self,
        path: Path | None = None,
        data: bytes | None = None,
        name: str = "",
        files: dict[str, bytes] | None = None,
    ):
        self.name = name or (path.name if path else "roster")
        self._zip: zipfile.ZipFile | None = None
        self._dir: Path | None = None
        self._single: bytes | None = None
        self._mem = files
        if files is not None:
            return
        if path is not None and path.is_dir():
            self._dir = path
            return
        if data is None:
            if path is None:
                raise RosterUnreadable("No roster file was given.")
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise RosterUnreadable(f"The file {path.name} cannot be opened: {exc}.") from exc
        if data[:4] == b"PK\x03\x04":
            try:
                self._zip = zipfile.ZipFile(io.BytesIO(data))
            except zipfile.BadZipFile as exc:
                raise RosterUnreadable(
                    f"{self.name} looks like a zip file but cannot be opened ({exc}); "
                    "it may be cut short."
                ) from exc
        else:
            self._single = data

    def _zip_member(self, name: str) -> str | None:
        if self._zip is None:
            return None
        # Files at the top of the zip, or in the one folder an export tool wrapped them in.
        for member in self._zip.namelist():
            if os.path.basename(member) == name and member.count("/") <= 1:
                return member
        return None

    def has(self, name: str) -> bool:
        if self._mem is not None:
            return name in self._mem
        if self._dir is not None:
            return (self._dir / name).is_file()
        if self._zip is not None:
            return self._zip_member(name) is not None
        return False

    def open(self, name: str) -> IO[bytes]:
        if self._mem is not None:
            if name not in self._mem:
                raise RosterUnreadable(f"The roster has no {name}.")
            return io.BytesIO(self._mem[name])
        if self._dir is not None:
            return (self._dir / name).open("rb")
        if self._zip is not None:
            member = self._zip_member(name)
            if member is None:
                raise RosterUnreadable(f"The zip has no {name}.")
            try:
                return self._zip.open(member)
            except (zipfile.BadZipFile, OSError) as exc:
                raise RosterUnreadable(f"{name} in the zip cannot be read ({exc}).") from exc
        raise RosterUnreadable(f"{self.name} is a single file, not a OneRoster zip or folder.")

    @property
    def single(self) -> bytes | None:
        return self._single


def _rows(
    stream: IO[bytes], file: str, required: list[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; the header must hold `required`."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(text)
    try:
        try:
            header = next(reader)
        except StopIteration:
            raise RosterUnreadable(f"{file} is empty: it has no header line.") from None
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise RosterUnreadable(
                f"{file} does not have the column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (its header is: {', '.join(header) or 'empty'})."
            )
        width = len(header)
        for cells in reader:
            line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != width:
                # Keep the row's id where it leads the row, so a bulk file does not make that
                # record leave because its row was garbled.
                first = cells[0].strip() if header[0] in ("sourcedId", "student_id") else ""
                yield line, {"__width__": f"{len(cells)} of {width}", "__id__": first}
                continue
            yield line, {h: c.strip() for h, c in zip(header, cells, strict=True)}
    except UnicodeDecodeError as exc:
        raise RosterUnreadable(
            f"{file} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} near position "
            f"{exc.start}); export it again as UTF-8."
        ) from exc
    except csv.Error as exc:
        raise RosterUnreadable(
            f"{file} is not valid CSV near line {reader.line_num}: {exc}."
        ) from exc


def _refuse_width(roster: Roster, file: str, line: int, row: dict[str, str]) -> bool:
    if "__width__" not in row:
        return False
    roster.refused.append(
        Refusal(file, line, f"the row has {row['__width__']} columns of the header")
    )
    if row["__id__"]:
        roster.refused_ids.add(row["__id__"])
    return True


# --- OneRoster ----------------------------------------------------------------------------------

ORG_COLUMNS = ["sourcedId", "status", "dateLastModified", "name", "type", "identifier"]
SESSION_COLUMNS = [
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
USER_COLUMNS_12 = [
    "sourcedId",
    "status",
    "dateLastModified",
    "givenName",
    "familyName",
    "identifier",
    "email",
    "phone",
    "agentSourcedIds",
    "grades",
]
USER_COLUMNS_11 = [*USER_COLUMNS_12, "orgSourcedIds", "role"]
ROLE_COLUMNS = ["sourcedId", "status", "dateLastModified", "userSourcedId", "roleType", "role"]
ROLE_COLUMNS_ORG = "orgSourcedId"


def _status(row: dict[str, str], *, delta: bool) -> tuple[str, str | None]:
    """The row's status, or a refusal reason. Bulk files may leave it blank (= active)."""
    value = row.get("status", "")
    if value == "":
        if delta:
            return "", "a delta file must give each row a status (active or tobedeleted)"
        return ACTIVE, None
    if value in (ACTIVE, TO_BE_DELETED):
        return value, None
    return "", f"status “{value}” is neither active nor tobedeleted"


def _modified(row: dict[str, str], *, delta: bool) -> tuple[datetime | None, str | None]:
    value = row.get("dateLastModified", "")
    if value == "":
        if delta:
            return None, "a delta file must give each row its dateLastModified"
        return None, None
    parsed = parse_datetime(value.replace("Z", "+00:00"))
    if parsed is None or parsed.tzinfo is None:
        return None, f"dateLastModified “{value}” is not an ISO 8601 date and time in UTC"
    return parsed, None


def _grade(value: str) -> tuple[str, str | None]:
    first = value.split(",")[0].strip()
    if first == "":
        return "", "the student has no grade"
    grade = GRADES.get(first.upper())
    if grade is None:
        return "", f"grade “{first}” is not a OneRoster grade code (KG, 01 … 12, PK …)"
    return grade, None


def _name(value: str, what: str) -> str | None:
    if not value:
        return f"the {what} is empty"
    if len(value) > NAME_MAX:
        return f"the {what} is longer than {NAME_MAX} characters"
    return None


def _manifest(files: _Files) -> tuple[str, dict[str, str]]:
    if not files.has("manifest.csv"):
        raise RosterUnreadable(
            f"{files.name} has no manifest.csv, so it is not a OneRoster file; a plain roster "
            "is a single CSV file (see docs/roster.md)."
        )
    props: dict[str, str] = {}
    with files.open("manifest.csv") as stream:
        for _, row in _rows(stream, "manifest.csv", ["propertyName", "value"]):
            if "propertyName" in row:
                props[row["propertyName"]] = row["value"]
    version = props.get("oneroster.version", "")
    if version not in ("1.1", "1.2"):
        raise RosterUnreadable(
            f"manifest.csv gives oneroster.version “{version}”; FeeSync reads 1.1 and 1.2."
        )
    modes: dict[str, str] = {}
    for name in ("orgs", "users", "roles", "academicSessions", "enrollments", "demographics"):
        mode = props.get(f"file.{name}", "absent").strip().lower()
        if mode not in ("bulk", "delta", "absent"):
            raise RosterUnreadable(
                f"manifest.csv gives file.{name} “{mode}”; it must be bulk, delta or absent."
            )
        if mode != "absent" and not files.has(f"{name}.csv"):
            raise RosterUnreadable(f"manifest.csv lists {name}.csv as {mode} but it is missing.")
        modes[name] = mode
    if modes["users"] == "absent":
        raise RosterUnreadable("manifest.csv says there is no users.csv: no one to import.")
    if version == "1.2" and modes["roles"] == "absent":
        raise RosterUnreadable(
            "A OneRoster 1.2 roster needs roles.csv: it says who is a student or a guardian."
        )
    return version, modes


def _read_orgs(files: _Files, roster: Roster) -> None:
    if not roster.present("orgs"):
        return
    delta = not roster.bulk("orgs")
    with files.open("orgs.csv") as stream:
        for line, row in _rows(stream, "orgs.csv", ORG_COLUMNS):
            if _refuse_width(roster, "orgs.csv", line, row):
                continue
            if row["type"] != "school":
                continue  # districts, departments: FeeSync keeps schools only
            status, why = _status(row, delta=delta)
            sid = row["sourcedId"]
            code = row["identifier"] or sid
            if not why and not sid:
                why = "the school has no sourcedId"
            if not why and len(code) > 20:
                why = f"the school's identifier “{code}” is longer than 20 characters"
            if not why and not row["name"]:
                why = "the school has no name"
            if why:
                roster.refused.append(Refusal("orgs.csv", line, why))
                continue
            roster.schools[sid] = SchoolRow(sid, code, row["name"][:120], status)


def _read_sessions(files: _Files, roster: Roster) -> None:
    if not roster.present("academicSessions"):
        return
    delta = not roster.bulk("academicSessions")
    kinds = {"schoolYear", "semester", "term", "gradingPeriod"}
    with files.open("academicSessions.csv") as stream:
        for line, row in _rows(stream, "academicSessions.csv", SESSION_COLUMNS):
            if _refuse_width(roster, "academicSessions.csv", line, row):
                continue
            status, why = _status(row, delta=delta)
            try:
                start = date.fromisoformat(row["startDate"])
                end = date.fromisoformat(row["endDate"])
                year = int(row["schoolYear"])
            except ValueError:
                why = why or "startDate, endDate or schoolYear is not a date / year"
                start = end = date.min
                year = 0
            if not why and row["type"] not in kinds:
                why = f"type “{row['type']}” is not one of {', '.join(sorted(kinds))}"
            if not why and end < start:
                why = "the session ends before it starts"
            if why:
                roster.refused.append(Refusal("academicSessions.csv", line, why))
                continue
            sid = row["sourcedId"]
            roster.sessions[sid] = SessionRow(
                sid,
                row["title"][:200],
                row["type"],
                start,
                end,
                year,
                row["parentSourcedId"],
                status,
            )


def _read_roles(files: _Files, roster: Roster) -> tuple[dict[Sid, tuple[str, Sid]], set[Sid]]:
    """user -> (role, org) of their active roles (primary first), and users whose only
    student role is marked tobedeleted (they leave)."""
    roles: dict[Sid, tuple[str, Sid]] = {}
    primary: set[Sid] = set()
    left: set[Sid] = set()
    delta = not roster.bulk("roles")
    with files.open("roles.csv") as stream:
        for line, row in _rows(stream, "roles.csv", [*ROLE_COLUMNS, ROLE_COLUMNS_ORG]):
            if _refuse_width(roster, "roles.csv", line, row):
                continue
            status, why = _status(row, delta=delta)
            if why:
                roster.refused.append(Refusal("roles.csv", line, why))
                continue
            user, role = row["userSourcedId"], row["role"]
            if role != "student" and role not in GUARDIAN_ROLES:
                continue
            if status == TO_BE_DELETED:
                if role == "student":
                    left.add(user)
                continue
            if user in primary:
                continue
            roles[user] = (role, row[ROLE_COLUMNS_ORG])
            if role == "student" and row.get("beginDate"):
                try:
                    roster.enrolled[user] = date.fromisoformat(row["beginDate"])
                except ValueError:
                    roster.refused.append(
                        Refusal(
                            "roles.csv",
                            line,
                            f"beginDate “{row['beginDate']}” is not a "
                            "date (YYYY-MM-DD); the enrollment date is left empty",
                        )
                    )
            if row["roleType"] == "primary":
                primary.add(user)
    return roles, left - set(roles)


def _read_users(
    files: _Files,
    roster: Roster,
    roles: dict[Sid, tuple[str, Sid]] | None,
    left: set[Sid],
) -> None:
    delta = not roster.bulk("users")
    required = USER_COLUMNS_12 if roles is not None else USER_COLUMNS_11
    agents_of: dict[Sid, list[Sid]] = {}
    kind_of: dict[Sid, str] = {}
    with files.open("users.csv") as stream:
        for line, row in _rows(stream, "users.csv", required):
            if _refuse_width(roster, "users.csv", line, row):
                continue
            sid = row["sourcedId"]
            if roles is not None:
                role, org = roles.get(sid, ("", ""))
                if not role and sid in left:
                    role, org = "student", ""
            else:
                role = row["role"]
                org = row["orgSourcedIds"].split(",")[0].strip()
            if role != "student" and role not in GUARDIAN_ROLES:
                roster.skipped += 1
                continue
            status, why = _status(row, delta=delta)
            modified, why_date = _modified(row, delta=delta)
            why = why or why_date
            if roles is not None and sid in left:
                status = TO_BE_DELETED
            if not why and not sid:
                why = "the row has no sourcedId"
            if not why and (sid in roster.students or sid in roster.guardians):
                why = f"sourcedId “{sid}” appears twice in users.csv; the first row is kept"
            first, last = row["givenName"], row["familyName"]
            if not why and status == ACTIVE:
                why = _name(first, "first name (givenName)") or _name(
                    last, "last name (familyName)"
                )
            if role == "student":
                number = row["identifier"] or ""
                grade, why_grade = ("", None)
                if not why and status == ACTIVE:
                    if not number:
                        why = "the student has no identifier (the district's student number)"
                    elif len(number) > STUDENT_NUMBER_MAX:
                        why = (
                            f"the student number (identifier) “{number}” is longer than "
                            f"{STUDENT_NUMBER_MAX} characters"
                        )
                    else:
                        grade, why_grade = _grade(row["grades"])
                        why = why_grade
                        if not why and not org:
                            why = "the student has no school (no org in roles.csv / orgSourcedIds)"
                if why:
                    roster.refused.append(Refusal("users.csv", line, why))
                    roster.refused_ids.add(sid)
                    continue
                roster.students[sid] = StudentRow(
                    sid,
                    number,
                    first,
                    last,
                    grade,
                    org,
                    status,
                    modified,
                    line,
                    enabled=row.get("enabledUser", "").lower() != "false",
                    enrolled=roster.enrolled.get(sid),
                )
                kind_of[sid] = "student"
            else:
                if why:
                    roster.refused.append(Refusal("users.csv", line, why))
                    roster.refused_ids.add(sid)
                    continue
                email = row["email"]
                if email and ("@" not in email or len(email) > 254 or " " in email):
                    # The guardian is still imported; only the unusable address is left out.
                    roster.refused.append(
                        Refusal(
                            "users.csv",
                            line,
                            f"email “{email}” is not an email address; "
                            "the guardian is imported without one",
                        )
                    )
                    email = ""
                roster.guardians[sid] = GuardianRow(
                    sid, first, last, email.lower(), row["phone"][:30], status, modified, line
                )
                kind_of[sid] = "guardian"
            agents = [a.strip() for a in row["agentSourcedIds"].split(",") if a.strip()]
            if agents:
                agents_of[sid] = agents
                roster.agents_listed.add(sid)
    for sid, agents in agents_of.items():
        for other in agents:
            if kind_of[sid] == "student" and kind_of.get(other) != "student":
                roster.links.add((other, sid))
            elif kind_of[sid] == "guardian" and kind_of.get(other) != "guardian":
                roster.links.add((sid, other))


def _read_oneroster(files: _Files) -> Roster:
    version, modes = _manifest(files)
    roster = Roster(format=f"oneroster-{version}", modes=modes)
    _read_orgs(files, roster)
    _read_sessions(files, roster)
    roles = _read_roles(files, roster) if version == "1.2" else None
    _read_users(files, roster, roles[0] if roles else None, roles[1] if roles else set())
    return roster


# --- the plain CSV ------------------------------------------------------------------------------


def _read_plain(data: bytes, name: str) -> Roster:
    roster = Roster(format="plain", modes={"users": "bulk", "orgs": "bulk"})
    file = name
    for line, row in _rows(io.BytesIO(data), file, PLAIN_COLUMNS):
        if _refuse_width(roster, file, line, row):
            continue
        sid = row["student_id"]
        status_text = row.get("status", "").lower() or "active"
        why = None
        if status_text not in ("active", "inactive"):
            why = f"status “{row['status']}” is neither active nor inactive"
        elif not sid:
            why = "the row has no student_id"
        elif len(sid) > STUDENT_NUMBER_MAX:
            why = f"student_id “{sid}” is longer than {STUDENT_NUMBER_MAX} characters"
        elif sid in roster.students:
            why = f"student_id “{sid}” appears twice; the first row is kept"
        status = ACTIVE
        why = why or _name(row["first_name"], "first name") or _name(row["last_name"], "last name")
        grade = ""
        if not why:
            grade, why = _grade(row["grade"])
        code = row["school_code"]
        if not why and not code:
            why = "the row has no school_code"
        if not why and len(code) > 20:
            why = f"school_code “{code}” is longer than 20 characters"
        if why:
            roster.refused.append(Refusal(file, line, why))
            if sid:
                roster.refused_ids.add(sid)
            continue
        if code not in roster.schools:
            roster.schools[code] = SchoolRow(code, code, row.get("school_name", "")[:120], ACTIVE)
        roster.students[sid] = StudentRow(
            sid,
            sid,
            row["first_name"],
            row["last_name"],
            grade,
            code,
            status,
            None,
            line,
            enabled=status_text == "active",
        )
        for n in (1, 2):
            gid = row.get(f"guardian{n}_id", "")
            gfirst = row.get(f"guardian{n}_first_name", "")
            glast = row.get(f"guardian{n}_last_name", "")
            if not gid:
                if gfirst or glast:
                    roster.refused.append(
                        Refusal(
                            file,
                            line,
                            f"guardian {n} has a name but no guardian{n}_id; "
                            "guardians are matched on their id, never on their name",
                        )
                    )
                continue
            gwhy = _name(gfirst, f"guardian {n}'s first name") or _name(
                glast, f"guardian {n}'s last name"
            )
            if gwhy:
                roster.refused.append(Refusal(file, line, gwhy))
                roster.refused_ids.add(gid)
                continue
            email = row.get(f"guardian{n}_email", "").lower()
            if email and ("@" not in email or " " in email):
                roster.refused.append(
                    Refusal(
                        file,
                        line,
                        f"guardian {n}'s email “{email}” is not an email "
                        "address; the guardian is imported without one",
                    )
                )
                email = ""
            if gid not in roster.guardians:
                roster.guardians[gid] = GuardianRow(
                    gid,
                    gfirst,
                    glast,
                    email,
                    row.get(f"guardian{n}_phone", "")[:30],
                    ACTIVE,
                    None,
                    line,
                )
            roster.links.add((gid, sid))
    roster.agents_listed = set(roster.students)
    if not roster.students and not roster.refused:
        raise RosterUnreadable(f"{file} has a header but no students.")
    return roster


def read_roster(
    *,
    path: Path | None = None,
    data: bytes | None = None,
    name: str = "",
    files: dict[str, bytes] | None = None,
) -> Roster:
    """Read a roster from a folder / zip / CSV at `path`, from uploaded `data`, or from the
    OneRoster `files` themselves (file name -> content; the demo district)."""
    files_ = _Files(path=path, data=data, name=name, files=files)
    return _read(files_)


def _read(files: _Files) -> Roster:
    if files.single is not None:
        head = files.single[:4096]
        if head.lstrip(b"\xef\xbb\xbf").startswith(b"propertyName"):
            raise RosterUnreadable(
                "This is a OneRoster manifest.csv on its own; upload the zip with all its files."
            )
        return _read_plain(files.single, files.name)
    return _read_oneroster(files)
