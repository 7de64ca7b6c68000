"""An amount of quota typed in the console: whole quota units, or US$ when written with a dollar sign.

The console shows and takes quota in units, with their US$ value beside them (billing/money.py); a budget is
easier to think of in dollars, so "$10", "10$" and "US$10" are read as US$ (QuotaPerUnit quota each) and a
bare number as quota units. Both through the bounded parser.
"""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext, gettext_lazy

from oneapi_site import options
from oneapi_site.lib import numbers
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.number_fields import form_error

_DOLLAR_MARKS = ("US$", "$")


def _split_dollars(text: str) -> tuple[str, bool]:
    """(the number, whether it was written as US$)."""
    upper = text.upper()
    for mark in _DOLLAR_MARKS:
        if upper.startswith(mark):
            return text[len(mark):].strip(), True
    if text.endswith("$"):
        return text[:-1].strip(), True
    return text, False


class QuotaAmountField(forms.CharField):
    default_error_messages = {"min_value": gettext_lazy("The amount must not be negative.")}

    def __init__(self, *, minimum: int = 0, maximum: int = numbers.BIGINT[1], zero_is_none: bool = False,
                 **kwargs):
        # zero_is_none: 0 means "none" (a budget), so US$ too few to make one quota unit are refused, not 0.
        self.minimum, self.maximum, self.zero_is_none = minimum, maximum, zero_is_none
        kwargs.setdefault("widget", forms.TextInput(attrs={"class": "vIntegerField", "inputmode": "decimal"}))
        super().__init__(**kwargs)

    def to_python(self, value) -> int | None:
        if isinstance(value, int):
            return value
        text = (super().to_python(value) or "").replace(",", "").replace(" ", "")
        if not text:
            return None
        number, in_usd = _split_dollars(text)
        label = str(self.label or gettext("Amount"))
        try:
            if in_usd and self.zero_is_none and self.minimum == 0:
                return numbers.parse_budget_in_usd(number, field=label, per_unit=options.quota_per_unit(),
                                                   maximum=self.maximum)
            if in_usd:
                return numbers.parse_quota_in_usd(number, field=label, per_unit=options.quota_per_unit(),
                                                  minimum=self.minimum, maximum=self.maximum)
            return numbers.parse_int(number, field=label, minimum=self.minimum, maximum=self.maximum)
        except ServiceError as exc:
            raise form_error(exc, self.error_messages) from None

    def prepare_value(self, value):
        return "" if value is None else str(value)

    def help(self) -> str:
        return gettext("Quota units, or US$ with a dollar sign: $1 is %(units)s quota.") % {
            "units": numbers.plain(options.quota_per_unit())}
