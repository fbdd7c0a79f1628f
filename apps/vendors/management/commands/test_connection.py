"""`manage.py test_connection SLUG`: Test Pull and Test Push; exit 0 only if both pass."""

from django.core.management.base import BaseCommand, CommandError

from apps.vendors.errors import CredentialsUnreadable
from apps.vendors.models import Integration
from apps.vendors.services import integration_test_connection


class Command(BaseCommand):
    help = "Run Test Pull and Test Push for one integration."

    def add_arguments(self, parser):
        parser.add_argument("slug")

    def handle(self, *args, **options):
        try:
            integration = Integration.objects.get(slug=options["slug"])
        except Integration.DoesNotExist:
            raise CommandError(f"No integration named {options['slug']!r}.") from None
        try:
            pull, push = integration_test_connection(integration=integration)
        except CredentialsUnreadable as exc:
            # A setup problem of this server, not a failed test: say what to do, no traceback.
            raise CommandError(exc.message, returncode=2) from None
        for label, result in (("Test Pull", pull), ("Test Push", push)):
            style = self.style.SUCCESS if result.ok else self.style.ERROR
            self.stdout.write(
                style(
                    f"{label}: {'passed' if result.ok else 'FAILED'} in {result.elapsed_ms} ms — "
                    f"{result.tried}: {result.answer}"
                )
            )
        if not (pull.ok and push.ok):
            raise CommandError("The connection test did not pass.", returncode=1)
