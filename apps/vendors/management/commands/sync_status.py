"""`manage.py sync_status SLUG [--json]`: one integration at a glance."""

import json

from django.core.management.base import BaseCommand, CommandError

from apps.vendors.models import Integration
from apps.vendors.selectors import sync_status


class Command(BaseCommand):
    help = "Show one integration's sync state: fees, changes waiting, payments, tasks."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        try:
            integration = Integration.objects.get(slug=options["slug"])
        except Integration.DoesNotExist:
            raise CommandError(f"No integration named {options['slug']!r}.") from None
        status = sync_status(integration=integration)
        if options["json"]:
            self.stdout.write(json.dumps(status, indent=2))
            return
        for key, value in status.items():
            if key != "tasks":
                self.stdout.write(f"{key:>20}: {value}")
        for name, run in status["tasks"].items():
            self.stdout.write(
                f"{'task ' + name:>20}: {run['outcome'] or 'never run'} "
                f"{run['finished'] or ''} {run['error'] or ''}".rstrip()
            )
