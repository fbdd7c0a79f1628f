from django.apps import AppConfig


class RosterConfig(AppConfig):
    name = "apps.roster"
    verbose_name = "Roster import"

    def ready(self) -> None:
        # Registers the import tasks in every process so that services can queue them by name.
        from . import tasks  # noqa: F401
