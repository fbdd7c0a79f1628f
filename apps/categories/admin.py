from django.contrib import admin

from .models import FeeCategory


@admin.register(FeeCategory)
class FeeCategoryAdmin(admin.ModelAdmin[FeeCategory]):
    list_display = ["code", "description", "active"]
    list_filter = ["active"]
    search_fields = ["code", "description"]
