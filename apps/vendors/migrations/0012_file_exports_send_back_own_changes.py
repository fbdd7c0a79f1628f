from django.db import migrations, models


def send_back_what_the_financials_side_caused(apps, schema_editor):
    """A file exchange's fees whose current figure was taken as held at the financials side
    because it caused the change (a payment in a result file) go out in the next export
    (simulate --seed 1: it may have loaded an older line after its payment)."""
    SyncedFee = apps.get_model("vendors", "SyncedFee")
    SyncedFee.objects.filter(
        integration__vendor_kind="fileexchange",
        vendor_caused_version=models.F("acknowledged_version"),
        acknowledged_version__gt=0,
    ).update(acknowledged_version=models.F("acknowledged_version") - 1, vendor_caused_version=None)


class Migration(migrations.Migration):
    dependencies = [
        ("vendors", "0011_integration_export_sequence"),
    ]

    operations = [
        migrations.RunPython(send_back_what_the_financials_side_caused, migrations.RunPython.noop),
    ]
