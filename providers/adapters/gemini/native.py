"""Gemini's own API spoken natively: a Gemini client's request (generateContent, streamGenerateContent,
countTokens, embedContent, batchEmbedContents) goes to Gemini (type 24) or Vertex AI's Gemini (type 42) as the
client wrote it, and its answer comes back as Google sent it, read here only for the bill.

Which method a call is follows from the relay's mode and the body: embedContent's body has `content`,
batchEmbedContents' has `requests` (https://ai.google.dev/api/embeddings). A stream is always asked for as SSE
(`alt=sse`): the Gemini codec writes it as one JSON array for a client that did not ask for SSE, as Google
does, so the adapters read one framing.
"""

from __future__ import annotations

from typing import Any

import orjson

from providers.adapters.base import NativeStream, RequestContext, Usage, check_answer, json_or_none
from providers.adapters.gemini.answers import error_payload, gemini_error, usage_from


def method(ctx: RequestContext) -> str:
    """The Gemini method (with its query) a native call is sent to."""
    if ctx.mode == "count_tokens":
        return "countTokens"
    if ctx.mode == "embeddings":
        return "batchEmbedContents" if "requests" in ctx.body else "embedContent"
    return "streamGenerateContent?alt=sse" if ctx.stream else "generateContent"


def native_body(ctx: RequestContext, model: str) -> dict:
    """The client's body for the vendor (without the `model` the relay put in it): the channel's system prompt,
    if it has one, as systemInstruction (replacing the client's, as it replaces an OpenAI client's system
    message), and the model's resource name where a body carries one (batchEmbedContents' requests, a
    countTokens' generateContentRequest), so the channel's mapping reaches it too."""
    body = dict(ctx.body)
    body.pop("model", None)
    name = f"models/{model}"
    if ctx.mode == "chat" and ctx.channel.system_prompt:
        body["systemInstruction"] = {"parts": [{"text": ctx.channel.system_prompt}]}
    elif ctx.mode == "embeddings" and isinstance(body.get("requests"), list):
        body["requests"] = [{**item, "model": name} if isinstance(item, dict) else item for item in body["requests"]]
    elif ctx.mode == "count_tokens":
        for key in ("generateContentRequest", "generate_content_request"):
            if isinstance(body.get(key), dict):
                body[key] = {**body[key], "model": name}
    return body


def _words(payload: dict) -> str:
    """An answer's text, thoughts and function calls, to count when it gave no usageMetadata."""
    words: list[str] = []
    for candidate in payload.get("candidates") or ():
        content = candidate.get("content") if isinstance(candidate, dict) else None
        for part in (content.get("parts") or ()) if isinstance(content, dict) else ():
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                words.append(part["text"])
            call = part.get("functionCall")
            if isinstance(call, dict):
                words.append(str(call.get("name") or "") + orjson.dumps(call.get("args") or {}).decode())
    return "".join(words)


def _error_in(payload: Any):
    error = error_payload(payload)
    return None if error is None else gemini_error(502, orjson.dumps({"error": error}))


def read_answer(ctx: RequestContext, body: bytes, vendor: str) -> tuple[Usage | None, str]:
    """A native call's whole answer: its usage and its words. A 200 that is not the method's answer (an error
    object, a proxy's page) is raised: another channel may answer."""
    payload = json_or_none(body)
    if ctx.mode == "count_tokens":
        check_answer(payload, vendor, "totalTokens", what="a token count", error=_error_in)
        return None, ""
    if ctx.mode == "embeddings":  # Gemini reports no usage for embeddings: the input is counted
        check_answer(payload, vendor, "embedding", "embeddings", what="embeddings", error=_error_in)
        return None, ""
    check_answer(payload, vendor, "candidates", "promptFeedback", what="a GenerateContentResponse", error=_error_in)
    return usage_from(payload.get("usageMetadata")), _words(payload)


class GenerateEvents(NativeStream):
    """streamGenerateContent's SSE, read for the bill as it goes by: usageMetadata is cumulative, so the last
    chunk that carries it is the bill; an error object in the stream is the vendor's error."""

    def read(self, event: bytes, data: bytes) -> None:
        payload = json_or_none(data)
        error = _error_in(payload)
        if error is not None:
            self.error = self.error or error
            return
        if not isinstance(payload, dict):
            return  # a garbled event is passed on; the rest of the stream still counts
        self.answered = True
        if isinstance(payload.get("usageMetadata"), dict):
            self.usage = usage_from(payload["usageMetadata"])
        words = _words(payload)
        if words or payload.get("candidates") or payload.get("promptFeedback"):
            self.begun = True
            if words:
                self.texts.append(words)

    def interruption(self, message: str) -> bytes:
        # The relay's own break (an upstream cut off), as the gateway's Gemini errors are written.
        return b"data: " + orjson.dumps({"error": {"code": 502, "message": message, "status": "INTERNAL"}}) \
            + b"\r\n\r\n"
