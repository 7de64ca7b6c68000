"""Gemini's API for Gemini clients (the google-genai SDKs, Gemini CLI), over any channel.

Gemini names the model and the method in the path (`/v1beta/models/{model}:generateContent`), so a request's
codec is bound to its route (`GEMINI.bind(route)`): the path says whether it streams and what the answer is.
Requests are converted by relay/codecs/gemini_request.py; here the relay's chat answer goes back as a
GenerateContentResponse, its stream as GenerateContentResponse chunks (SSE with `?alt=sse`, else one JSON
array, as Google streams them), embeddings as Gemini's, and errors in Google's shape.
Reference: https://ai.google.dev/api/generate-content#response-body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

import orjson

from providers.adapters.anthropic import signed_blocks
from relay.codecs import chat_answer as vendor
from relay.codecs.gemini_request import decode_count, decode_embed, decode_generate
from relay.codecs.signed_thinking import seal
from relay.errors import RelayError
from relay.streaming import SSEParser

# `/v1beta/models/{model}:{method}`, also under /v1 and /v1alpha as Google serves it. A model may hold a slash,
# and a colon (Bedrock's ids end in ":0"), so the method is what follows the last colon.
METHOD_PATH = re.compile(r"^/v1(?:beta|alpha)?/models/(?P<model>.+):(?P<method>[A-Za-z]+)$")
MODELS_PATH = re.compile(r"^/v1(?:beta|alpha)?/models(?:/(?P<model>.+))?$")
GENERATE = ("generateContent", "streamGenerateContent")
EMBED = ("embedContent", "batchEmbedContents")
METHODS = (*GENERATE, *EMBED, "countTokens")

FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP",
                  "function_call": "STOP"}
# google.rpc.Code names by HTTP status (https://ai.google.dev/gemini-api/docs/troubleshooting).
STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
            409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
            500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
MODEL_METHODS = ["generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"]


@dataclass(frozen=True, slots=True)
class Route:
    """What a Gemini path asks: `method` (generateContent, countTokens...; "models" for the model list or one
    model), on `model` (without "models/"), and whether a stream goes as SSE (`?alt=sse`)."""

    method: str
    model: str
    sse: bool = False


def route(path: str, query_string: bytes = b"") -> Route | None:
    """The Gemini route of a path (its trailing slash stripped), or None for a path Gemini does not have."""
    match = METHOD_PATH.match(path)
    if match:
        if match["method"] not in METHODS:
            return None
        sse = b"alt=sse" in query_string and parse_qs(query_string.decode("latin-1")).get("alt") == ["sse"]
        return Route(match["method"], match["model"].removeprefix("models/"), sse)
    match = MODELS_PATH.match(path)
    if match:
        return Route("models", match["model"] or "")
    return None


# Every google.rpc.Code name: a vendor's error keeps its own (its code, lower-cased, is the name).
GOOGLE_STATUSES = {*STATUSES.values(), "UNKNOWN", "ALREADY_EXISTS", "FAILED_PRECONDITION", "OUT_OF_RANGE",
                   "DATA_LOSS"}


def status_name(status: int) -> str:
    return STATUSES.get(status) or ("INVALID_ARGUMENT" if status < 500 else "INTERNAL")


def _error(err: RelayError, request_id: str) -> bytes:
    message = err.message
    name = err.code.upper() if isinstance(err.code, str) else ""
    if name not in GOOGLE_STATUSES:
        name = status_name(err.status)
    if err.code == "missing_api_key":  # the relay's message names the OpenAI and Anthropic headers
        message = "No API key provided: send x-goog-api-key: sk-... (or Authorization: Bearer sk-..., or ?key=sk-...)"
    if request_id and "(request id:" not in message:
        message = f"{message} (request id: {request_id})"
    return orjson.dumps({"error": {"code": err.status, "message": message, "status": name}})


def usage_metadata(usage: dict | None) -> dict | None:
    """Gemini's usageMetadata: its prompt count includes what was read from the cache, and its candidates
    count leaves out the thinking, which is counted apart. Counts are read as billing reads them."""
    if not isinstance(usage, dict):
        return None
    prompt = vendor.tokens(usage, "prompt_tokens")
    completion = vendor.tokens(usage, "completion_tokens")
    thoughts = min(vendor.tokens(usage.get("completion_tokens_details"), "reasoning_tokens"), completion)
    cached = min(vendor.tokens(usage.get("prompt_tokens_details"), "cached_tokens"), prompt)
    out = {"promptTokenCount": prompt, "candidatesTokenCount": completion - thoughts,
           "totalTokenCount": vendor.tokens(usage, "total_tokens") or prompt + completion}
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    if cached:
        out["cachedContentTokenCount"] = cached
    return out


def _signed_calls(parts: list[dict], signed: list[dict]) -> list[dict]:
    """A Claude channel's signed thinking, sealed as the thoughtSignature of the answer's first call: Gemini's
    clients send that signature back with the call, as Gemini 3 wants its own, and Claude wants its signed
    thinking back before the tool results (relay/codecs/signed_thinking.py)."""
    if signed:
        for part in parts:
            if "functionCall" in part and "thoughtSignature" not in part:
                part["thoughtSignature"] = seal(signed)
                break
    return parts


def _function_call(call: dict, fallback_id: str) -> dict:
    function = vendor.obj(call.get("function"))
    part = {"functionCall": {"name": vendor.text(function.get("name")),
                             "args": vendor.arguments_object(function.get("arguments")),
                             "id": vendor.text(call.get("id")) or fallback_id}}
    # A Gemini channel's signature (providers/adapters/gemini/answers.py keeps it where Google's OpenAI
    # endpoint does), which Gemini 3 wants back with the call in the next turn.
    signature = vendor.text(vendor.obj(vendor.obj(call.get("extra_content")).get("google")).get("thought_signature"))
    if signature:
        part["thoughtSignature"] = signature
    return part


def _finish_reason(finish: str | None) -> str:
    return FINISH_REASONS.get(finish or "stop", "OTHER") if isinstance(finish, str) or finish is None else "OTHER"


class GeminiCodec:
    """The protocol's codec before a route is known: it renders errors; `bind` gives the one for a route."""

    protocol = "gemini"
    # Nothing in a Gemini client's headers shapes the answer (no version or beta headers, unlike Anthropic's);
    # its credentials are the gateway's, and a Vertex billing project (x-goog-user-project) would be the
    # client's, not the channel's: none is forwarded.
    native_headers: tuple[str, ...] = ()

    def bind(self, route: Route) -> GeminiCall:
        return GeminiCall(route)

    def render_error(self, err: RelayError, request_id: str) -> tuple[int, bytes]:
        return err.status, _error(err, request_id)

    def encode_models(self, models: list[str], model: str) -> tuple[int, bytes]:
        """`GET models` (the caller's models in Gemini's shape) or `GET models/{model}`."""
        if not model:
            return 200, orjson.dumps({"models": [_model(name) for name in models]})
        if model.removeprefix("models/") in models:
            return 200, orjson.dumps(_model(model.removeprefix("models/")))
        return 404, _error(RelayError(404, f"models/{model} is not found for this API key."), "")


def _model(name: str) -> dict:
    return {"name": f"models/{name}", "version": "001", "displayName": name, "description": "",
            "supportedGenerationMethods": MODEL_METHODS}


class GeminiCall(GeminiCodec):
    """The codec of one Gemini request, bound to its route (relay/codecs/base.py says what a codec does)."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.mode = "embeddings" if route.method in EMBED else "chat"

    def decode(self, body: dict) -> dict:
        method, model = self.route.method, self.route.model
        if method in EMBED:
            return decode_embed(body, model=model, batch=method == "batchEmbedContents")
        return decode_generate(body, model=model, stream=method == "streamGenerateContent")

    def decode_count(self, body: dict) -> dict:
        return decode_count(body, model=self.route.model)

    def decode_native(self, body: dict, *, counting: bool = False) -> tuple[dict, RelayError | None]:
        try:
            return (self.decode_count(body) if counting else self.decode(body)), None
        except RelayError as err:
            if err.status != 400:
                raise
            refusal = err
        # What the conversion refuses (an image to embed, several candidates) a Gemini or Vertex channel may
        # take as it is: the price is estimated from the request's words, and other channels refuse it.
        texts = _texts(body)
        if self.mode == "embeddings":
            return {"model": self.route.model, "input": texts or [" "]}, refusal
        chat: dict = {"model": self.route.model, "messages": [{"role": "user", "content": "\n".join(texts) or " "}]}
        if self.route.method == "streamGenerateContent" and not counting:
            chat["stream"] = True
        return chat, refusal

    def native_framer(self) -> JsonArrayFramer | None:
        """A native stream for a client that did not ask for SSE: as Google streams it then, one JSON array."""
        return None if self.route.sse else JsonArrayFramer()

    def stream_error(self, err: RelayError, request_id: str) -> bytes:
        """The error that ends a started stream, as GenerateStream.fail writes it: an SSE event, or the
        JSON array's last element."""
        error = _error(err, request_id)
        return b"data: " + error + b"\r\n\r\n" if self.route.sse else b",\r\n" + error + b"]"

    def encode_count(self, tokens: int) -> bytes:
        return orjson.dumps({"totalTokens": tokens})

    def encode_answer(self, answer: dict, *, model: str, request_id: str, request: dict | None = None) -> bytes:
        if self.route.method in EMBED:
            # An embedding that is no list of numbers (a vendor's odd answer) is an empty one.
            items = [item for item in vendor.items(vendor.obj(answer).get("data")) if isinstance(item, dict)]
            items.sort(key=vendor.call_index)
            embeddings = [{"values": [value for value in vendor.items(item.get("embedding"))
                                      if isinstance(value, int | float) and not isinstance(value, bool)]}
                          for item in items]
            if self.route.method == "embedContent":
                return orjson.dumps({"embedding": embeddings[0] if embeddings else {"values": []}})
            return orjson.dumps({"embeddings": embeddings})
        choice = vendor.first_choice(answer)
        message = vendor.obj(choice.get("message"))
        parts: list[dict] = []
        thought = vendor.reasoning(message)
        if thought:
            parts.append({"text": thought, "thought": True})
        text = vendor.content_text(message.get("content"))
        if text:
            parts.append({"text": text})
        for index, call in enumerate(vendor.tool_calls(message)):
            parts.append(_function_call(call, f"call_{request_id}_{index}"))
        _signed_calls(parts, signed_blocks(message.get("thinking_blocks")))
        payload: dict = {"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0,
                                         "finishReason": _finish_reason(vendor.finish_reason(choice))}]}
        usage = usage_metadata(vendor.obj(answer).get("usage"))
        if usage is not None:
            payload["usageMetadata"] = usage
        payload["modelVersion"] = model
        payload["responseId"] = request_id
        return orjson.dumps(payload)

    def stream_encoder(self, *, model: str, request_id: str, request: dict | None = None) -> GenerateStream:
        return GenerateStream(model=model, request_id=request_id, sse=self.route.sse)


def _texts(body: dict) -> list[str]:
    """Every `text` string in a request, however deep (walked without recursion: a body may nest deep)."""
    texts: list[str] = []
    stack: list = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                texts.append(value["text"])
            stack.extend(reversed(list(value.values())))
        elif isinstance(value, list):
            stack.extend(reversed(value))
    return texts


class JsonArrayFramer:
    """A native channel's SSE (each event one GenerateContentResponse, as Google sent it) written as the
    elements of one JSON array, the framing of streamGenerateContent without `alt=sse`."""

    content_type = b"application/json"

    def __init__(self) -> None:
        self.parser = SSEParser()
        self.begun = False

    def _elements(self, frames) -> bytes:
        out: list[bytes] = []
        for event, data in frames:
            if event == b":" or not data.strip():
                continue
            out.append((b",\r\n" if self.begun else b"[") + data)
            self.begun = True
        return b"".join(out)

    def feed(self, data: bytes) -> bytes:
        return self._elements(self.parser.feed(data))

    def close(self) -> bytes:
        rest = self._elements(self.parser.close())
        return rest + (b"]" if self.begun else b"[]")


class GenerateStream:
    """Chat chunks to streamGenerateContent's chunks: each text or thought piece as a chunk of its own as it
    comes; tool calls, whose arguments chat streams in pieces, whole in the last chunk (Gemini sends a
    functionCall complete), with the finishReason and the usageMetadata."""

    __slots__ = ("model", "request_id", "sse", "content_type", "begun", "ended", "calls", "finish", "usage", "signed")

    def __init__(self, *, model: str, request_id: str, sse: bool):
        self.model = model
        self.request_id = request_id
        self.sse = sse
        # Without alt=sse Google streams one JSON array, its elements written as they come.
        self.content_type = b"text/event-stream" if sse else b"application/json"
        self.begun = False
        self.ended = False
        self.calls: dict[int, dict] = {}  # a tool call's chat index -> {id, name, arguments so far}
        self.signed: list[dict] = []  # a Claude channel's signed thinking, for the first call
        self.finish: str | None = None
        self.usage: dict | None = None

    def _frame(self, payload: dict) -> bytes:
        data = orjson.dumps(payload)
        if self.sse:
            return b"data: " + data + b"\r\n\r\n"
        if self.begun:
            return b",\r\n" + data
        self.begun = True
        return b"[" + data

    def _chunk(self, parts: list[dict], finish: str | None = None, usage: dict | None = None) -> bytes:
        candidate: dict = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = finish
        payload: dict = {"candidates": [candidate]}
        if usage is not None:
            payload["usageMetadata"] = usage
        payload["modelVersion"] = self.model
        payload["responseId"] = self.request_id
        return self._frame(payload)

    def feed(self, chunk: dict) -> bytes:
        if self.ended:
            return b""
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        out: list[bytes] = []
        for choice in vendor.items(chunk.get("choices")):
            if not vendor.is_first(choice):
                continue  # one candidate is all this gateway asks for
            delta = vendor.obj(choice.get("delta"))
            parts: list[dict] = []
            thought = vendor.reasoning(delta)
            if thought:
                parts.append({"text": thought, "thought": True})
            text = vendor.text(delta.get("content"))
            if text:
                parts.append({"text": text})
            if parts:
                out.append(self._chunk(parts))
            if "thinking_blocks" in delta:
                self.signed += signed_blocks(delta["thinking_blocks"])
            for call in vendor.tool_calls(delta):
                self._tool_call(call)
            self.finish = vendor.finish_reason(choice) or self.finish
        return b"".join(out)

    def _tool_call(self, call: dict) -> None:
        function = vendor.obj(call.get("function"))
        held = self.calls.setdefault(vendor.call_index(call), {"id": "", "name": "", "arguments": ""})
        if vendor.text(call.get("id")):
            held["id"] = call["id"]
        if call.get("extra_content"):
            held["extra_content"] = call["extra_content"]
        if vendor.text(function.get("name")):
            held["name"] = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a vendor that sends the whole object at once
            held["arguments"] = arguments
        elif isinstance(arguments, str) and isinstance(held["arguments"], str):
            held["arguments"] += arguments

    def close(self) -> bytes:
        if self.ended:
            return b""
        self.ended = True
        parts = _signed_calls([_function_call({**held, "function": held}, f"call_{self.request_id}_{position}")
                               for position, held in sorted(self.calls.items())], self.signed)
        last = self._chunk(parts, _finish_reason(self.finish), usage_metadata(self.usage))
        return last + (b"" if self.sse else b"]")

    def fail(self, err: RelayError) -> bytes:
        if self.ended:
            return b""
        self.ended = True
        # The SDKs raise a chunk that is an error object as the API error it says.
        error = self._frame(orjson.loads(_error(err, self.request_id)))
        return error if self.sse else error + b"]"


CODEC = GeminiCodec()
