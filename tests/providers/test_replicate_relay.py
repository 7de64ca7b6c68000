"""Replicate end to end: chats and images through the ASGI app as predictions at a mock Replicate."""

import base64
import dataclasses

import orjson
import pytest
from asgiref.sync import sync_to_async

from providers.adapters import replicate
from providers.adapters.base import UpstreamError
from tests.helpers import consume_log, events_of
from tests.providers.mock_replicate import PNG, MockReplicate
from tests.providers.vendor_harness import TEST_CHANNEL, call_context, no_consume_log, sdk_chat_both_ways, serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "r8_mock_key_secret"
LLAMA = "meta/meta-llama-3-8b-instruct"
FLUX = "black-forest-labs/flux-schnell"
CHAT = {"model": LLAMA, "messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Say hello"}]}

replicate_server = serve(MockReplicate)


@pytest.fixture
def rw(transactional_db, replicate_server, monkeypatch):
    monkeypatch.setattr(replicate, "POLL_INTERVAL", 0.01)
    return new_world(replicate_server, username="rep-user", type=46, key=KEY, models=f"{LLAMA},{FLUX}")


async def test_a_chat_is_a_prediction_of_the_models_prompt_billed_its_metrics(relay_client, rw):
    rw.upstream.then(polls=2)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "temperature": 0.2}, headers=rw.auth)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello from Replicate."
    create, *polls = rw.upstream.requests
    assert create.path == f"/v1/models/{LLAMA}/predictions" and create.headers["Authorization"] == f"Bearer {KEY}"
    assert create.headers["Prefer"] == "wait"
    assert create.body == {"input": {"prompt": "system: Be brief.\nuser: Say hello\n", "max_tokens": 500,
                                     "temperature": 0.2, "top_p": 1.0, "presence_penalty": 0.0,
                                     "frequency_penalty": 0.0}}
    assert [p.path for p in polls] == ["/v1/predictions/p1"] * 3
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (12, 3)


async def test_a_stream_is_the_predictions_output_events_as_chunks(relay_client, rw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=rw.auth)
    assert response.status_code == 200
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello from Replicate."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    create, stream, ended = rw.upstream.requests
    assert create.body["stream"] is True and stream.path == "/stream/p1"
    assert ended.path == "/v1/predictions/p1"  # the events tell no counts: the ended prediction does
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (12, 3)


async def test_an_image_is_a_prediction_whose_links_are_openais_answer_billed_per_image(relay_client, rw):
    rw.upstream.then(output="https://replicate.delivery/cat.webp", polls=1)
    response = await relay_client.post("/v1/images/generations", json={"model": FLUX, "prompt": "a cat",
                                                                       "size": "1792x1024"}, headers=rw.auth)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [{"url": "https://replicate.delivery/cat.webp"}]
    assert rw.upstream.requests[0].body == {"input": {"prompt": "a cat", "aspect_ratio": "16:9"}}
    assert (await consume_log()).quota > 0


async def test_a_failed_prediction_is_an_error_that_costs_nothing(relay_client, rw):
    rw.upstream.then(polls=1, failed="CUDA out of memory")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=rw.auth)
    assert response.status_code == 502
    assert "CUDA out of memory" in response.json()["error"]["message"]
    assert await no_consume_log()


async def test_a_bad_key_keeps_replicates_detail_and_never_shows_the_key(relay_client, replicate_server,
                                                                          transactional_db):
    world = await sync_to_async(new_world)(replicate_server, username="rep-bad", type=46, key="r8_wrong_key_value",
                                           models=LLAMA)
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("You did not pass a valid authentication token")
    assert "r8_wrong_key_value" not in response.text
    assert await no_consume_log()


async def test_a_model_not_named_owner_slash_name_is_refused_before_replicate():
    with pytest.raises(UpstreamError) as refused:
        await replicate.ReplicateAdapter().create(call_context(model="llama"), session=None, wait=True)
    assert refused.value.status == 400 and "owner/name" in refused.value.message


def test_one_apis_stored_base_url_is_read_as_the_api_host():
    channel = dataclasses.replace(TEST_CHANNEL, base_url="https://api.replicate.com/v1/models/")
    assert replicate.ReplicateAdapter().base_url(call_context(channel)) == "https://api.replicate.com"


async def test_an_error_event_mid_stream_ends_the_stream_with_an_openai_error(relay_client, rw):
    rw.upstream.then(stream_error="The model crashed")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=rw.auth)
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    assert orjson.loads(events[0])["choices"][0]["delta"]["content"] == "Hello"
    assert "The model crashed" in orjson.loads(events[-2])["error"]["message"]


async def test_a_prediction_that_outlasts_the_wait_is_cancelled_and_costs_nothing(relay_client, rw, monkeypatch,
                                                                                  settings):
    settings.RELAY_TIMEOUT = 0
    monkeypatch.setattr(replicate, "TASK_WAIT", 0.05)
    rw.upstream.then(polls=1000)
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=rw.auth)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "task_timeout"
    assert rw.upstream.requests[-1].method == "POST"
    assert rw.upstream.requests[-1].path == "/v1/predictions/p1/cancel"
    assert await no_consume_log()


async def test_the_openai_sdk_chats_plain_and_streamed(relay_client, rw):
    answer, (text, usage, finish) = await sdk_chat_both_ways(rw.sdk(relay_client), LLAMA, CHAT["messages"])
    assert answer.choices[0].message.content == text == "Hello from Replicate."
    assert answer.usage.completion_tokens == usage.completion_tokens == 3 and finish == "stop"


async def test_an_image_asked_for_as_b64_json_is_fetched_from_its_link(relay_client, rw):
    rw.upstream.then(output=[f"{rw.upstream.url}/images/cat.png"])
    response = await relay_client.post("/v1/images/generations", headers=rw.auth, json={
        "model": FLUX, "prompt": "a cat", "response_format": "b64_json"})
    assert response.status_code == 200, response.text
    [item] = response.json()["data"]
    assert base64.b64decode(item["b64_json"]) == PNG and "url" not in item
