"""Quota as users read it: US$ or raw quota units, per the DisplayInCurrencyEnabled option."""

from __future__ import annotations

from django import template

from billing import options

register = template.Library()


@register.filter
def quota(value) -> str:
    try:
        amount = int(value or 0)
    except (TypeError, ValueError):
        return ""
    if options.get("DisplayInCurrencyEnabled"):
        per_unit = options.get("QuotaPerUnit") or 500000
        return f"${amount / per_unit:,.6f}".rstrip("0").rstrip(".")
    return f"{amount:,}"


@register.filter
def log_content(value) -> str:
    from billing.log_text import describe

    return describe(value or "")
