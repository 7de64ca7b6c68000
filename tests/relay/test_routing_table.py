"""relay/routing.py on its own: the choice of a channel in a routing table, without a database."""

import pytest

from providers.adapters.base import ChannelInfo
from relay.errors import RelayError
from relay.routing import Routes, Tier, choose_channel, first_channel, pick


def channel(id: int, type: int = 1) -> ChannelInfo:
    return ChannelInfo(id=id, type=type, name=f"c{id}", key="k", base_url="", models=("m",), model_mapping={},
                       config={}, system_prompt="", priority=0, weight=0)


OPENAI, OTHER_OPENAI, ANTHROPIC, BACKUP = channel(1), channel(2), channel(3, type=14), channel(4)
TIERS = (Tier(priority=10, channels=(ANTHROPIC, OPENAI), weights=(1, 1)),
         Tier(priority=0, channels=(BACKUP,), weights=(1,)))
ROUTES = Routes(by_group_model={("default", "m"): TIERS}, channel_status={1: 1, 2: 2, 3: 1, 4: 1},
                channels={c.id: c for c in (OPENAI, ANTHROPIC, BACKUP)}, group_models={}, model_owner={})


def test_the_highest_priority_comes_first_and_the_next_only_when_it_is_spent():
    assert pick(TIERS, {1, 3}) is BACKUP
    assert pick(TIERS, {1, 3, 4}) is None
    assert pick(TIERS, set()) in (OPENAI, ANTHROPIC)


def test_a_channel_whose_vendor_has_no_such_endpoint_is_passed_over():
    for _ in range(20):
        assert choose_channel(ROUTES, group="default", model="m", mode="embeddings", pinned=None,
                              exclude=set()) is OPENAI


def test_a_pinned_channel_is_the_only_choice():
    assert first_channel(ROUTES, group="default", model="m", mode="chat", pinned=4) is BACKUP
    assert choose_channel(ROUTES, group="default", model="m", mode="chat", pinned=4, exclude={4}) is None
    with pytest.raises(RelayError) as disabled:
        first_channel(ROUTES, group="default", model="m", mode="chat", pinned=2)
    with pytest.raises(RelayError) as missing:
        first_channel(ROUTES, group="default", model="m", mode="chat", pinned=9)
    assert (disabled.value.status, missing.value.status) == (403, 400)


def test_no_channel_for_the_group_and_model_is_a_503():
    with pytest.raises(RelayError) as refused:
        first_channel(ROUTES, group="vip", model="m", mode="chat", pinned=None)
    assert refused.value.status == 503 and refused.value.code == "model_not_available"
