"""Gemini's answers as OpenAI's: generateContent (chat), batchEmbedContents, the SSE stream of
streamGenerateContent, and Gemini's errors (https://ai.google.dev/api/generate-content#response-body,
https://ai.google.dev/gemini-api/docs/troubleshooting). Vertex AI's Gemini answers the same (vertex.py).
"""

from __future__ import annotations

import base64
import secrets
import struct
import time
from typing import Any, ClassVar

import orjson

from oneapi_site.lib import tokenizer
from providers.adapters.base import StreamDecoder, StreamEvent, UpstreamError, Usage, json_or_none, retryable_status
from providers.adapters.openai_shapes import (
    call_id,
    chat_chunk,
    chat_completion,
    count,
    delta_choice,
    embedding,
    embeddings_list,
    error_event,
    finish_reason,
    message_choice,
    tool_call,
    usage_event,
    usage_json,
)

FINISH_REASONS = {
    "STOP": "stop", "MAX_TOKENS": "length",
    "SAFETY": "content_filter", "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter", "IMAGE_SAFETY": "content_filter",
}

# google.rpc.Code names Gemini puts in error.status (https://ai.google.dev/gemini-api/docs/troubleshooting).
RETRYABLE_STATUSES = {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"}
REQUEST_STATUSES = {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND", "OUT_OF_RANGE"}


def _modality(details: Any, modality: str) -> int:
    """The tokens of one modality in a usageMetadata list of {modality, tokenCount}."""
    return sum(count(d.get("tokenCount")) for d in details if isinstance(d, dict) and d.get("modality") == modality) \
        if isinstance(details, list) else 0


def usage_from(metadata: Any) -> Usage | None:
    """usageMetadata (https://ai.google.dev/api/generate-content#UsageMetadata): thinking tokens are billed as
    output, tool-use prompt tokens as input; promptTokenCount includes the cached content, as OpenAI's prompt
    includes its cached tokens."""
    if not isinstance(metadata, dict):
        return None
    prompt = count(metadata.get("promptTokenCount")) + count(metadata.get("toolUsePromptTokenCount"))
    thoughts = count(metadata.get("thoughtsTokenCount"))
    completion = count(metadata.get("candidatesTokenCount")) + thoughts
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 cached_tokens=min(count(metadata.get("cachedContentTokenCount")), prompt),
                 reasoning_tokens=thoughts,
                 input_audio_tokens=min(_modality(metadata.get("promptTokensDetails"), "AUDIO"), prompt),
                 output_audio_tokens=min(_modality(metadata.get("candidatesTokensDetails"), "AUDIO"), completion),
                 input_image_tokens=min(_modality(metadata.get("promptTokensDetails"), "IMAGE"), prompt),
                 output_image_tokens=min(_modality(metadata.get("candidatesTokensDetails"), "IMAGE"), completion))


def function_call(part: dict, index: int) -> dict:
    """A functionCall part as OpenAI's tool call. Most models give the call no id: one is made."""
    call = part["functionCall"]
    answer = tool_call(call.get("id") or call_id(), call.get("name") or "",
                       orjson.dumps(call.get("args") or {}).decode(), index=index)
    if part.get("thoughtSignature"):
        # Gemini 3 wants the signature back with the call; Google's own OpenAI endpoint carries it here.
        answer["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return answer


def blocked_message(payload: dict) -> str | None:
    feedback = payload.get("promptFeedback")
    if payload.get("candidates") or not isinstance(feedback, dict) or not feedback.get("blockReason"):
        return None
    message = f"Gemini refused the prompt (blockReason {feedback['blockReason']})"
    if feedback.get("blockReasonMessage"):
        message += f": {feedback['blockReasonMessage']}"
    return message


def blocked_error(message: str) -> UpstreamError:
    body = {"message": message, "type": "invalid_request_error", "code": "content_filter", "param": None}
    return UpstreamError(status=400, message=message, type="invalid_request_error", code="content_filter",
                         error_body=body)


def candidate_parts(candidate: dict, first_call: int = 0) -> tuple[list[str], list[str], list[dict]]:
    """A candidate's texts, thoughts (`thought` parts) and function calls (OpenAI tool calls numbered from
    `first_call`); parts of any other kind, or of no known shape, are skipped."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            calls.append(function_call(part, first_call + len(calls)))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    return texts, thoughts, calls


def candidate_choice(candidate: dict, position: int) -> dict:
    texts, thoughts, calls = candidate_parts(candidate)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = [{k: v for k, v in call.items() if k != "index"} for call in calls]
    # Gemini finishes a call with STOP: the calls tell.
    finish = "tool_calls" if calls else finish_reason(candidate.get("finishReason"), FINISH_REASONS)
    return message_choice(candidate.get("index", position), message, finish)


def error_payload(payload: Any) -> dict | None:
    """Gemini's error object; the OpenAI-compatible endpoint wraps it in a one-item list."""
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return payload["error"]
    return None


def gemini_error(status: int, body: bytes) -> UpstreamError | None:
    error = error_payload(json_or_none(body))
    if error is None or not error.get("message"):
        return None
    message = str(error["message"])
    grpc_status = str(error.get("status") or "")
    reasons = {d.get("reason") for d in error.get("details") or () if isinstance(d, dict)}
    bad_key = "API_KEY_INVALID" in reasons or "API key not valid" in message or "API key expired" in message
    # These take the channel out of rotation (providers/health.py): a dead or leaked key will not recover.
    if bad_key or grpc_status == "UNAUTHENTICATED":
        kind, code, retryable = "authentication_error", "invalid_api_key" if bad_key else "unauthenticated", False
    elif grpc_status == "PERMISSION_DENIED":
        kind, code, retryable = "permission_error", "permission_denied", False
    elif grpc_status in RETRYABLE_STATUSES:
        kind, code, retryable = "upstream_error", grpc_status.lower(), True
    elif grpc_status in REQUEST_STATUSES:
        kind, code, retryable = "invalid_request_error", grpc_status.lower(), False
    else:
        kind, code = "upstream_error", grpc_status.lower() or "bad_response_status_code"
        retryable = retryable_status(status)
    body_out = {"message": message, "type": kind, "code": code, "param": None}
    return UpstreamError(status=status, message=message, type=kind, code=code, retryable=retryable,
                         error_body=body_out)


def chat_answer(payload: dict, model: str) -> tuple[bytes, Usage | None]:
    """A GenerateContentResponse as OpenAI's chat.completion; a prompt Gemini refused is an error."""
    message = blocked_message(payload)
    if message:
        raise blocked_error(message)
    usage = usage_from(payload.get("usageMetadata"))
    answer = chat_completion(
        id=f"chatcmpl-{payload.get('responseId') or secrets.token_hex(12)}",
        model=payload.get("modelVersion") or model or "gemini",
        choices=[candidate_choice(c, i) for i, c in enumerate(payload.get("candidates") or ()) if isinstance(c, dict)],
        usage=usage_json(usage) if usage is not None else None)
    return orjson.dumps(answer), usage


def embeddings_answer(payload: dict, request: dict) -> bytes:
    """OpenAI's embeddings list from Gemini's, shaped by the request: its model, input and encoding."""
    data = []
    for index, item in enumerate(payload.get("embeddings") or ()):
        values = (item or {}).get("values") or []
        if request.get("encoding_format") == "base64":
            # OpenAI's base64 form: little-endian float32, which the official SDKs ask for by default.
            vector: Any = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        else:
            vector = values
        data.append(embedding(index, vector))
    tokens = None
    if request.get("input") is not None:
        # What the relay bills (it counts the input locally); clients' SDKs expect the field.
        tokens = tokenizer.count_input(request["input"], str(request.get("model") or ""))
    return orjson.dumps(embeddings_list(data, request.get("model") or "gemini-embedding", tokens))


class GeminiStreamDecoder(StreamDecoder):
    """`streamGenerateContent?alt=sse`: each `data:` is a whole GenerateContentResponse holding the
    next piece of text or a complete function call; the last carries finishReason, and usageMetadata
    is cumulative, so the latest one is the bill."""

    framing: ClassVar[str] = "sse"

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"chatcmpl-{secrets.token_hex(12)}"
        self.created = int(time.time())
        self.started: set[int] = set()
        self.calls: dict[int, int] = {}  # candidate index -> tool calls sent
        self.usage: Usage | None = None

    def _chunk(self, choices: list[dict]) -> bytes:
        return chat_chunk(id=self.id, created=self.created, model=self.model, choices=choices)

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []  # a malformed event is dropped: the rest of the answer still arrives
        error = error_payload(payload)
        if error is not None:
            body = {"message": str(error.get("message") or "Gemini reported an error mid-stream"),
                    "type": "upstream_error", "code": str(error.get("status") or "").lower() or None, "param": None}
            # Its kind as an HTTP answer would tell it (a refused key is no reason to try another channel's).
            err = gemini_error(502, orjson.dumps({"error": {**error, "message": body["message"]}}))
            return [error_event(err, body)]
        if not isinstance(payload, dict):
            return []
        if isinstance(payload.get("usageMetadata"), dict):
            self.usage = usage_from(payload["usageMetadata"])
        message = blocked_message(payload)
        if message:
            return [error_event(blocked_error(message))]
        choices: list[dict] = []
        text = ""
        for position, candidate in enumerate(payload.get("candidates") or ()):
            if not isinstance(candidate, dict):
                continue
            choice, piece = self._choice(candidate, position)
            if choice is not None:
                choices.append(choice)
                text += piece
        if not choices:
            return []
        reasoning = any("reasoning_content" in choice["delta"] for choice in choices)  # `thought` parts
        return [StreamEvent(data=self._chunk(choices), text=text, reasoning=reasoning)]

    def _choice(self, candidate: dict, position: int) -> tuple[dict | None, str]:
        index = candidate.get("index", position)
        delta: dict[str, Any] = {}
        texts, thoughts, calls = candidate_parts(candidate, self.calls.get(index, 0))
        reason = candidate.get("finishReason")
        if not texts and not thoughts and not calls and not reason:
            return None, ""
        if index not in self.started:
            self.started.add(index)
            delta["role"] = "assistant"
        if texts or not calls:
            delta["content"] = "".join(texts)
        if thoughts:
            delta["reasoning_content"] = "".join(thoughts)
        if calls:
            delta["tool_calls"] = calls
            self.calls[index] = self.calls.get(index, 0) + len(calls)
        finish = None
        if reason:
            finish = "tool_calls" if self.calls.get(index) else finish_reason(reason, FINISH_REASONS)
        piece = "".join(texts) + "".join(c["function"]["name"] + c["function"]["arguments"] for c in calls)
        return delta_choice(delta, finish, index=index), piece

    def close(self) -> list[StreamEvent]:
        if self.usage is None:
            return []
        return [usage_event(id=self.id, created=self.created, model=self.model, usage=self.usage)]
