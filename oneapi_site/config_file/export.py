"""The database as a configuration file (manage.py export_config)."""

from __future__ import annotations

from typing import Any

from billing.models import Option
from oneapi_site import options
from oneapi_site.config_file import document
from oneapi_site.lib.errors import ServiceError
from providers.adapters import ADAPTERS
from providers.channel_keys import split_keys
from providers.models import Channel, split_list


def stored_options() -> dict[str, str]:
    """Every known option's text as the gateway uses it: the stored one, else (absent or refused) the
    default, as the options snapshot falls back."""
    stored = dict(Option.objects.filter(key__in=list(options.DEFAULTS)).values_list("key", "value"))
    texts = {}
    for key, default in options.DEFAULTS.items():
        text = stored.get(key, default)
        try:
            options.parse(key, text)
        except ServiceError:
            text = default
        texts[key] = text
    return texts


def channel_entry(channel: Channel, *, with_keys: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": channel.name, "type": channel.type}
    if with_keys:
        entry["key"] = channel.key
    for name in document.CHANNEL_FILE_FIELDS:
        value = getattr(channel, name)
        if name in document.LIST_FIELDS:
            value = split_list(value)
        if name == "config" and not with_keys:
            secrets = document.secret_config_keys()
            value = {k: v for k, v in (value or {}).items() if k not in secrets}
        entry[name] = value
    return entry


def left_out_reason(channel: Channel) -> str | None:
    """Why a file could not create this stored channel again, if it could not. import_oneapi carries such
    channels (kept disabled) as one-api held them; the channel checks refuse each of them on create, so a file
    holding one would be refused whole."""
    if channel.type not in ADAPTERS:
        return "no adapter serves its type"
    if not channel.key.strip():
        return "it has no key, and a channel is created with one"
    if not channel.key_mode and len(split_keys(channel.key)) > 1:
        return ("its key holds several keys and no key_mode, so a file would make a channel of each; "
                "set its key_mode or give each key a channel")
    return None


def channels_left_out() -> list[tuple[Channel, str]]:
    """The stored channels the export leaves out, each with the reason it says."""
    return [(channel, reason) for channel in Channel.objects.order_by("id")
            if (reason := left_out_reason(channel))]


def config_export(*, with_keys: bool = False) -> dict[str, Any]:
    """The document export_config writes: every channel (by id) a file can create, group, price and option."""
    texts = stored_options()
    groups: dict[str, dict[str, Any]] = {}
    for field, key in document.group_fields().items():
        for group, value in document.option_value(key, texts[key]).items():
            groups.setdefault(group, {})[field] = value
    plain = {key: document.option_value(key, texts[key]) for key in document.plain_option_keys()
             if with_keys or not options.is_secret(key)}
    return {
        "version": document.VERSION,
        "channels": [channel_entry(channel, with_keys=with_keys)
                     for channel in Channel.objects.order_by("id") if not left_out_reason(channel)],
        "groups": groups,
        "prices": {key: document.option_value(key, texts[key]) for key in document.price_keys()},
        "options": plain,
    }
