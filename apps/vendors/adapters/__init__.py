"""The adapter registry: vendor kind -> adapter class. The engine looks vendors up here."""

from __future__ import annotations

from .base import VendorAdapter

REGISTRY: dict[str, type[VendorAdapter]] = {}


def register(cls: type[VendorAdapter]) -> type[VendorAdapter]:
    REGISTRY[cls.kind] = cls
    return cls


def get_adapter_class(kind: str) -> type[VendorAdapter]:
    # Import the vendor modules lazily so that their dependencies load only when used.
    from . import communitypass, payschools  # noqa: F401

    try:
        return REGISTRY[kind]
    except KeyError:
        raise LookupError(f"No adapter is registered for vendor kind {kind!r}.") from None
