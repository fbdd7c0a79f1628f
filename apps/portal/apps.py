from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "apps.portal"
    verbose_name = "Parent portal"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the lockout cache's receivers
