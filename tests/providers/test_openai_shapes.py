"""OpenAI's answer shapes, as every adapter writes them (providers/adapters/openai_shapes.py)."""

import orjson
import pytest

from providers.adapters.base import UpstreamError, Usage
from providers.adapters.openai_shapes import (
    Transcript,
    chat_chunk,
    chat_completion,
    delta_choice,
    embedding,
    embeddings_list,
    error_event,
    finish_reason,
    image_item,
    message_choice,
    tool_call,
    transcript_content_type,
    transcript_format,
    usage_event,
    usage_from,
    usage_json,
)

TABLE = {"MAX_TOKENS": "length", "STOP": "stop", "SAFETY": "content_filter"}


def test_usage_json_is_openais_and_tells_cached_and_reasoning_tokens_only_when_given():
    usage = Usage(prompt_tokens=12, completion_tokens=30)
    assert usage_json(usage) == {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
    detailed = usage_json(Usage(prompt_tokens=12, completion_tokens=30, cached_tokens=5, reasoning_tokens=20))
    assert list(detailed) == ["prompt_tokens", "completion_tokens", "total_tokens", "completion_tokens_details",
                              "prompt_tokens_details"]
    assert detailed["prompt_tokens_details"] == {"cached_tokens": 5}
    assert detailed["completion_tokens_details"] == {"reasoning_tokens": 20}
    assert usage_json(usage, cached=True)["prompt_tokens_details"] == {"cached_tokens": 0}  # told, though none
    written = usage_json(Usage(prompt_tokens=120, completion_tokens=3, cached_tokens=5, cache_write_tokens=100))
    assert written["prompt_tokens_details"] == {"cached_tokens": 5, "cache_write_tokens": 100}
    audio = usage_json(Usage(prompt_tokens=12, completion_tokens=30, input_audio_tokens=4, output_audio_tokens=9))
    assert audio["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 4}
    assert audio["completion_tokens_details"] == {"reasoning_tokens": 0, "audio_tokens": 9}


def test_the_breakdown_is_read_from_each_clones_fields():
    openai = {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
              "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 6},
              "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    assert usage_from({"usage": openai}) == Usage(2006, 300, cached_tokens=1920, reasoning_tokens=192,
                                                  input_audio_tokens=6)
    # DeepSeek: https://api-docs.deepseek.com/guides/kv_cache (hit + miss = prompt).
    deepseek = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "prompt_cache_hit_tokens": 64,
                "prompt_cache_miss_tokens": 36, "completion_tokens_details": {"reasoning_tokens": 12}}
    assert usage_from({"usage": deepseek}) == Usage(100, 20, cached_tokens=64, reasoning_tokens=12)
    # Moonshot tells its cache beside the counts.
    assert usage_from({"usage": {"prompt_tokens": 50, "completion_tokens": 5, "cached_tokens": 40}}).cached_tokens == 40
    # The image and audio models' input_tokens_details.
    image = {"input_tokens": 50, "output_tokens": 4160,
             "input_tokens_details": {"cached_tokens": 10, "text_tokens": 50}}
    assert usage_from({"usage": image}).cached_tokens == 10


def test_image_tokens_are_read_from_both_sides_and_told_to_the_client():
    # gpt-image-1's edits (https://platform.openai.com/docs/api-reference/images/object): the input image's tokens,
    # and in newer answers the output's kinds too.
    edit = {"input_tokens": 1250, "output_tokens": 4160, "total_tokens": 5410,
            "input_tokens_details": {"text_tokens": 50, "image_tokens": 1200},
            "output_tokens_details": {"text_tokens": 0, "image_tokens": 4160}}
    usage = usage_from({"usage": edit})
    assert (usage.input_image_tokens, usage.output_image_tokens) == (1200, 4160)
    told = usage_json(usage)
    assert told["prompt_tokens_details"] == {"cached_tokens": 0, "image_tokens": 1200}
    assert told["completion_tokens_details"] == {"reasoning_tokens": 0, "image_tokens": 4160}
    # A part said to be larger than its count is held to it, so no price is paid on tokens that were not used.
    odd = {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"image_tokens": 99,
           "audio_tokens": 50}, "completion_tokens_details": {"audio_tokens": 6}}
    assert usage_from({"usage": odd}) == Usage(10, 5, input_image_tokens=10, input_audio_tokens=10,
                                               output_audio_tokens=5)


def test_odd_breakdowns_never_fail_the_answer_nor_pass_the_counts():
    odd = {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 99},
           "completion_tokens_details": {"reasoning_tokens": "lots"}}
    assert usage_from({"usage": odd}) == Usage(10, 5, cached_tokens=10)
    assert usage_from({"usage": {"prompt_tokens": "12", "completion_tokens": None,
                                 "prompt_tokens_details": None}}) == Usage(0, 0)


def test_usage_is_read_from_every_name_openai_gives_it():
    assert usage_from({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}) == Usage(3, 4)
    assert usage_from({"usage": {"input_tokens": 7, "output_tokens": 2}}) == Usage(7, 2)
    assert usage_from({"usage": {"total_tokens": 9}}) == Usage(9, 0)  # embeddings
    assert usage_from({"choices": []}) is None and usage_from({"usage": None}) is None


@pytest.mark.parametrize(("reason", "tool_calls", "expected"), [
    ("MAX_TOKENS", False, "length"),
    ("SAFETY", True, "content_filter"),  # the vendor's reason, when the table knows it
    ("STOP", False, "stop"),
    ("SOMETHING_NEW", False, "stop"),
    ("SOMETHING_NEW", True, "tool_calls"),
    (None, True, "tool_calls"),
    (None, False, "stop"),
])
def test_finish_reason_maps_the_vendors_reason_else_tells_tool_calls_from_stop(reason, tool_calls, expected):
    assert finish_reason(reason, TABLE, tool_calls=tool_calls) == expected


def test_a_tool_call_carries_its_index_only_in_a_stream():
    assert tool_call("call_1", "get_weather", "{}") == {
        "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    assert list(tool_call("call_1", "f", "", index=2)) == ["index", "id", "type", "function"]


def test_a_chat_completion_and_its_choice():
    answer = chat_completion(id="chatcmpl-1", model="m", choices=[message_choice(0, {"role": "assistant"}, "stop")],
                             created=7)
    assert answer == {"id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
                      "choices": [{"index": 0, "message": {"role": "assistant"}, "logprobs": None,
                                   "finish_reason": "stop"}]}
    assert "usage" not in answer
    assert isinstance(chat_completion(id="x", model="m", choices=[])["created"], int)


def test_a_chunk_and_the_usage_chunk_that_ends_a_stream():
    data = orjson.loads(chat_chunk(id="c", created=1, model="m", choices=[delta_choice({"content": "hi"})]))
    assert data == {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{"index": 0, "delta": {"content": "hi"}, "logprobs": None, "finish_reason": None}]}
    event = usage_event(id="c", created=1, model="m", usage=Usage(2, 3))
    assert event.usage_only and event.usage == Usage(2, 3)
    assert orjson.loads(event.data)["choices"] == []
    assert orjson.loads(event.data)["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    shown = usage_event(id="c", created=1, model="m", usage=Usage(2, 3), as_json={"prompt_tokens": 2, "x": 1})
    assert orjson.loads(shown.data)["usage"] == {"prompt_tokens": 2, "x": 1}


def test_an_error_in_a_stream_is_openais_error_object_or_the_vendors():
    err = UpstreamError(status=429, message="slow down", type="rate_limit_error", code="rate_limit_exceeded")
    event = error_event(err)
    assert event.error is err
    assert orjson.loads(event.data) == {"error": {"message": "slow down", "type": "rate_limit_error",
                                                  "code": "rate_limit_exceeded", "param": None}}
    assert orjson.loads(error_event(err, {"message": "m", "sid": "s"}).data) == {"error": {"message": "m", "sid": "s"}}


def test_an_embeddings_list_has_usage_only_when_the_tokens_are_known():
    data = [embedding(0, [0.5])]
    assert embeddings_list(data, "e") == {"object": "list", "data": [{"object": "embedding", "index": 0,
                                                                       "embedding": [0.5]}], "model": "e"}
    assert embeddings_list(data, "e", 4)["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert embeddings_list(data, "e", 0)["usage"] == {"prompt_tokens": 0, "total_tokens": 0}


def test_an_image_made_of_bytes_is_b64_json_unless_a_url_is_asked_for():
    assert image_item("image/png", "QUJD", {}) == {"b64_json": "QUJD"}
    assert image_item("image/png", "QUJD", {"response_format": "url"}, "a cat") == {
        "url": "data:image/png;base64,QUJD", "revised_prompt": "a cat"}


def test_transcripts_are_refused_in_a_format_openai_has_not():
    assert transcript_format({}) == "json" and transcript_format({"response_format": "srt"}) == "srt"
    with pytest.raises(UpstreamError) as refused:
        transcript_format({"response_format": "docx"})
    assert (refused.value.status, refused.value.code, refused.value.param) == (
        400, "unsupported_response_format", "response_format")
    assert transcript_content_type({"response_format": "vtt"}) == "text/plain; charset=utf-8"
    assert transcript_content_type({"response_format": "verbose_json"}) == "application/json"


def test_a_transcript_in_each_format():
    transcript = Transcript({"text": " Hello there. ", "segments": [
        {"start": 0.0, "end": 1.5, "text": "Hello"}, {"start": 1.5, "end": 3.25, "text": "there."}]})
    assert transcript.answer("text", task="transcribe", language="en") == b"Hello there.\n"
    assert orjson.loads(transcript.answer("json", task="transcribe", language="en")) == {
        "text": "Hello there.", "usage": {"type": "duration", "seconds": 4}}
    assert transcript.answer("srt", task="transcribe", language="en").decode() == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello\n\n2\n00:00:01,500 --> 00:00:03,250\nthere.\n")
    verbose = orjson.loads(transcript.answer("verbose_json", task="translate", language="de"))
    assert (verbose["task"], verbose["language"], verbose["duration"]) == ("translate", "de", 3.25)
    assert [s["id"] for s in verbose["segments"]] == [0, 1]
