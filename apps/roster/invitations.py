"""Parent-portal invitations: guardians whose login the roster import made (an email, no
password yet) get a link to set their password. The link is Django's password-reset token:
it works once (it is bound to the password, which setting one changes) and expires after
`PASSWORD_RESET_TIMEOUT` (three days by default)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from apps.students.models import Guardian

from .models import InvitationBatch

INVITE_TASK = "apps.roster.tasks.send_invitations"
CHUNK = 200


def guardians_to_invite() -> QuerySet[Guardian]:
    """Guardians with a portal login that has no password yet, never invited or whose
    invitation has expired unused."""
    expired = timezone.now() - timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)
    return (
        Guardian.objects.filter(user__isnull=False, user__is_active=True)
        .filter(Q(invited_at__isnull=True) | Q(invited_at__lt=expired))
        .exclude(user__email="")
        # Django's mark of an unusable password (make_password(None)), not a password.
        .filter(user__password__startswith=UNUSABLE_PASSWORD_PREFIX)
    )


def guardians_without_email() -> QuerySet[Guardian]:
    return Guardian.objects.filter(email="")


def invitation_link(*, user: Any, base_url: str) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("portal:invitation", kwargs={"uidb64": uid, "token": token})
    return base_url.rstrip("/") + path


def invitations_start(*, base_url: str, user: Any = None) -> InvitationBatch:
    batch = InvitationBatch.objects.create(
        base_url=base_url, started_by=user, total=guardians_to_invite().count()
    )
    batch_id = batch.pk
    transaction.on_commit(lambda: current_app.signature(INVITE_TASK, args=(batch_id,)).delay())
    return batch


def _message(guardian: Guardian, link: str) -> EmailMessage:
    days = max(1, settings.PASSWORD_RESET_TIMEOUT // 86400)
    return EmailMessage(
        subject="Your school district's parent portal: set your password",
        body=(
            f"Hello {guardian.first_name},\n\n"
            "Your school district now shows your children's school fees in its parent "
            f"portal. Your login is {guardian.user.email if guardian.user else ''}.\n\n"
            f"To choose your password, open this link (it works once, for {days} days):\n\n"
            f"{link}\n\nYour school district\n"
        ),
        to=[guardian.user.email if guardian.user else guardian.email],
    )


def invitations_run(*, batch: InvitationBatch) -> InvitationBatch:
    """Send the invitations chunk by chunk, recording progress. Safe to run twice: a
    guardian is marked invited in the chunk's transaction and never picked again."""
    claimed = InvitationBatch.objects.filter(
        pk=batch.pk, state__in=[InvitationBatch.State.QUEUED, InvitationBatch.State.FAILED]
    ).update(state=InvitationBatch.State.RUNNING)
    if not claimed:
        batch.refresh_from_db()
        return batch
    done = sent = 0
    try:
        total = guardians_to_invite().count()
        InvitationBatch.objects.filter(pk=batch.pk).update(total=total)
        connection = get_connection()
        while True:
            with transaction.atomic():
                chunk = list(
                    guardians_to_invite()
                    .select_related("user")
                    .select_for_update(skip_locked=True, of=("self",))
                    .order_by("pk")[:CHUNK]
                )
                if not chunk:
                    break
                messages = [
                    _message(g, invitation_link(user=g.user, base_url=batch.base_url))
                    for g in chunk
                ]
                Guardian.objects.filter(pk__in=[g.pk for g in chunk]).update(
                    invited_at=timezone.now()
                )
                sent += connection.send_messages(messages) or 0
            done += len(chunk)
            InvitationBatch.objects.filter(pk=batch.pk).update(done=done, sent=sent)
        InvitationBatch.objects.filter(pk=batch.pk).update(
            state=InvitationBatch.State.DONE, finished_at=timezone.now()
        )
    except Exception as exc:
        InvitationBatch.objects.filter(pk=batch.pk).update(
            state=InvitationBatch.State.FAILED, error=str(exc), finished_at=timezone.now()
        )
        raise
    batch.refresh_from_db()
    return batch
