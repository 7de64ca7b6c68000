"""The rules a token's, user's or channel's rate limits, budget and price ratio follow, whoever sets them.

/api, the console and the pages read input with their own fields; the services check it again here, so no
route can store a negative limit, a budget without a period or a ratio past its bound. Errors name the
field by its /api name. The columns are in oneapi_site/lib/limit_fields.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils.translation import gettext

from oneapi_site.lib import numbers
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.limit_fields import LIMIT_FIELDS, BudgetPeriod

BUDGET_FIELDS = ("budget_quota", "budget_period")
LIMIT_MAX = numbers.INT[1]  # PositiveIntegerField on every database
BUDGET_MAX = numbers.BIGINT[1]
# A negotiated price is a discount or a surcharge, not a way to make one request cost the whole BIGINT.
PRICE_RATIO_MAX = 10_000
PRICE_RATIO_PLACES = 6


def limit_clean(name: str, value: Any) -> int:
    return numbers.parse_int(value, field=name, minimum=0, maximum=LIMIT_MAX)


def budget_quota_clean(value: Any) -> int:
    return numbers.parse_int(value, field="budget_quota", minimum=0, maximum=BUDGET_MAX)


def budget_period_clean(value: Any) -> str:
    if not isinstance(value, str) or value not in BudgetPeriod.values:
        raise ServiceError(gettext("budget_period must be one of: \"\" (none), day, week, month"),
                           field="budget_period", code="invalid_choice")
    return value


def price_ratio_clean(value: Any) -> float:
    ratio = numbers.parse_decimal(value, field="price_ratio", minimum=0, maximum=PRICE_RATIO_MAX,
                                  places=PRICE_RATIO_PLACES)
    return float(ratio)


_CLEANERS = {
    **dict.fromkeys(LIMIT_FIELDS, None),
    "budget_quota": budget_quota_clean,
    "budget_period": budget_period_clean,
}


def values_clean(fields: dict[str, Any], *, names: tuple[str, ...] = LIMIT_FIELDS + BUDGET_FIELDS) -> dict[str, Any]:
    """The given limit and budget values (None: not given, left out), each checked."""
    cleaned = {}
    for name in names:
        value = fields.get(name)
        if value is None:
            continue
        cleaner = _CLEANERS[name]
        cleaned[name] = limit_clean(name, value) if cleaner is None else cleaner(value)
    return cleaned


def budget_check(*, quota: int, period: str) -> None:
    """A budget amount needs the period it is spent over; a period with no amount is no budget."""
    if quota and not period:
        raise ServiceError(gettext("budget_period must be day, week or month when budget_quota is above 0"),
                           field="budget_period", code="required")


def ratio_text(value: float) -> str:
    """A ratio as a form shows it: 0.85, never 0.8500000001 or 8.5E-1."""
    return numbers.plain(Decimal(repr(value)).normalize()) if value else "0"


def limits_summary(holder) -> list[str]:
    """A token's, user's or channel's limits as short phrases ("60 requests a minute"), the ones it has."""
    phrases = []
    if holder.rpm_limit:
        phrases.append(gettext("%(n)s requests a minute") % {"n": f"{holder.rpm_limit:,}"})
    if holder.tpm_limit:
        phrases.append(gettext("%(n)s tokens a minute") % {"n": f"{holder.tpm_limit:,}"})
    if holder.concurrency_limit:
        phrases.append(gettext("%(n)s at once") % {"n": f"{holder.concurrency_limit:,}"})
    if holder.rpd_limit:
        phrases.append(gettext("%(n)s requests a day") % {"n": f"{holder.rpd_limit:,}"})
    return phrases
