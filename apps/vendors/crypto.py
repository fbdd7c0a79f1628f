"""Vendor credentials, encrypted at rest.

Keys come from the environment (`FEESYNC_CREDENTIAL_KEYS`: comma-separated Fernet keys,
newest first). MultiFernet decrypts with any of them and encrypts with the first, so a key
is rotated by putting a new one in front and running `manage.py rotate_keys`, which
re-encrypts every stored secret under it; the old key can then be removed.
https://cryptography.io/en/latest/fernet/#cryptography.fernet.MultiFernet
"""

from __future__ import annotations

import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class KeyMissing(ImproperlyConfigured):
    """Stored credentials that none of FEESYNC_CREDENTIAL_KEYS opens: the key they were
    encrypted with was retired before `rotate_keys` re-encrypted them. The integration
    turns it into `CredentialsUnreadable`, which names itself and says what to do."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FEESYNC_CREDENTIAL_KEYS is empty: set at least one key.")
    return MultiFernet([Fernet(k.encode()) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FEESYNC_CREDENTIAL_KEYS))


def encrypt(values: dict[str, str]) -> str:
    return fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        values: dict[str, str] = json.loads(fernet().decrypt(token.encode()))
    except InvalidToken:
        raise KeyMissing(
            "Stored vendor credentials cannot be decrypted with FEESYNC_CREDENTIAL_KEYS: "
            "a key that was used to encrypt them is missing."
        ) from None
    return values


def rotate(token: str) -> str:
    if not token:
        return token
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise KeyMissing("No key of FEESYNC_CREDENTIAL_KEYS opens these credentials.") from None


def mask(value: str) -> str:
    """What staff see of a secret: enough to recognise it, never enough to use it."""
    if not value:
        return ""
    return "•" * 8 + (value[-2:] if len(value) >= 8 else "")
