"""An upstream that answers 200 with no answer, breaks a stream, or hangs: the client gets a clear
answer, another channel gets the request when one can, the channel's health counts the failure, and
nobody pays for what was not delivered."""


import orjson
import pytest
from asgiref.sync import sync_to_async

from accounts.models import Token
from billing.models import Log
from billing.services import option_set
from providers.models import Channel
from tests.factories import ChannelFactory
from tests.helpers import channel_status, consume_log, events_of, flush
from tests.mock_upstream import REPLY, MockUpstream
from tests.providers.vendor_harness import serve

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}
HTML_PAGE = (b"<html><head><title>502 Bad Gateway</title><style>body{color:red}</style></head>"
             b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>")

backup_server = serve(MockUpstream)


@pytest.fixture
def backup(backup_server):
    backup_server.reset()
    return backup_server


async def _options(**values) -> None:
    for key, value in values.items():
        await sync_to_async(option_set)(key=key, value=value)


async def _health_counts_one_failure() -> None:
    """One failure in a row disables a channel: a disabled channel shows the failure was counted."""
    await _options(AutomaticDisableChannelEnabled="true", ChannelDisableFailureCount="1")


async def _token_used(world) -> int:
    return (await sync_to_async(Token.objects.get)(pk=world.token.pk)).used_quota


NOT_ANSWERS = [
    pytest.param(b"", "application/json", id="empty"),
    pytest.param(HTML_PAGE, "text/html", id="html"),
    pytest.param(b'{"object": "list", "data": []}', "application/json", id="other-json"),
]


@pytest.mark.parametrize("raw, content_type", NOT_ANSWERS)
async def test_a_200_that_is_not_an_answer_fails_over_and_only_the_answer_is_billed(
        client, world, backup, raw, content_type):
    await _health_counts_one_failure()
    await _options(RetryTimes="1")
    healthy = await sync_to_async(ChannelFactory)(name="healthy", base_url=backup.url, models="gpt-4o-mini",
                                                  priority=-1)
    world.upstream.then(raw=raw, content_type=content_type)
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == REPLY
    log = await consume_log()
    assert log.channel_id == healthy.pk and (log.prompt_tokens, log.completion_tokens) == (11, 7)
    assert await _token_used(world) == log.quota
    assert await channel_status(world.channel.pk, Channel.Status.AUTO_DISABLED) == Channel.Status.AUTO_DISABLED


@pytest.mark.parametrize("raw, content_type", NOT_ANSWERS)
async def test_a_200_that_is_not_an_answer_is_a_502_that_costs_nothing(client, world, raw, content_type):
    await _health_counts_one_failure()
    world.upstream.then(raw=raw, content_type=content_type)
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_response_body" and "<" not in error["message"]
    await flush()
    assert not await sync_to_async(Log.objects.filter(type=Log.Type.CONSUME).exists)()
    assert await _token_used(world) == 0
    assert await channel_status(world.channel.pk, Channel.Status.AUTO_DISABLED) == Channel.Status.AUTO_DISABLED


@pytest.mark.parametrize("choices", [
    [None, "x", {"message": "x"}, {"message": {"content": "Hi", "tool_calls": "x"}}],
    [{"message": {"content": [{"type": "text", "text": "Hi"}, 5], "tool_calls": [
        5, {"function": "x"}, {"function": {"name": 5, "arguments": {"a": 1}}}]}}],
])
async def test_an_odd_answer_without_usage_is_delivered_and_its_text_counted(client, world, choices):
    world.upstream.then(raw=orjson.dumps({"choices": choices}))
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200 and response.json()["choices"] == choices
    log = await consume_log()
    assert log.completion_tokens == 1  # "Hi", counted locally; what is not text in OpenAI's shape counts nothing


async def test_a_stream_of_odd_chunks_is_delivered_and_its_text_counted(client, world):
    chunks = [{"choices": [None, "x", {"delta": "x"}]},
              {"choices": [{"delta": {"content": "Hi", "tool_calls": [5, {"function": "x"}, {"function": {
                  "name": 5, "arguments": {"a": 1}}}]}}]},
              {"choices": [{"delta": {}, "finish_reason": "stop"}]}]
    world.upstream.then(content_type="text/event-stream",
                        raw=b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n")
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    assert response.status_code == 200
    assert [orjson.loads(e) for e in events_of(response.content)[:-1]] == chunks
    log = await consume_log()
    assert log.completion_tokens == 1  # "Hi", counted locally


async def test_embeddings_that_are_not_an_answer_fail_over_too(client, world, backup):
    await _options(RetryTimes="1")
    await sync_to_async(ChannelFactory)(name="healthy", base_url=backup.url, models="text-embedding-3-small",
                                        priority=-1)
    world.upstream.then(raw=b"{}")
    response = await client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"},
                                 headers=world.auth)
    assert response.status_code == 200 and response.json()["data"][0]["embedding"]


NOT_STREAMS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"data: [DONE]\n\n", id="only-done"),
    pytest.param(b": keep-alive\n\ndata: <html>oops</html>\n\n", id="not-json"),
    pytest.param(HTML_PAGE, id="html"),
]


@pytest.mark.parametrize("raw", NOT_STREAMS)
async def test_a_stream_without_one_valid_event_fails_over_and_costs_nothing_for_it(client, world, backup, raw):
    await _health_counts_one_failure()
    await _options(RetryTimes="1")
    healthy = await sync_to_async(ChannelFactory)(name="healthy", base_url=backup.url, models="gpt-4o-mini",
                                                  priority=-1)
    world.upstream.then(raw=raw, content_type="text/event-stream")
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    assert response.status_code == 200
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    assert "".join(orjson.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1]) == REPLY
    log = await consume_log()
    assert log.channel_id == healthy.pk
    assert await channel_status(world.channel.pk, Channel.Status.AUTO_DISABLED) == Channel.Status.AUTO_DISABLED


@pytest.mark.parametrize("raw", NOT_STREAMS)
async def test_a_stream_without_one_valid_event_is_a_502_when_no_other_channel_can_answer(client, world, raw):
    world.upstream.then(raw=raw, content_type="text/event-stream")
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    assert response.status_code == 502 and response.json()["error"]["code"] == "bad_response_body"
    await flush()
    assert not await sync_to_async(Log.objects.filter(type=Log.Type.CONSUME).exists)()


async def test_an_error_event_before_any_words_fails_over(client, world, backup):
    await _options(RetryTimes="1")
    await sync_to_async(ChannelFactory)(name="healthy", base_url=backup.url, models="gpt-4o-mini", priority=-1)
    role = b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    error = b'data: {"error":{"message":"The server is overloaded","type":"server_error","code":null}}\n\n'
    world.upstream.then(raw=role + error, content_type="text/event-stream")
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    events = events_of(response.content)
    assert b"overloaded" not in response.content
    assert "".join(orjson.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1]) == REPLY


async def test_a_stream_broken_after_the_first_words_counts_against_the_channel_and_bills_what_arrived(
        client, world):
    await _health_counts_one_failure()
    world.upstream.then(reply=" ".join(["word"] * 40), cut_after=5, usage=False)
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    assert response.status_code == 200
    events = events_of(response.content)
    assert events[-1] == b"[DONE]" and orjson.loads(events[-2])["error"]["code"] == "stream_interrupted"
    log = await consume_log()
    assert 0 < log.completion_tokens < 40
    assert await channel_status(world.channel.pk, Channel.Status.AUTO_DISABLED) == Channel.Status.AUTO_DISABLED


async def test_a_stream_that_ends_well_does_not_count_against_the_channel(client, world):
    """The other side of the test above: the same setting leaves a channel that answered in rotation."""
    await _health_counts_one_failure()
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    assert response.content.endswith(b"data: [DONE]\n\n") and b"stream_interrupted" not in response.content
    await consume_log()
    assert await channel_status(world.channel.pk, Channel.Status.AUTO_DISABLED, timeout=0.3) == Channel.Status.ENABLED


async def _random_key(world, **fields) -> None:
    """A key like a vendor's (random characters): the test world's `sk-upstream-secret` holds the word
    "upstream", which the key masking would rightly hide in these messages."""
    from providers.services import channel_update

    await sync_to_async(lambda: channel_update(channel=Channel.objects.get(pk=world.channel.pk),
                                               key="sk-9fQ2xL7vR4mK8tW1zB6n", **fields))()


async def test_an_upstream_that_does_not_answer_in_time_is_said_to_have_timed_out(client, world, settings):
    settings.RELAY_TIMEOUT = 1
    await _random_key(world)
    world.upstream.then(delay=5)
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["message"].startswith("The upstream did not answer within 1 s (RELAY_TIMEOUT).")
    assert "reach" not in error["message"] and "SocketTimeoutError" not in error["message"]


async def test_an_upstream_that_cannot_be_reached_is_said_so(client, world):
    await _random_key(world, base_url="http://127.0.0.1:9")
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 502
    assert response.json()["error"]["message"].startswith("Could not reach the upstream: ClientConnectorError")
