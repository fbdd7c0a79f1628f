"""Kind-specific settings move from columns into `Integration.options` (issue 9).

The lunch options (PaySchools today) and the vendor-balance options (Community Pass today)
become options the kinds declare; every existing value is kept, money as its exact string.
`vendor_kind` loses its choices: it is checked against the registry instead, so a new kind
needs no migration.
"""

from django.db import migrations, models

import apps.vendors.models

MOVED = [
    "lunch_payment_url",
    "lunch_balance_threshold",
    "show_lunch_balance",
    "sync_lunch_balance",
    "show_vendor_balance",
    "lock_portal_on_balance",
    "balance_message",
]


def columns_to_options(apps, schema_editor):
    Integration = apps.get_model("vendors", "Integration")
    for integration in Integration.objects.all():
        options = dict(integration.options or {})
        for name in MOVED:
            value = getattr(integration, name)
            options[name] = str(value) if name == "lunch_balance_threshold" else value
        integration.options = options
        integration.save(update_fields=["options"])


def options_to_columns(apps, schema_editor):
    from decimal import Decimal

    Integration = apps.get_model("vendors", "Integration")
    for integration in Integration.objects.all():
        options = integration.options or {}
        for name in MOVED:
            if name in options:
                value = options[name]
                if name == "lunch_balance_threshold":
                    value = Decimal(str(value))
                setattr(integration, name, value)
        integration.save(update_fields=[n for n in MOVED])


class Migration(migrations.Migration):
    dependencies = [("vendors", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="integration",
            name="options",
            field=models.JSONField(
                blank=True,
                default=dict,
                editable=False,
                help_text="The kind's declared non-secret settings (its secret ones are kept "
                "encrypted with the credentials).",
            ),
        ),
        migrations.RunPython(columns_to_options, options_to_columns),
        *[migrations.RemoveField(model_name="integration", name=name) for name in MOVED],
        migrations.AlterField(
            model_name="integration",
            name="vendor_kind",
            field=models.CharField(
                "kind",
                help_text="Which integration kind this is (a key of apps.vendors.registry).",
                max_length=40,
                validators=[apps.vendors.models.validate_vendor_kind],
            ),
        ),
    ]
