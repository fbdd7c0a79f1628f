"""The nightly roster fetch's beat row (DESIGN.md: tasks are scheduled by django-celery-beat
rows the project creates for itself). Created only when missing, so staff's own changes to
it (another time, switched off) survive."""

from django.db import migrations

NAME = "Roster: nightly SFTP fetch"


def create(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    if PeriodicTask.objects.filter(name=NAME).exists():
        return
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="2", day_of_month="*", month_of_year="*", day_of_week="*"
    )
    PeriodicTask.objects.create(
        name=NAME,
        task="apps.roster.tasks.roster_nightly",
        crontab=crontab,
        enabled=True,
        description="Fetch the SIS's newest roster file over SFTP and import it when its "
        "preview is within the deactivation guard (Roster import › Roster SFTP source).",
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("roster", "0003_roster_sftp_source"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
