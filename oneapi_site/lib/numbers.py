"""One bounded parser for every number people and clients send: quotas, prices, counts, options.

The checks run cheapest first, so no input can cost CPU: a text's shape (ASCII digits, one optional
point, no exponent, at most MAX_DIGITS digits) is checked before int() or Decimal() sees it. Without
that, `1e500000` typed as a quota took seconds of CPU to become an integer while every request of the
process waited, `1e999999` times QuotaPerUnit raised decimal.Overflow, and int() of 5,000 digits raises.
NaN and infinities are refused, and so is a value outside the column that stores it or outside the
range the caller declares. Every error names the field, in the reader's language.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, localcontext

from django.utils.translation import gettext

from oneapi_site.lib.errors import ServiceError

# What Django's integer columns hold on every database we run on. SQLite stores 64 bits and silently turns
# a sum beyond them into a float; MySQL and PostgreSQL refuse it.
SMALLINT = (-2**15, 2**15 - 1)
INT = (-2**31, 2**31 - 1)
BIGINT = (-2**63, 2**63 - 1)
COLUMN_RANGES: dict[str, tuple[int, int]] = {
    "SmallIntegerField": SMALLINT,
    "IntegerField": INT,
    "BigIntegerField": BIGINT,
    "PositiveSmallIntegerField": (0, SMALLINT[1]),
    "PositiveIntegerField": (0, INT[1]),
    "PositiveBigIntegerField": (0, BIGINT[1]),
    "SmallAutoField": SMALLINT,
    "AutoField": INT,
    "BigAutoField": BIGINT,
}

MAX_DIGITS = 40  # before or after the point: 19 hold any 64-bit integer, a US$ amount adds 6 decimals
MAX_TEXT = 100   # characters looked at, spaces, sign and leading zeros included
_PLAIN = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_EXPONENT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+")
_NOT_FINITE = {"nan", "snan", "inf", "infinity"}
_LIMIT = 10 ** MAX_DIGITS  # an int this large is refused by a comparison, before any conversion
_EXACT = 3 * MAX_DIGITS  # digits of precision for the products and quotients below: exact for any accepted input


def column_range(field) -> tuple[int, int]:
    """(minimum, maximum) of a model's integer field, e.g. BIGINT for User.quota."""
    return COLUMN_RANGES[field.get_internal_type()]


def _error(message: str, field: str, code: str, **values) -> ServiceError:
    return ServiceError(message % {"field": field, **values}, field=field, code=code)


def _too_long(field: str) -> ServiceError:
    return _error(gettext("%(field)s has too many digits"), field, "max_digits")


def _not_a_number(field: str) -> ServiceError:
    return _error(gettext("%(field)s must be a number"), field, "invalid")


def _not_finite(field: str) -> ServiceError:
    return _error(gettext("%(field)s must be a finite number"), field, "not_finite")


def _below(field: str, minimum: Decimal | int | str) -> ServiceError:
    return _error(gettext("%(field)s must be at least %(minimum)s"), field, "min_value", minimum=plain(minimum))


def _above(field: str, maximum: Decimal | int | str) -> ServiceError:
    return _error(gettext("%(field)s must be at most %(maximum)s"), field, "max_value", maximum=plain(maximum))


def _decimal(value: object, *, field: str) -> Decimal:
    """`value` as an exact, finite Decimal of at most MAX_DIGITS digits either side of the point."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise _not_a_number(field)
    if isinstance(value, int):
        if abs(value) >= _LIMIT:
            raise _too_long(field)
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _not_finite(field)
        value = Decimal(repr(value))  # the shortest text that reads back as this float, as JSON wrote it
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _not_finite(field)
        if not value:
            return Decimal(0)
        if value.adjusted() >= MAX_DIGITS or value.as_tuple().exponent < -MAX_DIGITS:
            raise _too_long(field)
        return value
    text = value.strip()
    if len(text) > MAX_TEXT:
        raise _too_long(field)
    if text.lstrip("+-").lower() in _NOT_FINITE:
        raise _not_finite(field)
    if _EXPONENT.fullmatch(text):
        raise _error(gettext("%(field)s must be written in plain digits, without an exponent"), field, "exponent")
    if not _PLAIN.fullmatch(text):
        raise _not_a_number(field)
    whole, _, fraction = text.lstrip("+-").partition(".")
    if len(whole.lstrip("0")) > MAX_DIGITS or len(fraction) > MAX_DIGITS:
        raise _too_long(field)
    return Decimal(text)


def _places(number: Decimal) -> int:
    """Decimal places that matter: 1.500 has one."""
    _sign, digits, exponent = number.as_tuple()
    if not number or not isinstance(exponent, int) or exponent >= 0:
        return 0
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing_zeros)


def plain(number: Decimal | int | str) -> str:
    """A bound or amount as people write it: 0.000001 and 500000, never 1E-6 or 5E+5."""
    if isinstance(number, (int, str)):
        return str(number)
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _check_range(number: Decimal, *, field: str, minimum: Decimal | int | None,
                 maximum: Decimal | int | None) -> None:
    if minimum is not None and number < minimum:
        raise _below(field, minimum)
    if maximum is not None and number > maximum:
        raise _above(field, maximum)


def parse_int(value: object, *, field: str, minimum: int, maximum: int) -> int:
    """A whole number in [minimum, maximum]; "12", 12 and 12.0 are accepted, "1e3" and 12.5 are not."""
    number = _decimal(value, field=field)
    if _places(number):
        raise _error(gettext("%(field)s must be a whole number"), field, "not_whole")
    _check_range(number, field=field, minimum=minimum, maximum=maximum)
    return int(number)


def parse_decimal(value: object, *, field: str, minimum: Decimal | int, maximum: Decimal | int,
                  places: int | None = None) -> Decimal:
    """An exact decimal in [minimum, maximum], with at most `places` decimals when given."""
    number = _decimal(value, field=field)
    if places is not None and _places(number) > places:
        raise _error(gettext("%(field)s may have at most %(places)d decimal places"), field, "max_decimal_places",
                     places=places)
    _check_range(number, field=field, minimum=minimum, maximum=maximum)
    return number


def parse_quota_in_usd(value: object, *, field: str, per_unit: Decimal, minimum: int, maximum: int) -> int:
    """A US$ amount as whole quota, rounded half up (QuotaPerUnit quota = US$1); the bounds are quota,
    the error gives them in US$ as the person typed the amount."""
    amount = _decimal(value, field=field)
    if amount < 0 <= minimum:
        raise _below(field, 0)
    with localcontext() as context:
        context.prec = _EXACT
        quota = (amount * per_unit).to_integral_value(rounding=ROUND_HALF_UP)
        step = Decimal("0.000001")
        if quota < minimum:
            raise _below(field, (Decimal(minimum) / per_unit).quantize(step, rounding=ROUND_HALF_UP))
        if quota > maximum:
            raise _above(field, (Decimal(maximum) / per_unit).quantize(step, rounding=ROUND_DOWN))
    return int(quota)


def parse_budget_in_usd(value: object, *, field: str, per_unit: Decimal, maximum: int) -> int:
    """A budget in US$, as parse_quota_in_usd; but an amount above 0 too small to make one quota unit is
    refused, since a budget of 0 is no budget at all (US$0.0000001 a day was no limit)."""
    quota = parse_quota_in_usd(value, field=field, per_unit=per_unit, minimum=0, maximum=maximum)
    if quota == 0 and _decimal(value, field=field) > 0:
        with localcontext() as context:
            context.prec = _EXACT
            least = (Decimal("0.5") / per_unit).quantize(Decimal("0.000001"), rounding=ROUND_UP)
        raise _error(gettext("%(field)s is less than one quota unit: give at least $%(least)s, or 0 for none"),
                     field, "below_one_unit", least=plain(least))
    return quota


def int_or_none(value: object, *, minimum: int = BIGINT[0], maximum: int = BIGINT[1]) -> int | None:
    """For searches and filters, where a bad number matches nothing rather than being an error."""
    try:
        return parse_int(value, field="", minimum=minimum, maximum=maximum)
    except ServiceError:
        return None
