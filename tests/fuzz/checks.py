"""What every fuzzed answer must be, whatever was sent."""

from __future__ import annotations

import json

# The relay may honestly answer these when an upstream or the routing fails; a 500 is always a bug.
UPSTREAM_STATUSES = (502, 503, 504)


def _json(content: bytes, what: str) -> object:
    try:
        return json.loads(content)
    except ValueError:
        raise AssertionError(f"{what} is not JSON: {content[:300]!r}") from None


def assert_openai_answer(status: int, content_type: str, content: bytes) -> None:
    """No 500; a refusal is OpenAI's error object, {"error": {"message", "type", "code"}}."""
    assert status != 500, (status, content[:1000])
    assert status < 500 or status in UPSTREAM_STATUSES, (status, content[:1000])
    if status < 400:
        return
    assert content_type.startswith("application/json"), (status, content_type, content[:300])
    body = _json(content, f"the {status} answer")
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert "type" in error and "code" in error, body


def assert_anthropic_answer(status: int, content_type: str, content: bytes) -> None:
    """No 500; a refusal is Anthropic's error object, {"type": "error", "error": {"type", "message"}}."""
    assert status != 500, (status, content[:1000])
    assert status < 500 or status in UPSTREAM_STATUSES, (status, content[:1000])
    if status < 400:
        return
    assert content_type.startswith("application/json"), (status, content_type, content[:300])
    body = _json(content, f"the {status} answer")
    assert isinstance(body, dict) and body.get("type") == "error", body
    error = body.get("error")
    assert isinstance(error, dict) and isinstance(error.get("type"), str), body
    assert isinstance(error.get("message"), str) and error["message"], body


def assert_gemini_answer(status: int, content_type: str, content: bytes) -> None:
    """No 500; a refusal is Google's error object, {"error": {"code", "message", "status"}}."""
    assert status != 500, (status, content[:1000])
    assert status < 500 or status in UPSTREAM_STATUSES, (status, content[:1000])
    if status < 400:
        return
    assert content_type.startswith("application/json"), (status, content_type, content[:300])
    body = _json(content, f"the {status} answer")
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and error.get("code") == status, body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert isinstance(error.get("status"), str) and error["status"].isupper(), body


def assert_envelope(status: int, content_type: str, content: bytes) -> dict:
    """No 5xx; the answer is one-api's envelope, and any 4xx says success false with a message."""
    assert status < 500, (status, content[:1000])
    assert content_type.startswith("application/json"), (status, content_type, content[:300])
    body = _json(content, f"the {status} answer")
    assert isinstance(body, dict), body
    assert isinstance(body.get("success"), bool), body
    assert isinstance(body.get("message"), str), body
    if status >= 400:
        assert body["success"] is False, body
    return body


def assert_page(status: int, content: bytes) -> None:
    """A page answers, redirects or refuses; it never fails."""
    assert status < 500, (status, content[:1000])


def sse_events(content: bytes) -> list[dict]:
    """A codec's stream as its events: each frame an `event:` line naming the type its JSON data has."""
    found = []
    for frame in content.split(b"\n\n"):
        if not frame:
            continue
        head, _, data = frame.partition(b"\n")
        assert head.startswith(b"event: ") and data.startswith(b"data: "), frame[:300]
        payload = _json(data[6:], "an event")
        assert isinstance(payload, dict) and head[7:].decode() == payload.get("type"), frame[:300]
        found.append(payload)
    return found


def assert_anthropic_events(content: bytes) -> None:
    """A codec's Anthropic stream, checked as anthropic_message_of does."""
    anthropic_message_of(sse_events(content))


def anthropic_message_of(events: list[dict]):
    """Anthropic's event grammar (message_start, content blocks one at a time, message_delta, message_stop,
    or an error event last), every event as the anthropic SDK types it; the Message the SDK builds of them."""
    from anthropic._models import construct_type_unchecked
    from anthropic.lib.streaming._messages import accumulate_event
    from anthropic.types import RawMessageStreamEvent
    from pydantic import TypeAdapter

    kinds = [event["type"] for event in events]
    # A stream that fails before its message starts is the error event alone.
    assert kinds and kinds[0] in ("message_start", "error") and kinds[-1] in ("message_stop", "error"), kinds
    assert kinds[-1] == "error" or kinds[-2] == "message_delta", kinds
    open_block, started = None, -1
    for event in events[1:-1]:
        kind = event["type"]
        if kind == "content_block_start":
            assert open_block is None and event["index"] == started + 1, kinds
            open_block = started = event["index"]
        elif kind in ("content_block_delta", "content_block_stop"):
            assert event["index"] == open_block, kinds
            if kind == "content_block_stop":
                open_block = None
        else:
            assert kind in ("ping", "message_delta"), kinds
    assert open_block is None or kinds[-1] == "error", kinds
    typed = TypeAdapter(RawMessageStreamEvent)
    snapshot, buffers = None, {}
    for event in events:
        if event["type"] == "error":
            assert isinstance(event["error"].get("message"), str) and event["error"]["message"], event
            continue
        if event["type"] == "ping":
            continue  # the SDK skips pings; its union of events leaves them out
        typed.validate_python(event)
        snapshot = accumulate_event(event=construct_type_unchecked(type_=RawMessageStreamEvent, value=event),
                                    current_snapshot=snapshot, json_bufs=buffers)
    return snapshot


RESPONSE_ENDS = ("response.completed", "response.failed", "response.incomplete")


def assert_responses_events(content: bytes) -> None:
    """Responses' event grammar (created, in_progress, items added, their deltas and done, then one of
    completed, failed or incomplete), numbered in order, each event as the openai SDK types it."""
    from openai.types.responses import Response, ResponseStreamEvent
    from pydantic import TypeAdapter

    events = sse_events(content)
    kinds = [event["type"] for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] in RESPONSE_ENDS, kinds
    assert not any(kind in RESPONSE_ENDS for kind in kinds[:-1]), kinds
    assert [event["sequence_number"] for event in events] == list(range(len(events))), kinds
    added: dict[int, str] = {}
    done: set[int] = set()
    typed = TypeAdapter(ResponseStreamEvent)
    for event in events:
        typed.validate_python(event)
        kind = event["type"]
        if kind == "response.output_item.added":
            assert event["output_index"] == len(added), kinds
            added[event["output_index"]] = event["item"]["id"]
        elif kind == "response.output_item.done":
            assert event["output_index"] in added and event["output_index"] not in done, kinds
            done.add(event["output_index"])
        elif "item_id" in event:
            index = event["output_index"]
            assert added.get(index) == event["item_id"] and index not in done, kinds
    if kinds[-1] != "response.failed":
        assert done == set(added), kinds
    final = Response.model_validate(events[-1]["response"])
    assert len(final.output) == len(added), kinds


def assert_anthropic_message(content: bytes) -> None:
    from anthropic.types import Message

    Message.model_validate(_json(content, "the Message"))


def assert_response_object(content: bytes) -> None:
    from openai.types.responses import Response

    assert Response.model_validate(_json(content, "the Response")).object == "response"


def _assert_google_error(body: object) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and isinstance(error.get("code"), int), body
    assert isinstance(error.get("message"), str) and error["message"] and isinstance(error.get("status"), str), body


def assert_generate_response(content: bytes | dict) -> None:
    """A GenerateContentResponse as the google-genai SDK types it."""
    from google.genai import types

    types.GenerateContentResponse.model_validate(_json(content, "the answer") if isinstance(content, bytes)
                                                 else content)


def assert_gemini_chunks(chunks: list) -> None:
    """A Gemini stream's chunks: GenerateContentResponses, of which the last may be Google's error instead."""
    assert chunks, chunks
    for position, chunk in enumerate(chunks):
        if isinstance(chunk, dict) and "error" in chunk and position == len(chunks) - 1:
            _assert_google_error(chunk)
        else:
            assert_generate_response(chunk)


def assert_gemini_sse(content: bytes) -> None:
    frames = [frame for frame in content.split(b"\r\n\r\n") if frame]
    assert all(frame.startswith(b"data: ") for frame in frames), content[:300]
    assert_gemini_chunks([_json(frame[6:], "a chunk") for frame in frames])


def assert_gemini_array(content: bytes) -> None:
    chunks = _json(content, "the streamed array")
    assert isinstance(chunks, list), content[:300]
    assert_gemini_chunks(chunks)
