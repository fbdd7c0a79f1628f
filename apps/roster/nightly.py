"""The nightly roster fetch: the newest file the SIS exported to its SFTP directory is
fetched (host key pinned, password encrypted at rest), previewed, and applied by itself only
when the preview is within the deactivation guard; otherwise it waits, held, for a district
admin. Each run is recorded as a `RosterImport` (source "Nightly SFTP fetch"), a failed
fetch included, so the imports list is the task's run history."""

from __future__ import annotations

from django.utils import timezone

from apps.vendors.crypto import decrypt, encrypt
from apps.vendors.transfer import TransferError, TransferTarget, sftp_fetch_newest

from .jobs import roster_import_confirm, roster_import_start
from .models import RosterImport, RosterSource


def roster_source_password_set(*, source: RosterSource, password: str) -> None:
    source.secrets = encrypt({"password": password})
    source.save(update_fields=["secrets"])


def _target(source: RosterSource) -> TransferTarget:
    return TransferTarget(
        protocol="sftp",
        host=source.host,
        port=source.port,
        username=source.username,
        password=decrypt(source.secrets).get("password", ""),
        directory=source.directory or ".",
        host_key=source.host_key.strip(),
    )


def roster_fetch_nightly() -> RosterImport | None:
    """One nightly run. None when no source is set up and enabled."""
    source = RosterSource.objects.filter(enabled=True).first()
    if source is None:
        return None
    try:
        fetched = sftp_fetch_newest(_target(source))
    except TransferError as exc:
        return RosterImport.objects.create(
            source=RosterImport.Source.SFTP,
            file_name="(not fetched)",
            content=b"",
            state=RosterImport.State.FAILED,
            error=exc.message,
            finished_at=timezone.now(),
        )
    if fetched is None:
        return RosterImport.objects.create(
            source=RosterImport.Source.SFTP,
            file_name="(no file)",
            content=b"",
            state=RosterImport.State.FAILED,
            error=f"The SFTP directory {source.directory!r} holds no .zip or .csv roster file.",
            finished_at=timezone.now(),
        )
    job = roster_import_start(
        content=fetched.content,
        file_name=fetched.name,
        source=RosterImport.Source.SFTP,
        background=False,
    )
    if job.state == RosterImport.State.READY:
        job = roster_import_confirm(job=job, background=False)
    RosterSource.objects.filter(pk=source.pk).update(
        last_file=fetched.name, last_modified=fetched.modified
    )
    return job
