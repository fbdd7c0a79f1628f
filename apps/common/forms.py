"""One layout for every form staff and parents fill in: the integration setup steps and
the parent portal's forms render through django-crispy-forms with the helper below.

A field is its label, its input, its error (when there is one) and its help text, in that
order, in a `feesync-field` block; a group of fields is a fieldset with its legend; the form's
own errors come first, in one note that says whether anything was saved
(templates/bootstrap5/errors.html). The page template keeps the `<form>` tag itself, because
that is where each setup step's `data-feesync-step` (the unsaved-changes warning,
static/feesync/unsaved.js), its action and its anchor live. Styles: static/feesync/forms.css,
shared by the staff site and the portal.
"""

from __future__ import annotations

from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Fieldset, Layout, LayoutObject
from django.utils.html import conditional_escape


class FeeSyncFormHelper(FormHelper):
    """The shared helper: fields only (the template owns `<form>` and the CSRF token),
    errors shown, help text under the input."""

    def __init__(self, form: Any = None, *, layout: Layout | None = None) -> None:
        super().__init__(form)
        self.form_tag = False
        self.disable_csrf = True
        self.form_show_errors = True
        self.form_show_labels = True
        self.help_text_inline = False
        self.wrapper_class = "feesync-field"
        if layout is not None:
            self.layout = layout


class CrispyFormMixin:
    """A form laid out by FeeSyncFormHelper. `helper` is what `{% crispy form %}` reads;
    a form with groups overrides `layout_items` (names and Fieldsets, in order).

    `error_note` ends the error note: None for "nothing was saved" (a form that saves), ""
    for nothing more (signing in saves nothing)."""

    error_note: str | None = None

    def layout_items(self) -> list[str | LayoutObject | None]:
        return list(self.fields)  # type: ignore[attr-defined]  # mixed into a Form

    @property
    def helper(self) -> FeeSyncFormHelper:
        cached = self.__dict__.get("_feesync_helper")
        if cached is None:
            items = [item for item in self.layout_items() if item is not None]
            cached = FeeSyncFormHelper(self, layout=Layout(*items))
            self.__dict__["_feesync_helper"] = cached
        return cached


def fieldset(legend: str, *fields: str, css_class: str = "") -> Fieldset | None:
    """A titled group of fields, or None when there are none. crispy writes the legend
    as given: plain text is escaped here (an account's name is typed by staff), markup made
    with format_html is kept."""
    if not fields:
        return None
    return Fieldset(conditional_escape(legend), *fields, css_class=css_class or "feesync-fieldset")
