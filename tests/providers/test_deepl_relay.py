"""DeepL end to end: a chat through the ASGI app becomes a translation at a mock DeepL, as one-api serves it."""

import dataclasses

import orjson
import pytest

from providers.adapters import adapter_for
from providers.adapters.deepl import target_language
from tests.helpers import consume_log, events_of
from tests.providers.mock_deepl import MockDeepL
from tests.providers.vendor_harness import TEST_CHANNEL, call_context, no_consume_log, sdk_chat_both_ways, serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "deepl-auth-key-secret:fx"
CHAT = {"model": "deepl-zh", "messages": [{"role": "system", "content": "Translate."},
                                          {"role": "user", "content": "Hello, world"},
                                          {"role": "assistant", "content": "ignored"}]}

deepl_server = serve(MockDeepL)


@pytest.fixture
def dw(transactional_db, deepl_server):
    return new_world(deepl_server, username="deepl-user", type=38, key=KEY, models="deepl-zh,deepl-en-us,deepl")


async def test_the_last_user_message_is_translated_into_the_models_language(relay_client, dw):
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=dw.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion" and answer["model"] == "deepl-zh"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "你好，世界"}
    assert answer["choices"][0]["finish_reason"] == "stop"
    sent = dw.upstream.requests[-1]
    assert sent.path == "/v2/translate" and sent.headers["Authorization"] == f"DeepL-Auth-Key {KEY}"
    assert sent.body == {"text": ["Hello, world"], "target_lang": "ZH"}
    log = await consume_log()  # DeepL bills characters: the prompt is the text's length, nothing more
    assert (log.prompt_tokens, log.completion_tokens) == (len("Hello, world"), 0)


async def test_a_stream_is_the_translation_in_one_chunk_then_done(relay_client, dw):
    body = {**CHAT, "model": "deepl-en-us", "stream": True, "stream_options": {"include_usage": True}}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=dw.auth)
    assert response.status_code == 200
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["content"] == "Hello, world"
    assert chunks[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == len("Hello, world")
    assert dw.upstream.requests[-1].body["target_lang"] == "EN-US"


async def test_a_refused_key_keeps_deepls_message_and_costs_nothing(relay_client, dw):
    dw.upstream.then(status=403, error={"message": "Wrong endpoint. Use https://api.deepl.com"})
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=dw.auth)
    assert response.status_code == 403
    assert response.json()["error"]["message"].startswith("Wrong endpoint. Use https://api.deepl.com")
    assert KEY not in response.text
    assert await no_consume_log()


async def test_a_request_without_a_user_message_is_refused_before_deepl(relay_client, dw):
    body = {"model": "deepl-zh", "messages": [{"role": "system", "content": "Translate."}]}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=dw.auth)
    assert response.status_code == 400
    assert "last user message" in response.json()["error"]["message"]
    assert dw.upstream.requests == []


def test_the_model_name_gives_the_target_language():
    assert [target_language(m) for m in ("deepl-zh", "deepl-en-gb", "deepl", "deepl-JA")] == ["ZH", "EN-GB", "ZH",
                                                                                             "JA"]


@pytest.mark.parametrize("key, url", [("free-key:fx", "https://api-free.deepl.com/v2/translate"),
                                      ("paid-key", "https://api.deepl.com/v2/translate")])
def test_without_a_base_url_the_key_picks_deepls_free_or_paid_api(key, url):
    channel = dataclasses.replace(TEST_CHANNEL, type=38, key=key)
    request = adapter_for(38).build_request(call_context(channel, body=CHAT, model="deepl-zh"))
    assert request.url == url


async def test_the_openai_sdk_translates_plain_and_streamed(relay_client, dw):
    answer, (text, usage, finish) = await sdk_chat_both_ways(dw.sdk(relay_client), "deepl-zh", CHAT["messages"])
    assert answer.choices[0].message.content == text == "你好，世界"
    assert answer.usage.prompt_tokens == usage.prompt_tokens == len("Hello, world") and finish == "stop"
