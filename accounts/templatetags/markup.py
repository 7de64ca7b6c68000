"""`{{ text|markdown }}`: the operator's Notice, About, HomePageContent and Footer as sanitised HTML."""

from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from oneapi_site.lib.markup import markdown_html

register = template.Library()


@register.filter
def markdown(value) -> str:
    return mark_safe(markdown_html(str(value or "")))  # safe: nh3 has removed anything active
