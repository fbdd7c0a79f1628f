"""Roster import: compare a roster file with FeeSync's schools, students and guardians
(the plan, shown as the preview), and apply that plan once staff confirm.

Set-based for a district of 50,000 students: the database is read once into dicts keyed by
the SIS's sourcedId, the file once into `Roster`, and the writes are `bulk_create` /
`bulk_update` in batches; no query per student. Records are matched on the sourcedId kept
on them, never on a name. A student who leaves becomes inactive, never deleted (their fees
stay). The guard refuses to deactivate more than `ROSTER_DEACTIVATE_SHARE` of the active
students without an explicit override, so a truncated file cannot empty the district.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from apps.fees.services import fees_student_renamed
from apps.students.models import Guardian, School, Student

from .formats import ACTIVE, TO_BE_DELETED, Refusal, Roster, Sid
from .models import AcademicSession

BATCH = 2000
#: How many rows of each kind the preview lists (the counts are always complete).
SAMPLE = 200
REFUSED_SHOWN = 1000

STUDENT_FIELDS = ("student_number", "first_name", "last_name", "grade", "school_id", "active")
GUARDIAN_FIELDS = ("first_name", "last_name", "email", "phone")
FIELD_LABELS = {
    "student_number": "student number",
    "first_name": "first name",
    "last_name": "last name",
    "grade": "grade",
    "school_id": "school",
    "active": "active",
    "email": "email",
    "phone": "phone",
    "sourced_id": "SIS id",
}


def deactivate_share() -> Decimal:
    return Decimal(str(getattr(settings, "ROSTER_DEACTIVATE_SHARE", "0.05")))


@dataclass
class Plan:
    """What applying a roster would do. Built by `roster_plan`, applied by `roster_apply`."""

    roster: Roster
    school_adds: list[dict[str, Any]] = field(default_factory=list)
    school_changes: list[tuple[int, dict[str, tuple[Any, Any]]]] = field(default_factory=list)
    student_adds: list[dict[str, Any]] = field(default_factory=list)
    #: (pk, sid, {field: (before, after)}, dateLastModified)
    student_changes: list[tuple[int, Sid, dict[str, tuple[Any, Any]], datetime | None]] = field(
        default_factory=list
    )
    deactivations: list[tuple[int, Sid, str, str]] = field(default_factory=list)  # pk,sid,no,name
    guardian_adds: list[dict[str, Any]] = field(default_factory=list)
    guardian_changes: list[tuple[int, Sid, dict[str, tuple[Any, Any]], datetime | None]] = field(
        default_factory=list
    )
    links: list[tuple[Sid, Sid]] = field(default_factory=list)
    unlinks: list[tuple[int, int, str, str]] = field(default_factory=list)  # g pk, s pk, names
    sessions: list[dict[str, Any]] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    stale: int = 0
    active_students: int = 0
    no_email: int = 0
    school_names: dict[int, str] = field(default_factory=dict)
    #: Added or changed guardians with an email and no portal login yet.
    accounts_wanted: int = 0

    @property
    def guard_limit(self) -> int:
        return int(self.active_students * deactivate_share())

    @property
    def guard_blocks(self) -> bool:
        return len(self.deactivations) > max(self.guard_limit, 0)

    @property
    def change_count(self) -> int:
        return (
            len(self.school_adds)
            + len(self.school_changes)
            + len(self.student_adds)
            + len(self.student_changes)
            + len(self.deactivations)
            + len(self.guardian_adds)
            + len(self.guardian_changes)
            + len(self.links)
            + len(self.unlinks)
            + len(self.sessions)
        )

    def preview(self) -> dict[str, Any]:
        """The preview as JSON-ready data (the admin page, `roster_import --json`)."""

        def shown(value: Any, fieldname: str) -> Any:
            if fieldname == "school_id":
                return self.school_names.get(value, value)
            return value

        def changes(fields: dict[str, tuple[Any, Any]]) -> list[dict[str, Any]]:
            return [
                {
                    "field": FIELD_LABELS.get(name, name),
                    "before": shown(before, name),
                    "after": shown(after, name),
                }
                for name, (before, after) in fields.items()
            ]

        share = deactivate_share()
        return {
            "format": self.roster.format,
            "modes": self.roster.modes,
            "counts": {
                "schools_added": len(self.school_adds),
                "schools_changed": len(self.school_changes),
                "students_added": len(self.student_adds),
                "students_changed": len(self.student_changes),
                "students_deactivated": len(self.deactivations),
                "guardians_added": len(self.guardian_adds),
                "guardians_changed": len(self.guardian_changes),
                "guardians_linked": len(self.links),
                "guardians_unlinked": len(self.unlinks),
                "sessions_changed": len(self.sessions),
                "rows_refused": len(self.refused),
                "rows_stale": self.stale,
                "rows_skipped": self.roster.skipped,
                "guardians_without_email": self.no_email,
                "portal_accounts_to_create": self.accounts_wanted,
                "changes": self.change_count,
            },
            "guard": {
                "active_students": self.active_students,
                "deactivate": len(self.deactivations),
                "share_percent": float(share * 100),
                "limit": self.guard_limit,
                "blocks": self.guard_blocks,
            },
            "students_added": [
                {
                    "sourced_id": a["sourced_id"],
                    "student_number": a["student_number"],
                    "name": f"{a['first_name']} {a['last_name']}",
                    "grade": a["grade"],
                    "school": self.school_names.get(a["school_id"], a["school_id"]),
                }
                for a in self.student_adds[:SAMPLE]
            ],
            "students_changed": [
                {"sourced_id": sid, "changes": changes(fields)}
                for _, sid, fields, _ in self.student_changes[:SAMPLE]
            ],
            "students_deactivated": [
                {"sourced_id": sid, "student_number": number, "name": name}
                for _, sid, number, name in self.deactivations[:SAMPLE]
            ],
            "guardians_added": [
                {
                    "sourced_id": g["sourced_id"],
                    "name": f"{g['first_name']} {g['last_name']}",
                    "email": g["email"],
                }
                for g in self.guardian_adds[:SAMPLE]
            ],
            "guardians_changed": [
                {"sourced_id": sid, "changes": changes(fields)}
                for _, sid, fields, _ in self.guardian_changes[:SAMPLE]
            ],
            "guardians_linked": [{"guardian": g, "student": s} for g, s in self.links[:SAMPLE]],
            "guardians_unlinked": [
                {"guardian": g, "student": s} for _, _, g, s in self.unlinks[:SAMPLE]
            ],
            "refused": [r.as_dict() for r in self.refused[:REFUSED_SHOWN]],
        }


# --- the plan ----------------------------------------------------------------------------------


def _leaving(
    plan: Plan, fields: dict[str, tuple[Any, Any]], pk: int, sid: Sid, old: tuple[Any, ...]
) -> None:
    """A student the SIS now marks not attending is a deactivation (counted by the guard),
    not a change."""
    if fields.get("active") == (True, False):
        del fields["active"]
        plan.deactivations.append((pk, sid, old[2], f"{old[3]} {old[4]}"))


def roster_plan(*, roster: Roster) -> Plan:
    """Compare `roster` with the database: what would be added, changed, deactivated."""
    plan = Plan(roster=roster, refused=list(roster.refused))
    bulk_users = roster.bulk("users")

    # Schools: by sourcedId; a school typed in by hand with the same code is taken over.
    schools = {
        sid: (pk, code, name)
        for pk, sid, code, name in School.objects.values_list("pk", "sourced_id", "code", "name")
    }
    by_code = {
        code: (pk, sid)
        for pk, sid, code, _ in School.objects.values_list("pk", "sourced_id", "code", "name")
    }
    school_pk: dict[Sid, int | str] = {}  # str: a school still to be added (its sid)
    plan.school_names = {pk: name for pk, _, name in (v for v in schools.values())}
    for sid, pk_code_name in schools.items():
        if sid is not None:
            school_pk[sid] = pk_code_name[0]
    for sid, org in roster.schools.items():
        if org.status == TO_BE_DELETED:
            continue  # a closed school keeps its students' history; nothing to do
        school_fields: dict[str, tuple[Any, Any]] = {}
        if sid in schools:
            pk, code, name = schools[sid]
            if org.name and org.name != name:
                school_fields["name"] = (name, org.name)
            if org.code != code and org.code not in by_code:
                school_fields["code"] = (code, org.code)
            if school_fields:
                plan.school_changes.append((pk, school_fields))
        elif org.code in by_code and by_code[org.code][1] is None:
            pk = by_code[org.code][0]
            school_pk[sid] = pk
            school_fields["sourced_id"] = (None, sid)
            if org.name and org.name != plan.school_names.get(pk):
                school_fields["name"] = (plan.school_names.get(pk), org.name)
            plan.school_changes.append((pk, school_fields))
        elif org.code in by_code:
            plan.refused.append(
                Refusal(
                    "orgs.csv", 0, f"school code “{org.code}” already belongs to another school"
                )
            )
        else:
            school_pk[sid] = sid
            plan.school_adds.append(
                {"sourced_id": sid, "code": org.code, "name": org.name or org.code}
            )
            plan.school_names[sid] = org.name or org.code  # type: ignore[index]

    # Students.
    existing: dict[Sid, tuple[Any, ...]] = {}
    unsourced_numbers: dict[str, tuple[Any, ...]] = {}
    number_owner: dict[str, Sid | None] = {}
    active_now = 0
    for values in Student.objects.values_list(
        "pk", "sourced_id", *STUDENT_FIELDS, "sis_modified_at"
    ).iterator(chunk_size=10_000):
        pk, sid, number = values[0], values[1], values[2]
        number_owner[number] = sid
        if values[7]:
            active_now += 1
        if sid is None:
            unsourced_numbers[number] = values
        else:
            existing[sid] = values
    plan.active_students = active_now
    claimed_numbers: dict[str, Sid] = {}
    student_pk: dict[Sid, int | str] = {sid: v[0] for sid, v in existing.items()}
    for sid, row in roster.students.items():
        old = existing.get(sid)
        if row.status == TO_BE_DELETED:
            if old is not None and old[7]:
                plan.deactivations.append((old[0], sid, old[2], f"{old[3]} {old[4]}"))
            continue
        school = school_pk.get(row.school)
        if school is None:
            plan.refused.append(
                Refusal(
                    "users.csv",
                    row.line,
                    f"the student's school “{row.school}” is not "
                    "a school of this roster nor one FeeSync knows",
                )
            )
            roster.refused_ids.add(sid)
            continue
        owner = number_owner.get(row.number, sid)
        if (old is None or old[2] != row.number) and (
            (owner is not None and owner != sid) or claimed_numbers.get(row.number, sid) != sid
        ):
            plan.refused.append(
                Refusal(
                    "users.csv",
                    row.line,
                    f"student number “{row.number}” already belongs "
                    f"to another student (SIS id {owner or claimed_numbers[row.number]})",
                )
            )
            roster.refused_ids.add(sid)
            continue
        claimed_numbers[row.number] = sid
        new = (row.number, row.first_name, row.last_name, row.grade, school, row.enabled)
        if old is None and row.number in unsourced_numbers:
            # A student typed in by hand (or seeded) before the first import: same student
            # number, no SIS id yet. Matched on the district's number, then kept by SIS id.
            hand = unsourced_numbers.pop(row.number)
            pk, before = hand[0], hand[2:8]
            fields: dict[str, tuple[Any, Any]] = {"sourced_id": (None, sid)}
            fields.update(
                {n: (b, a) for n, b, a in zip(STUDENT_FIELDS, before, new, strict=True) if b != a}
            )
            _leaving(plan, fields, pk, sid, hand)
            plan.student_changes.append((pk, sid, fields, row.modified))
            student_pk[sid] = pk
            continue
        if old is None:
            plan.student_adds.append(
                {
                    "sourced_id": sid,
                    "student_number": row.number,
                    "first_name": row.first_name,
                    "last_name": row.last_name,
                    "grade": row.grade,
                    "school_id": school,
                    "active": row.enabled,
                    "enrollment_date": row.enrolled,
                    "sis_modified_at": row.modified,
                }
            )
            student_pk[sid] = sid
            continue
        if row.modified and old[8] and row.modified < old[8]:
            plan.stale += 1  # an older delta row than the one already applied
            continue
        fields = {
            n: (b, a) for n, b, a in zip(STUDENT_FIELDS, old[2:8], new, strict=True) if b != a
        }
        _leaving(plan, fields, old[0], sid, old)
        if fields:
            plan.student_changes.append((old[0], sid, fields, row.modified))
    if bulk_users:
        for sid, old in existing.items():
            if old[7] and sid not in roster.students and sid not in roster.refused_ids:
                plan.deactivations.append((old[0], sid, old[2], f"{old[3]} {old[4]}"))

    # Guardians.
    gexisting: dict[Sid, tuple[Any, ...]] = {}
    for values in (
        Guardian.objects.filter(sourced_id__isnull=False)
        .values_list("pk", "sourced_id", *GUARDIAN_FIELDS, "user_id", "sis_modified_at")
        .iterator(chunk_size=10_000)
    ):
        gexisting[values[1]] = values
    guardian_pk: dict[Sid, int | str] = {sid: v[0] for sid, v in gexisting.items()}
    leaving_guardians: set[Sid] = set()
    for sid, grow in roster.guardians.items():
        old = gexisting.get(sid)
        if grow.status == TO_BE_DELETED:
            if old is not None:
                leaving_guardians.add(sid)
            continue
        if not grow.email:
            plan.no_email += 1
        gnew = (grow.first_name, grow.last_name, grow.email, grow.phone)
        if old is None:
            plan.guardian_adds.append(
                {
                    "sourced_id": sid,
                    "first_name": grow.first_name,
                    "last_name": grow.last_name,
                    "email": grow.email,
                    "phone": grow.phone,
                    "sis_modified_at": grow.modified,
                }
            )
            guardian_pk[sid] = sid
            if grow.email:
                plan.accounts_wanted += 1
            continue
        if grow.modified and old[7] and grow.modified < old[7]:
            plan.stale += 1
            continue
        fields = {
            n: (b, a) for n, b, a in zip(GUARDIAN_FIELDS, old[2:6], gnew, strict=True) if b != a
        }
        if fields:
            plan.guardian_changes.append((old[0], sid, fields, grow.modified))
        if grow.email and old[6] is None:
            plan.accounts_wanted += 1

    # Links between guardians and students (by SIS id on both sides).
    through = Guardian.students.through
    gsid_of = {v[0]: sid for sid, v in gexisting.items()}
    ssid_of = {v[0]: sid for sid, v in existing.items()}
    for sid, maybe_pk in student_pk.items():
        if isinstance(maybe_pk, int):
            ssid_of.setdefault(maybe_pk, sid)
    current: set[tuple[Sid, Sid]] = set()
    current_pk: dict[tuple[Sid, Sid], tuple[int, int]] = {}
    for gid, stid in (
        through.objects.filter(guardian__sourced_id__isnull=False)
        .values_list("guardian_id", "student_id")
        .iterator(chunk_size=20_000)
    ):
        gs, ss = gsid_of.get(gid), ssid_of.get(stid)
        if gs is None or ss is None:
            continue
        current.add((gs, ss))
        current_pk[(gs, ss)] = (gid, stid)
    line_of = {sid: r.line for sid, r in roster.students.items()}
    for pair in sorted(roster.links):
        gsid, ssid = pair
        if pair in current:
            continue
        if gsid in roster.refused_ids or ssid in roster.refused_ids:
            continue
        if gsid not in guardian_pk or ssid not in student_pk or gsid in leaving_guardians:
            missing = gsid if gsid not in guardian_pk else ssid
            plan.refused.append(
                Refusal(
                    "users.csv",
                    line_of.get(
                        ssid, roster.guardians[gsid].line if gsid in roster.guardians else 0
                    ),
                    f"agent “{missing}” is not a guardian or student of this roster, "
                    "so the two are not linked",
                )
            )
            continue
        plan.links.append(pair)
    for pair in sorted(current - roster.links):
        gsid, ssid = pair
        if gsid in leaving_guardians or (
            ssid in roster.students
            and roster.students[ssid].status == ACTIVE
            and ssid not in roster.refused_ids
            and gsid not in roster.refused_ids
            and (bulk_users or ssid in roster.agents_listed or gsid in roster.agents_listed)
        ):
            gpk, spk = current_pk[pair]
            plan.unlinks.append((gpk, spk, gsid, ssid))

    # School years and terms.
    sessions = {
        values[0]: values[1:]
        for values in AcademicSession.objects.values_list(
            "sourced_id",
            "title",
            "kind",
            "start_date",
            "end_date",
            "school_year",
            "parent__sourced_id",
            "active",
        )
    }
    for sid, srow in roster.sessions.items():
        want = (
            srow.title,
            srow.kind,
            srow.start,
            srow.end,
            srow.school_year,
            srow.parent or None,
            srow.status == ACTIVE,
        )
        if sessions.get(sid) != want:
            plan.sessions.append(
                {
                    "sourced_id": sid,
                    "title": srow.title,
                    "kind": srow.kind,
                    "start_date": srow.start,
                    "end_date": srow.end,
                    "school_year": srow.school_year,
                    "parent": srow.parent,
                    "active": srow.status == ACTIVE,
                }
            )
    plan.refused.sort(key=lambda r: (r.file, r.line))
    return plan


# --- applying it -------------------------------------------------------------------------------


class GuardBlocks(Exception):
    """The plan would deactivate more students than the guard allows."""


@dataclass
class Applied:
    counts: dict[str, int]
    accounts_created: int = 0
    emails_changed: int = 0
    notes: list[str] = field(default_factory=list)


Progress = Callable[[int, int], None]


def _batches(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def roster_apply(
    *,
    plan: Plan,
    allow_deactivate: bool = False,
    progress: Progress | None = None,
    username_for: Callable[[Sid, str], str] | None = None,
    password_hash: str | None = None,
) -> Applied:
    """Write `plan`. Refuses (GuardBlocks) when the guard blocks and no override is given.

    A new guardian's portal login is their email with no password, unless `username_for`
    (SIS id, email -> username) and `password_hash` say otherwise (the demo's parentN logins).

    Each step commits in batches so that progress is visible to the page that shows it;
    a run stopped half-way is finished by running the same file again (every step is
    idempotent by sourcedId)."""
    if plan.guard_blocks and not allow_deactivate:
        raise GuardBlocks(
            f"This roster would make {len(plan.deactivations):,} of "
            f"{plan.active_students:,} active students inactive, more than the "
            f"{deactivate_share() * 100:.0f}% the guard allows; nothing was applied. "
            "If that is right (the end of a school year), confirm with the override."
        )
    total = (
        len(plan.school_adds)
        + len(plan.school_changes)
        + len(plan.student_adds)
        + len(plan.student_changes)
        + len(plan.deactivations)
        + len(plan.guardian_adds)
        + len(plan.guardian_changes)
        + len(plan.links)
        + len(plan.unlinks)
        + len(plan.sessions)
    )
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    step(0)
    now = timezone.now()
    applied = Applied(counts=plan.preview()["counts"])

    # Schools.
    with transaction.atomic():
        new_schools = School.objects.bulk_create([School(**a) for a in plan.school_adds])
        school_pk = {s.sourced_id: s.pk for s in new_schools}
        for pk, fields in plan.school_changes:
            School.objects.filter(pk=pk).update(**{n: a for n, (_, a) in fields.items()})
    step(len(plan.school_adds) + len(plan.school_changes))

    # Students.
    student_pk: dict[Sid, int] = {}
    for chunk in _batches(plan.student_adds):
        with transaction.atomic():
            made = Student.objects.bulk_create(
                [
                    Student(
                        **{
                            **a,
                            "school_id": school_pk.get(a["school_id"], a["school_id"]),
                            "enrollment_date": a["enrollment_date"] or now.date(),
                        }
                    )
                    for a in chunk
                ]
            )
        student_pk.update({s.sourced_id: s.pk for s in made if s.sourced_id})
        step(len(chunk))
    renamed: list[int] = []
    for chunk in _batches(plan.student_changes):
        objs = []
        for pk, sid, fields, modified in chunk:
            obj = Student(pk=pk, sourced_id=sid, sis_modified_at=modified)
            for name, (_, after) in fields.items():
                if name == "school_id":
                    after = school_pk.get(after, after)
                setattr(obj, name, after)
            if "first_name" in fields or "last_name" in fields:
                renamed.append(pk)
            objs.append((obj, fields))
        with transaction.atomic():
            # Rows differ in which fields changed: one bulk_update per set of fields.
            by_fields: dict[tuple[str, ...], list[Student]] = {}
            for obj, fields in objs:
                key = tuple(sorted({*fields, "sourced_id", "sis_modified_at"}))
                by_fields.setdefault(key, []).append(obj)
            for key, group in by_fields.items():
                Student.objects.bulk_update(group, list(key))
            if renamed:
                # A fee carries the student's name at the vendor: tell the vendors again.
                fees_student_renamed(student_ids=renamed)
                renamed = []
        step(len(chunk))
    for chunk in _batches(plan.deactivations):
        with transaction.atomic():
            Student.objects.filter(pk__in=[pk for pk, *_ in chunk]).update(active=False)
        step(len(chunk))

    # Guardians and their portal logins.
    User = get_user_model()
    taken = set(User.objects.values_list("username", flat=True).iterator(chunk_size=20_000))
    guardian_pk: dict[Sid, int] = {}
    for chunk in _batches(plan.guardian_adds):
        users: dict[Sid, Any] = {}
        for g in chunk:
            email = g["email"]
            login = username_for(g["sourced_id"], email) if username_for and email else email
            if login and login not in taken:
                taken.add(login)
                users[g["sourced_id"]] = User(
                    username=login,
                    email=email,
                    first_name=g["first_name"][:150],
                    last_name=g["last_name"][:150],
                    password=password_hash or make_password(None),
                )
            elif login:
                applied.notes.append(
                    f"{g['first_name']} {g['last_name']} ({g['sourced_id']}): a login "
                    f"“{login}” already exists, so no portal account was made."
                )
        with transaction.atomic():
            made_users = User.objects.bulk_create(list(users.values()))
            applied.accounts_created += len(made_users)
            gmade = Guardian.objects.bulk_create(
                [Guardian(**g, user=users.get(g["sourced_id"])) for g in chunk]
            )
        guardian_pk.update({g.sourced_id: g.pk for g in gmade if g.sourced_id})
        step(len(chunk))
    notices: list[tuple[str, str, str]] = []  # old address, new address, name
    for chunk in _batches(plan.guardian_changes):
        with transaction.atomic():
            gobjs = {
                g.pk: g
                for g in Guardian.objects.select_related("user").filter(
                    pk__in=[pk for pk, *_ in chunk]
                )
            }
            by_fields_g: dict[tuple[str, ...], list[Guardian]] = {}
            for pk, _sid, fields, modified in chunk:
                gobj = gobjs[pk]
                for name, (_, after) in fields.items():
                    setattr(gobj, name, after)
                gobj.sis_modified_at = modified
                gkey = tuple(sorted({*fields, "sis_modified_at"}))
                by_fields_g.setdefault(gkey, []).append(gobj)
                if "email" in fields:
                    old_email, new_email = fields["email"]
                    user = gobj.user
                    if user is not None and new_email and new_email not in taken:
                        taken.add(new_email)
                        user.email = new_email
                        if user.username == old_email:
                            user.username = new_email
                        user.save(update_fields=["email", "username"])
                        applied.emails_changed += 1
                        if old_email:
                            notices.append((old_email, new_email, str(gobj)))
            for gkey, ggroup in by_fields_g.items():
                Guardian.objects.bulk_update(ggroup, list(gkey))
        step(len(chunk))
    # Guardians already here who now have an email and no login yet.
    with transaction.atomic():
        for g in Guardian.objects.filter(
            sourced_id__in=[sid for _, sid, f, _ in plan.guardian_changes if "email" in f],
            user__isnull=True,
        ).exclude(email=""):
            if g.email in taken:
                continue
            taken.add(g.email)
            g.user = User.objects.create(
                username=g.email,
                email=g.email,
                first_name=g.first_name,
                last_name=g.last_name,
                password=make_password(None),
            )
            g.save(update_fields=["user"])
            applied.accounts_created += 1
        if notices:
            transaction.on_commit(lambda: _send_email_change_notices(notices))

    # Links.
    through = Guardian.students.through
    if plan.links:
        need_g = {g for g, _ in plan.links if g not in guardian_pk}
        need_s = {s for _, s in plan.links if s not in student_pk}
        for chunk in _batches(sorted(need_g)):
            guardian_pk.update(
                Guardian.objects.filter(sourced_id__in=chunk).values_list("sourced_id", "pk")
            )
        for chunk in _batches(sorted(need_s)):
            student_pk.update(
                Student.objects.filter(sourced_id__in=chunk).values_list("sourced_id", "pk")
            )
    for chunk in _batches(plan.links):
        with transaction.atomic():
            through.objects.bulk_create(
                [through(guardian_id=guardian_pk[g], student_id=student_pk[s]) for g, s in chunk],
                ignore_conflicts=True,
            )
        step(len(chunk))
    for chunk in _batches(plan.unlinks):
        with transaction.atomic():
            for gpk, spk, _, _ in chunk:
                through.objects.filter(guardian_id=gpk, student_id=spk).delete()
        step(len(chunk))

    # School years and terms (parents after children are made: two passes).
    with transaction.atomic():
        for s in plan.sessions:
            AcademicSession.objects.update_or_create(
                sourced_id=s["sourced_id"],
                defaults={k: v for k, v in s.items() if k not in ("sourced_id", "parent")},
            )
        parents = dict(AcademicSession.objects.values_list("sourced_id", "pk"))
        for s in plan.sessions:
            AcademicSession.objects.filter(sourced_id=s["sourced_id"]).update(
                parent_id=parents.get(s["parent"])
            )
    step(len(plan.sessions))
    return applied


def _send_email_change_notices(notices: list[tuple[str, str, str]]) -> None:
    """Tell the old address that the portal login moved (someone may have hijacked it)."""
    for old, new, name in notices:
        send_mail(
            subject="Your parent-portal login email has changed",
            message=(
                f"Hello {name},\n\nThe school district's records now give {new} as your email "
                f"address, so your parent-portal login is now {new} instead of {old}.\n\n"
                "If you did not ask for this, call your school's office.\n"
            ),
            from_email=None,
            recipient_list=[old],
            fail_silently=True,
        )
