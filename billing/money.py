"""Money as people read it: the one Decimal formatter for admin, logs, pages, templates and forms.

Amounts are stored as whole quota; QuotaPerUnit quota make US$1 (oneapi_site/options.py), and people read
amounts in US$ or in quota units, per DisplayInCurrencyEnabled. Every amount becomes text here, in
decimal and rounded half up, so a balance, a chart bar, a log line and a form agree to the micro-dollar
(binary floats printed 1 quota at 2,000,000 per US$ as $0).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

from django.utils.translation import gettext

from oneapi_site import options

USD_PLACES = 6  # a micro-dollar: one quota at QuotaPerUnit up to 1,000,000


def _plain(value: Decimal | float | int, places: int, *, grouping: bool = True) -> str:
    """`value` rounded half up to `places` decimals, without trailing zeros: "1,234.5", "-0.000002"."""
    with localcontext() as context:
        # Exact for any BIGINT quota in any unit: quantize raises InvalidOperation past the default 28 digits.
        context.prec = 60
        exact = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if not exact:
        exact = abs(exact)  # what rounds to nothing is 0, never "-0"
    text = f"{exact:,f}" if grouping else f"{exact:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def quota_in_usd(quota: int | Decimal) -> Decimal:
    """Quota in US$, rounded half up to the micro-dollar."""
    with localcontext() as context:
        context.prec = 60  # any BIGINT quota over any allowed QuotaPerUnit, to six places, fits: exact
        return (Decimal(quota) / options.quota_per_unit()).quantize(Decimal(1).scaleb(-USD_PLACES),
                                                                    rounding=ROUND_HALF_UP)


def money(value: Decimal | float) -> str:
    """US$: "$1,234.5", "$0.000002", "-$0.5" (the sign before the $), up to six decimals."""
    text = _plain(value, USD_PLACES)
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"


def usd_text(quota: int) -> str:
    """Quota as US$, whatever the display option says (the admin shows both)."""
    return money(quota_in_usd(quota))


def quota_text(quota: int) -> str:
    """Quota in the unit people read it in: US$, or grouped quota units ("1,234")."""
    return usd_text(quota) if options.in_currency() else f"{quota:,}"


def quota_with_usd(quota: int) -> str:
    """Quota with its US$ value, as one-api's console shows it (QuotaPerUnit quota = $1): 3 quota is
    "3 ($0.000006)", not a float's "$0.00"."""
    return f"{quota:,} ({usd_text(quota)})"


def log_amount(quota: int) -> str:
    """An amount in a log line: US$, or "1234 quota"."""
    return usd_text(quota) if options.in_currency() else f"{quota} quota"


def form_amount(quota: int) -> str:
    """An amount as a form's input holds it: "10" (US$, up to six decimals) or whole quota units."""
    if not options.in_currency():
        return str(quota)
    return _plain(quota_in_usd(quota), USD_PLACES, grouping=False)


def unit_name() -> str:
    return gettext("US$") if options.in_currency() else gettext("quota")


def units(value: Decimal | float) -> str:
    """Quota units, up to 2 decimals (a price per 1K tokens can be 37.5 quota)."""
    return _plain(value, 2)


def number(value: Decimal | float) -> str:
    """A ratio: up to 6 decimals, no trailing zeros (1.25, not 1.2500)."""
    return _plain(value, USD_PLACES)


def amount(value_in_unit: Decimal | float) -> str:
    """A value already converted to the display unit (an axis tick, a chart bar)."""
    return money(value_in_unit) if options.in_currency() else units(value_in_unit)


def price(quota: Decimal) -> str:
    """A fractional quota amount (a price per 1K tokens) in the display unit."""
    return money(Decimal(quota) / options.quota_per_unit()) if options.in_currency() else units(quota)


def display_unit() -> Decimal:
    """How many quota make one display unit: QuotaPerUnit for US$, 1 for quota units."""
    return options.quota_per_unit() if options.in_currency() else Decimal(1)
