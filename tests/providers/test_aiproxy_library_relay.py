"""AIProxy's knowledge library end to end: a chat through the ASGI app becomes a library question at a mock."""

import orjson
import pytest

from tests.helpers import consume_log, events_of
from tests.providers.mock_aiproxy_library import ANSWER, MockAIProxyLibrary
from tests.providers.vendor_harness import no_consume_log, sdk_chat_both_ways, serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "aiproxy-library-secret"
CHAT = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "What is the greeting?"}]}
SOURCES = "\n\n参考文档：\n1. [Greetings](https://docs.example/greetings)\n"

library_server = serve(MockAIProxyLibrary)


@pytest.fixture
def lw(transactional_db, library_server):
    return new_world(library_server, username="lib-user", type=21, key=KEY, models="gpt-3.5-turbo",
                     config={"library_id": "lib-42"})


async def test_the_last_message_is_asked_of_the_channels_library(relay_client, lw):
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=lw.auth)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == ANSWER + SOURCES
    sent = lw.upstream.requests[-1]
    assert sent.path == "/api/library/ask" and sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"model": "gpt-3.5-turbo", "query": "What is the greeting?", "libraryId": "lib-42",
                         "stream": False}
    log = await consume_log()  # the library counts nothing: the gateway counts both sides
    assert log.prompt_tokens > 0 and log.completion_tokens > 0


async def test_a_stream_is_openai_chunks_ending_with_the_sources(relay_client, lw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=lw.auth)
    assert response.status_code == 200
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == ANSWER + SOURCES
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert lw.upstream.requests[-1].body["stream"] is True
    assert (await consume_log()).completion_tokens > 0


async def test_an_err_code_is_the_vendors_message_unbilled(relay_client, lw):
    lw.upstream.then(err_code=10001, status=200)
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=lw.auth)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("library not found")
    assert KEY not in response.text
    assert await no_consume_log()


async def test_the_openai_sdk_asks_the_library_plain_and_streamed(relay_client, lw):
    answer, (text, usage, finish) = await sdk_chat_both_ways(lw.sdk(relay_client), "gpt-3.5-turbo", CHAT["messages"])
    assert answer.choices[0].message.content == text == ANSWER + SOURCES
    assert finish == "stop"
    assert usage is None  # the library counts nothing to tell; the gateway bills its own count (above)
