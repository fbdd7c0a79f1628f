"""Fill `Integration.export_sequence` from the export runs made before it existed (their
counts keep each file's sequence), so that the export needs no scan of past runs."""

from django.db import migrations

EXPORT_TASKS = ("export-fees", "export-all-fees")


def fill(apps, schema_editor):
    Integration = apps.get_model("vendors", "Integration")
    TaskRun = apps.get_model("vendors", "TaskRun")
    for integration in Integration.objects.all().iterator():
        last = integration.export_sequence
        runs = TaskRun.objects.filter(
            integration=integration, task__in=EXPORT_TASKS, outcome="ok"
        ).values_list("counts", flat=True)
        for counts in runs.iterator():
            if isinstance(counts, dict) and isinstance(counts.get("sequence"), int):
                last = max(last, counts["sequence"])
        if last != integration.export_sequence:
            Integration.objects.filter(pk=integration.pk).update(export_sequence=last)


class Migration(migrations.Migration):
    dependencies = [("vendors", "0012_file_exports_send_back_own_changes")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
