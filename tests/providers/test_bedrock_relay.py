"""AWS Bedrock channels end to end: OpenAI requests through the ASGI app to a mock Bedrock Runtime.

The mock recomputes every SigV4 signature with botocore and answers 403 InvalidSignatureException when
it does not match, as Bedrock would. Streamed answers are binary AWS event streams, which reach the
decoder through the relay's "raw" framing (`decoder.feed_bytes`).

What every vendor owes (answers, streams, usage, refusals, failover) is in test_vendor_contract.py, for
Claude through invoke and Llama through Converse; here is what is Bedrock's own: signing, credentials,
model ids, images, tools and the stream request.
"""

import base64
import json

import orjson
import pytest
from asgiref.sync import sync_to_async

from providers.adapters.bedrock.adapter import CONVERSE_MODELS
from providers.selectors import models_by_channel_type
from tests.factories import ChannelFactory
from tests.helpers import consume_log
from tests.providers.mock_bedrock import PNG, MockBedrock, fixture
from tests.providers.vendor_harness import serve, stream_chunks, text_of
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

AK, SK, REGION = "AKIAIOSFODNN7EXAMPLE", "bedrock-test-secret/key+with/slashes", "us-east-1"
MODEL = "claude-3-5-sonnet-20241022"
CHAT = {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Say hello"}]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a place",
                                           "parameters": {"type": "object",
                                                          "properties": {"location": {"type": "string"}}}}}]


bedrock_server = serve(lambda: MockBedrock(access_key=AK, secret_key=SK, region=REGION))


@pytest.fixture
def bedrock(transactional_db, bedrock_server):
    # The channel form requires a key; with ak/sk/region in the config, the config wins.
    return new_world(bedrock_server, username="alice", type=33, name="bedrock", key=AK,
                     models=f"{MODEL},claude-3-7-sonnet,claude-3-haiku-20240307",
                     model_mapping={"claude-3-7-sonnet": "us.anthropic.claude-3-7-sonnet-20250219-v1:0"},
                     config={"region": REGION, "ak": AK, "sk": SK})


async def test_a_chat_is_signed_and_sent_to_invoke_in_anthropics_shape(relay_client, bedrock):
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bedrock.auth)
    assert response.status_code == 200, response.text
    sent = bedrock.upstream.requests[-1]
    assert sent.raw_path == "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"
    assert sent.signature_ok is not False, "the mock recomputes the signature with botocore"
    assert sent.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AK}/")
    assert SK not in repr(sent.headers)
    assert sent.body == {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4096, "system": "Be brief.",
                         "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]}


async def test_signature_checked_by_botocore_is_valid(relay_client, bedrock):
    pytest.importorskip("botocore")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bedrock.auth)
    assert response.status_code == 200, response.text
    assert bedrock.upstream.requests[-1].signature_ok is True


async def test_a_wrong_secret_is_refused_by_bedrock_with_its_own_message(relay_client, bedrock):
    pytest.importorskip("botocore")
    await sync_to_async(ChannelFactory)(type=33, name="bedrock-bad", base_url=bedrock.upstream.url,
                                        key=f"{AK}|not-the-secret|{REGION}", models="claude-3-opus-20240229")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "claude-3-opus-20240229"},
                                       headers=bedrock.auth)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["message"].startswith("The request signature we calculated does not match")
    assert error["type"] == "authentication_error" and error["code"] == "InvalidSignatureException"
    assert "not-the-secret" not in response.text


async def test_credentials_in_the_key_as_ak_sk_region_work(relay_client, bedrock):
    await sync_to_async(ChannelFactory)(type=33, name="bedrock-key", base_url=bedrock.upstream.url,
                                        key=f"{AK}|{SK}|{REGION}", models="claude-3-opus-20240229")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "claude-3-opus-20240229"},
                                       headers=bedrock.auth)
    assert response.status_code == 200, response.text
    sent = bedrock.upstream.requests[-1]
    assert sent.raw_path == "/model/anthropic.claude-3-opus-20240229-v1%3A0/invoke"
    assert sent.signature_ok is not False


async def test_a_mapped_inference_profile_id_is_sent_as_is(relay_client, bedrock):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "claude-3-7-sonnet"},
                                       headers=bedrock.auth)
    assert response.status_code == 200, response.text
    assert bedrock.upstream.requests[-1].raw_path == "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/invoke"
    assert (await consume_log()).model_name == "claude-3-7-sonnet"


async def test_tool_call_answer_reaches_the_client_as_tool_calls(relay_client, bedrock):
    bedrock.upstream.then(answer="tool_call")
    body = {**CHAT, "tools": TOOLS, "tool_choice": "required"}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=bedrock.auth)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"location": "Seattle, WA", "unit": "celsius"}
    sent = bedrock.upstream.requests[-1].body
    assert sent["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]
    assert sent["tool_choice"] == {"type": "any"}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (402, 71)


async def test_a_remote_image_is_fetched_and_sent_inline(relay_client, bedrock):
    body = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"{bedrock.upstream.url}/images/pixel.png"}}]}]}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=bedrock.auth)
    assert response.status_code == 200, response.text
    block = bedrock.upstream.requests[-1].body["messages"][0]["content"][1]
    assert block["type"] == "image" and block["source"]["type"] == "base64"
    assert block["source"]["media_type"] == "image/png"


async def test_a_too_large_remote_image_is_refused_without_calling_bedrock(relay_client, bedrock):
    body = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"{bedrock.upstream.url}/images/huge.png"}}]}]}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=bedrock.auth)
    assert response.status_code == 400
    assert "larger than 20 MB" in response.json()["error"]["message"]
    assert not bedrock.upstream.requests


def test_api_models_lists_claude_and_converse_models_for_type_33():
    listed = models_by_channel_type()[33]
    assert MODEL in listed
    assert {m for m in listed if not m.startswith("claude-")} == {"llama3-8b-8192", "llama3-70b-8192",
                                                                  *CONVERSE_MODELS}


# --- streams: binary event streams through the relay's "raw" framing ------------------------------


async def test_the_stream_request_is_signed_for_invoke_with_response_stream(relay_client, bedrock):
    await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=bedrock.auth)
    sent = bedrock.upstream.requests[-1]
    assert sent.raw_path == "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke-with-response-stream"
    assert sent.headers["Accept"] == "application/vnd.amazon.eventstream"
    assert sent.signature_ok is not False and "stream" not in sent.body


# --- Claude clients (the Messages API) pass through InvokeModel ----------------------------------------

MESSAGE = {"model": MODEL, "max_tokens": 512, "metadata": {"user_id": "u-1"},
           "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
           "messages": [{"role": "user", "content": "Say hello"}]}


def anthropic_headers(world) -> dict[str, str]:
    return {"x-api-key": f"sk-{world.token.key}", "anthropic-version": "2023-06-01",
            "anthropic-beta": "interleaved-thinking-2025-05-14, context-1m-2025-08-07"}


def as_server_sent_events(name: str) -> bytes:
    """A stream fixture's Anthropic events as Anthropic itself sends them."""
    lines = [json.loads(line) for line in fixture(name).splitlines() if line.strip()]
    return b"".join(b"event: " + line["chunk"]["type"].encode() + b"\ndata: " + json.dumps(line["chunk"]).encode()
                    + b"\n\n" for line in lines if "chunk" in line)


async def test_a_claude_message_goes_to_invoke_as_sent_and_comes_back_untouched(relay_client, bedrock):
    response = await relay_client.post("/v1/messages", json=MESSAGE, headers=anthropic_headers(bedrock))
    assert response.status_code == 200, response.text
    assert response.content == fixture("chat.json")
    sent = bedrock.upstream.requests[-1]
    assert sent.raw_path == "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"
    assert sent.signature_ok is not False
    # The client's body as the Anthropic SDK's Bedrock client sends it: no model, stream or metadata, the betas
    # in the body, Bedrock's API version.
    assert sent.body == {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 512, "system": MESSAGE["system"],
                         "messages": MESSAGE["messages"],
                         "anthropic_beta": ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.client_protocol) == (14, 9, "anthropic")


@pytest.mark.parametrize("piece", [None, 7])
async def test_a_claude_stream_comes_back_as_anthropics_events(relay_client, bedrock, piece):
    bedrock.upstream.then(piece=piece)
    response = await relay_client.post("/v1/messages", json={**MESSAGE, "stream": True},
                                       headers=anthropic_headers(bedrock))
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    assert response.content == as_server_sent_events("chat_stream.ndjson")
    sent = bedrock.upstream.requests[-1]
    assert sent.raw_path.endswith("/invoke-with-response-stream") and "stream" not in sent.body
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (14, 9, True)


async def test_a_claude_clients_url_images_are_fetched_and_sent_inline(relay_client, bedrock):
    url = f"{bedrock.upstream.url}/images/pixel.png"
    image = {"type": "image", "source": {"type": "url", "url": url}, "cache_control": {"type": "ephemeral"}}
    content = [{"type": "tool_result", "tool_use_id": "t1", "content": [image]}, image,
               {"type": "text", "text": "And this?"}]
    body = {**MESSAGE, "messages": [{"role": "user", "content": content}]}
    response = await relay_client.post("/v1/messages", json=body, headers=anthropic_headers(bedrock))
    assert response.status_code == 200, response.text
    sent = bedrock.upstream.requests[-1].body["messages"][0]["content"]
    inline = {**image, "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}}
    assert sent == [{**content[0], "content": [inline]}, inline, content[2]]


async def test_a_bedrock_exception_mid_stream_is_anthropics_error_event(relay_client, bedrock):
    bedrock.upstream.then(answer="error")
    response = await relay_client.post("/v1/messages", json={**MESSAGE, "stream": True},
                                       headers=anthropic_headers(bedrock))
    assert response.status_code == 200
    events = response.content.split(b"\n\n")
    assert events[-2].startswith(b"event: error\ndata: ")
    error = json.loads(events[-2].split(b"data: ", 1)[1])["error"]
    assert error["message"] == "The model stream was interrupted: an internal error occurred."
    assert b"text_delta" in response.content


async def test_a_refusal_from_bedrock_reaches_the_claude_client_in_anthropics_shape(relay_client, bedrock):
    bedrock.upstream.then(status=400, error="error_validation")
    response = await relay_client.post("/v1/messages", json=MESSAGE, headers=anthropic_headers(bedrock))
    assert response.status_code == 400
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "invalid_request_error"


async def test_a_llama_model_on_bedrock_takes_messages_through_the_conversion(relay_client, bedrock):
    await sync_to_async(ChannelFactory)(type=33, name="llama", key=AK, base_url=bedrock.upstream.url,
                                        models="meta.llama3-1-8b-instruct-v1:0",
                                        config={"region": REGION, "ak": AK, "sk": SK})
    response = await relay_client.post("/v1/messages", json={**MESSAGE, "model": "meta.llama3-1-8b-instruct-v1:0"},
                                       headers=anthropic_headers(bedrock))
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"
    assert bedrock.upstream.requests[-1].path.endswith("/converse")


async def test_tool_call_stream_reaches_the_client_as_tool_call_chunks(relay_client, bedrock):
    bedrock.upstream.then(answer="tool_call", piece=64)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "tools": TOOLS, "stream": True},
                                       headers=bedrock.auth)
    chunks = stream_chunks(response.content)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0]["id"] == "toolu_bdrk_01A7w9ZcK3mQ5vXy2LpN8dRt" and calls[0]["function"]["name"] == "get_weather"
    assert orjson.loads("".join(c["function"]["arguments"] for c in calls))["location"] == "Seattle, WA"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (402, 71)


# --- other models through Converse, and temporary credentials ------------------------------------

LLAMA = "llama3-8b-8192"  # one-api's name, mapped to meta.llama3-8b-instruct-v1:0


async def converse_channel(upstream, **config):
    return await sync_to_async(ChannelFactory)(type=33, name="bedrock-converse", base_url=upstream.url, key=AK,
                                               models=f"{LLAMA},nova", model_mapping={"nova": "amazon.nova-pro-v1:0"},
                                               config={"region": REGION, "ak": AK, "sk": SK, **config})


async def test_a_llama_chat_goes_through_converse_signed(relay_client, bedrock):
    await converse_channel(bedrock.upstream)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": LLAMA, "max_tokens": 64},
                                       headers=bedrock.auth)
    assert response.status_code == 200, response.text
    sent = bedrock.upstream.requests[-1]
    assert sent.raw_path == "/model/meta.llama3-8b-instruct-v1%3A0/converse"
    assert sent.signature_ok is not False
    assert sent.body == {"system": [{"text": "Be brief."}],
                         "messages": [{"role": "user", "content": [{"text": "Say hello"}]}],
                         "inferenceConfig": {"maxTokens": 64}}


async def test_a_nova_stream_goes_to_converse_stream_by_its_mapped_id(relay_client, bedrock):
    await converse_channel(bedrock.upstream)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "nova", "stream": True},
                                       headers=bedrock.auth)
    assert text_of(stream_chunks(response.content)) == "Hello from Llama on Bedrock."
    sent = bedrock.upstream.requests[-1]
    assert sent.raw_path == "/model/amazon.nova-pro-v1%3A0/converse-stream" and sent.signature_ok is not False
    assert (await consume_log()).model_name == "nova"


async def test_a_converse_tool_call_reaches_the_client(relay_client, bedrock):
    await converse_channel(bedrock.upstream)
    bedrock.upstream.then(answer="tool_call")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": LLAMA, "tools": TOOLS},
                                       headers=bedrock.auth)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "get_weather",
                                                              "arguments": '{"location":"Paris"}'}
    assert bedrock.upstream.requests[-1].body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


@pytest.fixture(scope="module")
def sts_server():
    server = MockBedrock(access_key=AK, secret_key=SK, region=REGION,
                         session_token="FwoGZXIvYXdzEBYaDH+sts/token==").start()
    yield server
    server.stop()


async def test_temporary_credentials_send_their_session_token_signed(relay_client, bedrock, sts_server):
    sts_server.reset()
    await converse_channel(sts_server, session_token="FwoGZXIvYXdzEBYaDH+sts/token==")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": LLAMA}, headers=bedrock.auth)
    assert response.status_code == 200, response.text
    sent = sts_server.requests[-1]
    assert sent.headers["X-Amz-Security-Token"] == "FwoGZXIvYXdzEBYaDH+sts/token=="
    assert sent.signature_ok is not False


async def test_a_missing_session_token_is_refused_by_bedrock(relay_client, bedrock, sts_server):
    sts_server.reset()
    await converse_channel(sts_server)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": LLAMA}, headers=bedrock.auth)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "InvalidSignatureException"
