"""The channel form: a write-only key, JSON checked with a clear message, config fields from the adapters."""

from __future__ import annotations

import json

from django import forms
from django.forms.boundfield import BoundField
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from oneapi_site.lib import json_depth, numbers
from oneapi_site.lib.limit_values import LIMIT_FIELDS
from providers import channel_overrides, form_hints
from providers.adapters import ADAPTERS, secret_config_fields
from providers.labels import type_choices, type_label, unsupported_type_refusal
from providers.models import Channel, split_list

# What each adapter config field means; adapters name the fields, the form names and explains them.
# A field missing here shows its config key as its label.
CONFIG_LABELS = {
    "api_version": _("API version"),
    "region": _("Region"),
    "ak": _("Access key ID"),
    "sk": _("Secret access key"),
    "session_token": _("Session token"),
    "user_id": _("Account or user ID"),
    "library_id": _("Knowledge library ID"),
    "plugin": _("Plugin"),
    "vertex_ai_project_id": _("Project ID"),
    "vertex_ai_adc": _("Application default credentials"),
    "num_ctx": _("Context window"),
    "responses_api": _("Serves the Responses API"),
    "param_override": _("Parameter override"),
    "header_override": _("Header override"),
    "proxy": _("Proxy"),
}
CONFIG_HELP = {
    "api_version": _("API version sent as ?api-version=, e.g. 2024-03-01-preview (Azure's default when empty)."),
    "region": _("Vendor region, e.g. us-east-1."),
    "ak": _("Access key id."),
    "sk": _("Secret access key."),
    "session_token": _("Session token of temporary (STS) credentials; empty for long-term keys."),
    "user_id": _("Vendor account or user id."),
    "library_id": _("Knowledge library id."),
    "plugin": _("Plugin name."),
    "vertex_ai_project_id": _("Google Cloud project id."),
    "vertex_ai_adc": _("Application default credentials JSON."),
    "num_ctx": _("Ollama's context length in tokens (num_ctx) for requests that do not set one."),
    "responses_api": _("true or false: whether the host serves /v1/responses, which then gets Responses clients' "
                       "requests as they are (empty: OpenAI and Azure do, other types do not)."),
    "param_override": _('new-api\'s format: a JSON object merged into the body sent upstream, or {"operations": '
                        '[{"path", "mode", "value", "from", "to", "conditions", "logic"}]} (modes set, delete, move, '
                        'copy, append, prepend, trim_prefix, trim_suffix, ensure_prefix, ensure_suffix, trim_space, '
                        'to_lower, to_upper, replace, regex_replace, return_error). Applied to the vendor\'s body.'),
    "header_override": _('A JSON object of headers added to (or replacing) those sent upstream; {api_key} in a '
                         'value is the channel key.'),
    "proxy": _("Outbound proxy for this channel's upstream calls: http://, https://, socks5:// or "
               "socks5h://[user:password@]host:port (empty: RELAY_PROXY, if set). The password is shown masked."),
}
# Config keys every type takes (providers/channel_overrides.py), and those typed as JSON.
JSON_CONFIG_FIELDS = ("param_override", "header_override")


def config_field_types() -> dict[str, list[int]]:
    """Each config field any adapter declares, with the channel types that use it."""
    fields: dict[str, list[int]] = {}
    for type_id, adapter in sorted(ADAPTERS.items()):
        for name in (*adapter.config_fields, *channel_overrides.CONFIG_KEYS):
            fields.setdefault(name, []).append(type_id)
    return fields


class WriteOnlyBoundField(BoundField):
    """Shows what was typed in this submission, never the stored value (the form's initial)."""

    def value(self):
        return self.field.prepare_value(self.data if self.form.is_bound else None)


class WriteOnlyField(forms.CharField):
    """A credential: its box starts empty, so a stored one never goes back to the browser, yet one typed in
    a submission that failed on another field is still there to correct, not typed again.
    Changed only when something was typed: an empty write-only field keeps the stored value."""

    def get_bound_field(self, form, field_name):
        return WriteOnlyBoundField(form, self, field_name)

    def has_changed(self, initial, data):
        return bool((data or "").strip())


class JSONObjectField(forms.JSONField):
    """A JSON object in a textarea; a typo is reported with the field's name, line and column.

    `name` is the config key the messages use (operators and /api know it), whatever the label's language.
    """

    widget = forms.Textarea(attrs={"rows": 4, "class": "vLargeTextField", "spellcheck": "false"})

    def __init__(self, *, name: str, **kwargs):
        self.name = name
        super().__init__(**kwargs)

    def to_python(self, value):
        if self.disabled:
            return value
        if value in self.empty_values or (isinstance(value, str) and not value.strip()):
            return {}
        if isinstance(value, dict):
            return value
        try:
            parsed = json_depth.loads(value)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                gettext("%(name)s is not valid JSON: %(error)s at line %(line)d, column %(column)d.")
                % {"name": self.name, "error": exc.msg, "line": exc.lineno, "column": exc.colno},
                code="invalid") from None
        except ValueError:  # a number of more than 4,300 digits: Python refuses to read it
            raise forms.ValidationError(gettext("%(name)s is not valid JSON: a number has too many digits.")
                                        % {"name": self.name}, code="invalid") from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError(gettext('%(name)s must be a JSON object, like {"a": "b"}.')
                                        % {"name": self.name}, code="invalid")
        if json_depth.holds_lone_surrogate(parsed):
            raise forms.ValidationError(
                gettext("%(name)s holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text.")
                % {"name": self.name}, code="invalid")
        return parsed

    def bound_data(self, data, initial):
        """What a form shown again with its errors holds; Django's own parse would recurse on deep input."""
        if self.disabled or data is None:
            return super().bound_data(data, initial)
        try:
            parsed = json_depth.loads(data)
        except ValueError:  # bad JSON, or a number Python refuses to read
            return forms.fields.InvalidJSONInput(data)
        # Shown again as typed: a lone surrogate parsed out of "\\ud800" cannot be written into the page.
        return forms.fields.InvalidJSONInput(data) if json_depth.holds_lone_surrogate(parsed) else parsed

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        if not value:
            return ""
        return json.dumps(value, ensure_ascii=False, indent=2)


class ModelPickerField(forms.MultipleChoiceField):
    """The type's known models to tick; any name is accepted, since the page's script swaps the choices for
    another type's and a picked name only joins the free-text Models."""

    def valid_value(self, value):
        return isinstance(value, str)


def apply_type_hints(form: forms.Form, channel_type: int) -> None:
    """The form as the type it opens with: its key format, its known models in the picker, and every type's
    hints for the page's script (static/oneapi/channel_form.js) to switch to."""
    form.fields["type"].widget.attrs["data-hints"] = json.dumps(form_hints.type_hints(), ensure_ascii=False)
    form.fields["key"].help_text = format_html('{} <span id="channel-key-format">{}</span>',
                                               form.fields["key"].help_text, form_hints.key_format(channel_type))
    models = form_hints.type_hints().get(str(channel_type), {}).get("models", [])
    form.fields["model_picker"].choices = [(m, m) for m in models]
    form.fields["model_picker"].help_text = format_html(
        '{} <a href="#" id="channel-models-fill">{}</a>',
        gettext("The type's known models: the ticked ones join Models on save."),
        gettext("Add the ticked (or all) to Models now"))


class ChannelForm(forms.ModelForm):
    type = forms.TypedChoiceField(label=_("Type"), coerce=int, choices=type_choices, initial=1, error_messages={
        "invalid_choice": _("Channel type %(value)s is not supported: no adapter serves it, so a channel of it "
                            "could never route. Choose one of the listed types.")})
    key = WriteOnlyField(
        required=False, strip=True, label=_("Key"),
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false",
                                        "placeholder": _("Never shown back once saved.")}),
        help_text=_("Write-only. On edit, leave empty to keep the stored key. On create, one key per line "
                    "creates one channel per key, unless the key mode holds several keys in this channel."),
    )
    models = forms.CharField(label=_("Models"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text=_("Comma-separated models this channel serves (the names clients ask for)."))
    model_picker = ModelPickerField(
        label=_("Known models"), required=False,
        widget=forms.SelectMultiple(attrs={"size": 8}))
    group = forms.CharField(label=_("Group"), initial="default", help_text=_("Comma-separated user groups."))
    model_mapping = JSONObjectField(
        name="model_mapping", required=False, label=_("Model mapping"),
        help_text=_('{"client model": "upstream model"}; the client-facing name must also be in Models.'))
    config = JSONObjectField(
        name="config", required=False, label=_("Config"),
        help_text=_("Other config keys as a JSON object; the fields above take precedence for their keys."))
    system_prompt = forms.CharField(label=_("System prompt"), required=False,
                                    widget=forms.Textarea(attrs={"rows": 2}))

    class Media:
        js = ("oneapi/channel_form.js",)

    class Meta:
        model = Channel
        fields = ("name", "type", "status", "key", "key_mode", "key_rpm_limit", "base_url", "models", "group",
                  "tag", "model_mapping", "priority", "weight", "config", "system_prompt", *LIMIT_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in (*LIMIT_FIELDS, "key_rpm_limit"):
            # Empty is no limit; a post without the input (a page saved before it existed) keeps the value.
            if name in self.fields:
                self.fields[name].required = False
        if self.instance.pk:
            # Health may auto-disable the channel while its page is open; the status the page showed travels
            # with the post, so saving other edits leaves a status the operator did not touch alone.
            self.fields["status"].show_hidden_initial = True
        instance_type = self.instance.type if self.instance.pk else None
        if instance_type is not None and instance_type not in ADAPTERS:
            # Shown as it is stored, never as the first choice the browser would pick instead, and refused on
            # save (clean) until the operator picks a supported type.
            self.fields["type"].choices = [(instance_type, type_label(instance_type)), *type_choices()]
        channel_type = instance_type or numbers.int_or_none(self.initial.get("type")) or 1
        self._config_names = config_field_types()
        stored = dict(self.instance.config or {}) if self.instance.pk else {}
        secrets = secret_config_fields()
        for name, types in self._config_names.items():
            label = CONFIG_LABELS.get(name, name)
            used_by = (gettext("Every type; config key %(key)s.") % {"key": name}
                       if name in channel_overrides.CONFIG_KEYS else
                       gettext("Used by %(types)s; config key %(key)s.")
                       % {"types": ", ".join(type_label(t) for t in types), "key": name})
            help_parts = [str(CONFIG_HELP.get(name, "")), used_by]
            if name in JSON_CONFIG_FIELDS:
                self.fields[f"config_{name}"] = JSONObjectField(name=name, required=False, label=label,
                                                                help_text=" ".join(p for p in help_parts if p))
                if name in stored:
                    self.initial[f"config_{name}"] = channel_overrides.shown({name: stored.pop(name)})[name]
                continue
            if name in secrets:
                help_parts.append(gettext("Write-only: leave empty to keep the stored value."))
                self.fields[f"config_{name}"] = WriteOnlyField(
                    required=False, label=label, widget=forms.Textarea(attrs={"rows": 2}),
                    help_text=" ".join(p for p in help_parts if p))
                stored.pop(name, None)  # never rendered; channel_update keeps it when left empty
                continue
            self.fields[f"config_{name}"] = forms.CharField(required=False, label=label,
                                                            help_text=" ".join(p for p in help_parts if p))
            if name in stored:
                value = stored.pop(name)
                self.initial[f"config_{name}"] = channel_overrides.shown({name: value})[name]
        self.initial["config"] = stored
        adapter = ADAPTERS.get(channel_type)
        default = adapter.default_base_url if adapter else ""
        base_url = self.fields["base_url"]
        base_url.widget.attrs["placeholder"] = form_hints.base_url_placeholder(channel_type)
        apply_type_hints(self, channel_type)
        if not self.instance.pk:
            base_url.help_text = gettext("Empty uses the type's default address, where it has one.")
        elif default:
            base_url.help_text = gettext("Empty uses the default of %(type)s, %(url)s.") % {
                "type": type_label(channel_type), "url": default}
        else:
            base_url.help_text = gettext("%(type)s has no default: enter the address.") % {
                "type": type_label(channel_type)}

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("key"):
            self.add_error("key", gettext("Enter the vendor key (one per line to create several channels)."))
        channel_type = cleaned.get("type")
        if channel_type is not None and channel_type not in ADAPTERS:
            self.add_error("type", unsupported_type_refusal(channel_type))
        adapter = ADAPTERS.get(channel_type) if channel_type is not None else None
        if adapter is not None and not adapter.default_base_url and not (cleaned.get("base_url") or "").strip():
            self.add_error("base_url", gettext("%(type)s has no default address: enter the base URL.")
                           % {"type": type_label(channel_type)})
        config = dict(cleaned.get("config") or {})
        for name in self._config_names:
            # A named field wins when filled; an empty one leaves whatever the raw JSON says
            # (stored values were moved out of the JSON into their fields, so clearing works).
            value = cleaned.get(f"config_{name}")
            value = value.strip() if isinstance(value, str) else value
            if value:
                config[name] = value
        try:
            config = channel_overrides.clean_config(config, stored=self.instance.config if self.instance.pk else None)
        except ValueError as exc:
            name = next((key for key in channel_overrides.CONFIG_KEYS if str(exc).startswith(key)), None)
            self.add_error(f"config_{name}" if name else "config", str(exc))
        cleaned["config"] = config
        if cleaned.get("model_picker"):
            cleaned["models"] = ",".join(split_list(",".join([cleaned.get("models") or "",
                                                               *cleaned["model_picker"]])))
        for name in (*LIMIT_FIELDS, "key_rpm_limit"):
            if cleaned.get(name) is None and name in self.data:
                cleaned[name] = 0
        return cleaned

    def channel_fields(self) -> dict:
        """The fields channel_create / channel_update take; on edit, status only when the operator changed it."""
        fields = {name: self.cleaned_data.get(name) for name in self.Meta.fields}
        if self.instance.pk and "status" not in self.changed_data:
            fields.pop("status")
        return fields
