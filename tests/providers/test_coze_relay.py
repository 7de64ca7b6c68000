"""Coze channels end to end: OpenAI requests through the ASGI app to a mock Coze, and the bill."""

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


def coze_world(coze, config):
    return new_world(coze, username="alice", quota=100_000_000, name="coze", type=34, key=KEY,
                     models=f"{BOT},bot-99", config=config)


@pytest.fixture(name="world")
def world_v3(transactional_db, coze_server):
    return coze_world(coze_server, {"user_id": "u-1"})


@pytest.fixture
def world_v2(transactional_db, coze_server):
    return coze_world(coze_server, {"api_version": "v2", "user_id": "u-2"})




async def test_streamed_client_gets_openai_chunks_and_pays_coze_token_counts(relay_client, world):
    async with relay_client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True},
                             headers=world.auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    chunks = stream_chunks(raw)
    assert all(c["choices"] for c in chunks), "usage-only chunks reach only clients that ask"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello from the Coze bot."
    assert chunks[0]["id"] == "chatcmpl-7382159487131697202" and chunks[0]["model"] == BOT
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    sent = world.upstream.requests[-1]
    assert sent.path == "/v3/chat" and sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"bot_id": "7379462189365198898", "user_id": "u-1", "stream": True,
                         "auto_save_history": False, "additional_messages": [
                             {"role": "user", "type": "question", "content": "Be brief.\n\nSay hello",
                              "content_type": "text"}]}

    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (614, 19, True)
    assert log.model_name == BOT and log.quota > 0


async def test_streamed_client_that_asks_for_usage_gets_coze_usage_chunk(relay_client, world):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=world.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 614, "completion_tokens": 19, "total_tokens": 633}


async def test_non_streamed_client_gets_one_completion_gathered_from_the_coze_stream(relay_client, world):
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert answer["object"] == "chat.completion" and answer["id"] == "chatcmpl-7382159487131697202"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello from the Coze bot."}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 614, "completion_tokens": 19, "total_tokens": 633}
    assert world.upstream.requests[-1].body["stream"] is True

    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (614, 19, False)


async def test_v2_channel_streams_and_is_counted_locally(relay_client, world_v2):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "bot-99", "stream": True},
                                  headers=world_v2.auth)
    assert response.status_code == 200
    events = events_of(response.content)
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello from the Coze v2 bot."
    sent = world_v2.upstream.requests[-1]
    assert sent.path == "/open_api/v2/chat" and sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"bot_id": "99", "user": "u-2", "query": "Be brief.\n\nSay hello", "chat_history": [],
                         "stream": True}
    log = await consume_log()
    assert log.prompt_tokens > 0 and log.completion_tokens > 0  # v2 gives no usage: counted locally


async def test_v2_channel_answers_a_non_streamed_client(relay_client, world_v2):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "bot-99"}, headers=world_v2.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["message"]["content"] == "Hello from the Coze v2 bot."
    assert answer["id"] == "chatcmpl-1234567890123456789"
    log = await consume_log()
    assert log.completion_tokens > 0 and not log.is_stream


@pytest.mark.parametrize("stream", [False, True])
async def test_coze_auth_failure_with_http_200_is_a_401_keeping_coze_message(relay_client, world, stream):
    world.upstream.then(error="v3_error_auth.json")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": stream}, headers=world.auth)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["message"].startswith("authentication is invalid") and error["code"] == "invalid_api_key"
    assert KEY not in response.text
    assert await no_consume_log()


async def test_coze_http_error_keeps_coze_message(relay_client, world):
    world.upstream.then(status=404, error="v3_error_bot_not_found.json")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 404
    assert "does not exist" in response.json()["error"]["message"]


async def test_a_failed_chat_is_an_error_for_a_non_streamed_client_and_is_not_billed(relay_client, world):
    world.upstream.then(fixture="v3_stream_failed.sse")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 429, response.text
    assert "The requests exceed the limit" in response.json()["error"]["message"]
    assert await no_consume_log()


async def test_a_chat_that_fails_before_answering_is_a_real_http_error_for_a_streamed_client(relay_client, world):
    # The relay sends headers only with the first answer, so an early failure keeps its status (and may fail over).
    world.upstream.then(fixture="v3_stream_failed.sse")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    assert response.status_code == 429, response.text
    assert "The requests exceed the limit" in response.json()["error"]["message"]


async def test_a_chat_failing_mid_answer_keeps_the_text_ends_with_an_error_and_bills_what_arrived(relay_client, world):
    world.upstream.then(fixture="v3_stream_failed_midway.sse")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    assert orjson.loads(events[0])["choices"][0]["delta"]["content"] == "Partial answer"
    assert orjson.loads(events[-2])["error"]["message"].startswith("Internal error, please retry.")
    log = await consume_log()
    assert log.completion_tokens > 0


async def test_a_stream_cut_off_mid_way_ends_with_an_error_event_and_bills_what_arrived(relay_client, world):
    world.upstream.then(cut_after=4)  # created, in_progress, two deltas
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    assert orjson.loads(events[-2])["error"]["code"] == "stream_interrupted"
    text = "".join(orjson.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    assert text == "Hello from"
    log = await consume_log()
    assert log.completion_tokens > 0


async def test_a_malformed_event_does_not_break_the_stream(relay_client, world):
    world.upstream.then(fixture="v3_stream_malformed.sse")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Still here."
    assert response.json()["usage"]["completion_tokens"] == 4


async def test_an_inline_image_is_refused_before_calling_coze(relay_client, world):
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    response = await relay_client.post("/v1/chat/completions",
                                 json={"model": BOT, "messages": [{"role": "user", "content": content}]},
                                 headers=world.auth)
    assert response.status_code == 400
    assert "data:" in response.json()["error"]["message"]
    assert not world.upstream.requests


async def test_the_openai_sdk_talks_to_a_coze_bot(relay_client, world):
    sdk = world.sdk(relay_client)
    completion = await sdk.chat.completions.create(model=BOT, messages=CHAT["messages"])
    assert completion.choices[0].message.content == "Hello from the Coze bot."
    assert completion.usage.prompt_tokens == 614 and completion.usage.completion_tokens == 19

    stream = await sdk.chat.completions.create(model=BOT, messages=CHAT["messages"], stream=True,
                                               stream_options={"include_usage": True})
    pieces, usage = [], None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces) == "Hello from the Coze bot."
    assert usage.total_tokens == 633

    world.upstream.then(fixture="v3_stream_failed.sse")
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk.chat.completions.create(model=BOT, messages=CHAT["messages"])
    assert "The requests exceed the limit" in str(caught.value)
