from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    """Model-free: an app only so that `manage.py simulate` is found."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.simulator"
    verbose_name = "Fault simulator"
