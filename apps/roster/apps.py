from django.apps import AppConfig


class RosterConfig(AppConfig):
    name = "apps.roster"
    verbose_name = "Roster import"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        # Imported here, not at the top: an AppConfig module is loaded before the models.
        # The tasks are loaded in every process so that services can queue them by name.
        from . import tasks  # noqa: F401
        from .models import RosterSource

        # The SIS connection is setup: audited, its password only ever as masked ciphertext.
        if not auditlog.contains(RosterSource):
            auditlog.register(
                RosterSource, mask_fields=["secrets"], exclude_fields=["last_file", "last_modified"]
            )
