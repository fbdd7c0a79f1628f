"""The setup page's column picker for a district-defined layout.

Progressive enhancement over a plain text area: without JavaScript staff type the column
names separated by commas (the list of names is shown beside it) and the form saves as
is. With JavaScript (static/feesync/layout.js) the text area is replaced by two lists,
the columns in the file in order (move up, move down, remove) and the columns still
available (add), all plain buttons, and a preview of the file's first lines that is
redrawn from the unsaved settings as staff change them. The text area stays the field
that is posted, so the page saves the same way either way.
"""

from __future__ import annotations

from typing import Any

from django import forms

from .layouts import COLUMNS


class LayoutColumnsWidget(forms.Textarea):
    template_name = "vendors/widgets/layout_columns.html"
    #: Asks the setup form for the address of the live preview (`data-preview-url`).
    wants_preview_url = True

    def __init__(
        self, attrs: dict[str, Any] | None = None, *, preview_options: tuple[str, ...] = ()
    ) -> None:
        super().__init__({"rows": 2, "spellcheck": "false", **(attrs or {})})
        self.preview_options = preview_options

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        widget = context["widget"]
        widget["columns"] = [{"key": key, "label": column.label} for key, column in COLUMNS.items()]
        widget["preview_url"] = widget["attrs"].pop("data-preview-url", "")
        widget["preview_options"] = " ".join(self.preview_options)
        widget["base_id"] = widget["attrs"].get("id") or f"id_{name}"
        widget["columns_id"] = widget["base_id"] + "_columns"
        return context
