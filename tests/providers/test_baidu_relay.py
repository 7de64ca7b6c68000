"""Baidu end to end: OpenAI requests through the ASGI app to a mock Baidu (token endpoint, ERNIE chat,
embeddings), billed from Baidu's own counts; and Qianfan v2 against the OpenAI-protocol mock."""

import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.models import Log
from billing.services import option_set
from providers.adapters import baidu
from tests.factories import ChannelFactory, TokenFactory, UserFactory
from tests.helpers import consume_log, events_of, flush
from tests.providers.mock_baidu import FUNCTION_CALL, REPLY, MockBaidu
from tests.providers.vendor_harness import assert_interrupted, no_consume_log, sdk_chat_both_ways, serve, stream_chunks
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "bdApiKey123|bdSecretKey456"
CHAT = {"model": "ERNIE-3.5-8K", "messages": [{"role": "system", "content": "简短回答"},
                                               {"role": "user", "content": "你好"}]}
TOOLS = [{"type": "function", "function": {"name": "get_current_weather", "description": "天气",
                                           "parameters": {"type": "object",
                                                          "properties": {"location": {"type": "string"}}}}}]


baidu_server = serve(lambda: MockBaidu(keys={"bdApiKey123": "bdSecretKey456"}))


@pytest.fixture
def bw(transactional_db, baidu_server):
    baidu._tokens.clear()
    return new_world(baidu_server, username="bo", type=15, name="baidu", key=KEY,
                     models="ERNIE-3.5-8K,ERNIE-4.0-8K,Embedding-V1")


async def backup_channel(server, **kwargs):
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    return await sync_to_async(ChannelFactory)(type=15, name="baidu-backup", base_url=server.url, key=KEY,
                                               models="ERNIE-3.5-8K", priority=-1, **kwargs)


async def test_plain_chat_fetches_a_token_converts_and_bills_baidus_usage(relay_client, bw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 100}, headers=bw.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion" and answer["model"] == "ERNIE-3.5-8K"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": REPLY}
    assert answer["usage"] == {"prompt_tokens": 15, "completion_tokens": 9, "total_tokens": 24}
    token_request, sent = bw.upstream.requests
    assert token_request.path == "/oauth/2.0/token"
    assert sent.path == "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/completions"
    assert sent.query.startswith("access_token=24.mock")
    assert sent.body == {"messages": [{"role": "user", "content": "你好"}], "stream": False, "system": "简短回答",
                         "max_output_tokens": 100}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.model_name) == (15, 9, "ERNIE-3.5-8K")
    assert log.channel_id == bw.channel.pk and log.quota > 0

    await relay_client.post("/v1/chat/completions", json=CHAT, headers=bw.auth)
    assert bw.upstream.token_requests == 1, "the token is cached across requests"


async def test_stream_hides_usage_unless_asked_and_bills_the_end_usage(relay_client, bw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=bw.auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = stream_chunks(response.content)
    assert all(c["choices"] and "usage" not in c for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert bw.upstream.chat_requests[-1].body["stream"] is True
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (15, 9, True)


async def test_stream_gives_a_usage_chunk_when_the_client_asks(relay_client, bw):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=bw.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 15, "completion_tokens": 9,
                                                                   "total_tokens": 24}


async def test_function_calls_come_back_as_tool_calls_plain_and_streamed(relay_client, bw):
    bw.upstream.then(function_call=True).then(function_call=True)
    body = {**CHAT, "tools": TOOLS}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=bw.auth)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": FUNCTION_CALL["name"],
                                                              "arguments": FUNCTION_CALL["arguments"]}
    assert bw.upstream.chat_requests[-1].body["functions"] == [TOOLS[0]["function"]]

    response = await relay_client.post("/v1/chat/completions", json={**body, "stream": True}, headers=bw.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    calls = [c for ch in chunks for c in ch["choices"][0]["delta"].get("tool_calls", [])]
    assert [c["function"]["name"] for c in calls] == ["get_current_weather"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_fixture_stream_is_relayed_with_its_usage(relay_client, bw):
    bw.upstream.then(fixture="stream.sse")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=bw.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "你好！有什么我可以帮助你的吗？"
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (5, 11)


async def test_an_expired_token_is_dropped_and_the_next_try_gets_a_fresh_one(relay_client, bw, baidu_server):
    backup = await backup_channel(baidu_server)
    await relay_client.post("/v1/chat/completions", json=CHAT, headers=bw.auth)
    baidu_server.expire_tokens()  # Baidu now answers error_code 110 to the cached token
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bw.auth)
    assert response.status_code == 200, response.text
    assert baidu_server.token_requests == 2
    await flush()
    logs = await sync_to_async(list)(Log.objects.filter(type=Log.Type.CONSUME).order_by("id"))
    assert logs[-1].channel_id == backup.pk


async def test_an_expired_token_without_a_backup_fails_once_then_recovers(relay_client, bw, baidu_server):
    await relay_client.post("/v1/chat/completions", json=CHAT, headers=bw.auth)
    baidu_server.expire_tokens()
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bw.auth)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "access_token_expired"
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bw.auth)
    assert response.status_code == 200, response.text


async def test_rate_limit_fails_over_to_another_channel(relay_client, bw, baidu_server):
    backup = await backup_channel(baidu_server)
    bw.upstream.then(baidu_error={"error_code": 18, "error_msg": "Open api qps request limit reached"})
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bw.auth)
    assert response.status_code == 200, response.text
    assert len(bw.upstream.chat_requests) == 2
    assert (await consume_log()).channel_id == backup.pk


async def test_quota_error_keeps_baidus_message_does_not_fail_over_and_costs_nothing(relay_client, bw, baidu_server):
    await backup_channel(baidu_server)
    bw.upstream.then(baidu_error={"error_code": 17, "error_msg": "Open api daily request limit reached"})
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bw.auth)
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["message"].startswith("Open api daily request limit reached")
    assert (error["code"], error["baidu_code"]) == ("insufficient_quota", 17)
    assert len(bw.upstream.chat_requests) == 1
    assert await no_consume_log()


async def test_a_wrong_secret_is_refused_without_leaking_it(relay_client, bw):
    await bw.set_key("bdApiKey123|wrongSecret999")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bw.auth)
    assert response.status_code == 401
    assert "Client authentication failed" in response.json()["error"]["message"]
    assert "wrongSecret999" not in response.text
    assert not bw.upstream.chat_requests


async def test_a_malformed_key_is_refused_without_leaking_it(relay_client, bw):
    await bw.set_key("nopipesecret123")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bw.auth)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "invalid_channel_key"
    assert "nopipesecret123" not in response.text
    assert not bw.upstream.requests


async def test_embeddings_are_converted_and_billed(relay_client, bw):
    bw.upstream.then(prompt_tokens=7)
    response = await relay_client.post("/v1/embeddings", json={"model": "Embedding-V1", "input": ["a", "bb"]},
                                       headers=bw.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "list" and len(answer["data"]) == 2 and answer["usage"]["prompt_tokens"] == 7
    sent = bw.upstream.chat_requests[-1]
    assert sent.path == "/rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/embedding-v1"
    assert sent.body == {"input": ["a", "bb"]}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (7, 0)


async def test_stream_cut_mid_way_ends_with_an_error_event_and_bills_what_arrived(relay_client, bw):
    bw.upstream.then(reply="一二三四五六七八九十" * 5, cut_after=3)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=bw.auth)
    assert_interrupted(response.content)
    log = await consume_log()
    assert 0 < log.completion_tokens < 50


async def test_malformed_event_does_not_break_the_stream(relay_client, bw):
    bw.upstream.then(malformed=True)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=bw.auth)
    assert response.content.endswith(b"data: [DONE]\n\n")
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    assert (await consume_log()).completion_tokens == 9


async def test_openai_sdk_plain_and_streamed(relay_client, bw):
    sdk = bw.sdk(relay_client)
    answer, (text, usage, _) = await sdk_chat_both_ways(sdk, "ERNIE-3.5-8K", CHAT["messages"])
    assert answer.choices[0].message.content == REPLY
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (15, 9)
    assert text == REPLY and usage.completion_tokens == 9


async def test_qianfan_v2_is_relayed_to_v2_with_a_bearer_key(relay_client, transactional_db, upstream):
    user = await sync_to_async(UserFactory)(username="qf", quota=10_000_000)
    token = await sync_to_async(TokenFactory)(user=user, name="qf-key", remain_quota=5_000_000)
    await sync_to_async(ChannelFactory)(type=47, name="qianfan", base_url=upstream.url, key="bce-v3/ALTAK-x/y",
                                        models="ernie-4.0-8k")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "ernie-4.0-8k"},
                                       headers={"Authorization": f"Bearer sk-{token.key}"})
    assert response.status_code == 200, response.text
    sent = upstream.requests[-1]
    assert (sent.path, sent.headers["Authorization"]) == ("/v2/chat/completions", "Bearer bce-v3/ALTAK-x/y")
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (11, 7)


async def test_functions_that_are_not_an_array_are_refused_before_the_vendor(relay_client, bw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "functions": True}, headers=bw.auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "functions"
    assert bw.upstream.requests == []
