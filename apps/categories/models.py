"""The FEE_CATEGORY code table: what kind of fee a charge is (athletics, field trip, ...)."""

from django.db import models


class FeeCategory(models.Model):
    code = models.CharField(
        max_length=20, unique=True, help_text="Short code the vendor sees, e.g. ATH or LIBFINE."
    )
    description = models.CharField(max_length=200, help_text="What parents and staff read.")
    active = models.BooleanField(
        default=True, help_text="Inactive categories cannot be used for new fees."
    )

    class Meta:
        ordering = ["code"]
        verbose_name = "fee category"
        verbose_name_plural = "fee categories"

    def __str__(self) -> str:
        return f"{self.code} – {self.description}"
