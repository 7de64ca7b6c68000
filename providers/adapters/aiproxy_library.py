"""AIProxy's knowledge library (type 21, one-api's AIProxyLibrary: relay/adaptor/aiproxy).

A question to a library the vendor holds (https://docs.aiproxy.io/dev/library): POST {base}/api/library/ask
with a bearer key, the channel's `library_id` as libraryId, and the last message as the query. The answer is
the library's answer followed by the documents it drew on, as links, as one-api writes them. The vendor
counts no tokens, so the relay counts the prompt and the answer itself.
"""

from __future__ import annotations

import time
import uuid
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
    answer_object,
    json_or_none,
    text_only,
)
from providers.adapters.openai_shapes import chat_chunk, chat_completion, delta_choice, message_choice


def documents_markdown(documents) -> str:
    """The documents an answer drew on, as one-api appends them: a numbered list of links."""
    links = [d for d in documents or () if isinstance(d, dict)]
    if not links:
        return ""
    lines = [f"{number}. [{d.get('title', '')}]({d.get('url', '')})" for number, d in enumerate(links, start=1)]
    return "\n\n参考文档：\n" + "\n".join(lines) + "\n"


def library_error(payload: dict, status: int = 400) -> UpstreamError:
    code = payload.get("errCode")
    return UpstreamError(status=status, message=str(payload.get("message") or f"AIProxy library error {code}"),
                         code=str(code or "bad_response_status_code"), retryable=status >= 500,
                         error_body={"message": str(payload.get("message") or ""), "type": "aiproxy_error",
                                     "code": code})


class AIProxyLibraryAdapter(Adapter):
    channel_type: ClassVar[int] = 21
    label: ClassVar[str] = "AIProxy Library"
    default_base_url: ClassVar[str] = "https://api.aiproxy.io"
    modes: ClassVar[tuple[str, ...]] = ("chat",)
    config_fields: ClassVar[tuple[str, ...]] = ("library_id",)

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        messages = ctx.body.get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
        query = text_only(last.get("content"), "The AIProxy library answers text, not {kind} parts.")
        body = {"model": ctx.model, "query": query, "libraryId": str((ctx.channel.config or {}).get("library_id")
                                                                      or ""), "stream": ctx.stream}
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ctx.channel.key}",
                   "Accept": "text/event-stream" if ctx.stream else "application/json"}
        base = (ctx.channel.base_url or self.default_base_url).rstrip("/")
        return UpstreamRequest("POST", f"{base}/api/library/ask", headers, orjson.dumps(body))

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        payload = answer_object(body, self.label)
        if payload.get("errCode"):
            raise library_error(payload)
        if not isinstance(payload.get("answer"), str):
            raise UpstreamError(status=502, message="AIProxy answered without an answer.",
                                code="bad_response_body", retryable=True)
        content = payload["answer"] + documents_markdown(payload.get("documents"))
        answer = chat_completion(id=f"chatcmpl-{uuid.uuid4().hex}", model=ctx.client_model,
                                 choices=[message_choice(0, {"role": "assistant", "content": content}, "stop")])
        return orjson.dumps(answer), None

    def parse_error(self, ctx, *, status, body, headers=None):
        payload = json_or_none(body)
        if isinstance(payload, dict) and payload.get("errCode"):
            return library_error(payload, status)
        return super().parse_error(ctx, status=status, body=body, headers=headers)

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return LibraryStream(ctx.client_model)


class LibraryStream(StreamDecoder):
    """Each `data:` event ({content, finish, model, documents}) as a chunk; the documents, if any, and the
    finish in a last chunk when a stream that answered ends."""

    def __init__(self, model: str) -> None:
        self.id, self.created, self.model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model
        self.documents: list = []
        self.answered = False

    def chunk(self, delta: dict, finish: str | None = None) -> bytes:
        return chat_chunk(id=self.id, created=self.created, model=self.model, choices=[delta_choice(delta, finish)])

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        payload = json_or_none(data)
        if not isinstance(payload, dict) or not {"content", "finish", "documents"} & payload.keys():
            return []  # not the library's event: one-api skips what it cannot read
        if payload.get("errCode"):
            err = library_error(payload, 502)
            return [StreamEvent(data=orjson.dumps({"error": err.error_body}), error=err)]
        if payload.get("documents"):
            self.documents = payload["documents"]
        text = str(payload.get("content") or "")
        self.answered = True
        return [StreamEvent(data=self.chunk({"content": text}), text=text)]

    def close(self) -> list[StreamEvent]:
        if not self.answered:  # nothing in the library's shape came: no answer to finish
            return []
        text = documents_markdown(self.documents)
        return [StreamEvent(data=self.chunk({"content": text}, "stop"), text=text)]
