"""The Celery application: bulk assignment, vendor delivery, pulls and nightly tasks."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("feesync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
