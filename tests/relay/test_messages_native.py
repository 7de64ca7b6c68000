"""Anthropic's Messages API passed through to channels that speak it (Anthropic, type 14), with the official
SDK as client: the client's body goes as it is apart from the model, the answer comes back as Anthropic sent
it, and the bill is read from Anthropic's own usage. Failover between such a channel and an OpenAI-protocol
one (converted) goes both ways."""

from __future__ import annotations

import anthropic
import orjson
import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator

from accounts.models import Token
from billing.models import Log
from tests.factories import ChannelFactory
from tests.helpers import consume_logs
from tests.mock_upstream import REPLY
from tests.providers.mock_anthropic import MockAnthropic, fixture
from tests.providers.vendor_harness import serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "claude-house"  # what clients ask for; the channel maps it
UPSTREAM_MODEL = "claude-sonnet-4-5-20250929"
HELLO = [{"role": "user", "content": "Say hello"}]
# What a Claude client sends that a conversion to chat would lose: cache marks, thinking, a server tool.
CLAUDE_BODY = {
    "model": MODEL, "max_tokens": 2048,
    "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello",
                                               "cache_control": {"type": "ephemeral"}}]}],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
    "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
    "metadata": {"user_id": "session-1"}, "temperature": 1,
}
HEADERS = {"anthropic-version": "2023-06-01", "anthropic-beta": "interleaved-thinking-2025-05-14,context-1m"}
# thinking.json and thinking_stream.sse: 20 new input tokens, 1500 written to the cache, 8000 read from it.
PROMPT_TOKENS, COMPLETION_TOKENS = 20 + 1500 + 8000, 30

anthropic_server = serve(MockAnthropic)


@pytest.fixture
def claude_world(transactional_db, anthropic_server):
    return new_world(anthropic_server, username="bob", type=14, name="claude", key="sk-ant-upstream-key",
                     models=MODEL, model_mapping={MODEL: UPSTREAM_MODEL}, config={"api_version": "2023-06-01"})


@pytest.fixture
def claude(claude_world, sdk_http):
    return anthropic.AsyncAnthropic(base_url="http://testserver", api_key=f"sk-{claude_world.token.key}",
                                    http_client=sdk_http, max_retries=0)


@pytest.fixture
def auth(claude_world):
    return {**HEADERS, "x-api-key": f"sk-{claude_world.token.key}"}


def sent_as_the_client_sent_it(recorded, body: dict) -> None:
    """The vendor got the client's JSON, member for member and in order, only the model mapped."""
    assert recorded.path == "/v1/messages"
    assert list(orjson.loads(recorded.raw).items()) == list({**body, "model": UPSTREAM_MODEL}.items())
    assert recorded.raw == orjson.dumps({**body, "model": UPSTREAM_MODEL})


async def token_used(world) -> int:
    return (await sync_to_async(Token.objects.get)(pk=world.token.pk)).used_quota


async def test_a_message_goes_to_anthropic_as_sent_and_comes_back_as_anthropic_sent_it(client, claude_world, auth):
    claude_world.upstream.then(answer="thinking")
    response = await client.post("/v1/messages?beta=true", headers=auth, content=orjson.dumps(CLAUDE_BODY))
    assert response.status_code == 200, response.text
    assert response.content == fixture("thinking.json")
    [sent] = claude_world.upstream.requests
    sent_as_the_client_sent_it(sent, CLAUDE_BODY)
    assert sent.headers["x-api-key"] == "sk-ant-upstream-key" and f"sk-{claude_world.token.key}" not in str(sent)
    assert (sent.headers["anthropic-version"], sent.headers["anthropic-beta"]) == (
        HEADERS["anthropic-version"], HEADERS["anthropic-beta"])


async def test_the_sdk_gets_thinking_with_its_signature_and_the_upstream_model(claude, claude_world):
    claude_world.upstream.then(answer="thinking")
    message = await claude.messages.create(model=MODEL, max_tokens=2048, messages=HELLO,
                                           thinking={"type": "enabled", "budget_tokens": 1024})
    thinking, text = message.content
    assert (thinking.type, thinking.signature) == ("thinking", "EqQBCkYIBxgCKkA3sig+whole==")
    assert text.text == "Hello from Claude, after some thought." and message.stop_reason == "end_turn"
    # The answer is Anthropic's, untouched: it names the model that answered, as OpenAI channels' answers do.
    assert message.model == UPSTREAM_MODEL
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (8000, 1500)


async def test_a_stream_arrives_event_for_event(client, claude_world, auth):
    claude_world.upstream.then(answer="thinking")
    response = await client.post("/v1/messages", headers=auth, content=orjson.dumps({**CLAUDE_BODY, "stream": True}))
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    assert response.content == fixture("thinking_stream.sse")
    sent_as_the_client_sent_it(claude_world.upstream.requests[-1], {**CLAUDE_BODY, "stream": True})


async def test_the_sdk_streams_thinking_signatures_and_tool_calls(claude, claude_world):
    claude_world.upstream.then(answer="thinking")
    async with claude.messages.stream(model=MODEL, max_tokens=2048, messages=HELLO,
                                      thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        final = await stream.get_final_message()
    assert final.content[0].thinking == "The user wants a greeting."
    assert final.content[0].signature == "EqQBCkYIBxgCKkA3sig+stream=="
    claude_world.upstream.then(answer="tool_call")
    async with claude.messages.stream(model=MODEL, max_tokens=256, messages=HELLO) as stream:
        final = await stream.get_final_message()
    assert final.content[1].input == {"location": "San Francisco, CA"} and final.stop_reason == "tool_use"


async def test_a_stream_whose_last_event_has_no_blank_line_is_billed_by_that_event(client, claude_world, auth):
    events = fixture("thinking_stream.sse").split(b"\n\n")
    cut = b"\n\n".join(events[:-3]) + b"\n\n" + events[-3]  # ends with message_delta's data line
    assert cut.endswith(b'"usage":{"output_tokens":30}}')
    claude_world.upstream.then(raw_stream=cut)
    response = await client.post("/v1/messages", headers=auth, json={**CLAUDE_BODY, "stream": True})
    assert response.content == cut
    [log] = await consume_logs()
    assert (log.prompt_tokens, log.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)


@pytest.mark.parametrize("stream", [False, True])
async def test_the_bill_is_read_from_anthropics_usage_with_the_cache_in_the_prompt(client, claude_world, auth,
                                                                                 stream):
    claude_world.upstream.then(answer="thinking")
    response = await client.post("/v1/messages", headers=auth, json={**CLAUDE_BODY, "stream": stream})
    assert response.status_code == 200
    [log] = await consume_logs()
    assert (log.prompt_tokens, log.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert (log.client_protocol, log.is_stream, log.channel_id) == ("anthropic", stream, claude_world.channel.pk)
    assert log.quota > 0 and await token_used(claude_world) == log.quota


async def test_the_channels_system_prompt_replaces_the_clients_system(client, transactional_db, anthropic_server):
    world = await sync_to_async(new_world)(anthropic_server, username="carol", type=14, key="sk-ant-upstream-key",
                                           models=MODEL, model_mapping={MODEL: UPSTREAM_MODEL},
                                           system_prompt="Answer in French.")
    response = await client.post("/v1/messages", headers={"x-api-key": f"sk-{world.token.key}"}, json=CLAUDE_BODY)
    assert response.status_code == 200
    sent = world.upstream.requests[-1].body
    assert sent["system"] == "Answer in French." and sent["messages"] == CLAUDE_BODY["messages"]


async def test_anthropics_refusal_reaches_the_sdk_in_anthropics_shape(claude, claude_world):
    claude_world.upstream.then(status=400, error="error_invalid_request")
    with pytest.raises(anthropic.BadRequestError) as refused:
        await claude.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    error = refused.value.body
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith('messages: roles must alternate between "user" and "assistant"')
    assert "sk-ant-upstream-key" not in str(error) and len(claude_world.upstream.requests) == 1
    assert await consume_logs() == []


async def test_an_overloaded_anthropic_keeps_its_error_type(claude, claude_world):
    claude_world.upstream.then(status=529, error="error_overloaded")
    with pytest.raises(anthropic.APIStatusError) as refused:
        await claude.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert refused.value.status_code == 529 and refused.value.body["error"]["type"] == "overloaded_error"


async def test_a_stream_broken_off_ends_with_anthropics_error_event_and_bills_what_came(client, claude_world, auth):
    claude_world.upstream.then(answer="thinking", cut_after=6)
    response = await client.post("/v1/messages", headers=auth, json={**CLAUDE_BODY, "stream": True})
    assert response.status_code == 200
    events = response.content.split(b"\n\n")
    assert response.content.startswith(b"".join(e + b"\n\n" for e in fixture("thinking_stream.sse").split(b"\n\n")[:6]))
    assert events[-2].startswith(b"event: error\ndata: ")
    assert orjson.loads(events[-2].split(b"data: ", 1)[1])["error"]["type"] == "api_error"
    [log] = await consume_logs()
    assert log.completion_tokens > 0 and log.channel_id == claude_world.channel.pk
    prompt_billed_from_message_start(log)


def prompt_billed_from_message_start(log: Log) -> None:
    """A stream cut before message_delta pays message_start's prompt with its cache parts (thinking_stream.sse:
    20 new, 1500 written for 5 minutes, 8000 read), at their own prices, and only its answer counted locally."""
    assert (log.prompt_tokens, log.cached_tokens, log.cache_write_tokens, log.cache_write_1h_tokens) == (
        PROMPT_TOKENS, 8000, 1500, 0)
    assert 0 < log.completion_tokens < COMPLETION_TOKENS


async def test_a_client_that_leaves_mid_stream_pays_for_what_it_got(asgi_app, claude_world):
    claude_world.upstream.then(answer="thinking", event_delay=0.2)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/messages", "raw_path": b"/v1/messages", "query_string": b"", "root_path": "",
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
             "headers": [(b"x-api-key", f"sk-{claude_world.token.key}".encode()),
                         (b"content-type", b"application/json")]}
    app = ApplicationCommunicator(asgi_app, scope)
    await app.send_input({"type": "http.request", "body": orjson.dumps({**CLAUDE_BODY, "stream": True}),
                          "more_body": False})
    assert (await app.receive_output(5))["status"] == 200
    received = b""
    while b"thinking_delta" not in received:
        received += (await app.receive_output(5))["body"]
    await app.send_input({"type": "http.disconnect"})
    await app.wait(5)
    [log] = await consume_logs()  # Anthropic never said its output: counted locally
    prompt_billed_from_message_start(log)
    assert await token_used(claude_world) == log.quota > 0


async def test_a_chat_stream_from_anthropic_cut_before_its_usage_pays_message_starts_prompt(client, claude_world):
    # The converted path: an OpenAI client, the Anthropic channel's events made chat chunks.
    claude_world.upstream.then(answer="thinking", cut_after=9)  # the answer's first words, no message_delta
    bearer = {"Authorization": f"Bearer sk-{claude_world.token.key}"}
    response = await client.post("/v1/chat/completions", headers=bearer,
                                 json={"model": MODEL, "messages": HELLO, "stream": True})
    assert response.status_code == 200 and b"Hello from Claude," in response.content
    [log] = await consume_logs()
    assert log.client_protocol == "openai"
    prompt_billed_from_message_start(log)


async def test_message_starts_usage_alone_does_not_begin_the_answer(claude, claude_world, openai_channel_too,
                                                                      upstream):
    # Cut after message_start: the prompt was counted, but nothing reached the client, so another channel answers.
    claude_world.upstream.then(answer="thinking", cut_after=1)
    async with claude.messages.stream(model=MODEL, max_tokens=256, messages=HELLO) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == REPLY and len(upstream.requests) == 1
    [log] = await consume_logs()
    assert log.channel_id == openai_channel_too.pk and log.cached_tokens == 0


# --- failover between a channel that speaks Messages and one that does not ---------------------------


@pytest.fixture
def openai_channel_too(claude_world, upstream, retries):
    """An OpenAI-protocol channel (the shared OpenAI mock) for the same model, tried after the Claude channel."""
    return ChannelFactory(name="openai", base_url=upstream.url, models=MODEL, priority=-1)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failing_anthropic_channel_fails_over_to_an_openai_channel_through_the_conversion(
        claude, claude_world, openai_channel_too, upstream, stream):
    claude_world.upstream.then(status=529, error="error_overloaded")
    if stream:
        async with claude.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as answer:
            message = await answer.get_final_message()
    else:
        message = await claude.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert message.content[0].text == REPLY and message.model == MODEL  # the conversion's answer
    assert len(claude_world.upstream.requests) == 1
    assert upstream.requests[-1].path == "/v1/chat/completions" and upstream.requests[-1].body["model"] == MODEL
    [log] = await consume_logs()
    assert (log.channel_id, log.prompt_tokens, log.completion_tokens) == (openai_channel_too.pk, 11, 7)


async def test_an_error_event_before_the_answer_fails_over_too(claude, claude_world, openai_channel_too):
    claude_world.upstream.then(answer="early_error")
    async with claude.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as answer:
        message = await answer.get_final_message()
    assert message.content[0].text == REPLY


async def test_a_failing_openai_channel_fails_over_to_anthropic_passed_through(claude, claude_world, upstream,
                                                                               retries):
    first = await sync_to_async(ChannelFactory)(name="openai", base_url=upstream.url, models=MODEL, priority=1)
    upstream.then(status=500, error={"error": {"message": "boom", "type": "server_error", "code": None}})
    claude_world.upstream.then(answer="thinking")
    async with claude.messages.stream(model=MODEL, max_tokens=2048, messages=HELLO) as answer:
        message = await answer.get_final_message()
    assert message.content[0].signature == "EqQBCkYIBxgCKkA3sig+stream==" and message.model == UPSTREAM_MODEL
    assert upstream.requests[-1].body["model"] == MODEL
    [log] = await consume_logs()
    assert log.channel_id == claude_world.channel.pk != first.pk
    assert (log.prompt_tokens, log.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)


# --- count_tokens ---------------------------------------------------------------------------------------


async def test_count_tokens_is_asked_of_anthropic_and_costs_nothing(claude, claude_world):
    counted = await claude.messages.count_tokens(model=MODEL, messages=HELLO, system="Be brief.")
    assert counted.input_tokens == 2095
    [sent] = claude_world.upstream.requests
    assert sent.path == "/v1/messages/count_tokens" and sent.headers["x-api-key"] == "sk-ant-upstream-key"
    assert sent.body == {"model": UPSTREAM_MODEL, "messages": HELLO, "system": "Be brief."}
    assert await consume_logs() == [] and await token_used(claude_world) == 0


async def test_count_tokens_is_counted_locally_when_anthropic_is_out_of_service(claude, claude_world):
    claude_world.upstream.then(status=529, error="error_overloaded")
    counted = await claude.messages.count_tokens(model=MODEL, messages=HELLO)
    assert 0 < counted.input_tokens < 100 and len(claude_world.upstream.requests) == 1


# --- what only Messages carries ---------------------------------------------------------------------------

PDF = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
       "cache_control": {"type": "ephemeral"}}
WITH_PDF = {"model": MODEL, "max_tokens": 256,
            "messages": [{"role": "user", "content": [PDF, {"type": "text", "text": "Summarise this."}]}]}


async def test_a_block_chat_cannot_carry_goes_to_anthropic_as_it_is(client, claude_world, auth):
    response = await client.post("/v1/messages", headers=auth, json=WITH_PDF)
    assert response.status_code == 200, response.text
    sent_as_the_client_sent_it(claude_world.upstream.requests[-1], WITH_PDF)
    counted = await client.post("/v1/messages/count_tokens", headers=auth,
                                json={k: v for k, v in WITH_PDF.items() if k != "max_tokens"})
    assert counted.json() == {"input_tokens": 2095}
    assert claude_world.upstream.requests[-1].body["messages"] == WITH_PDF["messages"]


async def test_a_block_chat_cannot_carry_is_refused_by_a_converted_channel_and_taken_by_the_next(
        client, claude_world, auth, upstream, retries):
    await sync_to_async(ChannelFactory)(name="openai", base_url=upstream.url, models=MODEL, priority=1)
    response = await client.post("/v1/messages", headers=auth, json=WITH_PDF)
    assert response.status_code == 200, response.text
    assert upstream.requests == [] and len(claude_world.upstream.requests) == 1
    [log] = await consume_logs()
    assert log.channel_id == claude_world.channel.pk


async def test_a_block_chat_cannot_carry_is_the_clients_400_when_no_channel_speaks_messages(client, world):
    auth = {"x-api-key": f"sk-{world.token.key}"}
    body = {**WITH_PDF, "model": "gpt-4o-mini"}
    for path, sent in (("/v1/messages", body), ("/v1/messages/count_tokens", {**body, "max_tokens": None})):
        response = await client.post(path, headers=auth, json={k: v for k, v in sent.items() if v is not None})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and "'document' cannot be sent" in error["message"]
    assert world.upstream.requests == [] and await consume_logs() == []


async def test_what_nests_too_deep_for_the_vendors_request_is_a_bad_request_not_a_failure(client, claude_world,
                                                                                          auth):
    # The conversion drops `metadata` but for its user id: only the body sent as it is nests too deep.
    body = orjson.dumps({**CLAUDE_BODY, "metadata": {"user_id": "u", "trace": "DEEP"}})
    response = await client.post("/v1/messages", headers=auth,
                                 content=body.replace(b'"DEEP"', b"[" * 300 + b"]" * 300))
    assert response.status_code == 400, response.text
    assert "nested too deep" in response.json()["error"]["message"]
    assert claude_world.upstream.requests == []
