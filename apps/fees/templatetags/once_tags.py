"""`{% one_time_token %}`: the hidden one-time token (`apps.fees.once`) of a plain form in a
template that posts money, for pages whose buttons are not Django forms (a held movement's
actions). A fresh token per form each time the page is shown."""

from __future__ import annotations

import uuid

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def one_time_token() -> SafeString:
    return format_html('<input type="hidden" name="token" value="{}">', uuid.uuid4())
