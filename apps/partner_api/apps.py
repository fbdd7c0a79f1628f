from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class PartnerApiConfig(AppConfig):
    name = "apps.partner_api"
    label = "partner_api"
    verbose_name = "Partner API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The permission groups of Anthology's contract exist after every migrate (and after
        # a test database flush), each granting every operation of its section.
        post_migrate.connect(_sync_groups, sender=self, dispatch_uid="partner_api.groups")


def _sync_groups(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    from .models import GROUPS

    create_permissions(apps.get_app_config("partner_api"), verbosity=0, using=using)
    for name, prefix in GROUPS.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.using(using).filter(
                content_type__app_label="partner_api", codename__startswith=prefix
            )
        )
