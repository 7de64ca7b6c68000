"""Alibaba end to end: OpenAI requests through the ASGI app to a mock DashScope, billed from Qwen's own
counts (Wanx images per image made); and Bailian (OpenAI-compatible mode) against the OpenAI-protocol mock.

What every vendor owes (answers, streams, usage, refusals, failover, embeddings) is in
test_vendor_contract.py; here is what is DashScope's own: its requests, tools, search, Wanx image tasks."""

import asyncio
import base64
import time
from decimal import Decimal

import openai
import orjson
import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator

from billing import pricing
from billing.services import option_set
from providers.adapters.ali import wanx
from tests.factories import ChannelFactory
from tests.helpers import consume_log, events_of
from tests.providers.mock_ali import FIXTURES, PNG, TOOL_CALL, MockAli
from tests.providers.vendor_harness import no_consume_log, serve
from tests.world import new_world

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
    return new_world(ali_server, username="ada", type=17, name="ali", key=KEY,
                     models="qwen-plus,qwen-max-internet,text-embedding-v3,wanx2.1-t2i-turbo", config={"plugin": "pdf"})


async def test_a_chat_is_sent_to_text_generation_with_the_plugin_header(relay_client, aw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 64}, headers=aw.auth)
    assert response.status_code == 200, response.text
    sent = aw.upstream.requests[-1]
    assert sent.path == "/api/v1/services/aigc/text-generation/generation"
    assert sent.headers["Authorization"] == f"Bearer {KEY}" and sent.headers["X-DashScope-Plugin"] == "pdf"
    assert sent.body == {"model": "qwen-plus", "input": {"messages": CHAT["messages"]},
                         "parameters": {"result_format": "message", "max_tokens": 64}}


async def test_a_stream_is_asked_for_with_dashscopes_sse_header(relay_client, aw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=aw.auth)
    assert response.status_code == 200
    assert aw.upstream.requests[-1].headers["X-DashScope-SSE"] == "enable"


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


async def test_embeddings_send_the_texts(relay_client, aw):
    response = await relay_client.post("/v1/embeddings", json={"model": "text-embedding-v3", "input": ["a", "b"]},
                                       headers=aw.auth)
    assert response.status_code == 200, response.text
    assert aw.upstream.requests[-1].body["input"] == {"texts": ["a", "b"]}


async def test_bailian_is_relayed_under_compatible_mode(relay_client, transactional_db, upstream):
    bl = await sync_to_async(new_world)(upstream, username="bl", type=49, name="bailian", key="sk-bailian",
                                        models="qwen-plus")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=bl.auth)
    assert response.status_code == 200, response.text
    sent = upstream.requests[-1]
    assert (sent.path, sent.headers["Authorization"]) == ("/compatible-mode/v1/chat/completions", "Bearer sk-bailian")
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (11, 7)


# --- Wanx images ---------------------------------------------------------------------------------------

WANX = "wanx2.1-t2i-turbo"
WANX_PER_IMAGE = int(Decimal(str(pricing.DEFAULT_MODEL_RATIO[WANX])) * 1000)  # ratio x US$0.002


@pytest.fixture
def iw(aw, monkeypatch):
    """The DashScope world, polling image tasks every 10 ms."""
    monkeypatch.setattr(wanx, "POLL_INTERVAL", 0.01)
    return aw


def submits(upstream) -> list:
    return [r for r in upstream.requests if r.path == "/api/v1/services/aigc/text2image/image-synthesis"]


async def test_images_through_the_sdk_are_a_task_submitted_then_polled_until_it_succeeds(relay_client, iw):
    images = await iw.sdk(relay_client).images.generate(
        model=WANX, prompt="一间有着精致窗户的花店", size="1280x720", n=2,
        extra_body={"negative_prompt": "低分辨率", "prompt_extend": True})
    assert [i.url.rsplit("/", 1)[1] for i in images.data] == [
        f"{task}-{i}.png" for task in iw.upstream.tasks for i in (0, 1)]
    assert images.data[0].revised_prompt == "一间有着精致窗户的花店，高清，细节丰富"
    submit, *polls = iw.upstream.requests
    assert (submit.method, submit.path) == ("POST", "/api/v1/services/aigc/text2image/image-synthesis")
    assert submit.headers["Authorization"] == f"Bearer {KEY}" and submit.headers["X-DashScope-Async"] == "enable"
    assert submit.body == {"model": WANX, "input": {"prompt": "一间有着精致窗户的花店", "negative_prompt": "低分辨率"},
                           "parameters": {"n": 2, "size": "1280*720", "prompt_extend": True}}
    (task_id,) = iw.upstream.tasks
    assert [(p.method, p.path) for p in polls] == [("GET", f"/api/v1/tasks/{task_id}")] * 2  # RUNNING, SUCCEEDED
    assert polls[0].headers["Authorization"] == f"Bearer {KEY}"
    assert not iw.upstream.cancels()
    log = await consume_log()
    assert (log.model_name, log.quota, log.channel_id) == (WANX, WANX_PER_IMAGE * 2, iw.channel.pk)


async def test_b64_json_is_fetched_from_the_task_results_and_inlined(relay_client, iw):
    response = await relay_client.post("/v1/images/generations", headers=iw.auth, json={
        "model": WANX, "prompt": "猫", "response_format": "b64_json"})
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]
    assert base64.b64decode(item["b64_json"]) == PNG and "url" not in item
    assert submits(iw.upstream)[0].body["parameters"] == {"n": 1}  # not Wanx's default of 4
    assert iw.upstream.requests[-1].path.startswith("/files/")
    assert (await consume_log()).quota == WANX_PER_IMAGE


async def test_a_partly_failed_task_answers_and_bills_only_the_images_made(relay_client, iw):
    iw.upstream.then(failed_images=1)
    images = await iw.sdk(relay_client).images.generate(model=WANX, prompt="猫", n=3)
    assert len(images.data) == 2
    assert (await consume_log()).quota == WANX_PER_IMAGE * 2


async def test_status_queries_that_fail_on_the_way_are_asked_again(relay_client, iw):
    iw.upstream.then(poll_errors=2)
    images = await iw.sdk(relay_client).images.generate(model=WANX, prompt="猫")
    assert len(images.data) == 1
    assert len(iw.upstream.requests) == 1 + 2 + 2  # the submit, two 500s, RUNNING, SUCCEEDED


async def test_a_failed_task_is_an_openai_error_with_dashscopes_message_and_costs_nothing(relay_client, iw):
    failure = orjson.loads((FIXTURES / "image_task_failed.json").read_bytes())["output"]
    iw.upstream.then(task_states=("PENDING", "FAILED"),
                     task_error={"code": failure["code"], "message": failure["message"]})
    with pytest.raises(openai.BadRequestError) as refused:
        await iw.sdk(relay_client).images.generate(model=WANX, prompt="猫", size="1024x1024")
    error = refused.value.body
    assert error["message"].startswith(failure["message"]) and error["code"] == "InvalidParameter"
    assert await no_consume_log()


async def test_a_task_filtered_for_content_fails_without_failing_over(relay_client, iw, ali_server):
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    await sync_to_async(ChannelFactory)(type=17, name="ali-backup", base_url=ali_server.url, key=KEY, models=WANX,
                                        priority=-1)
    iw.upstream.then(task_states=("PENDING", "RUNNING", "FAILED"), task_error={
        "code": "DataInspectionFailed", "message": "Output data may contain inappropriate content."})
    response = await relay_client.post("/v1/images/generations", json={"model": WANX, "prompt": "猫"}, headers=iw.auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "content_filter" and error["message"].startswith("Output data may contain")
    assert len(submits(iw.upstream)) == 1
    assert await no_consume_log()


async def test_a_task_that_never_finishes_times_out_costs_nothing_and_is_not_started_twice(
        relay_client, iw, ali_server, monkeypatch):
    monkeypatch.setattr(wanx, "TASK_WAIT", 0.2)
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    await sync_to_async(ChannelFactory)(type=17, name="ali-backup", base_url=ali_server.url, key=KEY, models=WANX,
                                        priority=-1)
    iw.upstream.then(task_states=("PENDING", "RUNNING"))
    started = time.monotonic()
    response = await relay_client.post("/v1/images/generations", json={"model": WANX, "prompt": "猫"}, headers=iw.auth)
    assert time.monotonic() - started < 2
    assert response.status_code == 504
    error = response.json()["error"]
    (task_id,) = iw.upstream.tasks
    assert error["code"] == "task_timeout" and task_id in error["message"] and "RUNNING" in error["message"]
    assert len(submits(iw.upstream)) == 1 and len(iw.upstream.requests) > 3  # polled, then gave up
    assert not iw.upstream.cancels()  # a RUNNING task cannot be cancelled: not asked
    assert await no_consume_log()


async def test_a_task_still_queued_when_the_wait_runs_out_is_cancelled_at_dashscope(relay_client, iw, monkeypatch):
    monkeypatch.setattr(wanx, "TASK_WAIT", 0.2)
    iw.upstream.then(task_states=("PENDING",))
    response = await relay_client.post("/v1/images/generations", json={"model": WANX, "prompt": "猫"}, headers=iw.auth)
    assert response.status_code == 504 and response.json()["error"]["code"] == "task_timeout"
    (task_id,) = iw.upstream.tasks
    [cancel] = iw.upstream.cancels()
    assert cancel.path == f"/api/v1/tasks/{task_id}/cancel" and cancel.headers["Authorization"] == f"Bearer {KEY}"
    assert iw.upstream.tasks[task_id].canceled
    assert await no_consume_log()


async def test_a_cancel_that_fails_changes_nothing_in_the_timeout_answer(relay_client, iw, monkeypatch):
    monkeypatch.setattr(wanx, "TASK_WAIT", 0.2)
    monkeypatch.setattr(wanx, "CANCEL_TIMEOUT", 0.05)
    iw.upstream.then(task_states=("PENDING",), cancel_delay=0.5)  # the cancel outlasts CANCEL_TIMEOUT
    started = time.monotonic()
    response = await relay_client.post("/v1/images/generations", json={"model": WANX, "prompt": "猫"}, headers=iw.auth)
    assert time.monotonic() - started < 1
    assert response.status_code == 504 and response.json()["error"]["code"] == "task_timeout"
    assert len(iw.upstream.cancels()) == 1


async def test_a_client_that_leaves_gets_its_queued_task_cancelled_without_waiting_for_it(asgi_app, iw):
    iw.upstream.then(task_states=("PENDING",), cancel_delay=0.5)
    app = ApplicationCommunicator(asgi_app, {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/images/generations", "raw_path": b"/v1/images/generations", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        "headers": [(b"authorization", iw.auth["Authorization"].encode()), (b"content-type", b"application/json")]})
    await app.send_input({"type": "http.request", "body": orjson.dumps({"model": WANX, "prompt": "猫"})})
    while not any(r.method == "GET" for r in iw.upstream.requests):  # submitted, and polled once
        await asyncio.sleep(0.01)
    left = time.monotonic()
    await app.send_input({"type": "http.disconnect"})
    await app.wait(5)
    assert time.monotonic() - left < 0.4  # the slow cancel (0.5 s) did not hold the relay up
    while wanx._cancels:  # the cancel goes on after the call has ended
        await asyncio.sleep(0.01)
    (task_id,) = iw.upstream.tasks
    assert [c.path for c in iw.upstream.cancels()] == [f"/api/v1/tasks/{task_id}/cancel"]
    assert iw.upstream.tasks[task_id].canceled
    assert await no_consume_log()


async def test_a_throttled_submit_fails_over_before_any_task_exists(relay_client, iw, ali_server):
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    backup = await sync_to_async(ChannelFactory)(type=17, name="ali-backup", base_url=ali_server.url, key=KEY,
                                                 models=WANX, priority=-1)
    iw.upstream.then(status=429, error={"code": "Throttling.RateQuota", "message": "Requests rate limit exceeded",
                                        "request_id": "r1"})
    images = await iw.sdk(relay_client).images.generate(model=WANX, prompt="猫")
    assert len(images.data) == 1 and len(submits(iw.upstream)) == 2
    assert (await consume_log()).channel_id == backup.pk


async def test_a_wrong_key_on_images_gets_dashscopes_auth_error(relay_client, iw):
    await iw.set_key("sk-wrong-key-777")
    with pytest.raises(openai.AuthenticationError) as refused:
        await iw.sdk(relay_client).images.generate(model=WANX, prompt="猫")
    assert refused.value.body["message"].startswith("Invalid API-key provided.")
    assert not iw.upstream.tasks
    assert await no_consume_log()
