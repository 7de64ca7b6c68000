"""Baidu end to end: OpenAI requests through the ASGI app to a mock Baidu (token endpoint, ERNIE chat,
embeddings); and Qianfan v2 against the OpenAI-protocol mock.

What every vendor owes (answers, streams, usage, refusals, failover) is in test_vendor_contract.py;
here is what is Baidu's own: its access tokens, the ERNIE request, function calls."""

import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.models import Log
from billing.services import option_set
from providers.adapters import baidu
from tests.factories import ChannelFactory
from tests.helpers import consume_log, events_of, flush
from tests.providers.mock_baidu import FUNCTION_CALL, MockBaidu
from tests.providers.vendor_harness import serve
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


async def test_a_chat_fetches_a_token_once_and_is_sent_to_ernie(relay_client, bw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 100}, headers=bw.auth)
    assert response.status_code == 200, response.text
    token_request, sent = bw.upstream.requests
    assert token_request.path == "/oauth/2.0/token"
    assert sent.path == "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/completions"
    assert sent.query.startswith("access_token=24.mock")
    assert sent.body == {"messages": [{"role": "user", "content": "你好"}], "stream": False, "system": "简短回答",
                         "max_output_tokens": 100}

    await relay_client.post("/v1/chat/completions", json=CHAT, headers=bw.auth)
    assert bw.upstream.token_requests == 1, "the token is cached across requests"


async def test_a_stream_is_asked_for_in_the_body(relay_client, bw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=bw.auth)
    assert response.status_code == 200
    assert bw.upstream.chat_requests[-1].body["stream"] is True


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


async def test_embeddings_are_sent_to_the_models_embedding_endpoint(relay_client, bw):
    response = await relay_client.post("/v1/embeddings", json={"model": "Embedding-V1", "input": ["a", "bb"]},
                                       headers=bw.auth)
    assert response.status_code == 200, response.text
    sent = bw.upstream.chat_requests[-1]
    assert sent.path == "/rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/embedding-v1"
    assert sent.body == {"input": ["a", "bb"]}


async def test_qianfan_v2_is_relayed_to_v2_with_a_bearer_key(relay_client, transactional_db, upstream):
    qf = await sync_to_async(new_world)(upstream, username="qf", type=47, name="qianfan", key="bce-v3/ALTAK-x/y",
                                        models="ernie-4.0-8k")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "ernie-4.0-8k"},
                                       headers=qf.auth)
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
