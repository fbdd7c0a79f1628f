"""`manage.py sandbox payschools|communitypass [--port P] [--state PATH]`: run a vendor sandbox.

The sandbox is a real server speaking the vendor's contract on loopback, with its own
state file (never FeeSync's database) and a JSON control API under /_sandbox/. See
each kind's contract.md (apps/vendors/kinds/<kind>/).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.vendors.registry import load_sandbox, sandboxes


class Command(BaseCommand):
    help = "Run a vendor sandbox (a fake vendor speaking its real contract) on loopback."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("vendor", choices=sorted(sandboxes()), help="which vendor")
        parser.add_argument("--port", type=int, default=None, help="default: the vendor's")
        parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
        parser.add_argument(
            "--state",
            default=None,
            help="SQLite file for the sandbox's state (default: var/sandboxes/VENDOR.sqlite3)",
        )
        parser.add_argument("--verbose-requests", action="store_true", help="log every request")

    def handle(self, *args: Any, **options: Any) -> None:
        vendor = options["vendor"]
        module = load_sandbox(vendor)
        port = options["port"] if options["port"] is not None else module.DEFAULT_PORT
        # Kept under var/ so the demo's vendor side survives a restart, like FeeSync's own DB.
        state = options["state"] or str(
            settings.BASE_DIR / "var" / "sandboxes" / f"{vendor}.sqlite3"
        )
        try:
            module.run(port, state, options["host"], verbose=options["verbose_requests"])
        except OSError as exc:
            raise CommandError(
                f"The {vendor} sandbox could not start on port {port}: {exc}"
            ) from exc
