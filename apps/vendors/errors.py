"""The refusal FeeSync gives staff when an integration request cannot be done."""

from django.core.exceptions import ValidationError

from .kinds.base import VendorError


class IntegrationError(ValidationError):
    """A setup request FeeSync refuses, with the reason in plain words."""


class CredentialsUnreadable(VendorError):
    """An integration's stored credentials cannot be read on this server: the key they were
    encrypted with is no longer in FEESYNC_CREDENTIAL_KEYS (see `apps.vendors.crypto`).

    A `VendorError` (permanent: trying again cannot help until someone acts) because, like
    a vendor refusing the credentials, it means this integration cannot talk to its vendor:
    every page, command and task that already shows a vendor's trouble in plain words shows
    this one too, instead of a traceback."""

    def __init__(self, integration_name: str) -> None:
        super().__init__(
            f"The credentials of “{integration_name}” were encrypted with a key this server "
            "no longer has. Add the old key back to FEESYNC_CREDENTIAL_KEYS and run "
            "manage.py rotate_keys, or enter the credentials again.",
            permanent=True,
        )
