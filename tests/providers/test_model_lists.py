"""The models an upstream lists, asked the vendor's way (adapters' model_list_request), against mock vendors."""

import dataclasses

import pytest

from oneapi_site.lib.errors import ServiceError
from providers import fleet
from providers.adapters import adapter_for
from providers.fleet import channel_fetch_models, model_list_diff
from tests.e2e.servers import free_port
from tests.factories import ChannelFactory
from tests.providers.mock_model_lists import (
    ANTHROPIC_MODELS,
    GEMINI_MODELS,
    KEY,
    OLLAMA_MODELS,
    OPENAI_MODELS,
    MockModelLists,
)
from tests.providers.vendor_harness import TEST_CHANNEL, serve

pytestmark = pytest.mark.django_db

models_server = serve(MockModelLists)


@pytest.fixture
def lists(models_server):
    models_server.reset()
    return models_server


@pytest.mark.parametrize(("type_id", "base_path", "expected", "path"), [
    (1, "", OPENAI_MODELS, "/v1/models"),
    (50, "/v1", OPENAI_MODELS, "/v1/models"),  # OpenAI-compatible: an SDK-style base
    (36, "", OPENAI_MODELS, "/v1/models"),  # DeepSeek, an OpenAI-protocol vendor
    (51, "/v1beta/openai", OPENAI_MODELS, "/v1beta/openai/models"),  # Gemini's OpenAI-compatible endpoint
    (14, "", ANTHROPIC_MODELS, "/v1/models"),
    (24, "", GEMINI_MODELS, "/v1beta/models"),
    (30, "", OLLAMA_MODELS, "/api/tags"),
])
def test_each_vendor_is_asked_for_its_models_its_own_way(lists, type_id, base_path, expected, path):
    channel = ChannelFactory(type=type_id, base_url=lists.url + base_path, key=KEY, models=expected[0])
    diff = channel_fetch_models(channel_id=channel.pk)
    assert diff.upstream == expected and diff.added == expected[1:] and diff.missing == []
    [sent] = lists.requests
    assert (sent.method, sent.path) == ("GET", path)


def test_a_body_that_is_no_model_list_is_reported_plainly(lists):
    channel = ChannelFactory(type=50, base_url=lists.url + "/html/v1", key=KEY)
    with pytest.raises(ServiceError, match="model list was not understood"):
        channel_fetch_models(channel_id=channel.pk)


def test_an_unreachable_vendor_is_reported_without_its_url():
    channel = ChannelFactory(type=1, base_url=f"http://user:pw@127.0.0.1:{free_port()}", key=KEY)
    with pytest.raises(ServiceError, match="could not reach the vendor: ConnectError") as caught:
        channel_fetch_models(channel_id=channel.pk)
    assert "pw" not in str(caught.value)


def test_an_answer_too_large_to_be_a_model_list_is_cut_off(lists, monkeypatch):
    monkeypatch.setattr(fleet, "MODEL_LIST_MAX_BYTES", 64)
    channel = ChannelFactory(type=1, base_url=lists.url, key=KEY)
    with pytest.raises(ServiceError, match="model list is larger than"):
        channel_fetch_models(channel_id=channel.pk)


def test_the_gemini_key_goes_in_its_header_never_the_url():
    request = adapter_for(24).model_list_request(dataclasses.replace(TEST_CHANNEL, type=24, key=KEY))
    assert KEY not in request.url and request.headers["x-goog-api-key"] == KEY


def test_mapped_models_count_as_listed_by_their_upstream_name():
    diff = model_list_diff(upstream=["o3", "gpt-4o"], current=["fast", "gpt-4o", "old"], mapping={"fast": "o3"})
    assert diff.added == [] and diff.missing == ["old"]
