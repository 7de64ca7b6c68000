import orjson
import pytest

from providers.adapters import ADAPTERS, adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError, check_answer
from tests.providers.vendor_harness import call_context


def channel(type_id, base_url="", key="secret", config=None):
    return ChannelInfo(id=1, type=type_id, name="c", key=key, base_url=base_url, models=("m",), model_mapping={},
                       config=config or {}, system_prompt="", priority=0, weight=0)


BODY = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("type_id, base_url, url", [
    (1, "", "https://api.openai.com/v1/chat/completions"),
    (1, "https://proxy.example/", "https://proxy.example/v1/chat/completions"),
    (8, "https://custom.example", "https://custom.example/v1/chat/completions"),
    (50, "https://compat.example/v1", "https://compat.example/v1/chat/completions"),
    (20, "", "https://openrouter.ai/api/v1/chat/completions"),
    (25, "", "https://api.moonshot.cn/v1/chat/completions"),
    (29, "", "https://api.groq.com/openai/v1/chat/completions"),
    (36, "", "https://api.deepseek.com/v1/chat/completions"),
    (40, "", "https://ark.cn-beijing.volces.com/api/v3/chat/completions"),
    (41, "", "https://api.novita.ai/v3/openai/chat/completions"),
    (44, "", "https://api.siliconflow.cn/v1/chat/completions"),
    (45, "", "https://api.x.ai/v1/chat/completions"),
])
def test_openai_protocol_vendors_build_their_urls(type_id, base_url, url):
    request = adapter_for(type_id).build_request(call_context(channel(type_id, base_url), body=BODY))
    assert request.url == url
    assert request.headers["Authorization"] == "Bearer secret"
    assert orjson.loads(request.body) == BODY


def test_azure_uses_deployment_urls_api_key_and_configured_version():
    azure = channel(3, "https://res.openai.azure.com", config={"api_version": "2024-10-21"})
    request = adapter_for(3).build_request(call_context(azure, body=BODY, stream=True))
    assert request.url == ("https://res.openai.azure.com/openai/deployments/gpt-35-turbo/chat/completions"
                           "?api-version=2024-10-21")
    assert request.headers["api-key"] == "secret" and "Authorization" not in request.headers
    body = {"model": "text-embedding-3-small", "input": "x"}
    embeddings = adapter_for(3).build_request(call_context(channel(3, "https://r"), "embeddings", body))
    assert embeddings.url.endswith(
        "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-03-01-preview")


def test_every_registered_type_names_its_type():
    for type_id, cls in ADAPTERS.items():
        assert cls.channel_type == type_id and cls.label


def test_upstream_error_keeps_the_vendor_message_and_classifies_retry():
    adapter = adapter_for(1)
    err = adapter.parse_error(call_context(), status=429,
                              body=b'{"error": {"message": "Rate limit reached", "type": "requests"}}')
    assert err.retryable and err.message == "Rate limit reached"
    err = adapter.parse_error(call_context(), status=401, body=b'{"message": "bad key"}')
    assert not err.retryable and err.message == "bad key"
    err = adapter.parse_error(call_context(), status=502, body=b"<html>Bad gateway</html>")
    assert err.retryable and "Bad gateway" in err.message


@pytest.mark.parametrize("type_id", [1, 16])  # OpenAI, and Zhipu's own reading of its answers
def test_a_200_that_carries_an_error_object_keeps_the_vendors_message(type_id):
    ctx = call_context(channel(type_id, key="zkeyid.zsecretvalue"), "chat", BODY)
    with pytest.raises(UpstreamError) as caught:
        adapter_for(type_id).parse_response(ctx, body=b'{"error": {"message": "The proxy is out of credit"}}')
    assert (caught.value.status, caught.value.message) == (502, "The proxy is out of credit")
    with pytest.raises(UpstreamError) as caught:
        adapter_for(type_id).parse_response(ctx, body=b'{"object": "something.else"}')
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (502, "bad_response_body", True)
    assert caught.value.message.endswith("is not an OpenAI chat answer.")


def test_check_answer_raises_the_error_its_hook_finds_else_its_own():
    found = UpstreamError(status=502, message="found")
    assert check_answer({"choices": []}, "V", "choices", error=lambda payload: found) is None
    with pytest.raises(UpstreamError) as caught:
        check_answer({"error": {}}, "V", "choices", error=lambda payload: found)
    assert caught.value is found
    with pytest.raises(UpstreamError) as caught:
        check_answer({"error": {}}, "V", "choices", what="a chat answer", error=lambda payload: None)
    assert caught.value.message == "V answered with a body that is not a chat answer."


def test_stream_event_usage_only_chunk_is_flagged():
    decoder = adapter_for(1).stream_decoder(call_context(model="gpt-4o"))
    [event] = decoder.feed(b"", b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}')
    assert event.usage_only and event.usage.prompt_tokens == 3 and event.usage.completion_tokens == 4
    [event] = decoder.feed(b"", b'{"choices":[{"delta":{"content":"hi"}}],"usage":null}')
    assert not event.usage_only and event.usage is None and event.text == "hi"
    assert decoder.feed(b"", b"[DONE]")[0].done
