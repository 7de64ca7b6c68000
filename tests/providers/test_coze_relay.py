"""Coze channels end to end: OpenAI requests through the ASGI app to a mock Coze, and the bill.

What every vendor owes (answers, streams, usage, refusals) is in test_vendor_contract.py, for a v3 bot;
here is what is Coze's own: the v3 and v2 requests, the stream gathered for a plain client, failed chats."""

import openai
import orjson
import pytest

from tests.helpers import consume_log, events_of
from tests.providers.mock_coze import MockCoze
from tests.providers.vendor_harness import no_consume_log, serve, stream_chunks
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

BOT = "bot-7379462189365198898"
KEY = "pat_upstream_coze_secret"
CHAT = {"model": BOT, "messages": [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Say hello"}]}


coze_server = serve(MockCoze)


def coze_bot(coze, config):
    return new_world(coze, username="alice", quota=100_000_000, name="coze", type=34, key=KEY,
                     models=f"{BOT},bot-99", config=config)


@pytest.fixture
def bot(transactional_db, coze_server):
    return coze_bot(coze_server, {"user_id": "u-1"})


@pytest.fixture
def bot_v2(transactional_db, coze_server):
    return coze_bot(coze_server, {"api_version": "v2", "user_id": "u-2"})


async def test_a_stream_is_asked_of_v3_chat_and_its_chunks_carry_cozes_chat_id(relay_client, bot):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=bot.auth)
    assert response.status_code == 200
    chunks = stream_chunks(response.content)
    assert chunks[0]["id"] == "chatcmpl-7382159487131697202" and chunks[0]["model"] == BOT

    sent = bot.upstream.requests[-1]
    assert sent.path == "/v3/chat" and sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"bot_id": "7379462189365198898", "user_id": "u-1", "stream": True,
                         "auto_save_history": False, "additional_messages": [
                             {"role": "user", "type": "question", "content": "Be brief.\n\nSay hello",
                              "content_type": "text"}]}


async def test_a_non_streamed_client_gets_one_completion_gathered_from_the_coze_stream(relay_client, bot):
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bot.auth)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "chatcmpl-7382159487131697202"
    assert bot.upstream.requests[-1].body["stream"] is True


async def test_v2_channel_streams_and_is_counted_locally(relay_client, bot_v2):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "bot-99", "stream": True},
                                  headers=bot_v2.auth)
    assert response.status_code == 200
    events = events_of(response.content)
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello from the Coze v2 bot."
    sent = bot_v2.upstream.requests[-1]
    assert sent.path == "/open_api/v2/chat" and sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"bot_id": "99", "user": "u-2", "query": "Be brief.\n\nSay hello", "chat_history": [],
                         "stream": True}
    log = await consume_log()
    assert log.prompt_tokens > 0 and log.completion_tokens > 0  # v2 gives no usage: counted locally


async def test_v2_channel_answers_a_non_streamed_client(relay_client, bot_v2):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "bot-99"}, headers=bot_v2.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["message"]["content"] == "Hello from the Coze v2 bot."
    assert answer["id"] == "chatcmpl-1234567890123456789"
    log = await consume_log()
    assert log.completion_tokens > 0 and not log.is_stream


async def test_a_failed_chat_is_an_error_for_a_non_streamed_client_and_is_not_billed(relay_client, bot):
    bot.upstream.then(fixture="v3_stream_failed.sse")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bot.auth)
    assert response.status_code == 429, response.text
    assert "The requests exceed the limit" in response.json()["error"]["message"]
    assert await no_consume_log()


async def test_a_chat_that_fails_before_answering_is_a_real_http_error_for_a_streamed_client(relay_client, bot):
    # The relay sends headers only with the first answer, so an early failure keeps its status (and may fail over).
    bot.upstream.then(fixture="v3_stream_failed.sse")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=bot.auth)
    assert response.status_code == 429, response.text
    assert "The requests exceed the limit" in response.json()["error"]["message"]


async def test_a_malformed_event_does_not_break_the_answer_gathered_for_a_plain_client(relay_client, bot):
    bot.upstream.then(fixture="v3_stream_malformed.sse")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bot.auth)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Still here."
    assert response.json()["usage"]["completion_tokens"] == 4


async def test_an_inline_image_is_refused_before_calling_coze(relay_client, bot):
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    response = await relay_client.post("/v1/chat/completions",
                                 json={"model": BOT, "messages": [{"role": "user", "content": content}]},
                                 headers=bot.auth)
    assert response.status_code == 400
    assert "data:" in response.json()["error"]["message"]
    assert not bot.upstream.requests


async def test_the_openai_sdk_gets_a_failed_chat_as_a_rate_limit_error(relay_client, bot):
    bot.upstream.then(fixture="v3_stream_failed.sse")
    with pytest.raises(openai.RateLimitError) as caught:
        await bot.sdk(relay_client).chat.completions.create(model=BOT, messages=CHAT["messages"])
    assert "The requests exceed the limit" in str(caught.value)
