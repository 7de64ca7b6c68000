"""OpenAI's Responses API passed through to channels that serve it (OpenAI 1, Azure 3, compatible channels that
say so), with the official SDK as client: the request goes as sent apart from the model, the answer and its
events come back untouched, the bill is read from the Response's usage, and what the vendor stored is found
again (retrieve, delete, input items, previous_response_id) on the channel that stored it, for its owner only.
"""

from __future__ import annotations

import openai
import orjson
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches

from providers.models import Channel
from providers.services import channel_update
from relay.models import StoredResponse
from relay.stored import KEY, stored
from tests.factories import ChannelFactory, TokenFactory, UserFactory
from tests.helpers import consume_logs
from tests.mock_upstream import REPLY as CHAT_REPLY
from tests.providers.mock_openai_responses import REPLY, MockOpenAIResponses
from tests.providers.vendor_harness import serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gpt-house"  # what clients ask for; the channel maps it
UPSTREAM_MODEL = "gpt-5.1"
# What a Responses client sends that the bridge through chat would lose or refuse.
BODY = {"model": MODEL, "input": "Say hello", "instructions": "Be brief.", "reasoning": {"effort": "high"},
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "session-1",
        "tools": [{"type": "web_search"}], "metadata": {"run": "7"}}

# An OpenAI channel whose host serves chat completions only (the shared chat mock): bridged.
CHAT_ONLY = {"responses_api": "false"}

responses_server = serve(MockOpenAIResponses)


@pytest.fixture(autouse=True)
async def fresh_records():
    """Each test starts with no stored response known, and its background writes land before the database goes."""
    stored.recent.clear()
    yield
    await stored.drain()
    stored.recent.clear()


@pytest.fixture
def native(transactional_db, responses_server):
    return new_world(responses_server, username="rita", type=1, name="openai-native", key="sk-openai-upstream-key",
                     models=MODEL, model_mapping={MODEL: UPSTREAM_MODEL})


def sdk_for(token, sdk_http) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=f"sk-{token.key}", http_client=sdk_http,
                              max_retries=0)


@pytest.fixture
def sdk(native, sdk_http):
    return sdk_for(native.token, sdk_http)


def posts(mock) -> list:
    return [r for r in mock.requests if r.method == "POST"]


# --- the request and its answer, as they were --------------------------------------------------------------


async def test_a_response_goes_to_openai_as_sent_and_comes_back_as_openai_sent_it(client, native):
    response = await client.post("/v1/responses", headers=native.auth, content=orjson.dumps(BODY))
    assert response.status_code == 200, response.text
    [sent] = native.upstream.requests
    assert (sent.method, sent.path) == ("POST", "/v1/responses")
    assert sent.raw == orjson.dumps({**BODY, "model": UPSTREAM_MODEL})  # member for member, in order
    assert sent.headers["Authorization"] == "Bearer sk-openai-upstream-key"
    answer = response.json()
    assert response.content == orjson.dumps(native.upstream.stored[answer["id"]])
    assert answer["model"] == UPSTREAM_MODEL and answer["output"][1]["content"][0]["text"] == REPLY


async def test_the_sdk_gets_the_response_with_its_usage(sdk, native):
    answer = await sdk.responses.create(model=MODEL, input="Say hello", reasoning={"effort": "high"})
    assert answer.output_text == REPLY and answer.id.startswith("resp_")
    assert answer.usage.input_tokens_details.cached_tokens == 1536
    assert answer.usage.output_tokens_details.reasoning_tokens == 128


async def test_a_stream_arrives_event_for_event(client, sdk, native):
    response = await client.post("/v1/responses", headers=native.auth, json={**BODY, "stream": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    [stored_answer] = native.upstream.stored.values()
    assert response.content == b"".join(MockOpenAIResponses.events(stored_answer))
    async with await sdk.responses.create(model=MODEL, input="Say hello", stream=True) as stream:
        kinds = [event.type async for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds


@pytest.mark.parametrize("stream", [False, True])
async def test_the_bill_is_read_from_the_responses_usage_with_cached_and_reasoning_tokens(client, native, stream):
    response = await client.post("/v1/responses", headers=native.auth, json={**BODY, "stream": stream})
    assert response.status_code == 200
    [log] = await consume_logs()
    assert (log.prompt_tokens, log.completion_tokens, log.cached_tokens, log.reasoning_tokens) == (2000, 300, 1536, 128)
    assert (log.client_protocol, log.is_stream, log.channel_id) == ("responses", stream, native.channel.pk)
    assert log.quota > 0


async def test_a_function_call_comes_back_as_openai_sent_it(sdk, native):
    native.upstream.then(answer="tool_call")
    answer = await sdk.responses.create(model=MODEL, input="Weather in Paris?",
                                        tools=[{"type": "function", "name": "get_weather", "parameters": {}}])
    call = answer.output[1]
    assert (call.type, call.name, call.arguments) == ("function_call", "get_weather", '{"city":"Paris"}')


async def test_openais_refusal_reaches_the_sdk_in_openais_shape(sdk, native):
    native.upstream.then(status=400, error={"error": {
        "message": "Invalid value for 'reasoning.effort'.", "type": "invalid_request_error",
        "param": "reasoning.effort", "code": "invalid_value"}})
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model=MODEL, input="Hi", reasoning={"effort": "extreme"})
    error = refused.value.body
    assert error["message"].startswith("Invalid value for 'reasoning.effort'.")
    assert (error["param"], error["code"]) == ("reasoning.effort", "invalid_value")
    assert "sk-openai-upstream-key" not in str(error) and await consume_logs() == []


async def test_a_stream_broken_off_ends_with_an_error_event_and_bills_what_came(client, native):
    native.upstream.then(cut_after=8)  # two words in
    response = await client.post("/v1/responses", headers=native.auth, json={**BODY, "stream": True})
    events = response.content.split(b"\n\n")
    assert events[-2].startswith(b"event: error\ndata: ")
    assert orjson.loads(events[-2].split(b"data: ", 1)[1])["code"] == "server_error"
    [log] = await consume_logs()
    assert log.completion_tokens > 0 and log.channel_id == native.channel.pk


async def test_input_tokens_are_asked_of_a_channel_that_serves_responses(sdk, native):
    counted = await sdk.responses.input_tokens.count(model=MODEL, input="Say hello")
    assert counted.input_tokens == 42
    [sent] = native.upstream.requests
    assert sent.path == "/v1/responses/input_tokens" and sent.body["model"] == UPSTREAM_MODEL
    assert await consume_logs() == []


# --- stored responses ----------------------------------------------------------------------------------------


async def test_a_stored_response_is_retrieved_listed_and_deleted_at_its_channel(sdk, native):
    made = await sdk.responses.create(model=MODEL, input="Say hello")
    await stored.drain()
    if settings.REDIS_CONN_STRING:
        recorded = await sync_to_async(caches["default"].get)(KEY + made.id)
        assert recorded == f"{native.channel.pk}:{native.user.pk}"
    else:
        row = await sync_to_async(StoredResponse.objects.get)(response_id=made.id)
        assert (row.channel_id, row.user_id) == (native.channel.pk, native.user.pk)
    stored.recent.clear()  # found again from Redis or the table, as another instance would
    again = await sdk.responses.retrieve(made.id)
    assert again.id == made.id and again.output_text == REPLY
    items = await sdk.responses.input_items.list(made.id)
    assert [item.content[0].text for item in items.data] == ["Say hello"]
    await sdk.responses.delete(made.id)
    gets = [(r.method, r.path) for r in native.upstream.requests[1:]]
    assert gets == [("GET", f"/v1/responses/{made.id}"), ("GET", f"/v1/responses/{made.id}/input_items"),
                    ("DELETE", f"/v1/responses/{made.id}")]
    assert all(r.headers["Authorization"] == "Bearer sk-openai-upstream-key" for r in native.upstream.requests)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(made.id)
    assert len(native.upstream.requests) == 4  # the gateway forgot it: not asked again
    assert len(await consume_logs()) == 1  # only the create


async def test_the_vendors_answer_about_a_stored_response_is_passed_on(sdk, native):
    made = await sdk.responses.create(model=MODEL, input="Say hello")
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.cancel(made.id)
    assert "background" in refused.value.body["message"]
    assert native.upstream.requests[-1].path == f"/v1/responses/{made.id}/cancel"


async def test_a_response_made_with_store_false_is_not_recorded(sdk, native):
    made = await sdk.responses.create(model=MODEL, input="Say hello", store=False)
    await stored.drain()
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk.responses.retrieve(made.id)
    assert "natively" in missing.value.body["message"] and len(native.upstream.requests) == 1
    assert not await sync_to_async(StoredResponse.objects.exists)()
    assert await sync_to_async(caches["default"].get)(KEY + made.id) is None


async def test_another_users_response_is_not_found(sdk, native, sdk_http):
    made = await sdk.responses.create(model=MODEL, input="Say hello")
    mallory = await sync_to_async(lambda: TokenFactory(user=UserFactory(username="mallory", quota=10_000_000),
                                                       remain_quota=5_000_000))()
    other = sdk_for(mallory, sdk_http)
    for call in (other.responses.retrieve(made.id), other.responses.delete(made.id),
                 other.responses.input_items.list(made.id)):
        with pytest.raises(openai.NotFoundError):
            await call
    with pytest.raises(openai.BadRequestError) as refused:
        await other.responses.create(model=MODEL, input="And then?", previous_response_id=made.id)
    assert (refused.value.body["code"], refused.value.body["param"]) == (
        "previous_response_not_found", "previous_response_id")
    assert len(native.upstream.requests) == 1


async def test_previous_response_id_goes_to_the_channel_that_stored_it_and_no_other(sdk, native, retries):
    # A second channel of the same vendor, preferred: it fails the first request, which the first channel stores.
    second = await sync_to_async(ChannelFactory)(name="openai-second", type=50, base_url=native.upstream.url + "/b",
                                                 models=MODEL, priority=1, config={"responses_api": "true"})
    native.upstream.then(status=500)
    made = await sdk.responses.create(model=MODEL, input="Say hello")
    assert [r.path for r in posts(native.upstream)] == ["/b/responses", "/v1/responses"]
    follow = await sdk.responses.create(model=MODEL, input="And then?", previous_response_id=made.id)
    assert posts(native.upstream)[-1].path == "/v1/responses"  # not the preferred channel
    assert posts(native.upstream)[-1].body["previous_response_id"] == made.id
    # Pinned: when that channel fails, no other is asked.
    native.upstream.then(status=500)
    with pytest.raises(openai.InternalServerError):
        await sdk.responses.create(model=MODEL, input="And then?", previous_response_id=follow.id)
    assert [r.path for r in posts(native.upstream)][-2:] == ["/v1/responses", "/v1/responses"]
    logs = await consume_logs()
    assert [log.channel_id for log in logs] == [native.channel.pk, native.channel.pk] != [second.pk] * 2


@pytest.mark.parametrize("count", [False, True], ids=["create", "input_tokens"])
async def test_a_continuation_may_not_name_a_model_its_channel_does_not_serve(sdk, native, count):
    """The stored id pins its channel, past routing's check of the model: one id must not open the channel to
    any model name (an expensive one the operator never offered, priced at the fallback ratio)."""
    made = await sdk.responses.create(model=MODEL, input="Say hello")
    with pytest.raises(openai.BadRequestError) as refused:
        if count:
            await sdk.responses.input_tokens.count(model="o1-pro", input="And then?", previous_response_id=made.id)
        else:
            await sdk.responses.create(model="o1-pro", input="And then?", previous_response_id=made.id)
    assert refused.value.body["param"] == "previous_response_id" and "o1-pro" in refused.value.body["message"]
    assert len(native.upstream.requests) == 1 and len(await consume_logs()) == 1


async def test_a_background_run_is_refused_before_any_channel_is_asked(sdk, native):
    """A background run answers "queued" without usage and is fetched later by unbilled GETs: passed through, its
    whole answer would be billed as a locally counted prompt."""
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model=MODEL, input="Think long", background=True)
    assert refused.value.body["param"] == "background" and "billed" in refused.value.body["message"]
    assert native.upstream.requests == [] and await consume_logs() == []


async def test_input_tokens_of_a_continuation_are_asked_of_the_channel_that_stored_it(sdk, native, retries):
    made = await sdk.responses.create(model=MODEL, input="Say hello")
    await sync_to_async(ChannelFactory)(name="openai-second", type=50, base_url=native.upstream.url + "/b",
                                        models=MODEL, priority=1, config={"responses_api": "true"})
    counted = await sdk.responses.input_tokens.count(model=MODEL, input="And then?", previous_response_id=made.id)
    assert counted.input_tokens == 42
    assert native.upstream.requests[-1].path == "/v1/responses/input_tokens"


async def test_a_continuation_is_refused_when_its_channel_no_longer_serves_responses(sdk, native):
    made = await sdk.responses.create(model=MODEL, input="Say hello")
    await sync_to_async(lambda: channel_update(channel=Channel.objects.get(pk=native.channel.pk),
                                               config={"responses_api": "false"}))()
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model=MODEL, input="And then?", previous_response_id=made.id)
    assert refused.value.body["param"] == "previous_response_id" and "natively" in refused.value.body["message"]
    assert len(native.upstream.requests) == 1


# --- failover between a channel that serves Responses and one bridged through chat --------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failing_native_channel_fails_over_to_a_bridged_one(sdk, native, upstream, retries, stream):
    bridged = await sync_to_async(ChannelFactory)(name="chat-only", base_url=upstream.url, models=MODEL,
                                                  priority=-1, config=CHAT_ONLY)
    native.upstream.then(status=503)
    if stream:
        async with await sdk.responses.create(model=MODEL, input="Say hello", stream=True) as events:
            final = [e async for e in events][-1].response
    else:
        final = await sdk.responses.create(model=MODEL, input="Say hello", stream=False)
    assert final.output_text == CHAT_REPLY and final.model == MODEL  # the bridge's Response
    assert upstream.requests[-1].path == "/v1/chat/completions"
    [log] = await consume_logs()
    assert log.channel_id == bridged.pk


async def test_an_error_event_before_the_answer_fails_over_too(sdk, native, upstream, retries):
    await sync_to_async(ChannelFactory)(name="chat-only", base_url=upstream.url, models=MODEL, priority=-1,
                                        config=CHAT_ONLY)
    native.upstream.then(early_error=True)
    async with await sdk.responses.create(model=MODEL, input="Say hello", stream=True) as events:
        final = [e async for e in events][-1].response
    assert final.output_text == CHAT_REPLY


async def test_a_failing_bridged_channel_fails_over_to_a_native_one(sdk, native, upstream, retries):
    await sync_to_async(ChannelFactory)(name="chat-only", base_url=upstream.url, models=MODEL, priority=1,
                                        config=CHAT_ONLY)
    upstream.then(status=500)
    answer = await sdk.responses.create(model=MODEL, input="Say hello")
    assert answer.output_text == REPLY and answer.model == UPSTREAM_MODEL
    [log] = await consume_logs()
    assert log.channel_id == native.channel.pk and log.cached_tokens == 1536


async def test_what_only_a_native_channel_can_take_skips_a_bridged_one(sdk, native, upstream, retries):
    made = await sdk.responses.create(model=MODEL, input="Say hello")
    await sync_to_async(ChannelFactory)(name="chat-only", base_url=upstream.url, models=MODEL, priority=1,
                                        config=CHAT_ONLY)
    prompted = await sdk.responses.create(model=MODEL, input="Think long", prompt={"id": "pmpt_1"})
    assert prompted.id != made.id and upstream.requests == []
    assert posts(native.upstream)[-1].body["prompt"] == {"id": "pmpt_1"}


# --- Azure and compatible channels --------------------------------------------------------------------------


@pytest.mark.parametrize("version, path, query", [
    ("", "/openai/v1/responses", ""),
    ("2025-04-01-preview", "/openai/responses", "api-version=2025-04-01-preview"),
])
async def test_azure_serves_responses_at_its_own_urls(client, transactional_db, responses_server, sdk_http,
                                                      version, path, query):
    world = await sync_to_async(new_world)(responses_server, username="azure", type=3, key="azure-upstream-key",
                                           models="gpt-4.1", config={"api_version": version} if version else {})
    sdk = sdk_for(world.token, sdk_http)
    made = await sdk.responses.create(model="gpt-4.1", input="Say hello")
    await sdk.responses.retrieve(made.id)
    create, get = world.upstream.requests
    assert (create.path, create.query, create.headers["api-key"]) == (path, query, "azure-upstream-key")
    assert create.body["model"] == "gpt-41"  # the deployment's name, as in chat's URL
    assert (get.method, get.path, get.query) == ("GET", f"{path}/{made.id}", query)


async def test_a_compatible_channel_serves_responses_only_when_its_config_says_so(client, transactional_db,
                                                                                   responses_server, sdk_http):
    world = await sync_to_async(new_world)(responses_server, username="compat", type=50, key="compat-key",
                                           models=MODEL, base_path="/v1", config={"responses_api": True})
    made = await sdk_for(world.token, sdk_http).responses.create(model=MODEL, input="Say hello")
    assert made.output_text == REPLY and world.upstream.requests[-1].path == "/v1/responses"
