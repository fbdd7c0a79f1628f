"""The lockout rule is cached (selectors.lockout_rule): any change to it drops the copy."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from .models import PortalLockout
from .selectors import forget_lockout_rule


def _forget(**kwargs: Any) -> None:
    # Now and again after commit: a page built from the old row in between would otherwise
    # put it back in the cache for a minute.
    forget_lockout_rule()
    transaction.on_commit(forget_lockout_rule)


@receiver(post_save, sender=PortalLockout, dispatch_uid="portal.lockout_saved")
def lockout_saved(sender: Any, **kwargs: Any) -> None:
    _forget()


@receiver(post_delete, sender=PortalLockout, dispatch_uid="portal.lockout_deleted")
def lockout_deleted(sender: Any, **kwargs: Any) -> None:
    _forget()


@receiver(m2m_changed, sender=PortalLockout.categories.through, dispatch_uid="portal.lockout_cats")
def lockout_categories_changed(sender: Any, **kwargs: Any) -> None:
    _forget()
