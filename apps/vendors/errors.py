"""The refusal FeeSync gives staff when an integration request cannot be done."""

from django.core.exceptions import ValidationError


class IntegrationError(ValidationError):
    """A setup request FeeSync refuses, with the reason in plain words."""
