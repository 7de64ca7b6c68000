"""The keys of a multi-key channel: the lines of its key field, the rows that hold each one's health, and
what the relay and /api see of them.

A multi-key channel (Channel.key_mode set) keeps its keys as text, one per line of Channel.key (a key of
`|` parts, Baidu's `APIKey|SecretKey`, is one line). Each line has a ChannelKey row with its own status,
failure count, last error and disabled-at, matched to its line by a fingerprint, never by a second copy of
the key. The relay picks among the live keys in memory (relay/keys.py); a dead key is disabled alone, and
the channel only when no key is left (providers/key_health.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from oneapi_site.lib.admin import mask_secret
from oneapi_site.lib.errors import ServiceError
from providers.models import Channel, ChannelKey


def split_keys(text: str) -> list[str]:
    """A multi-key channel's keys, one per line, blank lines skipped."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def check_key_lines(text: str) -> None:
    """A multi-key channel's key field must be keys, one per line: a JSON document spread over lines (a Vertex
    AI key file) would be cut into nonsense, so it is refused (one such file per line, each on one line, is fine)."""
    lines = split_keys(text)
    if len(lines) > 1:
        try:
            json.loads(text)
        except ValueError:
            return
        raise ServiceError("with several keys the key field holds one key per line; this is one JSON document "
                           "over several lines: write each key file on a line of its own", field="key")


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keys_sync(*, channel: Channel) -> None:
    """Match the channel's key rows to the lines of its key field: a key that stays keeps its state (even
    on another line), a new key starts enabled, a removed key's row goes. A single-key channel has none."""
    if not channel.multi_key:
        ChannelKey.objects.filter(channel=channel).delete()
        return
    keys = split_keys(channel.key)
    stored = {row.fingerprint: row for row in ChannelKey.objects.filter(channel=channel)}
    ChannelKey.objects.filter(channel=channel).delete()
    rows = []
    for index, key in enumerate(keys):
        digest = fingerprint(key)
        row = stored.pop(digest, None) or ChannelKey(fingerprint=digest, masked=mask_secret(key))
        row.pk, row.channel, row.index = None, channel, index
        rows.append(row)
    ChannelKey.objects.bulk_create(rows)


def live_keys(*, key_text: str, states: Iterable[tuple[int, str, int]]) -> tuple[tuple[int, str], ...]:
    """(line, key) of each enabled key, from the key field and its rows' (index, fingerprint, status). A line
    without a matching row (written around the services) counts as live: the relay never drops a key it was
    not told is down."""
    status = {(index, digest): state for index, digest, state in states}
    live = []
    for index, key in enumerate(split_keys(key_text)):
        if status.get((index, fingerprint(key)), ChannelKey.Status.ENABLED) == ChannelKey.Status.ENABLED:
            live.append((index, key))
    return tuple(live)


def key_rows_by_channel() -> dict[int, list[tuple[int, str, int]]]:
    """Every key row as (index, fingerprint, status) by channel, in one query (the relay's snapshot)."""
    rows: dict[int, list[tuple[int, str, int]]] = {}
    for channel_id, index, digest, status in ChannelKey.objects.values_list(
            "channel_id", "index", "fingerprint", "status"):
        rows.setdefault(channel_id, []).append((index, digest, status))
    return rows


def snapshot_keys(channel: Channel, rows: dict[int, list[tuple[int, str, int]]]) -> dict | None:
    """The key fields of the channel's relay snapshot (ChannelInfo): its one key, or a multi-key channel's
    live keys (`key` the first of them); None when every key of it is down, so it does not route."""
    if not channel.key_mode:
        return {"key": channel.key}
    live = live_keys(key_text=channel.key, states=rows.get(channel.id, ()))
    if not live:
        return None
    return {"key": live[0][1], "keys": live, "key_mode": channel.key_mode, "key_rpm": channel.key_rpm_limit}


def key_json(row: ChannelKey) -> dict:
    """A key's state as /api shows it: masked, never the key."""
    return {"index": row.index, "masked_key": row.masked, "status": row.status, "failures": row.failures,
            "last_error": row.last_error, "disabled_at": row.disabled_at, "probe_after": row.probe_after}


def key_states(*, channel_id: int) -> list[dict]:
    return [key_json(row) for row in ChannelKey.objects.filter(channel_id=channel_id).order_by("index")]


def key_text(channel: Channel, index: int) -> str | None:
    """The key on line `index` of a multi-key channel, for a probe or test; None past its last line."""
    keys = split_keys(channel.key)
    return keys[index] if 0 <= index < len(keys) else None


# new-api keeps a multi-key channel's state in channels.channel_info: {"is_multi_key": true,
# "multi_key_mode": "polling" | "random", "multi_key_status_list": {"<line>": 1|2|3}, "multi_key_disabled_reason":
# {"<line>": text}, "multi_key_disabled_time": {"<line>": unix seconds}, ...}, the keys one per line of `key`;
# its statuses are ours (1 enabled, 2 manually disabled, 3 auto-disabled).
NEW_API_MODES = {"polling": Channel.KeyMode.ROUND_ROBIN, "random": Channel.KeyMode.RANDOM}


def new_api_key_states(channel_info: Any) -> tuple[str, dict[int, tuple[int, str, int]]]:
    """A new-api channel's channel_info (JSON text or object) as our key mode and each listed line's
    (status, last error, disabled at); ("", {}) for a channel of one key or an unreadable value."""
    if isinstance(channel_info, (str, bytes)):
        try:
            channel_info = json.loads(channel_info or "{}")
        except ValueError:
            return "", {}
    if not isinstance(channel_info, dict) or not channel_info.get("is_multi_key"):
        return "", {}
    mode = NEW_API_MODES.get(str(channel_info.get("multi_key_mode") or "polling"), Channel.KeyMode.ROUND_ROBIN)

    def by_line(name: str) -> dict[int, Any]:
        value = channel_info.get(name)
        if isinstance(value, list):  # some writers keep the status list as an array
            return dict(enumerate(value))
        if not isinstance(value, dict):
            return {}
        return {int(k): v for k, v in value.items() if str(k).isdigit()}

    reasons, times = by_line("multi_key_disabled_reason"), by_line("multi_key_disabled_time")
    states = {}
    for line, status in by_line("multi_key_status_list").items():
        if status in ChannelKey.Status.values and status != ChannelKey.Status.ENABLED:
            disabled_at = times.get(line)
            states[line] = (status, str(reasons.get(line) or "")[:500],
                            disabled_at if isinstance(disabled_at, int) and disabled_at > 0 else 0)
    return mode, states
