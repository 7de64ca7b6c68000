"""Admin forms for redemption batches and the options page."""

from __future__ import annotations

import json

from django import forms

from billing import options

LONG_TEXT_KEYS = {"Notice", "About", "HomePageContent", "Footer", "EmailDomainWhitelist"}


class RedemptionBatchForm(forms.Form):
    name = forms.CharField(max_length=20, help_text="Up to 20 characters; every code in the batch gets it.")
    quota = forms.IntegerField(min_value=1, help_text="Quota each code credits (500000 = $1 by default).")
    count = forms.IntegerField(min_value=1, max_value=100, initial=1, help_text="1 to 100 codes.")


def _field_for(key: str) -> forms.Field:
    if key in options.BOOL_KEYS:
        return forms.BooleanField(required=False, label=key)
    if key in options.INT_KEYS:
        return forms.IntegerField(required=False, label=key)
    if key in options.FLOAT_KEYS:
        return forms.FloatField(required=False, label=key, widget=forms.NumberInput(attrs={"step": "any"}))
    if key in options.JSON_KEYS:
        return forms.CharField(required=False, label=key, strip=False, widget=forms.Textarea(
            attrs={"rows": 10, "class": "vLargeTextField", "spellcheck": "false"}))
    if options.is_secret(key):
        return forms.CharField(required=False, label=key, widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password", "placeholder": "unchanged"}),
            help_text="Write-only: leave empty to keep the stored value.")
    if key in LONG_TEXT_KEYS:
        return forms.CharField(required=False, label=key, strip=False,
                               widget=forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"}))
    return forms.CharField(required=False, label=key, widget=forms.TextInput(attrs={"class": "vTextField"}))


def display_value(key: str, value):
    """The current value as its field shows it; secrets are never sent back."""
    if options.is_secret(key):
        return ""
    if key in options.JSON_KEYS:
        return json.dumps(value, ensure_ascii=False, indent=2)
    return value


class OptionsForm(forms.Form):
    """One field per option key of billing.options.GROUPS; `changed_values()` feeds option_set."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for keys in options.GROUPS.values():
            for key in keys:
                self.fields[key] = _field_for(key)
                self.initial[key] = display_value(key, options.get(key))

    def groups(self):
        return [(name, [self[key] for key in keys]) for name, keys in options.GROUPS.items()]

    def clean(self):
        cleaned = super().clean()
        for key in options.JSON_KEYS:
            if key in self.fields and key not in self.errors:
                try:
                    cleaned[key] = options.parse(key, cleaned.get(key) or "")
                except options.OptionError as exc:
                    self.add_error(key, str(exc))
        for key in options.INT_KEYS | options.FLOAT_KEYS:
            if key in self.fields and key not in self.errors and cleaned.get(key) is None:
                self.add_error(key, f"{key} is required.")
        return cleaned

    def changed_values(self) -> dict:
        """Keys whose value differs from the stored one, switches last (credentials first)."""
        changed = {}
        for key, field in self.fields.items():
            value = self.cleaned_data.get(key)
            if options.is_secret(key) and not value:
                continue
            if options.encode(key, value) != options.encode(key, options.get(key)):
                changed[key] = value
        return dict(sorted(changed.items(), key=lambda item: item[0] in options.BOOL_KEYS))
