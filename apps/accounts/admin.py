from django.contrib import admin

from apps.common.admin import NotFoundMixin

from .models import MerchantAccount


@admin.register(MerchantAccount)
class MerchantAccountAdmin(NotFoundMixin, admin.ModelAdmin[MerchantAccount]):
    list_display = ["name", "merchant_id", "active"]
    list_filter = ["active"]
    search_fields = ["name", "merchant_id"]
