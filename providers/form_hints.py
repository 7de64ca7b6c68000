"""What the channel form tells about each channel type: the key's format, the base URL to expect, the config
fields the type reads, and the models it knows (the form's model picker). The form renders them for the
type it opens with; static/oneapi/channel_form.js switches them when the operator picks another type."""

from __future__ import annotations

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from providers import channel_overrides, selectors
from providers.adapters import ADAPTERS

# Keys that are not one plain token, as the vendors' consoles hand them out (one-api's forms ask the same).
KEY_FORMATS = {
    3: _("The Azure OpenAI resource's key (KEY 1 or KEY 2); the base URL is the resource's endpoint."),
    15: _("APIKey|SecretKey from the Qianfan console."),
    16: _("The API key as the console shows it: id.secret."),
    18: _("APPID|APISecret|APIKey from the Xunfei console."),
    23: _("AppId|SecretId|SecretKey (or SecretId|SecretKey)."),
    30: _("Any text: a bare Ollama takes no key; one behind a proxy gets it as a Bearer token."),
    33: _("AK|SK|REGION, e.g. AKIA...|secret|us-east-1; or the ak, sk and region fields below."),
    34: _("A Coze personal access token (pat_...)."),
    37: _("A Workers AI API token; the account ID goes in its field below."),
    42: _("The service account's JSON key (or put it in the application default credentials field)."),
    48: _("The APIPassword from the Xunfei console."),
}

# The base URL's shape for types with no default address (or whose address is the operator's own).
BASE_URL_SHAPES = {
    3: "https://{resource}.openai.azure.com",
    8: "https://your-host.example.com",
    50: "https://host.example.com/v1",
}


def key_format(type_id: int | None) -> str:
    return str(KEY_FORMATS.get(type_id, ""))


def base_url_placeholder(type_id: int | None) -> str:
    adapter = ADAPTERS.get(type_id)
    return BASE_URL_SHAPES.get(type_id) or (adapter.default_base_url if adapter else "") or "https://..."


def type_hints() -> dict[str, dict]:
    """{type id: {base_url, key, config, models}} for every type the form offers, in the active language."""
    models = selectors.models_by_channel_type()
    return {str(type_id): {"base_url": base_url_placeholder(type_id),
                           "key": key_format(type_id) or gettext("The vendor's API key."),
                           # Overrides and the proxy apply to every type (providers/channel_overrides.py).
                           "config": [*adapter.config_fields, *channel_overrides.CONFIG_KEYS],
                           "models": models.get(type_id, [])}
            for type_id, adapter in sorted(ADAPTERS.items())}
