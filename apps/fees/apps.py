from django.apps import AppConfig


class FeesConfig(AppConfig):
    name = "apps.fees"
    verbose_name = "Fees and payments"
