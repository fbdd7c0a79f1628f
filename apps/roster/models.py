"""Roster imports from the district's student information system, and the school calendar
(academic sessions) they bring."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AcademicSession(models.Model):
    """A school year, semester, term or grading period (OneRoster `academicSessions`)."""

    class Kind(models.TextChoices):
        SCHOOL_YEAR = "schoolYear", "School year"
        SEMESTER = "semester", "Semester"
        TERM = "term", "Term"
        GRADING_PERIOD = "gradingPeriod", "Grading period"

    sourced_id = models.CharField(max_length=255, unique=True)
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    start_date = models.DateField()
    end_date = models.DateField()
    school_year = models.PositiveIntegerField(help_text="The year the school year ends in.")
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children"
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["start_date", "title"]

    def __str__(self) -> str:
        return self.title


class RosterImport(models.Model):
    """One roster file: its preview, then (once confirmed) its application, with progress."""

    class State(models.TextChoices):
        PREVIEWING = "previewing", "Reading the file"
        READY = "ready", "Preview ready: waiting for confirmation"
        HELD = "held", "Held by the deactivation guard"
        UNREADABLE = "unreadable", "The file could not be read"
        APPLYING = "applying", "Applying"
        DONE = "done", "Applied"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        UPLOAD = "upload", "Uploaded in the admin"
        COMMAND = "command", "manage.py roster_import"
        SFTP = "sftp", "Nightly SFTP fetch"
        DEMO = "demo", "Demo district (seed_demo)"

    state = models.CharField(max_length=12, choices=State.choices, default=State.PREVIEWING)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.UPLOAD)
    file_name = models.CharField(max_length=255)
    # The file itself, so the worker that applies it need not share a disk with the web.
    content = models.BinaryField(editable=False)
    allow_deactivate = models.BooleanField(
        default=False,
        help_text="Apply even when more students would become inactive than the guard allows.",
    )
    preview = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.file_name} – {self.get_state_display()}"

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


class InvitationBatch(models.Model):
    """Portal invitations sent in bulk to guardians who have a login but no password yet:
    each gets a set-password link (one use, expiring after PASSWORD_RESET_TIMEOUT)."""

    class State(models.TextChoices):
        QUEUED = "queued", "Waiting to start"
        RUNNING = "running", "Sending"
        DONE = "done", "Finished"
        FAILED = "failed", "Failed"

    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    #: The site address the links point to (the staff page's own, when started there).
    base_url = models.CharField(max_length=200)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "invitation batches"

    def __str__(self) -> str:
        return f"Invitations of {self.created_at:%Y-%m-%d %H:%M} – {self.get_state_display()}"

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


class RosterSource(models.Model):
    """Where the SIS drops its nightly roster export (one SFTP directory). One row."""

    enabled = models.BooleanField(
        default=False, help_text="Fetch and import the newest roster file every night."
    )
    host = models.CharField(max_length=200, help_text="The SFTP server's name or address.")
    port = models.PositiveIntegerField(default=22)
    username = models.CharField(max_length=100)
    directory = models.CharField(
        max_length=300, default=".", help_text="The directory the SIS exports its roster to."
    )
    host_key = models.TextField(
        help_text="The server's public host key (an OpenSSH line such as “ssh-ed25519 AAAA…”). "
        "FeeSync refuses to connect to a server that shows another key."
    )
    # The password, encrypted with FEESYNC_CREDENTIAL_KEYS (apps/vendors/crypto.py).
    secrets = models.TextField(blank=True, editable=False)
    last_file = models.CharField(max_length=255, blank=True, editable=False)
    last_modified = models.FloatField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "roster SFTP source"

    def __str__(self) -> str:
        return f"SFTP {self.username}@{self.host}:{self.port}/{self.directory}"
