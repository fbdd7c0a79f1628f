"""The three staff groups of DESIGN.md ("Who may do what"), with their model permissions.

District admin: everything. Fees clerk: fees, payments, waivers, students and lists, no
integration settings or credentials. Support staff: read-only on setup and task runs (the
vendors app adds its own permissions to these groups in its migrations).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CLERK_MODELS = {
    "fees": ["fee", "ledgerentry", "allocation", "feeassignment", "bulkjob"],
    "students": ["student", "guardian", "activity", "activitymembership", "studentlist", "school"],
}
CLERK_VIEW_ONLY = {"categories": ["feecategory"], "accounts": ["merchantaccount"]}
SUPPORT_VIEW = {
    "fees": ["fee", "ledgerentry", "allocation", "feeassignment", "bulkjob"],
    "students": ["student", "school", "studentlist"],
    "categories": ["feecategory"],
    "accounts": ["merchantaccount"],
}


def _perms(Permission, app_models, actions):
    out = []
    for app, models in app_models.items():
        for model in models:
            for action in actions:
                out.extend(
                    Permission.objects.filter(
                        content_type__app_label=app, codename=f"{action}_{model}"
                    )
                )
    return out


def forwards(apps, schema_editor):
    # Permissions are normally created after migrate; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    admin, _ = Group.objects.get_or_create(name="District admin")
    admin.permissions.set(Permission.objects.all())

    clerk, _ = Group.objects.get_or_create(name="Fees clerk")
    clerk.permissions.set(
        _perms(Permission, CLERK_MODELS, ["view", "add", "change"])
        + _perms(Permission, CLERK_VIEW_ONLY, ["view"])
    )

    support, _ = Group.objects.get_or_create(name="Support staff")
    support.permissions.set(_perms(Permission, SUPPORT_VIEW, ["view"]))


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["District admin", "Fees clerk", "Support staff"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("fees", "0002_posted_entries_are_immutable"),
        ("students", "0001_initial"),
        ("categories", "0001_initial"),
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
