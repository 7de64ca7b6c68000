"""Helpers the admin modules of every app share: times and secrets as the console writes them,
a service's refusal shown on the form, row ids read from a request (an action's selection, an object page's
lookup field, an autocomplete's value), and changelists that filter only as their sidebar offers."""

from __future__ import annotations

from django.contrib.admin import helpers
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import FieldDoesNotExist
from django.db.models.constants import LOOKUP_SEP

from oneapi_site.lib import numbers
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.timeutil import ts_text


def unix_text(ts: int, *, empty: str = "-") -> str:
    """A stored time as the pages write it; `empty` for one-api's 0 (or -1) meaning "none"."""
    if not ts or ts <= 0:
        return empty
    return ts_text(ts)


def mask_secret(value: str) -> str:
    """Enough of a credential to tell two apart, never enough to use it."""
    value = (value or "").strip()
    if len(value) < 16:
        return "****"
    return f"{value[:4]}...{value[-4:]}"


class ServiceErrorsMixin:
    """Show a service's ServiceError on the form, as if the form had found it.

    Services validate when they write, which is after the form has passed. When
    save_model raises, the admin's atomic block rolls back, and the same POST is
    handled again with a form that reports the error on the field it names.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceError as exc:
            if getattr(request, "_service_error", None) is not None:
                raise
            request._service_error = exc
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        error = getattr(request, "_service_error", None)
        if error is None:
            return form_class

        class Rejected(form_class):
            def clean(self):
                cleaned = super().clean()
                self.add_error(error.field if error.field in self.fields else None, str(error))
                return cleaned

        return Rejected


class RowIdsMixin:
    """Row ids the console reads from a request, read so that any text is at worst no row, never a 500.

    An action runs on the rows whose ids were ticked; a posted value that is no row id selects nothing.
    Django passes the posted values to pk__in as they are, and "abc", "1.5" or 30 digits raise there.
    They are dropped before the action reads them; with nothing left, Django says no items were selected.

    An object page's ?_to_field= names the field its id is looked up by; Django refuses a field the console
    does not offer, but looks an empty one up as a field named "" and fails. Empty means the primary key.
    """

    def get_object(self, request, object_id, from_field=None):
        return super().get_object(request, object_id, from_field or None)

    def response_action(self, request, queryset):
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        low, high = numbers.column_range(self.model._meta.pk)
        ids = [str(pk) for pk in (numbers.int_or_none(value, minimum=low, maximum=high) for value in selected)
               if pk is not None]
        if ids != selected:
            post = request.POST.copy()
            post.setlist(helpers.ACTION_CHECKBOX_NAME, ids)
            request.POST = post
        return super().response_action(request, queryset)


class IdAutocompleteSelect(AutocompleteSelect):
    """The autocomplete box of a foreign key, shown again after an error with what was posted.

    Django looks the posted value up to show its label, and a value that is no id ("abc", "0.0", 5,000
    digits) raises there: a 500 instead of the field's "select a valid choice". Such a value shows as
    nothing selected.
    """

    def optgroups(self, name, value, attr=None):
        low, high = numbers.column_range(self.field.remote_field.model._meta.pk)
        ids = [str(pk) for pk in (numbers.int_or_none(item, minimum=low, maximum=high) for item in value or ())
               if pk is not None]
        return super().optgroups(name, ids, attr)


class OfferedFiltersMixin:
    """A changelist filters by the columns its sidebar offers, and by no other.

    Django lets a changelist's query string filter by any column of the model: ?key__startswith=sk-a
    answered whether a masked credential starts so, and an admin read a channel's vendor key or a token's key
    whole by bisection; a JSON column's lookups (?config__contains=) failed on SQLite, a 500. A lookup on any
    other column is refused (a 400, logged as one warning line); a parameter that is no column is left to
    Django, which ignores it or says the filter is wrong.
    """

    def lookup_allowed(self, lookup, value, request):
        name = lookup.split(LOOKUP_SEP)[0]
        if name not in self._offered(request):
            try:
                self.model._meta.get_field(name)
            except FieldDoesNotExist:
                pass
            else:
                return False
        return super().lookup_allowed(lookup, value, request)

    def _offered(self, request) -> set[str]:
        offered = set()
        for spec in self.get_list_filter(request):
            if isinstance(spec, str):
                offered.add(spec)
            elif isinstance(spec, (tuple, list)):
                offered.add(spec[0])
            else:  # a filter class: its own parameters (an InputFilter has one per input box)
                offered.add(getattr(spec, "parameter_name", None))
                offered.update(name for name, *_rest in getattr(spec, "inputs", ()))
        return offered
