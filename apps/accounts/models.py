"""Merchant accounts: the bank accounts (MIDs) a vendor deposits the district's money into."""

from django.db import models


class MerchantAccount(models.Model):
    name = models.CharField(max_length=120, help_text="e.g. District General Fund.")
    merchant_id = models.CharField(
        "merchant ID",
        max_length=60,
        unique=True,
        help_text="The MID or bank-account id the payment vendor knows this account by.",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.merchant_id})"
