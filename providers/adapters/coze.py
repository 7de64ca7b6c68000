"""Coze (coze.com, coze.cn): published bots as models, over the v3 chat API, or v2 for older accounts.

A channel's models are bot ids: `bot-<id>` (one-api's naming) or the bare id calls bot `<id>`.
The bot brings its own persona, model settings and plugins, so OpenAI's sampling parameters
(max_tokens, temperature, top_p, stop) and `tools` have nowhere to go and are ignored.

v3 (https://www.coze.com/docs/developer_guides/chat_v3) answers a non-streamed chat only by
polling (create, retrieve, list messages), so the adapter is stream-only: the relay always asks
for the SSE stream and gathers it for clients that did not ask to stream. v2 (one-api's choice,
https://www.coze.com/docs/developer_guides/coze_api_overview) is spoken through its stream too,
so both versions behave alike and one decoder serves both.

Coze reports many failures with HTTP 200 and a `{"code": <non-zero>, "msg": ...}` body, or inside
the stream (`conversation.chat.failed`, `error`); all of them become UpstreamErrors that keep
Coze's message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

import orjson

from providers.adapters.base import (
    Adapter,
    RequestContext,
    StreamDecoder,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    json_or_none,
    retryable_status,
)
from providers.adapters.openai import OpenAIAdapter
from providers.adapters.openai_shapes import (
    chat_chunk,
    chat_completion,
    delta_choice,
    error_event,
    message_choice,
    usage_event,
)

V3_PATH = "/v3/chat"
V2_PATH = "/open_api/v2/chat"
DEFAULT_USER = "oneapi"  # Coze requires a user id; one stable id when the channel sets none

# Coze's business codes (https://www.coze.com/docs/developer_guides/coze_error_codes) as
# (HTTP status, OpenAI-style code, retryable). Auth failures stay on this channel; rate and
# balance limits may be served by another channel (another Coze account), so they fail over.
CODES: dict[int, tuple[int, str, bool]] = {
    4000: (400, "invalid_request", False),
    4100: (401, "invalid_api_key", False),  # "authentication is invalid": a wrong or expired token
    4101: (403, "permission_denied", False),  # the token lacks the chat permission for this bot
    4200: (404, "bot_not_found", False),  # no such bot, or not published as an API bot
    4013: (429, "rate_limit_exceeded", True),
    4019: (429, "insufficient_quota", True),  # the Coze account's balance is used up
}


def bot_id(model: str) -> str:
    return model.removeprefix("bot-")


def coze_error(code, message: str, *, status: int = 200) -> UpstreamError:
    """One Coze business error (or an HTTP error carrying one) in OpenAI's shape."""
    try:
        number = int(code)
    except (TypeError, ValueError):
        number = 0
    if number in CODES:
        status, name, retryable = CODES[number]
    else:
        if status < 400:  # HTTP 200 with a failure code: a 4xxx code is the request's fault
            status = 500 if 5000 <= number < 6000 else 400
        name, retryable = "bad_response_status_code", retryable_status(status)
    text = message or f"Coze answered code {code}"
    if number:
        text = f"{text} (Coze code {number})"
    # error_body keeps Coze's message even where the relay would word a bare 429 its own way.
    return UpstreamError(status=status, message=text, type="upstream_error", code=name, retryable=retryable,
                         error_body={"message": text, "type": "upstream_error", "code": name, "param": None})


def refuse(message: str, code: str = "unsupported_content") -> UpstreamError:
    return UpstreamError(status=400, message=message, type="invalid_request_error", code=code, retryable=False)


# --- requests ------------------------------------------------------------------------------

def _text(content) -> str:
    """The text of an OpenAI message content: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _turns(messages: list) -> list[tuple[str, object]]:
    """OpenAI messages as Coze's (role, content) turns: Coze knows only user and assistant.

    A Coze bot has its own persona and the API takes no system prompt, so a system message's
    text is put before the first user message (where Coze's model still sees it). Tool results
    (which a Coze bot never asked for: it runs its own plugins) are kept as user text.
    """
    system: list[str] = []
    turns: list[tuple[str, object]] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            if text := _text(content):
                system.append(text)
        elif role == "assistant":
            if text := _text(content):
                turns.append(("assistant", text))
        elif role in ("tool", "function"):
            if text := _text(content):
                turns.append(("user", text))
        elif content not in (None, "", []):
            turns.append(("user", content))
    if system:
        preface = "\n\n".join(system)
        for i, (role, content) in enumerate(turns):
            if role == "user":
                if isinstance(content, list):
                    turns[i] = (role, [{"type": "text", "text": preface + "\n\n"}, *content])
                else:
                    turns[i] = (role, f"{preface}\n\n{content}")
                break
        else:
            turns.insert(0, ("user", preface))
    return turns


def _v3_user_content(content) -> tuple[str, str]:
    """A user turn as Coze v3 (content, content_type).

    Images go as an `object_string` whose image item names a public `file_url`; Coze cannot take
    inline (data:) images without an upload to its file API first, which we do not do.
    """
    if isinstance(content, str):
        return content, "text"
    if not isinstance(content, list):
        return str(content), "text"
    items: list[dict] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                items.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise refuse("Coze takes images only as public http(s) URLs; inline data: images would need an "
                             "upload to Coze's file API first, which this gateway does not do.",
                             code="unsupported_image")
            items.append({"type": "image", "file_url": url})
        else:
            raise refuse(f"Coze bots take text and image URLs; a `{kind}` content part cannot be sent.")
    if all(item["type"] == "text" for item in items):
        return "".join(item["text"] for item in items), "text"
    return orjson.dumps(items).decode(), "object_string"


def v3_body(body: dict, user_id: str) -> dict:
    messages = []
    for role, content in _turns(body.get("messages") or []):
        if role == "user":
            text, content_type = _v3_user_content(content)
            messages.append({"role": "user", "type": "question", "content": text, "content_type": content_type})
        else:
            messages.append({"role": "assistant", "type": "answer", "content": content, "content_type": "text"})
    # auto_save_history false: the gateway is stateless, each request carries its whole history.
    return {"bot_id": bot_id(body.get("model", "")), "user_id": user_id, "stream": True,
            "auto_save_history": False, "additional_messages": messages}


def v2_body(body: dict, user_id: str) -> dict:
    history = []
    for role, content in _turns(body.get("messages") or []):
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") != "text" for p in content):
            raise refuse("Coze API v2 takes text only; switch the channel to v3 to send image URLs.",
                         code="unsupported_image")
        history.append({"role": role, "content": _text(content), "content_type": "text"})
    # The last user message is the query; everything before it is history (one-api takes the last
    # message whatever its role; an assistant turn is no question to ask).
    last_user = max((i for i, m in enumerate(history) if m["role"] == "user"), default=len(history) - 1)
    query = history.pop(last_user)["content"] if history else ""
    return {"bot_id": bot_id(body.get("model", "")), "user": user_id, "query": query,
            "chat_history": history, "stream": True}


# --- answers -------------------------------------------------------------------------------

class CozeStreamDecoder(StreamDecoder):
    """Coze's v3 and v2 streams, told apart event by event (the decoder is not told the channel).

    v3 names its events (`event: conversation.message.delta`, ...); v2 sends unnamed `data:` lines
    whose JSON carries `"event": "message" | "done" | "error"`.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.role_sent = False
        self.finished = False
        self.delta_messages: set[str] = set()

    # chunks

    @property
    def chunk_id(self) -> str:
        return f"chatcmpl-{self.id or 'coze'}"

    def _chunk(self, delta: dict, finish: str | None = None) -> bytes:
        return chat_chunk(id=self.chunk_id, created=self.created, model=self.model,
                          choices=[delta_choice(delta, finish)])

    def _content(self, piece: str) -> list[StreamEvent]:
        if not piece:
            return []
        delta = {"content": piece}
        if not self.role_sent:
            delta = {"role": "assistant", "content": piece}
            self.role_sent = True
        return [StreamEvent(data=self._chunk(delta), text=piece)]

    def _finish(self, usage: Usage | None) -> list[StreamEvent]:
        if self.finished:
            return []
        self.finished = True
        delta = {} if self.role_sent else {"role": "assistant", "content": ""}
        self.role_sent = True
        events = [StreamEvent(data=self._chunk(delta, "stop"))]
        if usage is not None:
            events.append(usage_event(id=self.chunk_id, created=self.created, model=self.model, usage=usage))
        return events

    def _fail(self, code, message: str) -> list[StreamEvent]:
        """A failed chat. Before any answer it is an UpstreamError: a non-streaming client gets an HTTP
        error (and the relay may fail over); after some answer, the client keeps it and gets an error event."""
        self.finished = True
        err = coze_error(code, message)
        if not self.role_sent:
            raise err
        return [error_event(err)]

    # events

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        if data.strip() in (b"[DONE]", b'"[DONE]"'):
            return [StreamEvent(data=None, done=True)]
        payload = json_or_none(data)
        if event:
            return self._v3(event.decode("utf-8", "replace"), payload)
        if not isinstance(payload, dict):
            return []  # a malformed event: dropped, the stream goes on
        if "event" in payload:
            return self._v2(payload)
        if payload.get("code"):  # a bare error body inside the stream
            return self._fail(payload["code"], str(payload.get("msg") or ""))
        return []

    def _v3(self, name: str, payload) -> list[StreamEvent]:
        if name == "done":
            return [StreamEvent(data=None, done=True)]
        if not isinstance(payload, dict):
            return []
        if name.startswith("conversation.chat."):
            self.id = str(payload.get("id") or self.id)
        if name == "conversation.message.delta":
            self.id = self.id or str(payload.get("chat_id") or "")
            if _is_answer(payload):
                self.delta_messages.add(str(payload.get("id")))
                return self._content(payload.get("content") or "")
            return []
        if name == "conversation.message.completed":
            # The completed message repeats the whole answer: send it only if no deltas came for it.
            if _is_answer(payload) and str(payload.get("id")) not in self.delta_messages:
                return self._content(payload.get("content") or "")
            return []
        if name == "conversation.chat.completed":
            return self._finish(usage_from(payload.get("usage")))
        if name == "conversation.chat.failed":
            error = payload.get("last_error") if isinstance(payload.get("last_error"), dict) else payload
            return self._fail(error.get("code"), str(error.get("msg") or "The Coze chat failed."))
        if name == "conversation.chat.requires_action":
            # The bot wants a client-side plugin's output (/v3/chat/submit_tool_outputs): OpenAI's
            # protocol has no way to resume this chat, so it ends here.
            return self._fail(None, "The Coze bot asked for a client-side plugin result (requires_action), "
                                    "which this gateway cannot supply; use server-side plugins.")
        if name == "error":
            return self._fail(payload.get("code"), str(payload.get("msg") or "Coze reported an error."))
        return []

    def _v2(self, payload: dict) -> list[StreamEvent]:
        self.id = self.id or str(payload.get("conversation_id") or "")
        kind = payload.get("event")
        if kind == "message":
            message = payload.get("message")
            return self._content(message.get("content") or "") if _is_answer(message) else []
        if kind == "done":
            return [*self._finish(None), StreamEvent(data=None, done=True)]  # v2 reports no usage
        if kind == "error":
            info = payload.get("error_information") or {}
            return self._fail(info.get("code"), str(info.get("msg") or "Coze reported an error."))
        return []

    def close(self) -> list[StreamEvent]:
        if not self.finished and not self.role_sent:
            raise UpstreamError(status=502, message="Coze ended the stream without an answer.",
                                code="bad_response", retryable=True)
        return []


def _is_answer(message) -> bool:
    """Only the bot's answer text reaches the client: not function calls, tool output, follow-up
    suggestions or verbose packets (https://www.coze.com/docs/developer_guides/chat_v3#message-object)."""
    return (isinstance(message, dict) and message.get("type") == "answer"
            and message.get("content_type", "text") == "text")


def usage_from(usage) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = int(usage.get("input_count") or 0), int(usage.get("output_count") or 0)
    if not prompt and not completion and usage.get("token_count"):
        prompt = int(usage["token_count"])
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


class CozeAdapter(Adapter):
    channel_type: ClassVar[int] = 34
    label: ClassVar[str] = "Coze"
    default_base_url: ClassVar[str] = "https://api.coze.com"  # operators in China: https://api.coze.cn
    config_fields: ClassVar[tuple[str, ...]] = ("user_id", "api_version")
    modes: ClassVar[tuple[str, ...]] = ("chat",)
    stream_only: ClassVar[bool] = True

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        channel, mode, body = ctx.channel, ctx.mode, ctx.body
        if mode != "chat":
            raise refuse("Coze bots answer chat completions only.", code="unsupported_mode")
        user_id = str(channel.config.get("user_id") or DEFAULT_USER)
        base = (channel.base_url or self.default_base_url).rstrip("/")
        if str(channel.config.get("api_version") or "v3").lower() == "v2":
            url, payload = base + V2_PATH, v2_body(body, user_id)
        else:
            url, payload = base + V3_PATH, v3_body(body, user_id)
        headers = {"Authorization": f"Bearer {channel.key}", "Content-Type": "application/json",
                   "Accept": "text/event-stream"}
        return UpstreamRequest("POST", url, headers, orjson.dumps(payload))

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        """A JSON answer to our stream request: an error (HTTP 200 with a code), or a v2 answer."""
        payload = json_or_none(body)
        if not isinstance(payload, dict):
            raise UpstreamError(status=502, message="Coze answered with neither a stream nor JSON.",
                                code="bad_response", retryable=True)
        if payload.get("code"):
            raise coze_error(payload["code"], str(payload.get("msg") or ""))
        messages = payload.get("messages")
        if not isinstance(messages, list):
            raise UpstreamError(status=502, message="Coze answered without a stream or any messages.",
                                code="bad_response", retryable=True)
        text = "".join(m.get("content") or "" for m in messages if _is_answer(m))
        answer = chat_completion(id=f"chatcmpl-{payload.get('conversation_id') or 'coze'}", model=ctx.client_model,
                                 choices=[message_choice(0, {"role": "assistant", "content": text}, "stop")])
        return orjson.dumps(answer), None  # v2 reports no usage: the relay counts locally, as one-api

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return CozeStreamDecoder(ctx.client_model)

    completion_text = OpenAIAdapter.completion_text

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        payload = json_or_none(body)
        if isinstance(payload, dict) and payload.get("code"):
            return coze_error(payload["code"], str(payload.get("msg") or ""), status=status)
        return super().parse_error(ctx, status=status, body=body, headers=headers)
