"""The permission groups of Anthology's contract: "API - Student Accounting" and "API -
Student Payment Plan", each granting every operation of its section."""

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = {
    "API - Student Accounting": "StudentAccounting.",
    "API - Student Payment Plan": "StudentPaymentPlan.",
}


def forwards(apps: Any, schema_editor: Any) -> None:
    # Permissions are normally created after migrate; the groups need them now.
    config = apps.get_app_config("partner_api")
    config.models_module = True  # the stub has none; create_permissions skips such apps
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, prefix in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="partner_api", codename__startswith=prefix
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("partner_api", "0001_partner_api_users_keys_idempotency"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
