"""Which key of a multi-key channel a request is sent with: in turn (round-robin) or at random, in memory.

The channel's live keys come with its snapshot (relay/cache.py); a per-channel counter takes turns over
them, so choosing costs no query. A channel's per-key cap (requests per minute) is counted here, per
instance, in the current minute: a key at it is passed over until the next. A key this instance has just
seen refused is passed over at once, before the write that disables it has come back as a new snapshot.
A mark is kept until that write has landed, then forgotten with the next channel change (an operator
enabling the key again), since a snapshot loaded after the write says which keys live; a channel change
that comes first (another instance's, or an edit's) must not bring the dead key back meanwhile.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import threading
import time

from oneapi_site.lib import changes
from providers.adapters.base import ChannelInfo


class KeyRing:
    def __init__(self) -> None:
        self._turns: dict[int, itertools.count] = {}
        self._down: set[tuple[int, int]] = set()
        self._writing: set[tuple[int, int]] = set()  # marks whose disabling write has not landed yet
        self._minute = 0
        self._used: dict[tuple[int, int], int] = {}  # requests per (channel, key line) in self._minute
        self.clock = time.time
        self._lock = threading.Lock()

    def changed(self, kind: str) -> None:
        """A change notification (oneapi_site.lib.changes): a channel change brings a snapshot of live keys."""
        if kind == "channels" and self._down:
            with self._lock:
                self._down = self._down & self._writing

    def forget_all(self) -> None:
        with self._lock:
            self._turns, self._down, self._writing, self._used = {}, set(), set(), {}

    def mark_down(self, channel_id: int, index: int) -> None:
        """The key is being disabled: passed over from now on, until written() and a channel change."""
        with self._lock:
            self._down = self._down | {(channel_id, index)}
            self._writing = self._writing | {(channel_id, index)}

    def written(self, channel_id: int, index: int, *, disabled: bool) -> None:
        """The disabling write has landed (its own change notification has already come); when it did not
        disable the key (an edit or another request got there first, or the database is down) the mark
        goes now, and the snapshot decides."""
        mark = (channel_id, index)
        with self._lock:
            self._writing = self._writing - {mark}
            if not disabled:
                self._down = self._down - {mark}

    def _live(self, channel: ChannelInfo, refused: set[tuple[int, int]]) -> list[tuple[int, str]]:
        down = self._down
        return [(i, k) for i, k in channel.keys if (channel.id, i) not in refused and (channel.id, i) not in down]

    def _used_now(self) -> dict[tuple[int, int], int]:
        minute = int(self.clock() // 60)
        if minute != self._minute:
            self._minute, self._used = minute, {}
        return self._used

    def at_cap(self, channel: ChannelInfo) -> bool:
        """Every live key of the channel has had its requests this minute."""
        live, used = self._live(channel, set()), self._used_now()
        return bool(channel.key_rpm and live and all(used.get((channel.id, i), 0) >= channel.key_rpm
                                                     for i, _ in live))

    def has_live(self, channel: ChannelInfo, *, refused: set[tuple[int, int]]) -> bool:
        """Whether a key of the channel is left to try (a one-key channel always has its key)."""
        return not channel.keys or bool(self._live(channel, refused))

    def pick(self, channel: ChannelInfo, *,
             refused: set[tuple[int, int]]) -> tuple[ChannelInfo, int | None] | None:
        """The channel as it is sent to, holding one key, and that key's line (None for a one-key channel);
        None when every live key of it was refused or is at its cap."""
        keys = channel.keys
        if not keys:
            return channel, None
        count = len(keys)
        if channel.key_mode == "random":
            start = random.randrange(count)
        else:
            turns = self._turns.get(channel.id)
            if turns is None:
                turns = self._turns.setdefault(channel.id, itertools.count())
            start = next(turns) % count
        # From its turn on, the first key not refused, marked down or at its cap: one step as a rule, so a
        # channel of thousands of keys costs no more than one of three.
        down, cap = self._down, channel.key_rpm
        used = self._used_now() if cap else None
        for step in range(count):
            index, key = keys[(start + step) % count]
            if (refused or down) and ((channel.id, index) in refused or (channel.id, index) in down):
                continue
            if cap and used.get((channel.id, index), 0) >= cap:
                continue
            break
        else:
            return None
        if cap:  # one event loop per process: no other pick runs between the check and this
            used[(channel.id, index)] = used.get((channel.id, index), 0) + 1
        return (channel if key == channel.key else dataclasses.replace(channel, key=key)), index


ring = KeyRing()
changes.subscribe(ring.changed)
