"""`manage.py ledger_check [--json]`: verify the ledger's invariants; exit 1 on any breach."""

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.fees.selectors import ledger_report


class Command(BaseCommand):
    help = "Recompute every balance from the ledger entries and check the ledger invariants."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print counts and totals as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = ledger_report()
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "ok": report.ok,
                        "counts": report.counts,
                        "totals": report.totals,
                        "breaches": [asdict(b) for b in report.breaches],
                    },
                    indent=2,
                )
            )
        else:
            self.stdout.write(
                f"Checked {report.counts['fees']} fees, {report.counts['entries']} entries, "
                f"{report.counts['allocations']} allocations."
            )
            for breach in report.breaches:
                self.stdout.write(self.style.ERROR(f"BREACH [{breach.check}] {breach.detail}"))
            if report.ok:
                self.stdout.write(self.style.SUCCESS("The ledger is consistent."))
        if not report.ok:
            raise CommandError(
                f"{len(report.breaches)} ledger invariant breach(es) found.", returncode=1
            )
