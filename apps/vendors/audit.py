"""Reading the audit trail of integration settings.

django-auditlog records `Integration.options` (the kinds' declared settings) as one JSON
field; staff and tests want each setting's own before and after, as for a column.
"""

from __future__ import annotations

import json
from typing import Any

OPTIONS = "options"


def _loaded(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        loaded = json.loads(value) if value not in (None, "", "None") else {}
    except (TypeError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _text(value: Any) -> str:
    return "None" if value is None else str(value)


def setting_changes(
    changes: dict[str, Any], *, defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An audit entry's changes with the options change spread into one [before, after]
    pair per option that changed. An option never stored before was the kind's declared
    initial value (`defaults`, from `VendorAdapter.option_defaults()`)."""
    defaults = defaults or {}
    out = {name: values for name, values in changes.items() if name != OPTIONS}
    values = changes.get(OPTIONS)
    if isinstance(values, list) and len(values) == 2:
        before, after = _loaded(values[0]), _loaded(values[1])
        for name in sorted(set(before) | set(after)):
            old = before.get(name, defaults.get(name, ""))
            new = after.get(name, defaults.get(name, ""))
            if _text(old) != _text(new):
                out[name] = [_text(old), _text(new)]
    return out
