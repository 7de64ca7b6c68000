"""Which channel serves a request: the routing table (loaded by relay/cache.py) and the choice in it.

one-api's rules: a key pinned to a channel (`sk-KEY-CHANNELID`) gets that channel or nothing; otherwise
the user's group and the model name select the channels, the highest priority first, and within a
priority one at random in proportion to its weight. A channel whose vendor has no endpoint for the
request's kind (images, speech...) is passed over for another.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from providers.adapters import adapter_for
from providers.adapters.base import ChannelInfo
from relay.errors import RelayError, bad_request


@dataclass(frozen=True, slots=True)
class Tier:
    priority: int
    channels: tuple[ChannelInfo, ...]
    weights: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Routes:
    by_group_model: dict[tuple[str, str], tuple[Tier, ...]]
    channels: dict[int, ChannelInfo]  # enabled channels
    channel_status: dict[int, int]  # every channel, for pinned requests
    group_models: dict[str, tuple[str, ...]]
    model_owner: dict[str, str]


def pick(tiers: tuple[Tier, ...], exclude: set[int]) -> ChannelInfo | None:
    """Highest priority first; within a priority, random in proportion to weight (0 counts as 1)."""
    for tier in tiers:
        if exclude:
            members = [(c, w) for c, w in zip(tier.channels, tier.weights, strict=True) if c.id not in exclude]
            if not members:
                continue
            chans, weights = zip(*members, strict=True)
        else:
            chans, weights = tier.channels, tier.weights
        if len(chans) == 1:
            return chans[0]
        return random.choices(chans, weights=weights)[0]
    return None


def choose_channel(routes: Routes, *, group: str, model: str, mode: str, pinned: int | None,
                   exclude: set[int]) -> ChannelInfo | None:
    """A channel for the request that none in `exclude` has answered, or None."""
    if pinned is not None:
        return routes.channels.get(pinned) if not exclude else None
    tiers = routes.by_group_model.get((group, model), ())
    exclude = set(exclude)
    while (channel := pick(tiers, exclude)) is not None:
        if mode in adapter_for(channel.type).modes:
            return channel
        exclude.add(channel.id)  # this vendor has no such endpoint: another channel may
    return None


def first_channel(routes: Routes, *, group: str, model: str, mode: str, pinned: int | None) -> ChannelInfo:
    """The channel to try first; the client's error when there is none."""
    if pinned is not None:
        status = routes.channel_status.get(pinned)
        if status is None:
            raise bad_request(f"Channel {pinned} does not exist.", code="channel_not_found")
        if pinned not in routes.channels:
            raise RelayError(403, f"Channel {pinned} is disabled.", code="channel_disabled")
    channel = choose_channel(routes, group=group, model=model, mode=mode, pinned=pinned, exclude=set())
    if channel is None:
        raise RelayError(503, f"No available channel for model {model} in group {group}.",
                         code="model_not_available")
    return channel


MAX_CAPPED = 8  # channels at their cap tried in one admission before the request is refused


def with_alternatives(routes: Routes, *, first: ChannelInfo, group: str, model: str, mode: str, pinned: int | None,
                      exclude: set[int]) -> tuple[ChannelInfo, ...]:
    """`first`, and while the last one has caps (relay/limits) the channel routing would offer next if it were
    full (the same priority by weight, then the next priority), up to the first channel without caps, which
    always has room. A pinned request has no alternative."""
    chosen = (first,)
    if pinned is not None:
        return chosen
    exclude = {*exclude, first.id}
    while any(chosen[-1].limits) and len(chosen) < MAX_CAPPED:
        following = choose_channel(routes, group=group, model=model, mode=mode, pinned=None, exclude=exclude)
        if following is None:
            break
        chosen += (following,)
        exclude.add(following.id)
    return chosen
