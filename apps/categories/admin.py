from django.contrib import admin

from apps.common.admin import NotFoundMixin

from .models import FeeCategory


@admin.register(FeeCategory)
class FeeCategoryAdmin(NotFoundMixin, admin.ModelAdmin[FeeCategory]):
    list_display = ["code", "description", "active"]
    list_filter = ["active"]
    search_fields = ["code", "description"]
