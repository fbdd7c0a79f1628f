from django.contrib import admin

from .models import MerchantAccount


@admin.register(MerchantAccount)
class MerchantAccountAdmin(admin.ModelAdmin[MerchantAccount]):
    list_display = ["name", "merchant_id", "active"]
    list_filter = ["active"]
    search_fields = ["name", "merchant_id"]
