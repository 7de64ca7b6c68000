"""The Responses API spoken natively by OpenAI-protocol adapters (providers/adapters/openai_responses.py): which
channels serve it, where, and what a Response and its events are read for. The relay tests are in
tests/relay/test_responses_native.py."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from providers.adapters import adapter_for
from providers.adapters.base import UpstreamError, Usage
from providers.adapters.openai import serves_responses
from providers.adapters.openai_responses import ResponseEvents, read_response
from tests.providers.mock_openai_responses import USAGE, Behaviour, MockOpenAIResponses
from tests.providers.vendor_harness import TEST_CHANNEL, call_context

BILL = Usage(prompt_tokens=2000, completion_tokens=300, cached_tokens=1536, reasoning_tokens=128)


def channel(type_id: int, **config):
    return dataclasses.replace(TEST_CHANNEL, type=type_id, base_url="https://host", config=config)


@pytest.mark.parametrize("type_id, config, serves", [
    (1, {}, True), (3, {}, True), (50, {}, False), (8, {}, False),
    (50, {"responses_api": "true"}, True), (50, {"responses_api": True}, True),
    (1, {"responses_api": "false"}, False), (3, {"responses_api": False}, False), (1, {"responses_api": ""}, True),
])
def test_openai_and_azure_serve_responses_unless_told_otherwise_and_the_others_only_when_told(type_id, config,
                                                                                              serves):
    assert serves_responses(channel(type_id, **config)) is serves
    assert adapter_for(type_id).speaks_natively("responses", mode="chat", model="m",
                                                channel=channel(type_id, **config)) is serves


@pytest.mark.parametrize("type_id, config, url", [
    (1, {}, "https://host/v1/responses/resp_1/input_items?limit=2"),
    (50, {}, "https://host/responses/resp_1/input_items?limit=2"),
    (3, {}, "https://host/openai/v1/responses/resp_1/input_items?limit=2"),
    (3, {"api_version": "2024-03-01-preview"}, "https://host/openai/v1/responses/resp_1/input_items?limit=2"),
    (3, {"api_version": "preview"}, "https://host/openai/v1/responses/resp_1/input_items?api-version=preview&limit=2"),
    (3, {"api_version": "2025-04-01-preview"},
     "https://host/openai/responses/resp_1/input_items?api-version=2025-04-01-preview&limit=2"),
])
def test_a_stored_response_is_asked_of_the_channels_own_url(type_id, config, url):
    request = adapter_for(type_id).build_stored_request(channel(type_id, **config), method="GET",
                                                        path="resp_1/input_items", query="limit=2")
    assert (request.method, request.url) == ("GET", url)
    assert request.headers.get("api-key" if type_id == 3 else "Authorization") in ("sk-test", "Bearer sk-test")


def test_the_channels_system_prompt_replaces_the_clients_instructions():
    ctx = call_context(dataclasses.replace(channel(1), system_prompt="Answer in French."),
                       body={"model": "gpt-5", "input": "Hi", "instructions": "Be brief."})
    ctx = dataclasses.replace(ctx, protocol="responses")
    sent = orjson.loads(adapter_for(1).build_native_request(ctx).body)
    assert sent == {"model": "gpt-5", "input": "Hi", "instructions": "Answer in French."}


def response(**fields) -> dict:
    return {**MockOpenAIResponses()._response({"model": "gpt-5", "input": "Hi"}, Behaviour()), **fields}


def test_a_response_is_read_for_its_usage_words_and_stored_id():
    answer = response()
    assert read_response(orjson.dumps(answer), "OpenAI") == (BILL, "Hello from the Responses mock.", answer["id"])
    assert read_response(orjson.dumps(response(store=False)), "OpenAI")[2] == ""


def test_a_200_that_is_no_response_is_the_vendors_failure():
    with pytest.raises(UpstreamError) as failed:
        read_response(b'{"error": {"message": "quota", "code": "rate_limit_exceeded"}}', "OpenAI")
    assert (failed.value.status, failed.value.retryable) == (429, True)


def feed(events: list[bytes]) -> ResponseEvents:
    reader = ResponseEvents("OpenAI")
    for frame in events:
        event, data = frame.strip().split(b"\n")
        reader.read(event.removeprefix(b"event: "), data.removeprefix(b"data: "))
    return reader


def test_a_stream_is_read_for_its_id_words_and_the_final_usage():
    answer = response()
    reader = feed(MockOpenAIResponses.events(answer))
    assert (reader.answer_id, reader.usage) == (answer["id"], BILL)
    assert "".join(reader.texts) == "Hello from the Responses mock."
    assert reader.begun and reader.error is None


def test_a_response_that_fails_before_any_output_may_fail_over():
    failed = response(status="failed", output=[], usage=None, error={"code": "server_error", "message": "boom"})
    events = MockOpenAIResponses.events(failed)
    events[-1] = events[-1].replace(b"response.completed", b"response.failed")
    reader = feed(events)
    assert not reader.begun and (reader.error.status, reader.error.message) == (500, "boom")


def test_usage_counts_nothing_a_vendor_gives_as_junk():
    reader = feed(MockOpenAIResponses.events(response(usage={**USAGE, "input_tokens_details": None,
                                                             "output_tokens": "many",
                                                             "output_tokens_details": "x"})))
    assert reader.usage == Usage(prompt_tokens=2000, completion_tokens=0)
