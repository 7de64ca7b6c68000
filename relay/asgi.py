"""The `/v1` ASGI application: routes, request bodies, responses and client disconnects.

A bare ASGI app, not a Django view: no URL resolver, middleware or HttpRequest
on the hot path (measured at about 0.5 ms per request on this machine).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import re
from urllib.parse import parse_qs

import orjson
from channels.db import database_sync_to_async
from django.conf import settings

from billing import body_capture, usage_errors
from billing.ledger import ledger
from oneapi_site import metrics
from oneapi_site.lib import tokenizer
from oneapi_site.lib.ids import new_request_id
from oneapi_site.lib.modes import TRANSCRIPT_MODES
from relay import codecs, info, media, proxy_route, stored_responses
from relay.auth import authenticate, check_model_allowed
from relay.cache import cache
from relay.codecs import gemini
from relay.codecs.base import Translator
from relay.errors import RelayError, bad_request, body_too_large
from relay.pipeline import count_natively, load_json, relay_request
from relay.upstream import NativeRequest

log = logging.getLogger("oneapi.relay")

# Daphne refuses a larger body before buffering it (oneapi_site/body_limit.py); this is the same
# limit for servers without that hook (tests' ASGI transport).
MAX_BODY = settings.RELAY_MAX_BODY_MB * 1024 * 1024

TEXT_ROUTES = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}
# The routes of other client protocols (Anthropic's Messages, OpenAI's Responses); what each does is in
# RelayApp._codec_route.
CODEC_ROUTES = ("/v1/messages", "/v1/messages/count_tokens", "/v1/responses", "/v1/responses/input_tokens")
COUNT_ROUTES = ("/v1/messages/count_tokens", "/v1/responses/input_tokens")
ENGINE_EMBEDDINGS = re.compile(r"^/v1/engines/(?P<model>[^/]+)/embeddings$")
# Known OpenAI routes that later work will relay; until then they say so plainly.
NOT_IMPLEMENTED = re.compile(
    r"^/v1/(images/(edits|variations)|edits|files.*|fine_tuning/.*|fine-tunes.*|assistants.*|threads.*"
    r"|batches.*|uploads.*|vector_stores.*|realtime.*)$"
)
CORS = [
    (b"access-control-allow-origin", b"*"),
    # A browser's script may read these of a cross-origin answer only when they are listed.
    (b"access-control-expose-headers", b"x-oneapi-request-id, retry-after, x-ratelimit-limit-requests, "
                                       b"x-ratelimit-remaining-requests, x-ratelimit-reset-requests, "
                                       b"x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, "
                                       b"x-ratelimit-reset-tokens, x-should-retry"),
]


class Response:
    """Sends one HTTP response; every response carries the request id and CORS headers, and a relayed
    one the rate-limit headers the pipeline put in `extra` (an answer, a stream's start or a refusal)."""

    __slots__ = ("send", "request_id", "started", "finished", "extra")

    def __init__(self, send, request_id: str):
        self.send = send
        self.request_id = request_id
        self.started = False
        self.finished = False
        self.extra: list[tuple[bytes, bytes]] = []

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        metrics.answer_started()
        await self.send({"type": "http.response.start", "status": status,
                         "headers": [*headers, *self.extra, (b"x-oneapi-request-id", self.request_id.encode()),
                                     *CORS]})

    async def write(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def finish(self, data: bytes = b"") -> None:
        self.finished = True
        await self.send({"type": "http.response.body", "body": data, "more_body": False})

    async def json(self, status: int, payload: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        await self.start(status, [(b"content-type", b"application/json"), *headers])
        await self.finish(payload)

    async def error(self, err: RelayError) -> None:
        if self.started:
            if not self.finished:  # mid-stream: the client can only get an error event now
                await self.finish(b"data: " + err.to_json(self.request_id) + b"\n\n")
            return
        await self.json(err.status, err.to_json(self.request_id), err.headers)


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def _headers(scope, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The request's headers of these (lower-case) names, in the order sent."""
    wanted = {name.encode() for name in names}
    return tuple((key.decode("latin-1"), value.decode("latin-1")) for key, value in scope.get("headers", ())
                 if key in wanted)


async def _read_body(receive) -> bytes | None:
    """The whole request body, or None if the client left first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise body_too_large(MAX_BODY // (1024 * 1024))
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class RelayApp:
    """The `/v1` application. Starts the ledger writer and the change listener on first use."""

    def __init__(self) -> None:
        self._started = False

    def _start(self) -> None:
        self._started = True
        ledger.start()
        usage_errors.errors.start()
        cache.start_listener()
        # Django's import-time objects never die: keep them out of the collector's scans, and
        # collect young objects less often, so collections stop showing in the relay's p99.
        gc.freeze()
        gc.set_threshold(7000, 20, 20)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        if not self._started:
            self._start()
        request_id = new_request_id()
        response = Response(send, request_id)
        path = scope["path"].rstrip("/") or "/"
        codec = codecs.for_path(path)
        if codec is None and path.startswith("/v1/models") and _gemini_key(scope):
            codec = codecs.GEMINI  # a Gemini client listing models under /v1 (an OpenAI client sends no such key)
        # A route of another protocol answers in its shape, errors included; OpenAI's routes go out as they are.
        out = response if codec is None else Translator(response, codec, model="", request_id=request_id)
        try:
            if codec is None:
                await self.dispatch(scope, receive, response, path)
            else:
                await self._codec_route(scope, receive, out, path)
        except RelayError as err:
            await out.error(err)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("relay failure (request id %s)", request_id)
            await out.error(RelayError(500, "The gateway failed to handle this request.",
                                       type="one_api_panic", code="internal_error"))

    async def dispatch(self, scope, receive, response: Response, path: str) -> None:
        method = scope["method"]
        if method == "OPTIONS":
            await response.start(204, [(b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
                                       (b"access-control-allow-headers", b"*"), (b"content-length", b"0")])
            await response.finish()
            return

        if path.startswith(proxy_route.PREFIX):  # one-api's raw pass-through to a Proxy channel
            caller = await self._caller(scope)
            body = await _read_body(receive)
            if body is not None:
                await proxy_route.forward(scope=scope, body=body, response=response, caller=caller)
            return
        mode = TEXT_ROUTES.get(path) or media.ROUTES.get(path)
        path_model = None
        if mode is None and (match := ENGINE_EMBEDDINGS.match(path)):
            mode, path_model = "embeddings", match["model"]
        if mode is not None:
            if method != "POST":
                raise RelayError(405, f"{method} is not allowed on {path}; use POST.", type="invalid_request_error",
                                 code="method_not_allowed")
            await self._relay(scope, receive, response, mode, path_model)
            return
        if method == "GET" and (path == "/v1/models" or path.startswith("/v1/models/")):
            caller = await self._caller(scope)
            status, payload = await info.models(caller, path.removeprefix("/v1/models").lstrip("/"))
            await response.json(status, payload)
            return
        billing = path.removeprefix("/v1")
        if method == "GET" and billing in ("/dashboard/billing/subscription", "/dashboard/billing/usage"):
            caller = await self._caller(scope)
            await response.json(200, info.subscription(caller) if billing.endswith("subscription")
                                else info.usage(caller))
            return
        if NOT_IMPLEMENTED.match(path) or (method == "DELETE" and path.startswith("/v1/models/")):
            raise RelayError(501, "API not implemented", code="api_not_implemented")
        raise RelayError(404, f"Invalid URL ({method} {scope['path']})", type="invalid_request_error",
                         code="unknown_url")

    async def _codec_route(self, scope, receive, out: Translator, path: str) -> None:
        """A route of another client protocol (relay/codecs): the request decoded, the answer translated."""
        method = scope["method"]
        if method != "OPTIONS" and path.startswith("/v1/responses/") and path not in CODEC_ROUTES:
            caller = await self._caller(scope)  # a stranger learns nothing of the route but that it needs a key
            await stored_responses.answer(caller=caller, method=method, path=path, raw_path=scope["path"],
                                          query=scope.get("query_string", b""), out=out.out)
            return
        if out.codec is codecs.GEMINI and method != "OPTIONS":
            await self._gemini_route(scope, receive, out, path)
            return
        if method == "OPTIONS" or path not in CODEC_ROUTES:
            await self.dispatch(scope, receive, out.out, path)  # a preflight, or the protocol's 404/501
            return
        if method != "POST":
            raise RelayError(405, f"{method} is not allowed on {path}; use POST.", type="invalid_request_error",
                             code="method_not_allowed")
        if path in COUNT_ROUTES:
            await self._count_tokens(scope, receive, out)
        else:
            await self._relay(scope, receive, out.out, "chat", None, translator=out)

    async def _gemini_route(self, scope, receive, out: Translator, path: str) -> None:
        """A Gemini route (relay/codecs/gemini.py): the model and the method are in the path."""
        method = scope["method"]
        route = gemini.route(path, scope.get("query_string", b""))
        if route is None:
            raise RelayError(404, f"Invalid URL ({method} {scope['path']})", code="unknown_url")
        wanted = "GET" if route.method == "models" else "POST"
        if method != wanted:
            raise RelayError(405, f"{method} is not allowed on {path}; use {wanted}.", code="method_not_allowed")
        caller = await self._caller(scope, query_key=True)
        if route.method == "models":
            await out.out.json(*gemini.CODEC.encode_models(await info.model_names(caller), route.model))
            return
        out.codec = gemini.CODEC.bind(route)
        if route.method == "countTokens":
            await self._count_tokens(scope, receive, out, caller)
        else:
            await self._relay(scope, receive, out.out, out.codec.mode, None, translator=out, caller=caller)

    async def _count_tokens(self, scope, receive, out: Translator, caller=None) -> None:
        """The prompt's tokens as the model's channel counts them, when it speaks the client's protocol;
        else by the project's tokenizer, as the vendor would bill it at the most."""
        caller = caller or await self._caller(scope)
        raw = await _read_body(receive)
        if raw is None:
            return
        codec, response = out.codec, out.out
        sent = load_json(raw)
        body, unconvertible = codec.decode_native(sent, counting=True)
        check_model_allowed(caller, body["model"])
        if codec is codecs.RESPONSES and (stored_at := await stored_responses.pinned_channel(sent, caller)):
            caller = dataclasses.replace(caller, pinned_channel=stored_at)  # the channel holding what it builds on
        native = NativeRequest(codec.protocol, sent, _headers(scope, codec.native_headers), unconvertible)
        if await count_natively(caller=caller, body=body, native=native, request_id=response.request_id, out=out):
            return
        if unconvertible is not None:
            raise unconvertible
        # A coding agent's prompt runs to tens of thousands of tokens: counted off the event loop.
        try:
            tokens = await asyncio.to_thread(tokenizer.count_prompt, body, body["model"])
        except orjson.JSONEncodeError:  # the tools' schemas are written out to be counted
            raise bad_request("The tools' schemas are nested too deep to be written out.", param="tools") from None
        await response.json(200, codec.encode_count(tokens))

    async def _caller(self, scope, *, query_key: bool = False):
        client = scope.get("client") or ("", 0)
        # Anthropic's clients send their key as x-api-key (Claude Code with an auth token sends a Bearer),
        # Gemini's as x-goog-api-key or, on Gemini's routes only, in the query as `?key=`.
        key = _header(scope, b"authorization") or _header(scope, b"x-api-key") or _header(scope, b"x-goog-api-key")
        if not key and query_key:
            key = _query_key(scope)
        return await authenticate(authorization=key, client_ip=client[0] or "")

    async def _relay(self, scope, receive, response: Response, mode: str, path_model: str | None,
                     translator: Translator | None = None, caller=None) -> None:
        caller = caller or await self._caller(scope)
        if mode in TRANSCRIPT_MODES:
            # The upload streams through `receive`, so no disconnect watcher may read it too.
            upload = await media.read_upload(receive, _header(scope, b"content-type"))
            await relay_request(caller=caller, mode=mode, raw_body=b"", request_id=response.request_id,
                                out=response, upload=upload, headers=response.extra)
            return
        raw = await _read_body(receive)
        if raw is None:
            return
        out, body, protocol, native, stored_at = response, None, "openai", None, None
        if translator is not None:
            codec = translator.codec
            sent = load_json(raw)
            body, unconvertible = codec.decode_native(sent)
            translator.model, translator.request, translator.stream = body["model"], sent, bool(body.get("stream"))
            out, protocol = translator, codec.protocol
            native = NativeRequest(protocol, sent, _headers(scope, codec.native_headers), unconvertible)
            if codec is codecs.RESPONSES:
                stored_at = await stored_responses.pinned_channel(sent, caller)
        task = asyncio.current_task()
        watcher = asyncio.ensure_future(_cancel_on_disconnect(receive, task))
        tee = None
        if body_capture.wanted(caller.token.id):  # opt-in debugging: the answer's bytes are copied as sent
            tee = response.send = body_capture.Tee(response.send)
        try:
            await relay_request(caller=caller, mode=mode, raw_body=raw, request_id=response.request_id,
                                out=out, path_model=path_model, body=body, client_protocol=protocol,
                                native=native, stored_at=stored_at, headers=response.extra)
        except RelayError as err:
            if tee is None:
                raise
            await out.error(err)  # here rather than in __call__, so the capture below holds the error sent
        except asyncio.CancelledError:
            if watcher.done() and not watcher.cancelled():
                task.uncancel()
                return  # the client went away; the pipeline has settled what it produced
            raise
        finally:
            watcher.cancel()
            if tee is not None:
                await _capture(tee, raw, response.request_id, caller, scope["path"])


async def _capture(tee, raw: bytes, request_id: str, caller, path: str) -> None:
    """Store a captured exchange; a failure here is logged, never the client's (the answer has gone)."""
    try:
        await database_sync_to_async(body_capture.body_capture_record)(
            tee=tee, raw=raw, request_id=request_id, user_id=caller.user.id, token_id=caller.token.id, path=path)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("storing the captured bodies of request %s failed", request_id)


def _query_key(scope) -> str:
    query = scope.get("query_string", b"")
    if b"key=" not in query:
        return ""
    return (parse_qs(query.decode("latin-1")).get("key") or [""])[0]


def _gemini_key(scope) -> bool:
    """Whether a request names its key as Gemini's clients do (x-goog-api-key, or `?key=`)."""
    return bool(_header(scope, b"x-goog-api-key")) or bool(_query_key(scope))


async def _cancel_on_disconnect(receive, task: asyncio.Task) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            task.cancel()
            return

