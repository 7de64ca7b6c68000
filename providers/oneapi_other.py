"""one-api's `other` channel field: deprecated there for `config`, yet its web UI still writes in it Azure's, Spark's
and Gemini's API version, the AIProxy knowledge library and Ali's plugin, and its distributor copies it into the
config key of the same meaning on each request. Here that config key is where it is kept (the /api channel routes
and the importer read `other` into it; the routes show it back as `other`)."""

from __future__ import annotations

import json
from typing import Any

OTHER_AS_CONFIG = {3: "api_version", 18: "api_version", 24: "api_version", 21: "library_id", 17: "plugin"}


def other_shown(channel_type: int, config: dict | None) -> str:
    name = OTHER_AS_CONFIG.get(channel_type)
    return str((config or {}).get(name) or "") if name else ""


def config_with_other(config: Any, *, channel_type: int | None, other: Any) -> Any:
    """`config` (an object, JSON text or None) with `other` set in the type's config key, over what config holds
    there: one-api's page shows `other` as the field to edit. Anything unreadable is left for the channel checks
    to refuse with their message."""
    name = OTHER_AS_CONFIG.get(channel_type)
    other = other.strip() if isinstance(other, str) else ""
    if not name or not other:
        return config
    if config in (None, ""):
        config = {}
    elif isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            return config
    if not isinstance(config, dict):
        return config
    return {**config, name: other}
