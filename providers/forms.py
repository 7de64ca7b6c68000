"""The channel form: a write-only key, JSON checked with a clear message, config fields from the adapters."""

from __future__ import annotations

import json

from django import forms

from providers.adapters import ADAPTERS, secret_config_fields, type_choices
from providers.models import Channel

# What each adapter config field means; adapters name the fields, the form explains them.
CONFIG_HELP = {
    "api_version": "API version sent as ?api-version=, e.g. 2024-03-01-preview (Azure's default when empty).",
    "region": "Vendor region, e.g. us-east-1.",
    "ak": "Access key id.",
    "sk": "Secret access key.",
    "user_id": "Vendor account or user id.",
    "library_id": "Knowledge library id.",
    "plugin": "Plugin name.",
    "vertex_ai_project_id": "Google Cloud project id.",
    "vertex_ai_adc": "Application default credentials JSON.",
}


def config_field_types() -> dict[str, list[int]]:
    """Each config field any adapter declares, with the channel types that use it."""
    fields: dict[str, list[int]] = {}
    for type_id, adapter in sorted(ADAPTERS.items()):
        for name in adapter.config_fields:
            fields.setdefault(name, []).append(type_id)
    return fields


class WriteOnlyTextarea(forms.Textarea):
    """Renders empty whatever the value, so a stored credential never goes back to the browser."""

    def format_value(self, value):
        return None


class WriteOnlyField(forms.CharField):
    """Changed only when something was typed: an empty write-only field keeps the stored value."""

    def has_changed(self, initial, data):
        return bool((data or "").strip())


class JSONObjectField(forms.JSONField):
    """A JSON object in a textarea; a typo is reported with the field's name, line and column."""

    widget = forms.Textarea(attrs={"rows": 4, "class": "vLargeTextField", "spellcheck": "false"})

    def to_python(self, value):
        if self.disabled:
            return value
        if value in self.empty_values or (isinstance(value, str) and not value.strip()):
            return {}
        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"{self.label} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                code="invalid") from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError(f'{self.label} must be a JSON object, like {{"a": "b"}}.', code="invalid")
        return parsed

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        if not value:
            return ""
        return json.dumps(value, ensure_ascii=False, indent=2)


class ChannelForm(forms.ModelForm):
    type = forms.TypedChoiceField(coerce=int, choices=type_choices, initial=1)
    key = WriteOnlyField(
        required=False, strip=True, label="Key",
        widget=WriteOnlyTextarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false",
                                        "placeholder": "Never shown back once saved."}),
        help_text="Write-only. On edit, leave empty to keep the stored key. "
                  "On create, one key per line creates one channel per key.",
    )
    models = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Comma-separated models this channel serves (the names clients ask for).")
    group = forms.CharField(initial="default", help_text="Comma-separated user groups.")
    model_mapping = JSONObjectField(
        required=False, label="model_mapping",
        help_text='{"client model": "upstream model"}; the client-facing name must also be in Models.')
    config = JSONObjectField(
        required=False, label="config",
        help_text="Other config keys as a JSON object; the fields above take precedence for their keys.")
    system_prompt = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    class Meta:
        model = Channel
        fields = ("name", "type", "status", "key", "base_url", "models", "group", "model_mapping",
                  "priority", "weight", "config", "system_prompt")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance_type = self.instance.type if self.instance.pk else None
        channel_type = instance_type or _int(self.initial.get("type")) or 1
        self._config_names = config_field_types()
        stored = dict(self.instance.config or {}) if self.instance.pk else {}
        secrets = secret_config_fields()
        for name, types in self._config_names.items():
            labels = ", ".join(ADAPTERS[t].label for t in types)
            help_text = f"{CONFIG_HELP.get(name, '')} Used by {labels}.".strip()
            if name in secrets:
                self.fields[f"config_{name}"] = WriteOnlyField(
                    required=False, label=name, widget=WriteOnlyTextarea(attrs={"rows": 2}),
                    help_text=f"{help_text} Write-only: leave empty to keep the stored value.")
                stored.pop(name, None)  # never rendered; channel_update keeps it when left empty
                continue
            self.fields[f"config_{name}"] = forms.CharField(required=False, label=name, help_text=help_text)
            if name in stored:
                self.initial[f"config_{name}"] = stored.pop(name)
        self.initial["config"] = stored
        adapter = ADAPTERS.get(channel_type)
        default = adapter.default_base_url if adapter else ""
        base_url = self.fields["base_url"]
        base_url.widget.attrs["placeholder"] = default or "https://..."
        if not self.instance.pk:
            base_url.help_text = "Empty uses the type's default address, where it has one."
        elif default:
            base_url.help_text = f"Empty uses {adapter.label}'s default, {default}."
        else:
            base_url.help_text = f"{adapter.label if adapter else 'This type'} has no default: enter the address."

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("key"):
            self.add_error("key", "Enter the vendor key (one per line to create several channels).")
        channel_type = cleaned.get("type")
        adapter = ADAPTERS.get(channel_type) if channel_type is not None else None
        if adapter is not None and not adapter.default_base_url and not (cleaned.get("base_url") or "").strip():
            self.add_error("base_url", f"{adapter.label} has no default address: enter the base URL.")
        config = dict(cleaned.get("config") or {})
        for name in self._config_names:
            # A named field wins when filled; an empty one leaves whatever the raw JSON says
            # (stored values were moved out of the JSON into their fields, so clearing works).
            value = (cleaned.get(f"config_{name}") or "").strip()
            if value:
                config[name] = value
        cleaned["config"] = config
        return cleaned

    def channel_fields(self) -> dict:
        """The fields channel_create / channel_update take."""
        return {name: self.cleaned_data.get(name) for name in self.Meta.fields}


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
