"""The record of which channel holds a stored Response (relay/stored.py), in Redis or the table, as configured."""

from __future__ import annotations

import pytest

from relay.stored import StoredAnswers

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_recorded_response_is_found_for_its_owner_only_and_forgotten_when_deleted():
    writer, reader = StoredAnswers(), StoredAnswers()  # two instances of the gateway
    writer.remember("resp_test_owner_1", channel_id=7, user_id=3)
    assert await writer.channel_of("resp_test_owner_1", user_id=3) == 7  # at once, before the write lands
    await writer.drain()
    assert await reader.channel_of("resp_test_owner_1", user_id=3) == 7
    assert await reader.channel_of("resp_test_owner_1", user_id=4) is None
    await reader.forget("resp_test_owner_1")
    assert await StoredAnswers().channel_of("resp_test_owner_1", user_id=3) is None


async def test_an_id_longer_than_any_vendors_is_not_recorded():
    answers = StoredAnswers()
    answers.remember("resp_" + "x" * 300, channel_id=7, user_id=3)
    await answers.drain()
    assert answers.recent == {} and await answers.channel_of("resp_" + "x" * 300, user_id=3) is None
