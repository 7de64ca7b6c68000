"""Vertex AI adapter, bytes in and bytes out: the service-account JWT, URLs for both publishers, bodies,
answers, streams and errors (Gemini's and Anthropic's fixtures, as Vertex relays their wire formats)."""

import base64
import json
import time

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from providers.adapters import adapter_for, vertex
from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.vertex import VertexAdapter, claude_model, service_account, signed_assertion
from relay.streaming import SSEParser
from tests.providers.mock_vertex import fixture
from tests.providers.vendor_harness import call_context

PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = PRIVATE_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
EMAIL = "relay@demo-project.iam.gserviceaccount.com"
ADC = {"type": "service_account", "project_id": "key-project", "private_key_id": "kid-1", "private_key": PEM,
       "client_email": EMAIL, "token_uri": "https://oauth2.googleapis.com/token"}
TOKEN = "ya29.unit-test-token"
CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "system", "content": "Be brief."},
                                                  {"role": "user", "content": "Say hello"}]}
CLAUDE = {**CHAT, "model": "claude-sonnet-4-5@20250929"}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
    "location": {"type": "string"}}}}}]


def channel(config=None, key="", base_url=""):
    config = {"region": "us-central1", "vertex_ai_project_id": "demo-project",
              "vertex_ai_adc": json.dumps(ADC), **(config or {})}
    return ChannelInfo(id=1, type=42, name="v", key=key, base_url=base_url, models=(), model_mapping={},
                       config=config, system_prompt="", priority=0, weight=0)


def context(body, stream=False, **kwargs):
    """The context of a call whose open() minted TOKEN."""
    return call_context(channel(**kwargs), body={**body, vertex.TOKEN_FIELD: TOKEN}, stream=stream)


def build(body, stream=False, **kwargs):
    request = VertexAdapter().build_request(context(body, stream, **kwargs))
    return request, orjson.loads(request.body)


def b64url_json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def decode_stream(decoder, raw: bytes):
    parser = SSEParser()
    events = []
    for event, data in [*parser.feed(raw), *parser.close()]:
        events.extend(decoder.feed(event, data))
    return events + decoder.close()


def test_registered_as_type_42():
    adapter = adapter_for(42)
    assert isinstance(adapter, VertexAdapter) and adapter.label == "Google Vertex AI"
    assert adapter.config_fields == ("region", "vertex_ai_project_id", "vertex_ai_adc")


def test_assertion_is_an_rs256_jwt_google_can_verify():
    now = int(time.time())
    assertion = signed_assertion(service_account(channel()), now=now)
    header, claims, signature = assertion.split(".")
    assert b64url_json(header) == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    assert b64url_json(claims) == {"iss": EMAIL, "scope": "https://www.googleapis.com/auth/cloud-platform",
                                   "aud": "https://oauth2.googleapis.com/token", "iat": now, "exp": now + 3600}
    # Verified independently with the public half (raises InvalidSignature otherwise).
    PRIVATE_KEY.public_key().verify(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
                                    f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())


def test_service_account_may_be_the_channel_key():
    account = service_account(channel(config={"vertex_ai_adc": ""}, key=json.dumps(ADC)))
    assert account.client_email == EMAIL and account.token_uri == ADC["token_uri"]
    assert PEM not in repr(account)


def test_bad_credentials_are_refused_without_quoting_the_key():
    with pytest.raises(UpstreamError) as err:
        service_account(channel(config={"vertex_ai_adc": "not json"}, key="also not json"))
    assert err.value.status == 401 and err.value.type == "authentication_error"
    broken = {**ADC, "private_key": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n"
                                    "-----END PRIVATE KEY-----\n"}
    with pytest.raises(UpstreamError) as err:
        signed_assertion(service_account(channel(config={"vertex_ai_adc": json.dumps(broken)})))
    assert "c2VjcmV0" not in err.value.message and "PRIVATE KEY" not in err.value.message


def test_gemini_request_url_headers_and_body():
    request, body = build(CHAT)
    assert request.url == ("https://us-central1-aiplatform.googleapis.com/v1/projects/demo-project/locations/"
                           "us-central1/publishers/google/models/gemini-2.5-flash:generateContent")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "x-goog-api-key" not in request.headers and PEM not in str(request.headers)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Say hello"}]}]
    assert "_vertex_token" not in request.body.decode()


def test_gemini_stream_url_and_global_region():
    request, _ = build(CHAT, stream=True, config={"region": "global"})
    assert request.url == ("https://aiplatform.googleapis.com/v1/projects/demo-project/locations/global/"
                           "publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse")


def test_base_url_replaces_the_regional_host_and_project_falls_back_to_the_key():
    request, _ = build(CHAT, base_url="http://127.0.0.1:9/", config={"vertex_ai_project_id": ""})
    assert request.url == ("http://127.0.0.1:9/v1/projects/key-project/locations/us-central1/publishers/google/"
                           "models/gemini-2.5-flash:generateContent")


def test_claude_request_is_anthropic_messages_without_model():
    request, body = build({**CHAT, "model": "claude-3-5-sonnet-20241022", "max_tokens": 100, "tools": TOOLS})
    assert request.url == ("https://us-central1-aiplatform.googleapis.com/v1/projects/demo-project/locations/"
                           "us-central1/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "model" not in body and body["anthropic_version"] == "vertex-2023-10-16"
    assert body["system"] == "Be brief." and body["max_tokens"] == 100
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]
    assert body["tools"][0]["name"] == "get_weather" and "stream" not in body


def test_claude_stream_url_and_body():
    request, body = build({**CHAT, "model": "claude-sonnet-4-5@20250929"}, stream=True,
                          config={"region": "europe-west1"})
    assert request.url.endswith("/locations/europe-west1/publishers/anthropic/models/"
                                "claude-sonnet-4-5@20250929:streamRawPredict")
    assert body["stream"] is True


@pytest.mark.parametrize(("given", "vertex_id"), [
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-v2@20241022"),
    ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet@20240620"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5@20250929"),
    ("claude-3-haiku@20240307", "claude-3-haiku@20240307"),
    ("claude-opus-4-6", "claude-opus-4-6"),
])
def test_claude_model_ids_map_to_vertex_versions(given, vertex_id):
    assert claude_model(given) == vertex_id


def test_gemini_answer_and_usage():
    data, usage = VertexAdapter().parse_response(context(CHAT), body=fixture("gemini/chat.json"))
    answer = orjson.loads(data)
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello from Gemini."}
    assert (usage.prompt_tokens, usage.completion_tokens) == (9, 17)


def test_claude_tool_call_answer_and_usage():
    adapter = VertexAdapter()
    ctx = context({**CHAT, "model": "claude-sonnet-4-5@20250929", "tools": TOOLS})
    adapter.build_request(ctx)
    data, usage = adapter.parse_response(ctx, body=fixture("anthropic/tool_call.json"))
    choice = orjson.loads(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {
        "name": "get_weather", "arguments": '{"location":"San Francisco, CA","unit":"celsius"}'}
    assert (usage.prompt_tokens, usage.completion_tokens) == (504, 58)


def test_gemini_tool_call_answer():
    data, _ = VertexAdapter().parse_response(context({**CHAT, "tools": TOOLS}), body=fixture("gemini/tool_call.json"))
    calls = orjson.loads(data)["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]


def test_gemini_stream_decodes_and_reports_usage_last():
    events = decode_stream(VertexAdapter().stream_decoder(context(CHAT, stream=True)),
                           fixture("gemini/chat_stream.sse"))
    text = "".join(e.text for e in events)
    assert text == "Hello from Gemini."
    assert events[-1].usage_only and (events[-1].usage.prompt_tokens, events[-1].usage.completion_tokens) == (9, 17)


def test_claude_stream_decodes_with_anthropics_decoder():
    events = decode_stream(VertexAdapter().stream_decoder(context(CLAUDE, stream=True)),
                           fixture("anthropic/chat_stream.sse"))
    chunks = [orjson.loads(e.data) for e in events if e.data]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == \
        "Hello from Claude."
    usage = [e.usage for e in events if e.usage][-1]
    assert (usage.prompt_tokens, usage.completion_tokens) == (12, 6)


def test_claude_tool_call_stream_and_malformed_events_do_not_crash():
    events = decode_stream(VertexAdapter().stream_decoder(context({**CLAUDE, "tools": TOOLS}, stream=True)),
                           fixture("anthropic/tool_call_stream.sse"))
    calls = [c for e in events if e.data for ch in orjson.loads(e.data)["choices"]
             for c in ch["delta"].get("tool_calls") or ()]
    assert calls[0]["function"]["name"] == "get_weather"
    assert decode_stream(VertexAdapter().stream_decoder(context(CLAUDE, stream=True)),
                         fixture("anthropic/malformed_stream.sse"))
    assert decode_stream(VertexAdapter().stream_decoder(context(CHAT, stream=True)),
                         fixture("gemini/malformed_stream.sse"))


def test_gemini_stream_cut_off_midway_keeps_what_arrived():
    raw = fixture("gemini/chat_stream.sse")
    events = decode_stream(VertexAdapter().stream_decoder(context(CHAT, stream=True)), raw[: len(raw) // 2])
    assert events and "Hello" in "".join(e.text for e in events)


def test_google_errors_keep_their_message_and_unauthenticated_drops_the_token():
    adapter = VertexAdapter()
    vertex._tokens[EMAIL] = ("ya29.cached", time.monotonic() + 1000)
    ctx = context(CHAT)
    err = adapter.parse_error(ctx, status=401, body=fixture("vertex/error_unauthenticated.json"))
    assert err.type == "authentication_error" and err.code == "unauthenticated" and not err.retryable
    assert err.message.startswith("Request had invalid authentication credentials")
    assert EMAIL not in vertex._tokens
    err = adapter.parse_error(ctx, status=429, body=fixture("vertex/error_quota.json"))
    assert err.retryable and err.code == "resource_exhausted" and "Quota exceeded" in err.message
    err = adapter.parse_error(ctx, status=403, body=fixture("vertex/error_permission_denied.json"))
    assert err.type == "permission_error" and not err.retryable


def test_claude_errors_in_anthropics_shape_pass_through():
    err = VertexAdapter().parse_error(context(CLAUDE), status=529, body=fixture("anthropic/error_overloaded.json"))
    assert err.type == "overloaded_error" and err.retryable
