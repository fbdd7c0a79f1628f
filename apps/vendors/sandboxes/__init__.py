"""Vendor sandboxes: real servers speaking each vendor's contract on loopback.

`SANDBOXES` maps a vendor kind to the module that serves it. Every module exposes
`DEFAULT_PORT`, `make_server(port, state_path=None, host="127.0.0.1")` and
`run(port, state_path, host)`; `manage.py sandbox NAME` uses them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SANDBOXES: dict[str, str] = {
    "payschools": "apps.vendors.sandboxes.payschools",
    "communitypass": "apps.vendors.sandboxes.communitypass",
}


def load_sandbox(name: str) -> ModuleType:
    """The sandbox module for vendor `name`; LookupError for an unknown one."""
    try:
        module_path = SANDBOXES[name]
    except KeyError:
        known = ", ".join(sorted(SANDBOXES))
        raise LookupError(f"No sandbox for vendor {name!r}; known: {known}.") from None
    return importlib.import_module(module_path)
