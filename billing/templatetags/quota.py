"""Quota as users read it: US$ or raw quota units, per the DisplayInCurrencyEnabled option."""

from __future__ import annotations

from django import template

from billing.log_text import describe
from oneapi_site import options

register = template.Library()

@register.filter
def quota(value) -> str:
    """US$ to 6 decimals, rounded half up in decimal as the token form shows an amount, so the list and
    the form agree (binary floats printed 1 quota at 2,000,000 per US$ as $0); the sign before the $."""
    try:
        amount = int(value or 0)
    except (TypeError, ValueError):
        return ""
    if options.in_currency():
        return options.usd_text(amount)
    return f"{amount:,}"


@register.filter
def log_content(value) -> str:
    return describe(value or "")
