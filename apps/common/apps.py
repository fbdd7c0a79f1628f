from django.apps import AppConfig


class CommonConfig(AppConfig):
    """What every app's staff pages share (apps.common.admin). No models."""

    name = "apps.common"
    verbose_name = "Common"
