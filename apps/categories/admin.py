from django.contrib import admin

from apps.common.admin import NotFoundMixin

from .models import FeeCategory


@admin.register(FeeCategory)
class FeeCategoryAdmin(NotFoundMixin, admin.ModelAdmin[FeeCategory]):
    # A category is also a billing code: its usage (C charges, M misc receipts, A both) and
    # general-ledger account are kept here by the business office (issue 14).
    list_display = ["code", "description", "usage", "gl_account", "active"]
    list_filter = ["active", "usage"]
    search_fields = ["code", "description"]
