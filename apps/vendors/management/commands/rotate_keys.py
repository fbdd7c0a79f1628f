"""`manage.py rotate_keys`: re-encrypt every stored credential under the newest key."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.vendors import crypto
from apps.vendors.errors import CredentialsUnreadable
from apps.vendors.models import Integration


class Command(BaseCommand):
    help = (
        "Re-encrypt vendor credentials under the first key of FEESYNC_CREDENTIAL_KEYS. "
        "Afterwards the older keys can be removed from the environment."
    )

    def handle(self, *args, **options):
        n = 0
        with transaction.atomic():
            for integration in Integration.objects.select_for_update().exclude(
                credentials_encrypted=""
            ):
                try:
                    rotated = crypto.rotate(integration.credentials_encrypted)
                except crypto.KeyMissing:
                    # Nothing is saved (one transaction): add the old key back and run again.
                    raise CommandError(
                        CredentialsUnreadable(integration.name).message, returncode=2
                    ) from None
                integration.credentials_encrypted = rotated
                integration.save(update_fields=["credentials_encrypted"])
                n += 1
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted the credentials of {n} integration(s).")
        )
