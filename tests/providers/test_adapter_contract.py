"""What every adapter owes the relay when an upstream answers 200 with something that is not an answer.

One table of cases, every adapter and every mode it reads with parse_response: a body that is not the
vendor's shape (empty, a proxy's HTML page, JSON of another kind) is a retryable 502, so the relay fails
over, counts the failure and bills nothing. Streams the same: garbage offers the relay no event it could
take for an answer.
"""

from __future__ import annotations

import pytest

from providers.adapters import ADAPTERS, adapter_for
from providers.adapters.base import Adapter, ChannelInfo, UpstreamError
from relay.streaming import Frames
from tests.providers.vendor_harness import call_context

# The models that choose a path inside an adapter (Claude or not, Imagen or not); "" is any model.
MODELS = {
    24: {"chat": ["gemini-2.5-flash"], "embeddings": ["text-embedding-004"],
         "images": ["imagen-3.0-generate-002", "gemini-2.5-flash-image"]},
    42: {"chat": ["gemini-2.5-flash", "claude-sonnet-4-5@20250929"], "embeddings": ["text-embedding-004"],
         "images": ["imagen-3.0-generate-002", "gemini-2.5-flash-image"]},
    33: {"chat": ["claude-3-haiku-20240307", "amazon.nova-lite-v1:0"]},
}
KEYS = {33: "AKIAEXAMPLEKEY000000|secretsecretsecret|us-east-1", 16: "id.secret"}

NOT_ANSWERS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"<html><body><h1>502 Bad Gateway</h1></body></html>", id="html"),
    pytest.param(b"[]", id="list"),
    pytest.param(b"{}", id="empty-object"),
    pytest.param(b'{"object": "something.else", "unexpected": true}', id="other-object"),
]


def _channel(type_id: int) -> ChannelInfo:
    return ChannelInfo(id=1, type=type_id, name="test", key=KEYS.get(type_id, "sk-test-key-0123456789"),
                       base_url="http://127.0.0.1:9", models=(), model_mapping={}, config={},
                       system_prompt="", priority=0, weight=0)


def _parsed_cases():
    for type_id in sorted(ADAPTERS):
        adapter = adapter_for(type_id)
        if type(adapter).parse_response is Adapter.parse_response:
            continue  # Xunfei Spark talks WebSocket: no parse_response
        for mode in adapter.modes:
            if mode in adapter.complete_modes or mode == "speech":
                continue  # answered by `complete`, or audio passed through as it comes
            for model in MODELS.get(type_id, {}).get(mode, ["test-model"]):
                yield pytest.param(type_id, mode, model, id=f"{type_id}-{adapter.label}-{mode}-{model}")


def _body(model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "input": "hi", "prompt": "hi",
            "query": "q", "documents": ["d"]}


@pytest.mark.parametrize("body", NOT_ANSWERS)
@pytest.mark.parametrize("type_id, mode, model", list(_parsed_cases()))
def test_a_200_that_is_not_an_answer_is_a_retryable_502(type_id, mode, model, body):
    ctx = call_context(_channel(type_id), mode, _body(model))
    with pytest.raises(UpstreamError) as failed:
        adapter_for(type_id).parse_response(ctx, body=body)
    assert (failed.value.status, failed.value.retryable) == (502, True), failed.value


def _streamed_cases():
    for type_id in sorted(ADAPTERS):
        adapter = adapter_for(type_id)
        if type(adapter).stream_decoder is Adapter.stream_decoder or "chat" not in adapter.modes:
            continue
        for model in MODELS.get(type_id, {}).get("chat", ["test-model"]):
            yield pytest.param(type_id, model, id=f"{type_id}-{adapter.label}-{model}")


NOT_STREAMS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"<html><body><h1>502 Bad Gateway</h1></body></html>\n", id="html"),
    pytest.param(b"data: {not json\n\n", id="not-json"),
    pytest.param(b"data: [DONE]\n\n", id="only-done"),
    pytest.param(b'data: {"unexpected": true}\n\n{"unexpected": true}\n', id="other-object"),
]


@pytest.mark.parametrize("raw", NOT_STREAMS)
@pytest.mark.parametrize("type_id, model", list(_streamed_cases()))
def test_a_stream_of_garbage_offers_no_event_the_relay_could_take_for_an_answer(type_id, model, raw):
    ctx = call_context(_channel(type_id), "chat", _body(model), stream=True)
    frames = Frames(adapter_for(type_id).stream_decoder(ctx))
    try:
        events = frames.feed(raw) + frames.close()
    except UpstreamError as err:  # a decoder may say so itself, as long as another channel may try
        assert err.retryable, err
        return
    assert all(e.done or e.malformed or e.error is not None for e in events), events
    assert all(e.error.retryable for e in events if e.error is not None)
