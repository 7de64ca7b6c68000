"""The number parser as fields: /api bodies, page forms and the console read whole numbers one way.

Each field knows the column its value goes to, and may narrow it (a count of 1 to 100, a quota above 0).
"""

from __future__ import annotations

from django import forms
from django.contrib.admin import widgets as admin_widgets
from django.db import models
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from oneapi_site.lib import numbers
from oneapi_site.lib.errors import ServiceError


def column(model: type[models.Model], name: str) -> models.Field:
    """The model field a number goes to, for the `column=` of the fields below."""
    return model._meta.get_field(name)


def _bounds(column: models.Field | None, minimum: int | None, maximum: int | None) -> tuple[int, int]:
    """The column's range (BIGINT when there is none), narrowed by the declared minimum and maximum."""
    low, high = numbers.column_range(column) if column is not None else numbers.BIGINT
    if minimum is not None:
        low = max(low, minimum)
    if maximum is not None:
        high = min(high, maximum)
    return low, high


def form_error(exc: ServiceError, messages: dict | None = None) -> forms.ValidationError:
    """The parser's error for a form: the form's own wording for its code when it has one."""
    message = (messages or {}).get(exc.code) or str(exc)
    return forms.ValidationError(message, code=exc.code or "invalid")


class WholeNumberInput(serializers.Field):
    """A whole number in an /api body. The parser's error goes out as raised, naming the JSON key
    (envelope_exception_handler answers it), rather than as DRF's "key: message" for each field."""

    def __init__(self, *, column: models.Field | None = None, minimum: int | None = None,
                 maximum: int | None = None, **kwargs):
        self.minimum, self.maximum = _bounds(column, minimum, maximum)
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> int:
        return numbers.parse_int(data, field=self.field_name, minimum=self.minimum, maximum=self.maximum)

    def to_representation(self, value):
        return value


class WholeNumberField(forms.Field):
    """A whole number on a page or console form; the error names the field by its label."""

    widget = forms.NumberInput

    def __init__(self, *, column: models.Field | None = None, minimum: int | None = None,
                 maximum: int | None = None, **kwargs):
        self.minimum, self.maximum = _bounds(column, minimum, maximum)
        kwargs.pop("min_value", None)  # what a model field's formfield() passes for its own validators
        kwargs.pop("max_value", None)
        super().__init__(**kwargs)

    def to_python(self, value) -> int | None:
        if value in self.empty_values:
            return None
        try:
            return numbers.parse_int(value, field=str(self.label or _("This value")), minimum=self.minimum,
                                     maximum=self.maximum)
        except ServiceError as exc:
            raise form_error(exc, self.error_messages) from None

    def widget_attrs(self, widget):
        attrs = super().widget_attrs(widget)
        if isinstance(widget, forms.NumberInput):
            attrs.update(min=str(self.minimum), max=str(self.maximum))
        return attrs


def integer_formfield(db_field: models.Field, **kwargs) -> forms.Field | None:
    """The console's field for an integer column that is typed in (no choices, not a key), else None."""
    if db_field.choices or db_field.is_relation or db_field.get_internal_type() not in numbers.COLUMN_RANGES:
        return None
    if "widget" not in kwargs:
        big = db_field.get_internal_type() in ("BigIntegerField", "PositiveBigIntegerField")
        kwargs["widget"] = admin_widgets.AdminBigIntegerFieldWidget if big else admin_widgets.AdminIntegerFieldWidget
    kwargs.setdefault("label", capfirst(db_field.verbose_name))
    return db_field.formfield(form_class=WholeNumberField, column=db_field, **kwargs)


class WholeNumbersAdminMixin:
    """ModelAdmin mixin: every typed-in integer of the model's forms is read by the bounded parser."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = integer_formfield(db_field, **kwargs)
        return field if field is not None else super().formfield_for_dbfield(db_field, request, **kwargs)
