"""A channel's overrides of the request it sends upstream: `param_override`, `header_override` and `proxy`,
kept in the channel's config under new-api's names.

`param_override` (providers/param_override.py) edits the vendor's JSON body after the adapter has translated
the client's request into it, as new-api applies it to the converted request: a config written for a
Claude channel speaks Claude's fields. It applies to native pass-through too (the client's body as it came,
with the model mapped). Bodies that are not JSON (audio forms) are sent as they are.

`header_override` is a JSON object of headers added to (or replacing, whatever their case) the adapter's;
`{api_key}` in a value is the channel key the call uses. Its values are never logged; those of headers
that carry credentials are masked out of upstream errors like the key.

The relay compiles a channel's overrides once per loaded config (`for_channel`), so a call to a channel
without any pays two dict lookups.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson

from providers import outbound_proxy
from providers.param_override import Override, OverrideInvalid, Refused, apply, as_json, compile_override

log = logging.getLogger("oneapi.relay")

CONFIG_KEYS = ("param_override", "header_override", "proxy")
API_KEY = "{api_key}"
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Headers the transport sets from the request itself: overriding them would break the request.
_TRANSPORT_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection"})
_CREDENTIAL_WORDS = ("auth", "key", "token", "secret", "cookie", "signature")
# A credential header's value that names only the channel key ("{api_key}", "Bearer {api_key}") holds no secret.
_ONLY_API_KEY = re.compile(r"^\s*(\w+\s+)?\{api_key\}\s*$")

__all__ = ["CONFIG_KEYS", "ChannelOverrides", "OverrideInvalid", "Refused", "clean_config", "for_channel"]


@dataclass(frozen=True, slots=True)
class ChannelOverrides:
    param: Override | None
    headers: tuple[tuple[str, str], ...]

    def body(self, body: bytes | None) -> bytes | None:
        """The vendor's JSON body with param_override applied; anything that is not a JSON object as it is.
        Raises Refused when a return_error operation fires."""
        if self.param is None or not body or body[:1] != b"{":
            return body
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        return orjson.dumps(apply(self.param, parsed, in_place=True))

    def apply_headers(self, headers: dict[str, str], key: str) -> None:
        """Add or replace the override's headers in `headers` (in place), {api_key} filled with `key`."""
        for name, value in self.headers:
            lowered = name.lower()
            for existing in [h for h in headers if h.lower() == lowered]:
                del headers[existing]
            headers[name] = value.replace(API_KEY, key)

    def secrets(self, key: str) -> list[str]:
        """Values of credential-like override headers, as sent: masked out of upstream errors."""
        return [value.replace(API_KEY, key) for name, value in self.headers
                if any(word in name.lower() for word in _CREDENTIAL_WORDS)]


# channel id -> (the param_override and header_override objects it was compiled from, the result)
_compiled: dict[int, tuple[Any, Any, ChannelOverrides | None]] = {}


def for_channel(channel) -> ChannelOverrides | None:
    """The channel's compiled overrides; None when it has none. Compiled again when its config was reloaded.
    A stored override that no longer compiles (written around the checks) is left out, with a warning."""
    config = channel.config
    if not config:
        return None
    param, headers = config.get("param_override"), config.get("header_override")
    if not param and not headers:
        return None
    cached = _compiled.get(channel.id)
    if cached is not None and cached[0] is param and cached[1] is headers:
        return cached[2]
    try:
        compiled: ChannelOverrides | None = ChannelOverrides(param=compile_override(param),
                                                             headers=tuple(_headers(headers).items()))
    except OverrideInvalid as exc:
        log.warning("channel #%s: its overrides are left out: %s", channel.id, exc)
        compiled = None
    _compiled[channel.id] = (param, headers, compiled)
    return compiled


def _headers(raw: Any) -> dict[str, str]:
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise OverrideInvalid("header_override is not valid JSON") from None
    if raw in (None, {}):
        return {}
    if not isinstance(raw, dict):
        raise OverrideInvalid('header_override must be a JSON object of headers, like {"X-Team": "ml"}')
    for name, value in raw.items():
        if not _HEADER_NAME.match(name):
            raise OverrideInvalid(f"header_override: {name!r} is not a header name")
        if name.lower() in _TRANSPORT_HEADERS:
            raise OverrideInvalid(f"header_override: {name} is set by the transport and cannot be overridden")
        if not isinstance(value, str):
            raise OverrideInvalid(f"header_override: the value of {name} must be a string")
        if "\r" in value or "\n" in value or "\0" in value:
            raise OverrideInvalid(f"header_override: the value of {name} holds a line break")
    return raw


def clean_config(config: dict, *, stored: dict | None = None) -> dict:
    """The config with its override keys checked and stored in one form (objects, not JSON text); a proxy
    shown back masked keeps the stored one. ValueError (OverrideInvalid, ProxyInvalid) says what is wrong."""
    config = dict(config)
    if "param_override" in config:
        raw = config["param_override"]
        compile_override(raw)
        raw = as_json(raw)
        if raw:
            config["param_override"] = raw
        else:
            config.pop("param_override")
    if "header_override" in config:
        headers = _headers_restored(_headers(config["header_override"]), (stored or {}).get("header_override"))
        if headers:
            config["header_override"] = headers
        else:
            config.pop("header_override")
    if "proxy" in config:
        if not isinstance(config["proxy"], str):
            raise outbound_proxy.ProxyInvalid("proxy must be a URL string")
        proxy = outbound_proxy.restore(config["proxy"], str((stored or {}).get("proxy") or ""))
        proxy = outbound_proxy.check(proxy)
        if proxy:
            config["proxy"] = proxy
        else:
            config.pop("proxy")
    return config


def _credential(name: str, value: Any) -> bool:
    return (any(word in name.lower() for word in _CREDENTIAL_WORDS) and isinstance(value, str)
            and not _ONLY_API_KEY.match(value))


def _headers_restored(submitted: dict, stored: Any) -> dict:
    """A credential header sent back as shown (masked) keeps its stored value."""
    if not isinstance(stored, dict):
        return submitted
    return {name: stored[name] if value == outbound_proxy.MASK and _credential(name, stored.get(name)) else value
            for name, value in submitted.items()}


def shown(config: dict) -> dict:
    """The config as shown back: the proxy's password and credential headers' values masked, as a key is
    never shown (export_config holds both for secrets too)."""
    if not config:
        return config
    config = dict(config)
    if config.get("proxy"):
        config["proxy"] = outbound_proxy.mask(str(config["proxy"]))
    headers = config.get("header_override")
    if isinstance(headers, dict):
        config["header_override"] = {name: outbound_proxy.MASK if _credential(name, value) else value
                                     for name, value in headers.items()}
    return config
