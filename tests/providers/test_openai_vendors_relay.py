"""The one-api types that speak OpenAI's protocol at their own address, end to end: each channel's request
reaches the vendor's path with its bearer key, the answer and the stream come back, and the vendor's counts
are billed. MiniMax's chatcompletion_v2 and its base_resp errors are its own."""

import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.services import option_set
from providers.adapters import adapter_for
from tests.factories import ChannelFactory
from tests.helpers import consume_log, events_of
from tests.providers.vendor_harness import no_consume_log, text_of
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-vendor-secret-key"
CHAT = {"model": "vendor-model", "messages": [{"role": "user", "content": "Hello"}]}

# type, the path under the vendor's default base URL that the base stands for, the chat path sent
CASES = [
    (2, "", "/v1/chat/completions"),
    (6, "", "/v1/chat/completions"),
    (7, "", "/v1/chat/completions"),
    (9, "", "/v1/chat/completions"),
    (19, "", "/v1/chat/completions"),
    (22, "/api/openapi", "/api/openapi/v1/chat/completions"),
    (26, "", "/v1/chat/completions"),
    (31, "", "/v1/chat/completions"),
    (27, "", "/v1/text/chatcompletion_v2"),
]


@pytest.mark.parametrize("type_id, base_path, path", CASES)
async def test_a_chat_reaches_the_vendors_path_and_is_billed_its_counts(relay_client, upstream, type_id,
                                                                        base_path, path):
    world = await sync_to_async(new_world)(upstream, username=f"u{type_id}", type=type_id, key=KEY,
                                           models="vendor-model", base_path=base_path)
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the mock upstream."
    sent = upstream.requests[-1]
    assert sent.path == path and sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == CHAT
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (11, 7)


@pytest.mark.parametrize("type_id, base_path, path", CASES)
async def test_a_stream_comes_back_as_the_vendor_sent_it(relay_client, upstream, type_id, base_path, path):
    world = await sync_to_async(new_world)(upstream, username=f"s{type_id}", type=type_id, key=KEY,
                                           models="vendor-model", base_path=base_path)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    assert response.status_code == 200
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    assert text_of([orjson.loads(e) for e in events[:-1]]) == "Hello from the mock upstream."
    assert upstream.requests[-1].path == path
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (11, 7)


@pytest.mark.parametrize("type_id, base_path, path", CASES)
async def test_a_vendor_refusal_keeps_its_message_and_costs_nothing(relay_client, upstream, type_id, base_path,
                                                                    path):
    world = await sync_to_async(new_world)(upstream, username=f"e{type_id}", type=type_id, key=KEY,
                                           models="vendor-model", base_path=base_path)
    upstream.then(status=401, error={"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                               "code": "invalid_api_key"}})
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("Incorrect API key provided")
    assert KEY not in response.text
    assert await no_consume_log()


def test_each_type_defaults_to_one_apis_base_url():
    assert {t: adapter_for(t).default_base_url for t, _, _ in CASES} == {
        2: "https://oa.api2d.net", 6: "https://api.openaimax.com", 7: "https://api.ohmygpt.com",
        9: "https://api.caipacity.com", 19: "https://ai.360.cn", 22: "https://fastgpt.run/api/openapi",
        26: "https://api.baichuan-ai.com", 31: "https://api.lingyiwanwu.com", 27: "https://api.minimax.chat"}


MINIMAX_LOGIN_FAILED = orjson.dumps({"id": "", "choices": None, "base_resp": {
    "status_code": 1004, "status_msg": "login fail: Please carefully check the authorization"}})


@pytest.mark.parametrize("stream", [False, True])
async def test_a_minimax_base_resp_error_in_a_200_is_its_message_unbilled(relay_client, upstream, stream):
    world = await sync_to_async(new_world)(upstream, username="mm", type=27, key=KEY, models="abab6.5s-chat")
    upstream.then(raw=MINIMAX_LOGIN_FAILED)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "abab6.5s-chat",
                                                                     "stream": stream}, headers=world.auth)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["message"].startswith("login fail") and error["code"] == "invalid_api_key"
    assert error["minimax_code"] == 1004
    assert KEY not in response.text
    assert await no_consume_log()


async def test_a_minimax_rate_limit_fails_over_to_the_next_channel(relay_client, upstream):
    world = await sync_to_async(new_world)(upstream, username="mm2", type=27, key=KEY, models="abab6.5s-chat",
                                           priority=10)
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    await sync_to_async(ChannelFactory)(type=27, key=KEY, base_url=upstream.url, models="abab6.5s-chat", priority=0)
    upstream.then(raw=orjson.dumps({"base_resp": {"status_code": 1002, "status_msg": "rate limit exceeded(RPM)"}}))
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "abab6.5s-chat"},
                                       headers=world.auth)
    assert response.status_code == 200, response.text
    assert len(upstream.requests) == 2


async def test_a_proxy_channel_sends_the_request_as_it_came_with_its_key_as_the_header(relay_client, upstream):
    world = await sync_to_async(new_world)(upstream, username="proxy", type=43, key="Token raw-proxy-credential",
                                           models="vendor-model,text-embedding-3-small", base_path="/gateway")
    body = {**CHAT, "temperature": 0.3, "user": "someone"}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=world.auth)
    assert response.status_code == 200, response.text
    sent = upstream.requests[-1]
    assert sent.path == "/gateway/v1/chat/completions" and sent.body == body
    assert sent.headers["Authorization"] == "Token raw-proxy-credential"
    response = await relay_client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"},
                                       headers=world.auth)
    assert response.status_code == 200 and upstream.requests[-1].path == "/gateway/v1/embeddings"
    assert "raw-proxy-credential" not in response.text
