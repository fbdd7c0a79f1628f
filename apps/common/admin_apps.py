from django.contrib.admin.apps import AdminConfig


class FeeSyncAdminConfig(AdminConfig):
    """Django's admin, on FeeSync's staff site (`apps.common.site`)."""

    default_site = "apps.common.site.FeeSyncAdminSite"
