"""Forms of the billing pages: redeem a code, filter the logs."""

from __future__ import annotations

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import Log

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]

# Log.Type's labels are the management API's words; these are the page's, translated.
LOG_TYPE_LABELS = {
    Log.Type.UNKNOWN: _("Unknown"),
    Log.Type.TOPUP: _("Top-up"),
    Log.Type.CONSUME: _("Consume"),
    Log.Type.MANAGE: _("Manage"),
    Log.Type.SYSTEM: _("System"),
    Log.Type.TEST: _("Test"),
}


class TopUpForm(forms.Form):
    key = forms.CharField(
        label=_("Redemption code"), max_length=64, strip=True,
        error_messages={"required": _("Enter a redemption code.")},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "class": "mono",
                                      "placeholder": _("Paste your redemption code")}),
    )


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


class LogFilterForm(forms.Form):
    """The user's own log filters; there is no user, username or channel field on purpose."""

    start = forms.DateTimeField(label=_("From"), required=False, input_formats=DATETIME_FORMATS,
                                widget=DateTimeLocalInput())
    end = forms.DateTimeField(label=_("To"), required=False, input_formats=DATETIME_FORMATS,
                              widget=DateTimeLocalInput())
    type = forms.TypedChoiceField(
        label=_("Type"), required=False, coerce=int, empty_value=0,
        choices=[("", _("All types"))] + [(int(t), label) for t, label in LOG_TYPE_LABELS.items()
                                           if t != Log.Type.UNKNOWN],
    )
    model_name = forms.CharField(label=_("Model"), required=False, max_length=255)
    token_name = forms.CharField(label=_("Token name"), required=False, max_length=64)

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            self.add_error("end", _("The end must not be before the start."))
        return data

    def timestamps(self) -> tuple[int, int]:
        """Unix seconds for LogFilter; the end minute (or day) is inclusive: a datetime-local has no seconds."""
        start, end = self.cleaned_data.get("start"), self.cleaned_data.get("end")
        start_ts = int(_aware(start).timestamp()) if start else 0
        end_ts = 0
        if end:
            end_ts = int(_aware(end).timestamp())
            if len(str(self.data.get("end", "")).strip()) == 10:
                end_ts += 86399     # a bare date: the whole day
            elif end.second == 0:
                end_ts += 59
        return start_ts, end_ts


def _aware(value):
    # The form parses in the current time zone already when USE_TZ is on; stay safe for naive input.
    return value if timezone.is_aware(value) else timezone.make_aware(value)
