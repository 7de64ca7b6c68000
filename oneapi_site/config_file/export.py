"""The database as a configuration file (manage.py export_config)."""

from __future__ import annotations

from typing import Any

from billing.models import Option
from oneapi_site import options
from oneapi_site.config_file import document
from oneapi_site.lib.errors import ServiceError
from providers.adapters import ADAPTERS
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


def channels_left_out() -> list[Channel]:
    """Stored channels of a type no adapter serves (carried over from one-api, disabled): a file holding them
    could not be imported, so the export leaves them out and says so."""
    return list(Channel.objects.exclude(type__in=list(ADAPTERS)).order_by("id"))


def config_export(*, with_keys: bool = False) -> dict[str, Any]:
    """The document export_config writes: every channel (by id) of a served type, group, price and option."""
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
                     for channel in Channel.objects.filter(type__in=list(ADAPTERS)).order_by("id")],
        "groups": groups,
        "prices": {key: document.option_value(key, texts[key]) for key in document.price_keys()},
        "options": plain,
    }
