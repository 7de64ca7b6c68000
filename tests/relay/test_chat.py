import math

import orjson
import pytest
from asgiref.sync import sync_to_async

from accounts.models import Token, User
from billing.models import Log
from tests.helpers import flush
from tests.relay.chat_answers import chat_answer, chat_stream

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


def expected_quota(prompt, completion, model_ratio=0.075, completion_ratio=4, group_ratio=1):
    return math.ceil((prompt + completion * completion_ratio) * model_ratio * group_ratio)


async def test_plain_chat_is_relayed_and_billed_from_upstream_usage(client, world):
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Hello from the mock upstream."
    assert response.headers["x-oneapi-request-id"]

    sent = world.upstream.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-upstream-secret"
    assert sent.body["messages"] == CHAT["messages"]

    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    quota = expected_quota(11, 7)
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (11, 7, quota)
    assert log.request_id == response.headers["x-oneapi-request-id"]
    token = await sync_to_async(Token.objects.get)(pk=world.token.pk)
    assert (token.remain_quota, token.used_quota) == (5_000_000 - quota, quota)
    user = await sync_to_async(User.objects.get)(pk=world.user.pk)
    assert (user.quota, user.used_quota, user.request_count) == (10_000_000 - quota, quota, 1)


async def test_stream_is_forwarded_with_done_and_usage_hidden_unless_asked(client, world):
    async with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True},
                             headers=world.auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    events = [line[6:] for line in raw.split(b"\n\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello from the mock upstream."
    assert all(c["choices"] for c in chunks), "the usage-only chunk must not reach a client that did not ask"
    assert world.upstream.requests[-1].body["stream_options"] == {"include_usage": True}

    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (11, 7, True)


async def test_stream_passes_usage_chunk_when_client_asked(client, world):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = await client.post("/v1/chat/completions", json=body, headers=world.auth)
    events = [e[6:] for e in response.content.split(b"\n\n") if e.startswith(b"data: ")]
    usage_chunks = [orjson.loads(e) for e in events[:-1] if orjson.loads(e).get("usage")]
    assert usage_chunks and usage_chunks[-1]["usage"]["completion_tokens"] == 7


async def test_stream_without_done_gets_one_added_and_is_counted_locally_without_usage(client, world):
    world.upstream.then(done=False, usage=False)
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    assert response.content.endswith(b"data: [DONE]\n\n")
    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert log.completion_tokens > 0 and log.prompt_tokens > 0


@pytest.mark.parametrize("header, code", [
    ("", "missing_api_key"),
    ("Bearer sk-doesnotexist", "invalid_api_key"),
])
async def test_bad_keys_are_refused_with_openai_errors(client, world, header, code):
    response = await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": header})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == code and "request id" in error["message"]


async def test_unknown_model_is_503_naming_group_and_model(client, world):
    response = await client.post("/v1/chat/completions", json={**CHAT, "model": "no-such-model"},
                                 headers=world.auth)
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert "no-such-model" in message and "default" in message


async def test_upstream_error_is_passed_through_and_not_billed(client, world):
    world.upstream.then(status=400, error={"error": {"message": "bad things", "type": "invalid_request_error",
                                                     "param": None, "code": "bad"}})
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("bad things")
    await flush()
    assert not await sync_to_async(Log.objects.filter(type=Log.Type.CONSUME).exists)()


async def test_stream_cut_off_mid_way_ends_with_an_error_event_and_bills_what_arrived(client, world):
    world.upstream.then(reply=" ".join(["word"] * 50), cut_after=5, usage=False)
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    assert response.status_code == 200
    events = [e[6:] for e in response.content.split(b"\n\n") if e.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    assert orjson.loads(events[-2])["error"]["code"] == "stream_interrupted"
    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert 0 < log.completion_tokens < 50


async def test_malformed_stream_event_is_forwarded_without_breaking_the_stream(client, world):
    world.upstream.then(malformed=True)
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    assert response.status_code == 200
    assert b"data: {not json\n\n" in response.content
    assert response.content.endswith(b"data: [DONE]\n\n")
    await flush()
    assert (await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)).completion_tokens == 7


async def test_unreachable_channel_is_a_502_and_costs_nothing(client, world):
    from providers.models import Channel
    from providers.services import channel_update

    await sync_to_async(lambda: channel_update(channel=Channel.objects.get(pk=world.channel.pk),
                                               base_url="http://127.0.0.1:9"))()
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "do_request_failed"
    assert "sk-upstream-secret" not in response.text
    await flush()
    assert not await sync_to_async(Log.objects.exists)()


async def test_any_text_is_billed_by_a_local_count_when_the_upstream_reports_no_usage(client, world):
    # "<|endoftext|>" and a million characters: each once made the tokenizer raise as the bill was made.
    world.upstream.then(usage=False)
    text = "<|endoftext|> " + "a" * 1_000_000
    response = await client.post("/v1/chat/completions", headers=world.auth,
                                 json={**CHAT, "messages": [{"role": "user", "content": text}]})
    assert response.status_code == 200
    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert log.prompt_tokens > 1000 and log.completion_tokens > 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_usage_count_no_log_row_can_hold_is_junk_and_counts_nothing(client, world, stream):
    """A vendor that says it read 3 billion tokens: the log's 32-bit columns refuse the row on MariaDB, and the
    ledger would retry that batch for ever (found by tests/fuzz/test_codec_answers.py on MariaDB)."""
    usage = (3_000_000_000, 9)
    world.upstream.then(content_type="text/event-stream", raw=chat_stream({"content": "Hi."}, finish="stop",
                                                                         usage=usage)) if stream else \
        world.upstream.then(raw=chat_answer({"content": "Hi."}, "stop", usage=usage))
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream}, headers=world.auth)
    assert response.status_code == 200, response.text
    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert (log.prompt_tokens, log.completion_tokens) == (0, 9)  # as any other junk count
