from django.apps import AppConfig


class PartnerApiConfig(AppConfig):
    name = "apps.partner_api"
    label = "partner_api"
    verbose_name = "Partner API"
    default_auto_field = "django.db.models.BigAutoField"
