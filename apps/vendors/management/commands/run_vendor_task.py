"""`manage.py run_vendor_task SLUG TASK`: run one integration task now."""

import json

from django.core.management.base import BaseCommand, CommandError

from apps.vendors.errors import IntegrationError
from apps.vendors.jobs import TASKS, task_run
from apps.vendors.models import Integration, TaskRun


class Command(BaseCommand):
    help = "Run one task of an integration now. Tasks: " + ", ".join(TASKS)

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("task", choices=sorted(TASKS))

    def handle(self, *args, **options):
        try:
            integration = Integration.objects.get(slug=options["slug"])
        except Integration.DoesNotExist:
            raise CommandError(f"No integration named {options['slug']!r}.") from None
        try:
            run = task_run(integration=integration, task=options["task"], trigger="command")
        except IntegrationError as exc:
            raise CommandError(exc.messages[0]) from None
        if run is None:  # only nightly runs are skipped, and a manual run is not one
            raise CommandError("The task did not run.")
        self.stdout.write(
            json.dumps(
                {
                    "task": run.task,
                    "outcome": run.outcome,
                    "counts": run.counts,
                    "error": run.error,
                },
                indent=2,
            )
        )
        if run.outcome != TaskRun.Outcome.OK:
            raise CommandError(run.error, returncode=1)
