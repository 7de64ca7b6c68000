"""Quota as users read it: US$ or raw quota units, per the DisplayInCurrencyEnabled option."""

from __future__ import annotations

from django import template

from billing import money
from billing.log_text import describe

register = template.Library()

@register.filter
def quota(value) -> str:
    """Quota in the unit people read it in (billing/money.py)."""
    try:
        amount = int(value or 0)
    except (TypeError, ValueError):
        return ""
    return money.quota_text(amount)


@register.filter
def log_content(value) -> str:
    return describe(value or "")
