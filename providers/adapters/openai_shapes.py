"""OpenAI's answer shapes, made once for every adapter that translates a vendor's answer into them.

Clients get OpenAI's shapes whichever vendor answers: a chat.completion or its chunks, an embeddings list,
an images answer, a transcript. A vendor module reads its vendor's answer and calls these, so it holds only
its vendor's translation (which field is the text, which reason means "length"). References:
https://platform.openai.com/docs/api-reference/chat/object (and chat-streaming), /embeddings/object,
/images/object, /audio/json-object and /audio/verbose-json-object.

The key order of each dict is OpenAI's, so answers read the same whatever the vendor.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

import orjson

from providers.adapters.base import StreamEvent, UpstreamError, Usage

# --- usage -------------------------------------------------------------------------------------------


# The most tokens one request may be said to have used: the consume log's token columns are 32-bit integers
# (one-api's), and no request comes near it; a count past it is junk, or the log row could not be written.
MAX_COUNT = 2**31 - 1


def count(value: Any) -> int:
    """A token count from a vendor's JSON: a non-negative whole number, or 0 for anything else (a missing
    field, null, a string, a count past MAX_COUNT), so one odd field never fails an answer that was delivered."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
        return 0
    return int(value) if value <= MAX_COUNT else 0


def _details(usage: dict, *names: str) -> dict:
    for name in names:
        if isinstance(usage.get(name), dict):
            return usage[name]
    return {}


def usage_from(payload: dict) -> Usage | None:
    """The usage of an answer (or a chunk) in OpenAI's shape, None when it tells none. Chat names the counts
    prompt/completion, audio and image models input/output; embeddings give only a total.

    The breakdown as OpenAI's clones report it: `prompt_tokens_details.cached_tokens` (OpenAI, xAI, Zhipu,
    Qwen; `input_tokens_details` on the image and audio models), DeepSeek's `prompt_cache_hit_tokens`
    (https://api-docs.deepseek.com/guides/kv_cache), Moonshot's `cached_tokens` beside the counts;
    `completion_tokens_details.reasoning_tokens`, the audio tokens of both sides and the image tokens
    (`input_tokens_details.image_tokens` of gpt-image-1, `output_tokens_details.image_tokens` of its newer
    answers). Writes as Qwen's explicit
    cache tells them, `prompt_tokens_details.cache_creation_input_tokens` (within prompt_tokens, as its reads
    are: https://help.aliyun.com/zh/model-studio/user-guide/context-cache)."""
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = count(usage.get("prompt_tokens")) or count(usage.get("input_tokens"))
    completion = count(usage.get("completion_tokens")) or count(usage.get("output_tokens"))
    if not prompt and not completion and usage.get("total_tokens"):
        prompt = count(usage["total_tokens"])  # embeddings report only totals
    asked = _details(usage, "prompt_tokens_details", "input_tokens_details")
    answered = _details(usage, "completion_tokens_details", "output_tokens_details")
    cached = (count(asked.get("cached_tokens")) or count(usage.get("prompt_cache_hit_tokens"))
              or count(usage.get("cached_tokens")))
    cached = min(cached, prompt)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached,
                 cache_write_tokens=min(count(asked.get("cache_creation_input_tokens")), prompt - cached),
                 reasoning_tokens=min(count(answered.get("reasoning_tokens")), completion),
                 input_audio_tokens=min(count(asked.get("audio_tokens")), prompt),
                 output_audio_tokens=min(count(answered.get("audio_tokens")), completion),
                 input_image_tokens=min(count(asked.get("image_tokens")), prompt),
                 output_image_tokens=min(count(answered.get("image_tokens")), completion))


def usage_json(usage: Usage, *, cached: bool = False, reasoning: bool = False) -> dict:
    """OpenAI's `usage` object. Its details tell the prompt tokens read from the vendor's cache and the
    completion tokens spent thinking when the vendor counted any (or always, when `cached` or `reasoning`
    say so: a vendor whose answers always carry the field)."""
    out: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                           "total_tokens": usage.total_tokens}
    if reasoning or usage.reasoning_tokens or usage.output_audio_tokens or usage.output_image_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
        if usage.output_audio_tokens:
            out["completion_tokens_details"]["audio_tokens"] = usage.output_audio_tokens
        if usage.output_image_tokens:
            out["completion_tokens_details"]["image_tokens"] = usage.output_image_tokens
    if cached or usage.cached_tokens or usage.cache_write_tokens or usage.input_audio_tokens \
            or usage.input_image_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
        if usage.cache_write_tokens:
            # The name OpenAI's newer usage objects give it; the Messages and Responses codecs read it here.
            out["prompt_tokens_details"]["cache_write_tokens"] = usage.cache_write_tokens
        if usage.input_audio_tokens:
            out["prompt_tokens_details"]["audio_tokens"] = usage.input_audio_tokens
        if usage.input_image_tokens:
            out["prompt_tokens_details"]["image_tokens"] = usage.input_image_tokens
    return out


def input_usage_json(tokens: int) -> dict:
    """The `usage` of an embeddings answer, which counts its input only."""
    return {"prompt_tokens": tokens, "total_tokens": tokens}


# --- chat completions ------------------------------------------------------------------------------


def finish_reason(reason: Any, table: Mapping[str, str], *, tool_calls: bool = False) -> str:
    """OpenAI's finish_reason for a vendor's `reason`, as the vendor's `table` maps it. A reason the table does
    not know (or none) is "tool_calls" for an answer that called tools, else "stop". A vendor whose reason
    says nothing of tool calls (Gemini's STOP) decides "tool_calls" itself, before asking."""
    mapped = table.get(reason) if isinstance(reason, str) else None
    return mapped or ("tool_calls" if tool_calls else "stop")


def call_id() -> str:
    """An id for a tool call the vendor gave none: unique across turns, so a client that keys tool results by
    id never sees two calls share one."""
    return f"call_{secrets.token_hex(12)}"


def tool_call(id: str, name: str, arguments: str, *, index: int | None = None) -> dict:
    """One tool call: in a message without `index`, in a stream's delta with it (OpenAI numbers the calls of
    one answer there, so their pieces can be put together)."""
    call: dict[str, Any] = {} if index is None else {"index": index}
    call.update({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
    return call


def message_choice(index: int, message: dict, finish: str) -> dict:
    """One choice of a chat.completion."""
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}


def chat_completion(*, id: str, model: Any, choices: list[dict], usage: dict | None = None,
                    created: int | None = None) -> dict:
    """A chat.completion; `created` is now unless the vendor said when."""
    answer: dict[str, Any] = {"id": id, "object": "chat.completion",
                              "created": int(time.time()) if created is None else created,
                              "model": model, "choices": choices}
    if usage is not None:
        answer["usage"] = usage
    return answer


# --- streamed chat completions ---------------------------------------------------------------------


def delta_choice(delta: dict, finish: str | None = None, *, index: int = 0) -> dict:
    """One choice of a chat.completion.chunk: the piece of the answer in `delta`, the finish on the last."""
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def chat_chunk(*, id: str, created: int, model: Any, choices: list[dict], usage: dict | None = None) -> bytes:
    """A chat.completion.chunk, as the `data:` of its SSE event. Every chunk of one answer repeats its id,
    created and model."""
    payload: dict[str, Any] = {"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                               "choices": choices}
    if usage is not None:
        payload["usage"] = usage
    return orjson.dumps(payload)


def usage_event(*, id: str, created: int, model: Any, usage: Usage, as_json: dict | None = None) -> StreamEvent:
    """The chunk OpenAI ends a stream with when asked to (`stream_options.include_usage`): no choices, the
    usage. Flagged `usage_only`, so the relay bills it and hides it from a client that did not ask. `as_json`
    is the client's usage object when the vendor tells more than the counts (cached or reasoning tokens)."""
    data = chat_chunk(id=id, created=created, model=model, choices=[], usage=as_json or usage_json(usage))
    return StreamEvent(data=data, usage=usage, usage_only=True)


def error_event(err: UpstreamError, body: dict | None = None) -> StreamEvent:
    """An error the vendor reported inside its stream, as the `{"error": ...}` event OpenAI sends; `body` is
    the error object when the vendor's own (err.error_body) is to be shown."""
    if body is None:
        body = {"message": err.message, "type": err.type, "code": err.code, "param": None}
    return StreamEvent(data=orjson.dumps({"error": body}), error=err)


# --- embeddings ------------------------------------------------------------------------------------


def embedding(index: Any, vector: Any) -> dict:
    """One item of an embeddings list."""
    return {"object": "embedding", "index": index, "embedding": vector}


def embeddings_list(data: list[dict], model: Any, tokens: int | None = None) -> dict:
    """An embeddings answer; its usage when the input's tokens are known."""
    answer: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if tokens is not None:
        answer["usage"] = input_usage_json(tokens)
    return answer


# --- images ----------------------------------------------------------------------------------------


def image_item(mime: str, data: str, body: dict, revised_prompt: Any = None) -> dict:
    """One image of OpenAI's answer from a vendor that gives the image's bytes (base64 `data`), never a link.
    `b64_json` is the default, as OpenAI's gpt-image-1 (which also makes only bytes) answers. A client that
    asks for `url` gets a data: URL: its SDK reads `.url` as any string, and an <img> tag or urllib opens it,
    where a refusal would break code written for dall-e's default."""
    item: dict[str, Any] = ({"url": f"data:{mime};base64,{data}"} if body.get("response_format") == "url"
                            else {"b64_json": data})
    if isinstance(revised_prompt, str) and revised_prompt:
        item["revised_prompt"] = revised_prompt
    return item


def images_answer(data: list[dict], created: int | None = None) -> bytes:
    """An images answer: its items (url or b64_json each), made now unless the vendor said when."""
    return orjson.dumps({"created": int(time.time()) if created is None else created, "data": data})


# --- transcripts -----------------------------------------------------------------------------------

TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
# Transcripts asked for in these formats are plain text, not JSON.
TEXT_FORMATS = ("text", "srt", "vtt")
SEGMENT_FIELDS = ("temperature", "avg_logprob", "compression_ratio", "no_speech_prob")
_CUE_TIMES = re.compile(r"((?:\d+:)?\d{1,2}:\d{2}[.,]\d{3})\s*-->\s*((?:\d+:)?\d{1,2}:\d{2}[.,]\d{3})")


def transcript_format(body: dict) -> str:
    """The `response_format` a transcription asks for (json when none), refused when OpenAI has no such one."""
    fmt = body.get("response_format") or "json"
    if fmt not in TRANSCRIPT_FORMATS:
        raise UpstreamError(status=400, message=f"`response_format` must be one of {', '.join(TRANSCRIPT_FORMATS)}.",
                            type="invalid_request_error", code="unsupported_response_format", param="response_format")
    return fmt


def transcript_content_type(body: dict) -> str:
    return "text/plain; charset=utf-8" if body.get("response_format") in TEXT_FORMATS else "application/json"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _seconds(stamp: str) -> float:
    parts = stamp.replace(",", ".").split(":")
    return sum(float(part) * 60 ** i for i, part in enumerate(reversed(parts)))


def _timestamp(seconds: float, mark: str) -> str:
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}{mark}{millis % 1000:03d}"


def vtt_cues(vtt: str) -> list[tuple[float, float, str]]:
    """The (start, end, text) cues of a WebVTT document."""
    cues = []
    for block in re.split(r"\r?\n[ \t]*\r?\n", vtt):
        lines = block.strip().splitlines()
        for i, line in enumerate(lines):
            times = _CUE_TIMES.search(line)
            if times:
                text = " ".join(rest.strip() for rest in lines[i + 1:]).strip()
                cues.append((_seconds(times[1]), _seconds(times[2]), text))
                break
    return cues


def subtitles(cues: list[tuple[float, float, str]], fmt: str) -> str:
    if fmt == "srt":
        return "\n".join(f"{i}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text}\n"
                         for i, (start, end, text) in enumerate(cues, 1))
    return "WEBVTT\n\n" + "\n".join(f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{text}\n"
                                    for start, end, text in cues)


class Transcript:
    """A transcription as a vendor gives it, made into each of OpenAI's `response_format`s. The vendor's
    result comes in Workers AI's shape (`{text, transcription_info?, segments?, words?, vtt?}`, times in
    seconds), which the Paraformer adapter (ali/asr.py) builds for its own."""

    def __init__(self, result: dict):
        self.text = result["text"].strip()
        self.info = result.get("transcription_info") if isinstance(result.get("transcription_info"), dict) else {}
        self.segments = [s for s in result.get("segments") or () if isinstance(s, dict)]
        words = result.get("words") or [w for s in self.segments for w in s.get("words") or ()]
        self.words = [{"word": str(w.get("word") or "").strip(), "start": _number(w.get("start")) or 0.0,
                       "end": _number(w.get("end")) or 0.0} for w in words if isinstance(w, dict)]
        self.vtt = result.get("vtt") if isinstance(result.get("vtt"), str) else ""

    @property
    def duration(self) -> float | None:
        """The audio's length as the vendor gives it, else the end of the last word or segment it timed."""
        given = _number(self.info.get("duration"))
        if given is not None:
            return given
        ends = [_number(item.get("end")) or 0.0 for item in [*self.segments, *self.words]]
        return max(ends) if ends else None

    def cues(self) -> list[tuple[float, float, str]]:
        if self.segments:
            return [(_number(s.get("start")) or 0.0, _number(s.get("end")) or 0.0, str(s.get("text") or "").strip())
                    for s in self.segments]
        return vtt_cues(self.vtt) or ([(0.0, self.duration or 0.0, self.text)] if self.text else [])

    def answer(self, fmt: str, *, task: str, language: str) -> bytes:
        if fmt == "text":
            return (self.text + "\n").encode()
        if fmt == "vtt" and self.vtt.lstrip().startswith("WEBVTT"):
            return self.vtt.encode()
        if fmt in ("srt", "vtt"):
            return subtitles(self.cues(), fmt).encode()
        duration = self.duration
        if fmt == "json":
            answer: dict[str, Any] = {"text": self.text}
            if duration is not None:
                answer["usage"] = {"type": "duration", "seconds": math.ceil(duration)}
            return orjson.dumps(answer)
        verbose: dict[str, Any] = {"task": task, "language": str(self.info.get("language") or language),
                                   "duration": duration or 0.0, "text": self.text}
        if self.segments:
            verbose["segments"] = [
                {"id": i, "start": _number(s.get("start")) or 0.0, "end": _number(s.get("end")) or 0.0,
                 "text": str(s.get("text") or ""), **{k: s[k] for k in SEGMENT_FIELDS if k in s}}
                for i, s in enumerate(self.segments)]
        if self.words:
            verbose["words"] = self.words
        return orjson.dumps(verbose)
