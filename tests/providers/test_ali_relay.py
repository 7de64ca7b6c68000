"""Alibaba end to end: OpenAI requests through the ASGI app to a mock DashScope, billed from Qwen's own
counts; and Bailian (OpenAI-compatible mode) against the OpenAI-protocol mock."""

import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.services import option_set
from tests.factories import ChannelFactory, TokenFactory, UserFactory
from tests.helpers import consume_log, events_of
from tests.providers.mock_ali import REPLY, TOOL_CALL, MockAli
from tests.providers.vendor_harness import assert_interrupted, sdk_stream, serve, stream_chunks, world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-dashscope-mock-key"
CHAT = {"model": "qwen-plus", "messages": [{"role": "system", "content": "简短回答"},
                                            {"role": "user", "content": "你是谁"}]}
TOOLS = [{"type": "function", "function": {"name": "get_current_weather", "description": "天气",
                                           "parameters": {"type": "object",
                                                          "properties": {"location": {"type": "string"}}}}}]


ali_server = serve(lambda: MockAli(keys={KEY}))


@pytest.fixture
def aw(transactional_db, ali_server):
    return world(ali_server, username="ada", type=17, name="ali", key=KEY,
                 models="qwen-plus,qwen-max-internet,text-embedding-v3", config={"plugin": "pdf"})


async def test_plain_chat_is_converted_and_billed_from_qwens_usage(relay_client, aw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 64}, headers=aw.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion" and answer["model"] == "qwen-plus"
    assert answer["choices"][0]["message"]["content"] == REPLY
    assert answer["usage"] == {"prompt_tokens": 22, "completion_tokens": 12, "total_tokens": 34}
    sent = aw.upstream.requests[-1]
    assert sent.path == "/api/v1/services/aigc/text-generation/generation"
    assert sent.headers["Authorization"] == f"Bearer {KEY}" and sent.headers["X-DashScope-Plugin"] == "pdf"
    assert sent.body == {"model": "qwen-plus", "input": {"messages": CHAT["messages"]},
                         "parameters": {"result_format": "message", "max_tokens": 64}}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.model_name) == (22, 12, "qwen-plus")


async def test_stream_is_incremental_hides_usage_unless_asked_and_is_billed(relay_client, aw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=aw.auth)
    assert response.status_code == 200
    chunks = stream_chunks(response.content)
    assert all(c["choices"] and "usage" not in c for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert aw.upstream.requests[-1].headers["X-DashScope-SSE"] == "enable"
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (22, 12, True)


async def test_stream_gives_a_usage_chunk_when_the_client_asks(relay_client, aw):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=aw.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 12


async def test_tool_calls_come_back_in_openai_form_plain_and_streamed(relay_client, aw):
    aw.upstream.then(tool_call=True).then(tool_call=True)
    body = {**CHAT, "tools": TOOLS}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=aw.auth)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [{k: v for k, v in TOOL_CALL.items() if k != "index"}]
    assert aw.upstream.requests[-1].body["parameters"]["tools"] == TOOLS

    response = await relay_client.post("/v1/chat/completions", json={**body, "stream": True}, headers=aw.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    calls = [c for ch in chunks for c in ch["choices"][0]["delta"].get("tool_calls", [])]
    assert "".join(c["function"].get("arguments", "") for c in calls) == TOOL_CALL["function"]["arguments"]
    assert [c["id"] for c in calls if "id" in c] == ["call_mock_qwen"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_internet_model_enables_search(relay_client, aw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "qwen-max-internet"},
                                       headers=aw.auth)
    assert response.status_code == 200
    sent = aw.upstream.requests[-1].body
    assert sent["model"] == "qwen-max" and sent["parameters"]["enable_search"] is True


async def test_embeddings_are_converted_and_billed(relay_client, aw):
    aw.upstream.then(prompt_tokens=6)
    response = await relay_client.post("/v1/embeddings", json={"model": "text-embedding-v3", "input": ["a", "b"]},
                                       headers=aw.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "list" and [d["index"] for d in answer["data"]] == [0, 1]
    assert answer["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    assert aw.upstream.requests[-1].body["input"] == {"texts": ["a", "b"]}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (6, 0)


async def test_a_wrong_key_gets_dashscopes_auth_error(relay_client, aw):
    await aw.set_key("sk-wrong-key-777")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=aw.auth)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key" and error["message"].startswith("Invalid API-key provided.")
    assert "sk-wrong-key-777" not in response.text


async def test_throttling_fails_over_to_another_channel(relay_client, aw, ali_server):
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    backup = await sync_to_async(ChannelFactory)(type=17, name="ali-backup", base_url=ali_server.url, key=KEY,
                                                 models="qwen-plus", priority=-1)
    aw.upstream.then(status=429, error={"code": "Throttling.RateQuota", "message": "Requests rate limit exceeded",
                                        "request_id": "r1"})
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=aw.auth)
    assert response.status_code == 200, response.text
    assert len(aw.upstream.requests) == 2
    assert (await consume_log()).channel_id == backup.pk


async def test_arrears_keep_the_message_and_do_not_fail_over(relay_client, aw, ali_server):
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    await sync_to_async(ChannelFactory)(type=17, name="ali-backup", base_url=ali_server.url, key=KEY,
                                        models="qwen-plus", priority=-1)
    aw.upstream.then(status=400, error={"code": "Arrearage", "message": "Access denied, please make sure your "
                                                                        "account is in good standing.",
                                        "request_id": "r2"})
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=aw.auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "insufficient_quota" and "good standing" in error["message"]
    assert len(aw.upstream.requests) == 1


async def test_stream_cut_mid_way_is_billed_from_qwens_count_so_far(relay_client, aw):
    aw.upstream.then(reply="一二三四五六七八九十" * 3, completion_tokens=30, cut_after=4)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=aw.auth)
    assert_interrupted(response.content)
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (22, 12)  # output_tokens of the 4th event


async def test_malformed_event_does_not_break_the_stream(relay_client, aw):
    aw.upstream.then(malformed=True)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=aw.auth)
    assert response.content.endswith(b"data: [DONE]\n\n")
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    assert (await consume_log()).completion_tokens == 12


async def test_openai_sdk_plain_and_streamed(relay_client, aw):
    sdk = aw.sdk(relay_client)
    answer = await sdk.chat.completions.create(model="qwen-plus", messages=CHAT["messages"])
    assert answer.choices[0].message.content == REPLY
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (22, 12)

    stream = await sdk.chat.completions.create(model="qwen-plus", messages=CHAT["messages"], stream=True,
                                               stream_options={"include_usage": True})
    text, usage, _ = await sdk_stream(stream)
    assert text == REPLY and usage.completion_tokens == 12


async def test_bailian_is_relayed_under_compatible_mode(relay_client, transactional_db, upstream):
    user = await sync_to_async(UserFactory)(username="bl", quota=10_000_000)
    token = await sync_to_async(TokenFactory)(user=user, name="bl-key", remain_quota=5_000_000)
    await sync_to_async(ChannelFactory)(type=49, name="bailian", base_url=upstream.url, key="sk-bailian",
                                        models="qwen-plus")
    response = await relay_client.post("/v1/chat/completions", json=CHAT,
                                       headers={"Authorization": f"Bearer sk-{token.key}"})
    assert response.status_code == 200, response.text
    sent = upstream.requests[-1]
    assert (sent.path, sent.headers["Authorization"]) == ("/compatible-mode/v1/chat/completions", "Bearer sk-bailian")
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (11, 7)
