"""The integration kinds FeeSync speaks, and the only list of them.

Each kind is one package under `apps/vendors/kinds/<kind>/` whose `__init__.py` exposes
`Adapter`, a subclass of `apps.vendors.kinds.base.VendorAdapter`. Everything that varies by
kind comes from that class: the integration's kind choices, the setup page's description
and settings fields, the vendor name shown to parents, the sandbox, the tasks (through its
capabilities). Adding a kind is writing its package and adding one line to `KIND_PACKAGES`
(docs/writing-an-integration.md). No migration: `Integration.vendor_kind` is a string
checked against this registry.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .kinds.base import VendorAdapter

#: The one registry line per kind.
KIND_PACKAGES: tuple[str, ...] = (
    "apps.vendors.kinds.payschools",
    "apps.vendors.kinds.communitypass",
    "apps.vendors.kinds.fileexchange",
    "apps.vendors.kinds.partnerapi",
)

_kinds: dict[str, type[VendorAdapter]] = {}
_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for path in KIND_PACKAGES:
        adapter = importlib.import_module(path).Adapter
        _kinds.setdefault(adapter.kind, adapter)
    _loaded = True


def register(cls: type[VendorAdapter]) -> type[VendorAdapter]:
    """Register a kind at run time (tests register throwaway kinds this way). The kinds of
    `KIND_PACKAGES` need no call: they are loaded on first use."""
    if not cls.kind or not cls.name:
        raise ValueError(f"{cls.__name__} must set `kind` and `name`.")
    _load()
    _kinds[cls.kind] = cls
    return cls


def unregister(kind: str) -> None:
    _kinds.pop(kind, None)


def kinds() -> dict[str, type[VendorAdapter]]:
    """Every registered kind, by its key, in registry order."""
    _load()
    return dict(_kinds)


def get_adapter_class(kind: str) -> type[VendorAdapter]:
    _load()
    try:
        return _kinds[kind]
    except KeyError:
        raise LookupError(f"No integration kind {kind!r} is registered.") from None


def kind_choices() -> list[tuple[str, str]]:
    """(kind, name) pairs for choice fields."""
    return [(kind, cls.name) for kind, cls in kinds().items()]


def kind_name(kind: str) -> str:
    """What staff and parents read for a kind; the key itself for an unregistered one (an
    integration whose kind was removed from the registry still shows in lists)."""
    cls = kinds().get(kind)
    return cls.name if cls else kind


def sandboxes() -> dict[str, str]:
    """kind -> the module path of its sandbox, for the kinds that have one."""
    return {kind: cls.sandbox_module for kind, cls in kinds().items() if cls.sandbox_module}


def load_sandbox(kind: str) -> ModuleType:
    """The sandbox module of `kind`; LookupError for a kind without one."""
    known = sandboxes()
    try:
        return importlib.import_module(known[kind])
    except KeyError:
        names = ", ".join(sorted(known))
        raise LookupError(f"No sandbox for vendor {kind!r}; known: {names}.") from None
