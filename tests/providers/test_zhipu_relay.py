"""Zhipu GLM end to end: OpenAI requests through the ASGI app to a mock Zhipu, billed from Zhipu's counts
(images per image).

What every vendor owes (answers, streams, usage, refusals, failover, embeddings) is in
test_vendor_contract.py; here is what is Zhipu's own: signed requests, tools, GLM-4V, CogView."""

import base64
from decimal import Decimal

import openai
import orjson
import pytest

from billing import pricing
from providers.adapters import zhipu
from tests.helpers import consume_log, events_of
from tests.providers.mock_zhipu import FIXTURES, PNG, TOOL_CALL, MockZhipu
from tests.providers.vendor_harness import no_consume_log, serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "zkeyid.zsecretvalue"
CHAT = {"model": "glm-4-plus", "messages": [{"role": "system", "content": "简短回答"},
                                             {"role": "user", "content": "你好"}]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}]


zhipu_server = serve(lambda: MockZhipu(keys={"zkeyid": "zsecretvalue"}))


@pytest.fixture
def zw(transactional_db, zhipu_server):
    zhipu._tokens.clear()
    return new_world(zhipu_server, username="zoe", type=16, name="zhipu", key=KEY,
                     models="glm-4-plus,glm-4v-flash,embedding-3,cogview-4")


async def test_a_chat_is_signed_with_a_jwt_and_sampling_kept_inside_zhipus_bounds(relay_client, zw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "temperature": 0, "top_p": 1},
                                       headers=zw.auth)
    assert response.status_code == 200, response.text
    sent = zw.upstream.requests[-1]
    assert sent.path == "/api/paas/v4/chat/completions"
    assert sent.headers["Authorization"].startswith("Bearer ") and "zsecretvalue" not in sent.headers["Authorization"]
    assert sent.body["messages"] == CHAT["messages"]
    assert (sent.body["temperature"], sent.body["top_p"], sent.body["do_sample"]) == (0.01, 0.99, False)


async def test_a_stream_is_asked_for_without_stream_options(relay_client, zw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=zw.auth)
    assert response.status_code == 200
    assert "stream_options" not in zw.upstream.requests[-1].body


async def test_tool_calls_come_back_in_openai_form_plain_and_streamed(relay_client, zw):
    zw.upstream.then(tool_call=True).then(tool_call=True)
    body = {**CHAT, "tools": TOOLS, "tool_choice": "auto"}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=zw.auth)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [TOOL_CALL]
    assert zw.upstream.requests[-1].body["tools"] == TOOLS

    response = await relay_client.post("/v1/chat/completions", json={**body, "stream": True}, headers=zw.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    calls = [c for ch in chunks for c in ch["choices"][0]["delta"].get("tool_calls", [])]
    assert calls == [TOOL_CALL]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_tool_results_in_history_reach_zhipu(relay_client, zw):
    history = [{"role": "user", "content": "北京天气?"},
               {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
               {"role": "tool", "tool_call_id": "call_mock_1", "content": "晴, 3°C"}]
    response = await relay_client.post("/v1/chat/completions", json={"model": "glm-4-plus", "messages": history,
                                                                      "tools": TOOLS}, headers=zw.auth)
    assert response.status_code == 200
    assert zw.upstream.requests[-1].body["messages"][2] == history[2]


async def test_images_go_to_glm_4v_as_bare_base64(relay_client, zw):
    content = [{"type": "text", "text": "这是什么?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    body = {"model": "glm-4v-flash", "messages": [{"role": "user", "content": content}]}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=zw.auth)
    assert response.status_code == 200
    assert zw.upstream.requests[-1].body["messages"][0]["content"][1]["image_url"]["url"] == "iVBORw0KGgo="


async def test_embeddings_send_the_list(relay_client, zw):
    response = await relay_client.post("/v1/embeddings", json={"model": "embedding-3", "input": ["a", "bb"]},
                                       headers=zw.auth)
    assert response.status_code == 200, response.text
    sent = zw.upstream.requests[-1]
    assert sent.path == "/api/paas/v4/embeddings" and sent.body["input"] == ["a", "bb"]


# --- CogView images ------------------------------------------------------------------------------------

COGVIEW_PER_IMAGE = int(Decimal(str(pricing.DEFAULT_MODEL_RATIO["cogview-4"])) * 1000)  # ratio x US$0.002


async def test_an_image_through_the_sdk_is_signed_sent_as_cogview_documents_and_billed_per_image(relay_client, zw):
    image = await zw.sdk(relay_client).images.generate(model="cogview-4", prompt="一只可爱的小猫咪", size="1024x1024",
                                                       quality="hd", user="user-42")
    assert image.data[0].url.startswith(zw.upstream.url + "/files/cogview-4-")
    assert image.data[0].b64_json is None and image.created > 0
    sent = zw.upstream.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/api/paas/v4/images/generations")
    assert "zsecretvalue" not in sent.headers["Authorization"]  # a JWT, which the mock verified
    assert sent.body == {"model": "cogview-4", "prompt": "一只可爱的小猫咪", "size": "1024x1024", "quality": "hd",
                         "user_id": "user-42"}
    log = await consume_log()
    assert (log.model_name, log.quota, log.channel_id) == ("cogview-4", COGVIEW_PER_IMAGE, zw.channel.pk)


async def test_b64_json_is_fetched_from_zhipus_link_and_inlined(relay_client, zw):
    image = await zw.sdk(relay_client).images.generate(model="cogview-4", prompt="猫", response_format="b64_json")
    assert base64.b64decode(image.data[0].b64_json) == PNG and image.data[0].url is None
    generate, fetch = zw.upstream.requests[-2:]
    assert generate.path == "/api/paas/v4/images/generations" and "response_format" not in generate.body
    assert fetch.method == "GET" and fetch.path.startswith("/files/cogview-4-")
    assert (await consume_log()).quota == COGVIEW_PER_IMAGE


async def test_n_images_are_n_cogview_requests_at_once_billed_per_image(relay_client, zw):
    image = await zw.sdk(relay_client).images.generate(model="cogview-4", prompt="猫", n=2, size="1024x1024")
    assert len(image.data) == 2 and len({item.url for item in image.data}) == 2
    assert [(r.path, r.body) for r in zw.upstream.requests] == [
        ("/api/paas/v4/images/generations", {"model": "cogview-4", "prompt": "猫", "size": "1024x1024"})] * 2
    assert (await consume_log()).quota == 2 * COGVIEW_PER_IMAGE


async def test_cogview_requests_that_fail_are_left_out_and_not_billed(relay_client, zw):
    zw.upstream.then().then(status=500).then()
    image = await zw.sdk(relay_client).images.generate(model="cogview-4", prompt="猫", n=3, response_format="b64_json")
    assert [base64.b64decode(item.b64_json) for item in image.data] == [PNG, PNG]
    assert len([r for r in zw.upstream.requests if r.method == "POST"]) == 3
    assert (await consume_log()).quota == 2 * COGVIEW_PER_IMAGE


async def test_when_every_cogview_request_fails_the_first_error_is_the_answer_and_costs_nothing(relay_client, zw):
    refusal = orjson.loads((FIXTURES / "error_images_sensitive.json").read_bytes())
    zw.upstream.then(status=400, error=refusal).then(status=400, error=refusal)
    with pytest.raises(openai.BadRequestError) as refused:
        await zw.sdk(relay_client).images.generate(model="cogview-4", prompt="不安全的内容", n=2)
    assert refused.value.body["zhipu_code"] == "1301" and len(zw.upstream.requests) == 2
    assert await no_consume_log()


async def test_a_refused_image_prompt_is_an_openai_error_with_zhipus_message_and_costs_nothing(relay_client, zw):
    refusal = orjson.loads((FIXTURES / "error_images_sensitive.json").read_bytes())
    zw.upstream.then(status=400, error=refusal)
    with pytest.raises(openai.BadRequestError) as refused:
        await zw.sdk(relay_client).images.generate(model="cogview-4", prompt="不安全的内容")
    error = refused.value.body
    assert error["message"].startswith(refusal["error"]["message"])
    assert (error["code"], error["zhipu_code"]) == ("content_filter", "1301")
    assert await no_consume_log()
