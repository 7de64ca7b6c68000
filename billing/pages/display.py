"""Numbers as the billing pages show them: US$ or quota units, per DisplayInCurrencyEnabled.

Amounts of whole quota go through the `|quota` template filter; these helpers are for
what it cannot show: fractional prices and axis ticks.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

from django.utils.translation import gettext

from oneapi_site import options


def unit_name() -> str:
    return gettext("US$") if options.in_currency() else gettext("quota")


def _plain(value: Decimal | float, places: int) -> str:
    """Rounded half up, as options.quota_in_usd rounds the balance, so a chart bar and the balance agree."""
    with localcontext() as context:
        context.prec = 60  # exact for any BIGINT quota in any unit: quantize fails past the default 28 digits
        exact = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = f"{exact:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def money(value: Decimal | float) -> str:
    """US$ with as many decimals as a per-token price needs (up to 6), no trailing zeros."""
    return "$" + _plain(value, 6)


def units(value: Decimal | float) -> str:
    """Quota units, up to 2 decimals (a price per 1K tokens can be 37.5 quota)."""
    return _plain(value, 2)


def number(value: Decimal | float) -> str:
    """A ratio: up to 6 decimals, no trailing zeros (1.25, not 1.2500)."""
    return _plain(value, 6)


def amount(value_in_unit: Decimal | float) -> str:
    """A value already converted to the display unit."""
    return money(value_in_unit) if options.in_currency() else units(value_in_unit)
