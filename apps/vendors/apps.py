from django.apps import AppConfig


class VendorsConfig(AppConfig):
    name = "apps.vendors"
    verbose_name = "Payments"
