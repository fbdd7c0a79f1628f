from django.apps import AppConfig


class CommonConfig(AppConfig):
    """What every app's staff pages share (apps.common.admin). No models."""

    name = "apps.common"
    verbose_name = "Common"

    def ready(self) -> None:
        from . import lookups  # noqa: F401  (registers `__any` on every field)
