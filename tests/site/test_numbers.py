"""The one bounded number parser (oneapi_site/lib/numbers.py) every quota, price, count and option goes through."""

from decimal import Decimal

import pytest
from django.utils import translation

from accounts.models import Token, User
from billing.models import RedemptionCode
from oneapi_site.lib import numbers
from oneapi_site.lib.errors import ServiceError
from providers.models import Channel

BIG = numbers.BIGINT


@pytest.mark.parametrize("value, expected", [
    ("12", 12), (" 12 ", 12), ("+12", 12), ("-12", -12), ("007", 7), ("12.0", 12), ("12.", 12),
    (12, 12), (12.0, 12), (Decimal("12.000"), 12), (Decimal("1E+2"), 100), ("-0", 0),
    (str(BIG[1]), BIG[1]), (str(BIG[0]), BIG[0]), (BIG[1], BIG[1]),
])
def test_plain_whole_numbers_are_read(value, expected):
    assert numbers.parse_int(value, field="quota", minimum=BIG[0], maximum=BIG[1]) == expected


@pytest.mark.parametrize("value, message", [
    ("1e500000", "quota must be written in plain digits, without an exponent"),
    ("1e999999", "quota must be written in plain digits, without an exponent"),
    ("1E5", "quota must be written in plain digits, without an exponent"),
    ("-2.5e-3", "quota must be written in plain digits, without an exponent"),
    ("nan", "quota must be a finite number"),
    ("-Infinity", "quota must be a finite number"),
    (float("nan"), "quota must be a finite number"),
    (float("inf"), "quota must be a finite number"),
    (Decimal("sNaN"), "quota must be a finite number"),
    ("9" * 41, "quota has too many digits"),
    ("1" * 5000, "quota has too many digits"),
    (10 ** 4000, "quota has too many digits"),
    (Decimal("1e-999999"), "quota has too many digits"),
    ("12.5", "quota must be a whole number"),
    (12.5, "quota must be a whole number"),
    ("", "quota must be a number"),
    ("1,000", "quota must be a number"),
    ("١٢", "quota must be a number"),        # Arabic-Indic digits: int() would take them
    ("0x10", "quota must be a number"),
    ("1_000", "quota must be a number"),     # int() would take this too
    (True, "quota must be a number"),
    (None, "quota must be a number"),
    ([1], "quota must be a number"),
    (str(BIG[1] + 1), f"quota must be at most {BIG[1]}"),
    (BIG[1] + 1, f"quota must be at most {BIG[1]}"),
    (1e20, f"quota must be at most {BIG[1]}"),
    (str(BIG[0] - 1), f"quota must be at least {BIG[0]}"),
])
def test_anything_else_is_refused_with_the_field_named(value, message):
    with pytest.raises(ServiceError) as caught:
        numbers.parse_int(value, field="quota", minimum=BIG[0], maximum=BIG[1])
    assert str(caught.value) == message
    assert caught.value.field == "quota"


def test_a_declared_range_narrows_the_column():
    assert numbers.parse_int("100", field="count", minimum=1, maximum=100) == 100
    for value, message in (("0", "count must be at least 1"), ("101", "count must be at most 100")):
        with pytest.raises(ServiceError, match=message):
            numbers.parse_int(value, field="count", minimum=1, maximum=100)


def test_decimals_keep_their_exact_value_and_places_are_bounded():
    assert numbers.parse_decimal("0.1", field="r", minimum=0, maximum=10) == Decimal("0.1")
    assert numbers.parse_decimal(0.1, field="r", minimum=0, maximum=10) == Decimal("0.1")  # not 0.1000000000000000055
    assert numbers.parse_decimal("1.500", field="r", minimum=0, maximum=10, places=1) == Decimal("1.5")
    with pytest.raises(ServiceError, match="r may have at most 2 decimal places"):
        numbers.parse_decimal("1.005", field="r", minimum=0, maximum=10, places=2)
    with pytest.raises(ServiceError, match="r must be at least 0.000001"):
        numbers.parse_decimal("0", field="r", minimum=Decimal("0.000001"), maximum=10)


@pytest.mark.parametrize("amount, per_unit, quota", [
    ("1", "500000", 500_000), ("2.5", "500000", 1_250_000), ("0.000001", "500000", 1),   # 0.5 rounds half up
    ("0.0000009", "500000", 0), ("18446744073709.551615", "500000", 2 ** 63),
])
def test_us_dollars_become_whole_quota_exactly(amount, per_unit, quota):
    got = numbers.parse_quota_in_usd(amount, field="Quota", per_unit=Decimal(per_unit), minimum=0,
                                     maximum=10 ** 19)
    assert got == quota


def test_us_dollar_bounds_are_told_in_us_dollars():
    with pytest.raises(ServiceError, match=r"^Quota must be at most 18446744073709.551614$"):
        numbers.parse_quota_in_usd("18446744073709.56", field="Quota", per_unit=Decimal(500000), minimum=0,
                                   maximum=BIG[1])
    with pytest.raises(ServiceError, match="^Quota must be at least 0$"):
        numbers.parse_quota_in_usd("-0.0000001", field="Quota", per_unit=Decimal(500000), minimum=0,
                                   maximum=BIG[1])
    with pytest.raises(ServiceError, match="without an exponent"):
        numbers.parse_quota_in_usd("1e999999", field="Quota", per_unit=Decimal(500000), minimum=0,
                                   maximum=BIG[1])


def test_errors_speak_the_readers_language():
    with translation.override("zh-hans"):
        with pytest.raises(ServiceError) as caught:
            numbers.parse_int("101", field="count", minimum=1, maximum=100)
    assert str(caught.value) == "count 不能大于 100"


def test_int_or_none_reads_search_terms_without_failing():
    assert numbers.int_or_none("42") == 42
    for text in ("", "abc", "²", "9" * 30, "1e5", "4.2"):
        assert numbers.int_or_none(text) is None


@pytest.mark.parametrize("field, expected", [
    (User._meta.get_field("quota"), BIG),
    (Token._meta.get_field("expired_time"), BIG),
    (RedemptionCode._meta.get_field("status"), numbers.SMALLINT),
    (Channel._meta.get_field("type"), numbers.INT),
    (Channel._meta.get_field("weight"), (0, 2 ** 31 - 1)),
])
def test_each_column_knows_what_it_holds(field, expected):
    assert numbers.column_range(field) == expected


@pytest.mark.parametrize("text", ["1e500000", "1e999999", "9" * 5000, "-" + "1" * 200])
def test_extreme_text_is_refused_before_any_decimal_is_made(monkeypatch, text):
    # Decimal("1e500000") is cheap; making it an integer took seconds of CPU, and multiplying 1e999999 by
    # QuotaPerUnit overflowed. No Decimal is built from such text at all.
    made = []

    class Spy(Decimal):
        def __new__(cls, *args):
            made.append(args)
            return Decimal.__new__(cls, *args)

    monkeypatch.setattr(numbers, "Decimal", Spy)
    with pytest.raises(ServiceError):
        numbers.parse_quota_in_usd(text, field="Quota", per_unit=Decimal(500000), minimum=0, maximum=BIG[1])
    with pytest.raises(ServiceError):
        numbers.parse_int(text, field="quota", minimum=BIG[0], maximum=BIG[1])
    assert made == []
