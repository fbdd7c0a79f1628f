"""The district's side of the partner API: API users (staff flagged as such, tied to a
Partner API integration) and their application keys (shown once, stored hashed)."""

from __future__ import annotations

from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from apps.common.admin import NotFoundMixin

from .models import ApiCall, ApiUser, PartnerApiKey

# The package's own key model is not used (keys belong to an API user): keep it out of sight.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


@admin.register(ApiUser)
class ApiUserAdmin(NotFoundMixin, admin.ModelAdmin[ApiUser]):
    list_display = ["user", "integration", "created_at"]
    list_select_related = ["user", "integration"]
    autocomplete_fields = ["user"]
    search_fields = ["user__username"]


@admin.register(PartnerApiKey)
class PartnerApiKeyAdmin(NotFoundMixin, APIKeyModelAdmin):
    # The package types its columns as a fixed-length tuple; one more is still columns.
    list_display = (*APIKeyModelAdmin.list_display, "api_user")  # type: ignore[assignment]
    list_select_related = ["api_user__user"]


@admin.register(ApiCall)
class ApiCallAdmin(NotFoundMixin, admin.ModelAdmin[ApiCall]):
    list_display = ["created_at", "integration", "api_user", "operation", "status_code", "reason"]
    list_filter = ["integration", "status_code"]
    list_select_related = ["integration", "api_user__user"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
