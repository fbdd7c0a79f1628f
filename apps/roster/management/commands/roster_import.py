"""`manage.py roster_import PATH [--dry-run] [--allow-deactivate] [--json]`

Import schools, students and guardians from a OneRoster 1.2 / 1.1 roster (a zip or a folder
with manifest.csv) or a plain CSV (docs/roster.md). Prints the preview (adds, changes with
before and after, deactivations, links, refused rows with their line and reason), then
applies it unless `--dry-run`. Exit 1 when the file cannot be read or the deactivation guard
holds (nothing is applied then)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.roster.formats import RosterUnreadable, read_roster
from apps.roster.services import GuardBlocks, roster_apply, roster_plan


class Command(BaseCommand):
    help = "Import students, guardians and schools from a OneRoster or plain CSV roster."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="A OneRoster zip or folder, or a plain roster CSV.")
        parser.add_argument("--dry-run", action="store_true", help="Show the preview only.")
        parser.add_argument(
            "--allow-deactivate",
            action="store_true",
            help="Apply even if more students would become inactive than the guard allows.",
        )
        parser.add_argument("--json", action="store_true", help="Print the preview as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        as_json = options["json"]
        try:
            roster = read_roster(path=path)
        except RosterUnreadable as exc:
            if as_json:
                self.stdout.write(json.dumps({"applied": False, "error": str(exc)}))
            raise CommandError(f"Nothing was applied: {exc}") from exc
        plan = roster_plan(roster=roster)
        preview = plan.preview()
        applied = False
        error = ""
        if not options["dry_run"]:
            try:
                result = roster_apply(plan=plan, allow_deactivate=options["allow_deactivate"])
                applied = True
                preview["accounts_created"] = result.accounts_created
                preview["emails_changed"] = result.emails_changed
                preview["notes"] = result.notes
            except GuardBlocks as exc:
                error = str(exc)
        preview["applied"] = applied
        preview["dry_run"] = bool(options["dry_run"])
        if error:
            preview["error"] = error
        if as_json:
            self.stdout.write(json.dumps(preview, default=str, ensure_ascii=False))
        else:
            self.stdout.write(preview_text(preview))
        if error:
            raise CommandError(error)


def preview_text(p: dict[str, Any]) -> str:
    c = p["counts"]
    lines = [
        f"Roster ({p['format']}; "
        + ", ".join(f"{k} {v}" for k, v in p["modes"].items() if v != "absent")
        + ")",
        f"  schools: {c['schools_added']} added, {c['schools_changed']} changed",
        f"  students: {c['students_added']} added, {c['students_changed']} changed, "
        f"{c['students_deactivated']} to become inactive",
        f"  guardians: {c['guardians_added']} added, {c['guardians_changed']} changed, "
        f"{c['guardians_linked']} links added, {c['guardians_unlinked']} links removed, "
        f"{c['guardians_without_email']} without email",
        f"  rows refused: {c['rows_refused']}; older than what FeeSync has: {c['rows_stale']}; "
        f"not students or guardians: {c['rows_skipped']}",
        f"  changes in all: {c['changes']}",
    ]
    g = p["guard"]
    if g["blocks"]:
        lines.append(
            f"  GUARD: {g['deactivate']} of {g['active_students']} active students would become "
            f"inactive (limit {g['limit']}, {g['share_percent']:.0f}%)."
        )
    for item in p["students_changed"]:
        what = "; ".join(f"{x['field']}: {x['before']!s} → {x['after']!s}" for x in item["changes"])
        lines.append(f"  changed {item['sourced_id']}: {what}")
    for item in p["students_deactivated"]:
        lines.append(f"  inactive {item['student_number']} {item['name']}")
    for r in p["refused"]:
        lines.append(f"  refused {r['file']} line {r['line']}: {r['reason']}")
    if p["dry_run"]:
        lines.append("Dry run: nothing was applied.")
    elif p["applied"]:
        lines.append("Applied.")
    return "\n".join(lines) + "\n"
