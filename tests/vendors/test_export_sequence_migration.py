"""The data migration that fills `Integration.export_sequence` from past export runs: the
next file after it carries on the numbering (the export no longer scans the runs)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.db_helpers import migrate_to, migrate_to_latest

BEFORE = [("vendors", "0012_file_exports_send_back_own_changes")]
AFTER = [("vendors", "0013_export_sequence_from_past_runs")]


@pytest.mark.django_db(transaction=True)
def test_the_sequence_carries_on_from_the_last_successful_export_run() -> None:
    old = migrate_to(BEFORE)
    Integration = old.get_model("vendors", "Integration")
    TaskRun = old.get_model("vendors", "TaskRun")
    files = Integration.objects.create(
        vendor_kind="fileexchange", slug="fx", name="Financials", service_url=""
    )
    untouched = Integration.objects.create(
        vendor_kind="fileexchange", slug="fx2", name="Other", service_url=""
    )
    now = timezone.now()
    for task, outcome, counts in [
        ("export-fees", "ok", {"sequence": 7, "rows": 3}),
        ("export-all-fees", "ok", {"sequence": 9, "rows": 40}),
        ("export-fees", "failed", {"sequence": 12}),  # rolled back: never written
        ("export-fees", "ok", {"rows": 0}),  # nothing to write, no sequence taken
        ("import-payments", "ok", {"sequence": 99}),
    ]:
        TaskRun.objects.create(
            integration=files, task=task, outcome=outcome, counts=counts, started=now
        )
    try:
        new = migrate_to(AFTER).get_model("vendors", "Integration")
        assert new.objects.get(slug="fx").export_sequence == 9
        assert new.objects.get(slug="fx2").export_sequence == 0
    finally:
        migrate_to_latest()
        from apps.vendors.models import Integration as Current

        Current.objects.filter(pk__in=[files.pk, untouched.pk]).delete()
