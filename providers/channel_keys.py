"""The keys of a multi-key channel and their health: which key lives, which is down, when one is tried again.

A multi-key channel (Channel.key_mode set) keeps its keys as text, one per line of Channel.key (a key of
`|` parts, Baidu's `APIKey|SecretKey`, is one line). Each line has a ChannelKey row with its own status,
failure count, last error and disabled-at, matched to its line by a fingerprint, never by a second copy of
the key. The relay picks among the live keys in memory (relay/keys.py); a dead key is disabled alone, and
the channel only when no key is left (providers/key_health.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from oneapi_site.lib.admin import mask_secret
from providers.models import Channel, ChannelKey


def split_keys(text: str) -> list[str]:
    """A multi-key channel's keys, one per line, blank lines skipped."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


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
    return {"key": live[0][1], "keys": live, "key_mode": channel.key_mode}


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
