"""`manage.py run_vendor_task SLUG TASK`: run one integration task now."""

import json

from django.core.management.base import BaseCommand, CommandError

from apps.vendors.errors import IntegrationError
from apps.vendors.jobs import TASKS, prerequisite_missing, task_run
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
        if run is None:  # a manual run is not nightly: only a missing prerequisite skips it
            missing = prerequisite_missing(integration, options["task"])
            raise CommandError(f"The task did not run. {missing}".strip())
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
