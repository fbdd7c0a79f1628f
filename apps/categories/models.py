"""The FEE_CATEGORY code table: what kind of fee a charge is (athletics, field trip, ...)."""

from django.db import models


class FeeCategory(models.Model):
    class Usage(models.TextChoices):
        CHARGES = "C", "Charges on a student's card"
        MISC = "M", "Miscellaneous cash receipts"
        ALL = "A", "Both"

    code = models.CharField(
        max_length=20, unique=True, help_text="Short code the vendor sees, e.g. ATH or LIBFINE."
    )
    description = models.CharField(max_length=200, help_text="What parents and staff read.")
    active = models.BooleanField(
        default=True, help_text="Inactive categories cannot be used for new fees."
    )
    # The category is also the partner API's billing transaction code
    # (BillingTransactionCodeId): its usage says what may be posted with it.
    usage = models.CharField(
        max_length=1,
        choices=Usage.choices,
        default=Usage.CHARGES,
        help_text="What may be posted with this billing code: charges on a student's card, "
        "miscellaneous cash receipts, or both.",
    )
    gl_account = models.CharField(
        "GL account",
        max_length=40,
        blank=True,
        help_text="The general-ledger account the daily close posts this code's money to.",
    )

    class Meta:
        ordering = ["code"]
        verbose_name = "fee category"
        verbose_name_plural = "fee categories"

    def __str__(self) -> str:
        return f"{self.code} – {self.description}"
