from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "apps.portal"
    verbose_name = "Parent portal"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from . import signals  # noqa: F401 - connects the lockout cache's receivers
        from .models import ActivityOffer, PortalLockout, StudentDocument

        # Who changed the lockout, shared or withdrew a document, or opened a sign-up (with
        # its fee) is on the audit trail like any other setting; downloads have their own log.
        if not auditlog.contains(PortalLockout):
            auditlog.register(
                PortalLockout, exclude_fields=["updated_at"], m2m_fields={"categories"}
            )
            auditlog.register(StudentDocument)
            auditlog.register(ActivityOffer)
