"""The contract between the relay and a vendor adapter, and the types both sides share.

An adapter speaks one vendor: it turns the client's request (OpenAI's shape, the relay's internal form) into
the vendor's, and the vendor's answer back into OpenAI's (providers/adapters/openai_shapes.py), with the usage
the vendor counted. The relay owns everything else: the shared HTTP session, timeouts, retries and failover,
channel health, billing.

Its hooks are of two kinds (the Adapter class below lists them):
- pure hooks translate, bytes in and bytes out, and do no I/O, so they are tested against the vendor's own
  bodies: build_request, parse_response, stream_decoder (its StreamDecoder), parse_error, answer_content_type,
  completion_text, the balance hooks and secrets;
- one I/O hook, `open`, which sends the call and says what came back (an `Opened`): by default the HTTP
  response to build_request's request, unread, for the relay to read with the pure hooks. A vendor that needs
  more overrides it: Baidu and Vertex fetch an access token first; Bedrock, Cohere, Gemini, Ollama and Vertex
  fetch the client's remote images to send them inline; DashScope, Workers AI and Zhipu answer some modes
  whole (`complete_modes`: a task to poll, one request per image, links to fetch, an upload to re-send);
  Xunfei Spark answers with the events of a WebSocket exchange.

For one upstream call the relay makes the RequestContext, awaits `open`, and reads what it returned: an HTTP
response with parse_error (not 200), stream_decoder (a stream) or parse_response, with the context `open`
used; a whole answer as it is; events as a stream. A network failure while `open` runs (one of
NETWORK_ERRORS, raised as it is) is the relay's "upstream unreachable" 502, which another channel may answer.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import aiohttp
import orjson

from oneapi_site.lib.modes import TRANSCRIPT_MODES
from providers import channel_overrides, outbound_proxy


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """What the relay knows of a channel: a frozen snapshot, never an ORM instance."""

    id: int
    type: int
    name: str
    key: str
    base_url: str
    models: tuple[str, ...]
    model_mapping: dict[str, str]
    config: dict[str, Any]
    system_prompt: str
    priority: int
    weight: int
    # The channel's own caps (rpm, tpm, concurrency, rpd; 0: none), enforced by the relay's limiter.
    limits: tuple[int, int, int, int] = (0, 0, 0, 0)
    # A multi-key channel's live keys as (line, key), and how the relay takes turns over them
    # (relay/keys.py); `key` is then the first live one. Empty for a channel of one key.
    keys: tuple[tuple[int, str], ...] = field(default=(), repr=False)
    key_mode: str = ""
    key_rpm: int = 0  # requests a key may take per minute on this instance; 0: no cap


@dataclass(frozen=True, slots=True)
class RequestContext:
    """One upstream call as the adapter sees it, made once per call by the relay and handed to `open`;
    the one `open` sends with (it may add to the body) goes to parse_response, stream_decoder and
    parse_error alike, so what the answer's conversion needs to know about the request travels with it,
    never in module state."""

    channel: ChannelInfo
    mode: str
    # What build_request builds from: the client's body with the model mapped, the channel's system
    # prompt applied, and whatever `open` added (an access token, inlined images).
    body: dict = field(repr=False)
    stream: bool  # whether the upstream is asked to stream
    client_model: str  # the name the client asked for: streamed chunks carry it
    # The client's multipart audio upload (uploads.Upload): the default `open` streams it on as a form;
    # an `open` that answers the mode whole reads the file itself (a vendor that takes the audio as raw bytes
    # or base64, not as a form).
    upload: Any = field(default=None, repr=False, compare=False)
    # A native call (the adapter speaks the client's protocol, see Adapter.native_protocols): that protocol's
    # name, and the client's headers of it to forward ("openai": the body is the relay's chat body).
    protocol: str = "openai"
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)

    @property
    def model(self) -> str:
        """The upstream model, after the channel's mapping."""
        return str(self.body.get("model") or "")


@dataclass(frozen=True, slots=True)
class Usage:
    """The tokens of one answer as the vendor counted them, in OpenAI's sense whatever the vendor's: the prompt
    is every input token, cached ones included (Anthropic's input_tokens leave its cache out; its adapter adds
    it back), and the completion every output token, thinking included. The other counts break those two
    down, for prices that differ by kind (billing/pricing.py) and the details a client is shown."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of the prompt: read from the vendor's prompt cache
    cache_write_tokens: int = 0  # of the prompt: written to the cache (Anthropic's 5-minute and 1-hour writes)
    cache_write_1h_tokens: int = 0  # of the writes: those kept an hour, which Anthropic prices higher
    reasoning_tokens: int = 0  # of the completion: spent thinking
    input_audio_tokens: int = 0  # of the prompt
    output_audio_tokens: int = 0  # of the completion
    input_image_tokens: int = 0  # of the prompt
    output_image_tokens: int = 0  # of the completion (images a model drew): billed as completion tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


@dataclass(slots=True)
class StreamEvent:
    """One decoded event: what to send the client (SSE data, or None to drop), usage if given."""

    data: bytes | None
    usage: Usage | None = None
    text: str = ""
    done: bool = False
    # The vendor's count of the prompt alone, said before the answer (Anthropic's message_start): what a stream
    # cut before its full usage is billed for on the prompt side. It does not start the client's stream.
    prompt_usage: Usage | None = None
    usage_only: bool = False  # a chunk that carries only usage (no choices): dropped unless the client asked
    # An error the vendor reported inside the stream (`data` is its OpenAI error chunk): before the answer
    # starts, the relay raises it instead (another channel may answer); after, the client gets the chunk.
    error: UpstreamError | None = None
    # An event passed through although it is not in the vendor's shape (not JSON): forwarded inside an
    # answer, but never taken for the start of one.
    malformed: bool = False
    # The event carries the model's thinking (`reasoning_content` and the like), which is not counted in
    # `text`, yet starts the client's stream as words do: a reasoning model may think for minutes before
    # its first word, and a client or proxy waiting that long for the headers gives up.
    reasoning: bool = False
    # The chunk `data` holds, when the decoder parsed it whole (OpenAI's): a codec's translator reads this
    # instead of parsing the same bytes again (relay/upstream.py hands it the events).
    chunk: dict | None = field(default=None, repr=False, compare=False)


@dataclass
class UpstreamError(Exception):
    """An upstream failure in OpenAI's error shape; `retryable` drives the relay's failover."""

    status: int
    message: str
    type: str = "upstream_error"
    code: str | None = "bad_response_status_code"
    param: str | None = None
    retryable: bool = False
    error_body: dict | None = field(default=None, repr=False)
    # Raised by the gateway itself over what the client sent (an image it links to), never the vendor's
    # answer: not held against the channel, whatever the message says (it may quote the client's URL).
    local: bool = False

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


MODES = ("chat", "completions", "embeddings")
SECRET_MIN_CHARS = 8  # a credential (or part) shorter than this is not told apart from ordinary text


class StreamDecoder:
    """Turns one vendor stream into OpenAI chunks, event by event.

    `framing` says how the relay splits the byte stream: "sse" gives (event, data)
    pairs; "ndjson" gives each line as data with an empty event. `close()` runs when
    the upstream ends, for a vendor that reports usage or the finish only at the end;
    a chunk that carries only usage must be flagged `usage_only`, so the relay can
    hide it from clients that did not ask for usage.
    """

    framing: ClassVar[str] = "sse"  # or "ndjson", or "raw": bytes go to feed_bytes (binary protocols)

    def accepts(self, content_type: str) -> bool:
        """Whether the upstream answered with a stream (vendors answer errors as plain JSON)."""
        if self.framing == "sse":
            return content_type.startswith("text/event-stream")
        return "json" in content_type or content_type.startswith("text/plain")

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        raise NotImplementedError

    def feed_bytes(self, chunk: bytes) -> list[StreamEvent]:
        """For framing "raw": the upstream's bytes as they arrive, split by the decoder itself."""
        raise NotImplementedError

    def close(self) -> list[StreamEvent]:
        return []


class NativeStream:
    """One answer streamed in the client's own protocol, read for what its bill needs (Adapter.native_stream).

    `framing` says what the relay does with the upstream's bytes: "sse" sends them to the client untouched
    and gives `read` each (event, data) pair to look at; "raw" (a vendor that wraps the protocol's events in
    a framing of its own) gives them to `feed_bytes`, which returns the protocol's events to send. Until
    `begun` (an event with words, reasoning or usage) the relay holds what came, so a vendor that fails
    first (`error`: its error event) may still fail over.
    """

    framing: ClassVar[str] = "sse"

    def __init__(self) -> None:
        self.usage: Usage | None = None  # as the vendor counted it, once it has said
        self.prompt_usage: Usage | None = None  # the prompt's count, said before the answer (StreamEvent's)
        self.texts: list[str] = []  # the words so far, counted when the vendor gives no usage
        self.begun = False
        self.answered = False  # an event in the protocol's shape came: an empty answer is still an answer
        self.error: UpstreamError | None = None  # the vendor's error event, the first one
        # The id under which the vendor stored the answer, for later requests about it ("" when it stored none).
        self.answer_id = ""

    def read(self, event: bytes, data: bytes) -> None:
        raise NotImplementedError

    def feed_bytes(self, chunk: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        """The upstream ended: what is left to send (framing "raw")."""
        return b""

    def interruption(self, message: str) -> bytes:
        """The protocol's error event, ending a stream the upstream broke off."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """The vendor's HTTP response, unread: the relay reads it with the pure hooks and `ctx` (the context the
    request was built from), then releases it."""

    ctx: RequestContext
    response: aiohttp.ClientResponse = field(repr=False)


@dataclass(frozen=True, slots=True)
class WholeAnswer:
    """An answer the adapter has read and made whole: the client-facing body, the vendor's usage (None when it
    gave none) and the body's content type (answer_content_type)."""

    ctx: RequestContext
    body: bytes = field(repr=False)
    usage: Usage | None = None
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class EventAnswer:
    """An answer as OpenAI chunks, as they come (a WebSocket vendor): an async iterator of StreamEvents that
    does its I/O as it is read. An UpstreamError before the first event lets the relay fail over."""

    ctx: RequestContext
    events: AsyncIterator[StreamEvent] = field(repr=False)


# What Adapter.open got back from the vendor.
Opened = HttpAnswer | WholeAnswer | EventAnswer


def retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


T = TypeVar("T")


async def fan_out(count: int, call: Callable[[], Awaitable[T]]) -> list[T]:
    """`count` calls at once, for a vendor that makes one image a request (CogView, Workers AI): the results
    of those that succeeded, in order. One that failed upstream is left out, and the relay bills per image
    delivered; when every one failed nothing was made, and the first failure says why (and whether another
    channel may try). Anything else (a bug, a cancellation) is raised as it is."""
    results = await asyncio.gather(*(call() for _ in range(count)), return_exceptions=True)
    failed = [result for result in results if isinstance(result, BaseException)]
    for failure in failed:
        if not isinstance(failure, UpstreamError):
            raise failure
    made = [result for result in results if not isinstance(result, BaseException)]
    if not made:
        raise failed[0]
    return made


def unexpected_answer(vendor: str, what: str = "an answer") -> UpstreamError:
    """A 200 whose body is not the vendor's answer (empty, a proxy's HTML page, some other JSON): a
    retryable 502, so another channel may answer, the channel's health counts it, and nobody pays."""
    return UpstreamError(status=502, message=f"{vendor} answered with a body that is not {what}.",
                         code="bad_response_body", retryable=True)


def check_answer(payload: Any, vendor: str, *fields: str, what: str = "an answer",
                 error: Callable[[Any], UpstreamError | None] | None = None) -> None:
    """Raise unexpected_answer unless `payload` is an object with one of `fields` (the part of the vendor's
    answer that is always there, however empty the answer: choices, output, embeddings...). `error` reads
    the vendor's own error out of a payload that is no answer (the error object some proxies send with a
    200): what it finds is raised instead."""
    if not isinstance(payload, dict) or all(payload.get(name) is None for name in fields):
        found = error(payload) if error is not None else None
        raise found or unexpected_answer(vendor, what)


def answer_object(body: bytes, vendor: str, *, code: str = "bad_response_body") -> dict:
    """A vendor's answer as a JSON object; anything else is a retryable 502 (nothing reached the client yet)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(status=502, message=f"{vendor} answered with a body that is not JSON.",
                            code=code, retryable=True) from None
    if not isinstance(payload, dict):
        raise UpstreamError(status=502, message=f"{vendor} answered with an unexpected body.",
                            code=code, retryable=True)
    return payload


def text_only(content: Any, refusal: str) -> str:
    """An OpenAI message content for a text-only API: its text parts joined by lines; any other part
    is refused with `refusal` (which may name it as {kind}) rather than silently dropped."""
    if content is None:
        return ""
    if not isinstance(content, list):
        return content if isinstance(content, str) else str(content)
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text") or ""))
        elif isinstance(part, dict):
            raise UpstreamError(status=400, message=refusal.format(kind=part.get("type")),
                                type="invalid_request_error", code="unsupported_content")
    return "\n".join(texts)


_SCRIPTS = re.compile(rb"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")
EXCERPT_CHARS = 200


def error_excerpt(body: bytes | None, status: int, vendor: str = "The upstream") -> str:
    """A non-JSON error body (a proxy's HTML page, plain text) as a short plain message: the status, and
    the body's text without tags, scripts or runs of whitespace, cut to EXCERPT_CHARS."""
    text = body[:64 * 1024] if body else b""
    text = _SPACES.sub(" ", html.unescape(_TAGS.sub(" ", _SCRIPTS.sub(b" ", text).decode("utf-8", "replace"))))
    text = text.strip()
    if len(text) > EXCERPT_CHARS:
        text = text[:EXCERPT_CHARS].rstrip() + "…"
    return f"{vendor} answered HTTP {status}: {text}" if text else f"{vendor} answered HTTP {status}."


# What a request that went wrong on the network raises, before or during its answer: network_failure turns
# each into the "upstream unreachable" 502, which another channel may answer.
# (A SOCKS proxy's failures arrive as OSError or TimeoutError too: providers/outbound_proxy.py.)
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


def network_failure(exc: BaseException, *, read_timeout: float | None, started: bool = False,
                    setting: str | None = "RELAY_TIMEOUT", upstream: str = "the upstream") -> UpstreamError:
    """A request that went wrong on the network, said plainly (a retryable 502): an upstream that could not
    be reached, one that took the request and then sent nothing for `read_timeout` seconds (the `setting`
    that limits it), or an answer cut off once `started`. The one place a network failure becomes the
    "upstream unreachable" error, for the relay's call (relay/upstream.py) and an adapter's own requests
    (`upstream` names the one it called: a token endpoint). Only the exception's name is told: its text
    may hold the URL, and some URLs hold credentials."""
    timed_out = isinstance(exc, asyncio.TimeoutError) and not isinstance(exc, aiohttp.ConnectionTimeoutError)
    limit = f"{read_timeout:g} s" + (f" ({setting})" if setting else "") if read_timeout else ""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        message = f"Could not reach {upstream}: the connection timed out."
    elif timed_out and limit:
        message = (f"The upstream stopped sending for {limit} and was cut off." if started
                   else f"{upstream[:1].upper()}{upstream[1:]} did not answer within {limit}.")
    elif started:
        message = f"The upstream answer was cut off: {type(exc).__name__}"
    else:
        message = f"Could not reach {upstream}: {type(exc).__name__}"
    return UpstreamError(status=502, message=message, code="do_request_failed", retryable=True)


def read_timeout(session) -> float | None:
    """The read timeout a session was made with (the relay's sessions: RELAY_TIMEOUT; None for none)."""
    return getattr(getattr(session, "timeout", None), "sock_read", None)


def json_or_none(body: bytes | None) -> Any:
    """A vendor body as JSON, or None when it is empty or not JSON (error bodies are often HTML)."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


async def ws_open(session, url: str, *, vendor: str, refused: str, headers: Mapping[str, str] | None = None):
    """A vendor WebSocket; a 401/403 handshake is a refused credential (`refused` names it), any other a 502."""
    try:
        return await session.ws_connect(url, headers=headers)
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status in (401, 403):
            raise UpstreamError(status=401, message=f"{vendor} refused the {refused}: {exc.message}",
                                type="authentication_error", code="invalid_api_key") from None
        raise UpstreamError(status=502, message=f"{vendor} refused the connection: HTTP {exc.status}",
                            code="do_request_failed", retryable=True) from None


def header(headers: Mapping[str, str] | None, name: str) -> str:
    """A response header by name, whatever its case (aiohttp's headers are case-insensitive; a test's
    dict may not be)."""
    if not headers:
        return ""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), "")
    return str(value)


def override_secrets(channel: ChannelInfo) -> list[str]:
    """The credentials a channel's overrides hold: its proxy's password, credential-like override headers."""
    found = []
    if channel.config and channel.config.get("proxy"):
        found.append(outbound_proxy.secret(str(channel.config["proxy"])))
    overrides = channel_overrides.for_channel(channel)
    if overrides is not None:
        found += overrides.secrets((channel.key or "").strip())
    return found


class Adapter:
    """One vendor's adapter. The relay makes one instance per channel type (providers/adapters/__init__.py)
    and shares it between requests: an adapter keeps no per-request state (RequestContext carries it), and
    what it caches (access tokens) it keys by the credential."""

    # --- what the adapter is (class attributes) ----------------------------------------------------------

    channel_type: ClassVar[int]  # one-api's numeric type, for parity
    label: ClassVar[str]
    default_base_url: ClassVar[str] = ""
    config_fields: ClassVar[tuple[str, ...]] = ()  # the channel config keys it reads; they drive the admin form
    # Config fields that hold credentials: never shown back, like the channel key.
    secret_config_fields: ClassVar[tuple[str, ...]] = ()
    modes: ClassVar[tuple[str, ...]] = MODES  # the endpoints it serves (chat, embeddings, images...)
    # The models a new channel of this type offers (providers/selectors.py); none: OpenAI's list.
    default_models: ClassVar[tuple[str, ...]] = ()
    # The vendor answers only as a stream (or streams far better): the relay asks for a stream
    # and gathers it into one JSON answer for clients that did not ask to stream.
    stream_only: ClassVar[bool] = False
    # Modes whose answer `open` reads and makes whole itself (a task submitted, then polled; links in the
    # answer fetched; audio converted): the upstream is not asked to stream, and an answer `open` cannot
    # read is the vendor's (a retryable 502), where elsewhere a fault while `open` runs is the gateway's.
    complete_modes: ClassVar[tuple[str, ...]] = ()
    # Client protocols other than OpenAI's that the vendor speaks itself ("anthropic"): a request in one goes
    # as the client sent it (the native hooks below), its answer back as the vendor sent it.
    native_protocols: ClassVar[tuple[str, ...]] = ()
    # build_request signs the body (SigV4, TC3): it applies the channel's param_override itself, before
    # signing (override_body), and `open` leaves the signed body alone.
    signs_body: ClassVar[bool] = False

    # --- pure hooks: bytes in, bytes out, no I/O ---------------------------------------------------------

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        """The vendor's request (method, URL, headers, body) for one call; raise UpstreamError (a 400) for a
        request the vendor cannot be asked."""
        raise NotImplementedError

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        """Client-facing body and the vendor's usage (None when it gave none)."""
        raise NotImplementedError

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        """A fresh decoder for one streamed answer (vendors' streams carry state across events)."""
        raise NotImplementedError

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        """Keep the vendor's own message; one-api looks in these places for it. `headers` are the
        upstream answer's (some vendors put the error's kind there)."""
        message = ""
        error_body = None
        payload = json_or_none(body)
        if isinstance(payload, dict):
            err = payload.get("error")
            if isinstance(err, dict) and err.get("message"):
                error_body = err
                message = str(err.get("message"))
            else:
                for key in ("message", "msg", "err", "error_msg", "error"):
                    if isinstance(payload.get(key), str) and payload[key]:
                        message = payload[key]
                        break
        if not message:
            message = error_excerpt(body, status)
        return UpstreamError(
            status=status, message=message, param=str(status), retryable=retryable_status(status),
            type=(error_body or {}).get("type") or "upstream_error",
            code=(error_body or {}).get("code") or "bad_response_status_code",
            error_body=error_body,
        )

    def answer_content_type(self, ctx: RequestContext) -> str:
        """The content type of a whole answer (WholeAnswer): OpenAI's JSON, unless the mode answers with
        audio (speech) or plain text (transcripts asked for as text, srt or vtt)."""
        return "application/json"

    def completion_text(self, *, mode: str, body: bytes) -> str:
        """The generated text of a client-facing answer, to count when the vendor gave no usage.

        Every adapter answers clients in OpenAI's shape, so one reader serves them all.
        """
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            # Transcripts asked for as text, srt or vtt come back as plain text.
            return body.decode("utf-8", "replace") if mode in TRANSCRIPT_MODES else ""
        if mode in TRANSCRIPT_MODES:
            return str(payload.get("text", "")) if isinstance(payload, dict) else ""
        # What a vendor put in the answer is counted where it is in OpenAI's shape; anything else, which an
        # OpenAI-protocol vendor's answer may hold, counts nothing rather than failing a delivered answer.
        choices = payload.get("choices") if isinstance(payload, dict) else None
        parts: list[str] = []
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            content = message.get("content")
            if content is None:
                content = choice.get("text")
            if isinstance(content, list):
                content = "".join(part["text"] for part in content
                                  if isinstance(part, dict) and isinstance(part.get("text"), str))
            if isinstance(content, str):
                parts.append(content)
            calls = message.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    parts.extend(value for value in (function.get("name"), function.get("arguments"))
                                 if isinstance(value, str))
        return "".join(parts)

    # Native calls: ctx.protocol names the client's protocol, ctx.body is the client's body with the mapped
    # model in `model` (a vendor that takes the model in the URL removes it), ctx.headers the client's headers
    # of that protocol (the codec's native_headers); ctx.mode is "chat" or "count_tokens".

    def speaks_natively(self, protocol: str, *, mode: str, model: str, channel: ChannelInfo | None = None) -> bool:
        """Whether a request in `protocol` for the upstream `model` goes to the vendor as it is (on `channel`,
        for a vendor whose channels say whether they serve the protocol)."""
        return protocol in self.native_protocols and mode == "chat"

    def build_native_request(self, ctx: RequestContext) -> UpstreamRequest:
        """The vendor's request for a native call: the client's body, with the channel's system prompt applied
        the protocol's way."""
        raise NotImplementedError

    def read_native_answer(self, ctx: RequestContext, *, body: bytes) -> tuple[Usage | None, str]:
        """A native call's whole answer (which the client gets as it is): the vendor's usage, and the words
        to count when it gave none. An answer that is not one raises an UpstreamError."""
        raise NotImplementedError

    def native_stream(self, ctx: RequestContext) -> NativeStream:
        """A fresh reader for one natively streamed answer."""
        raise NotImplementedError

    def native_answer_id(self, ctx: RequestContext, *, body: bytes) -> str:
        """The id under which the vendor stored a native call's whole answer, for later requests about it
        (a stored Response); "" when it stored none."""
        return ""

    def build_stored_request(self, channel: ChannelInfo, *, method: str, path: str,
                             query: str) -> UpstreamRequest:
        """A request about an answer the vendor stored (`path`: the answer's id and what is asked of it, e.g.
        "resp_1/input_items"; `query`: the client's query string), for a vendor that stores answers."""
        raise NotImplementedError

    def balance_requests(self, channel: ChannelInfo) -> list[UpstreamRequest]:
        """The GETs that read the account's balance; empty when the vendor exposes none. (They are sent by
        providers/services.py, off the relay's path.)"""
        return []

    def parse_balance(self, bodies: list[bytes]) -> float:
        """The balance (in the vendor's currency) from the answers to balance_requests, in order."""
        raise NotImplementedError

    def balance_usd(self, channel: ChannelInfo, balance: float) -> float:
        """parse_balance's figure in US$, the gateway's unit: as it is, unless the vendor's currency depends
        on the channel (a host that bills in yuan)."""
        return balance

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest | None:
        """The GET that lists the models the vendor offers the channel's key; None when it has no such list.
        (Sent by providers/fleet.py, off the relay's path.)"""
        return None

    def parse_model_list(self, body: bytes) -> list[str]:
        """The model names in model_list_request's answer: OpenAI's `{"data": [{"id": ...}]}` by default."""
        return [str(item["id"]) for item in orjson.loads(body)["data"]]

    def secrets(self, channel: ChannelInfo) -> tuple[str, ...]:
        """What of the channel's credentials must never reach a client or a log (providers/masking.py):
        the key, each part of a multi-part key (Baidu's `ak|sk`, Xunfei's `appid|secret|key`), and the
        values of the secret config fields. Parts too short to tell from ordinary text are left out."""
        key = (channel.key or "").strip()
        found = [key, *(part.strip() for part in key.split("|"))]
        found += [str((channel.config or {}).get(name) or "").strip() for name in self.secret_config_fields]
        found += override_secrets(channel)
        return tuple(dict.fromkeys(s for s in found if len(s) >= SECRET_MIN_CHARS))

    def override_body(self, ctx: RequestContext, body: bytes | None) -> bytes | None:
        """The vendor's body with the channel's param_override applied (providers/channel_overrides.py); a
        return_error operation that fires refuses the call here, before anything is sent."""
        overrides = channel_overrides.for_channel(ctx.channel)
        if overrides is None or ctx.upload is not None:
            return body
        try:
            return overrides.body(body)
        except channel_overrides.Refused as refused:
            why = refused.refusal
            raise UpstreamError(status=why.status, message=why.message, type=why.type, code=why.code,
                                retryable=why.retryable, local=True) from None

    def outgoing(self, ctx: RequestContext, request: UpstreamRequest) -> UpstreamRequest:
        """`request` as it goes out: the channel's param_override on its body (unless build_request signed
        it, having applied it already) and its header_override on its headers."""
        overrides = channel_overrides.for_channel(ctx.channel)
        if overrides is None:
            return request
        if not self.signs_body:
            request.body = self.override_body(ctx, request.body)
        overrides.apply_headers(request.headers, ctx.channel.key)
        return request

    # --- the I/O hook, and its helpers ---------------------------------------------------------------------
    # `open` gets the relay's shared aiohttp session. A failure is an UpstreamError (`retryable` only while
    # nothing was started at the vendor that a retry elsewhere would pay for twice), or a network error
    # (NETWORK_ERRORS) raised as it is. It never edits ctx.body: the relay reuses it on failover.

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        """Send the call and say what came back. By default build_request's request, sent with the client's
        upload (if any) streamed as its form, and the response left unread for the relay. An override does
        its I/O first (an access token, images inlined: into a copy of the body, in the context it returns),
        or answers whole (WholeAnswer), or with events (EventAnswer)."""
        request = self.build_request(ctx) if ctx.protocol == "openai" else self.build_native_request(ctx)
        request = self.outgoing(ctx, request)
        data = request.body
        if ctx.upload is not None:  # streamed as it arrives, so never replayed to another channel
            data = ctx.upload.with_model(ctx.model).chunks()
            request.headers["Content-Type"] = ctx.upload.content_type
        return HttpAnswer(ctx, await session.request(request.method, request.url, headers=request.headers,
                                                     data=data))

    async def answer_whole(self, ctx: RequestContext, *, session) -> WholeAnswer:
        """build_request's request answered whole: its 200 body read with parse_response, for a mode whose
        answer must be converted before the client gets any of it (speech the vendor sends as JSON)."""
        raw = await self.send(ctx, self.build_request(ctx), session=session)
        body, usage = self.parse_response(ctx, body=raw)
        return WholeAnswer(ctx, body, usage, self.answer_content_type(ctx))

    async def send(self, ctx: RequestContext, request: UpstreamRequest, *, session,
                   timeout: float | None = None) -> bytes:
        """One request of an `open` that reads the answer itself: the body of a 200 answer, else the vendor's
        error as parse_error reads it; a network failure is a retryable 502."""
        extra = {"timeout": aiohttp.ClientTimeout(total=timeout)} if timeout else {}
        request = self.outgoing(ctx, request)
        try:
            async with session.request(request.method, request.url, headers=request.headers, data=request.body,
                                       **extra) as response:
                status, headers = response.status, response.headers
                raw = await response.read()
        except NETWORK_ERRORS as exc:
            raise network_failure(exc, read_timeout=timeout or read_timeout(session),
                                  setting=None if timeout else "RELAY_TIMEOUT") from None
        if status != 200:
            raise self.parse_error(ctx, status=status, body=raw, headers=headers)
        return raw
