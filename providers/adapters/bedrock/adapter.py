"""The AWS Bedrock adapter: Claude with the Anthropic Messages body, other models through Converse, signed
with SigV4 (providers/adapters/aws/sigv4.py).

https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages.html
`POST /model/{modelId}/invoke` answers the Messages JSON; `/invoke-with-response-stream` answers an AWS
event stream (binary frames, see providers/adapters/aws/eventstream.py) whose `chunk` events carry
Anthropic's stream events base64-encoded. The conversions themselves are the Anthropic adapter's.
Llama, Nova, Mistral and the rest go to `/converse` and `/converse-stream` (converse.py), whose
stream is the same binary framing with one event type per frame.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp
import orjson
import yarl

from providers.adapters.anthropic import (
    FINISH_REASONS,
    AnthropicStreamDecoder,
    MessageEvents,
    native_body,
    read_message,
    to_chat_completion,
    to_messages_request,
    usage_from,
)
from providers.adapters.aws import sigv4
from providers.adapters.aws.eventstream import EventStreamError, EventStreamParser, Message
from providers.adapters.base import (
    SECRET_MIN_CHARS,
    Adapter,
    ChannelInfo,
    NativeStream,
    Opened,
    RequestContext,
    StreamDecoder,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    error_excerpt,
    header,
    json_or_none,
    override_secrets,
    retryable_status,
)
from providers.adapters.bedrock.converse import ConverseEvents, anthropic_message, converse_request
from providers.adapters.fetch import fetch_data_url
from providers.adapters.inline_images import inline_images, inline_message_images
from providers.adapters.openai_shapes import count, error_event, finish_reason, usage_event, usage_json

ANTHROPIC_VERSION = "bedrock-2023-05-31"
SERVICE = "bedrock"
EVENT_STREAM = "application/vnd.amazon.eventstream"
MAX_IMAGE_BYTES = 20 * 1024 * 1024
# Bedrock's Claude takes these four image types only (same list as Anthropic's).
IMAGE_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                    (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))

# OpenAI-side names → Bedrock model ids; one-api's AwsModelIDMap (relay/adaptor/aws/claude/main.go)
# plus the Claude 4 family. Newer models are served only through cross-region inference profiles
# (`us.anthropic...`): map the client name to the profile id in the channel's model mapping.
MODEL_IDS = {
    "claude-instant-1.2": "anthropic.claude-instant-v1",
    "claude-2.0": "anthropic.claude-v2",
    "claude-2.1": "anthropic.claude-v2:1",
    "claude-3-haiku-20240307": "anthropic.claude-3-haiku-20240307-v1:0",
    "claude-3-sonnet-20240229": "anthropic.claude-3-sonnet-20240229-v1:0",
    "claude-3-opus-20240229": "anthropic.claude-3-opus-20240229-v1:0",
    "claude-3-5-sonnet-20240620": "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "claude-3-5-sonnet-20241022": "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "claude-3-5-sonnet-latest": "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "claude-3-5-haiku-20241022": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "claude-3-7-sonnet-20250219": "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "claude-sonnet-4-20250514": "anthropic.claude-sonnet-4-20250514-v1:0",
    "claude-opus-4-20250514": "anthropic.claude-opus-4-20250514-v1:0",
    "claude-opus-4-1-20250805": "anthropic.claude-opus-4-1-20250805-v1:0",
    "claude-sonnet-4-5-20250929": "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "claude-haiku-4-5-20251001": "anthropic.claude-haiku-4-5-20251001-v1:0",
    "claude-opus-4-5-20251101": "anthropic.claude-opus-4-5-20251101-v1:0",
    # one-api's Llama 3 names (relay/adaptor/aws/llama3); served here through Converse.
    "llama3-8b-8192": "meta.llama3-8b-instruct-v1:0",
    "llama3-70b-8192": "meta.llama3-70b-instruct-v1:0",
}
# Models offered by default beside those names; any Bedrock model id works (through Converse).
CONVERSE_MODELS = ("amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0", "amazon.nova-micro-v1:0",
                   "meta.llama3-1-70b-instruct-v1:0", "meta.llama3-1-8b-instruct-v1:0",
                   "mistral.mistral-large-2407-v1:0")

# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html#API_runtime_InvokeModel_Errors
ERROR_STATUS = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
                408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
                500: "InternalServerException", 503: "ServiceUnavailableException"}
RETRYABLE = {"ThrottlingException", "ServiceUnavailableException", "ModelNotReadyException",
             "InternalServerException", "ModelTimeoutException"}
ERROR_TYPES = {"ThrottlingException": "rate_limit_error", "ModelNotReadyException": "rate_limit_error",
               "ServiceQuotaExceededException": "rate_limit_error",
               "AccessDeniedException": "permission_error", "UnrecognizedClientException": "authentication_error",
               "InvalidSignatureException": "authentication_error", "ExpiredTokenException": "authentication_error",
               "ValidationException": "invalid_request_error", "ResourceNotFoundException": "invalid_request_error"}


def bedrock_model_id(model: str) -> str:
    """A Bedrock id (`anthropic.…`, a region profile `us.anthropic.…`, an ARN) passes; a name is looked up."""
    if model.startswith("arn:") or model.startswith("anthropic.") or ".anthropic." in model:
        return model
    return MODEL_IDS.get(model, model)


def is_claude(model_id: str) -> bool:
    """Claude speaks InvokeModel with Anthropic's own body, and so does a name that is no Bedrock id (as
    before Converse was added). Bedrock ids name their provider (`meta.llama3…`, `amazon.nova…`): those
    of other providers go through Converse, and so does an ARN that names no model (an application
    inference profile), since Converse serves every model."""
    if "anthropic." in model_id:
        return True
    return "." not in model_id and not model_id.startswith("arn:")


def credentials(channel: ChannelInfo) -> tuple[str, str, str, str]:
    """(access key id, secret, region, session token): the config's `ak`/`sk`/`region`, else the key as
    `AK|SK|REGION`; and the config's `session_token` for temporary (STS) credentials, else ""."""
    config = channel.config or {}
    parts = [p.strip() for p in (channel.key or "").split("|")]
    from_key = parts if len(parts) >= 2 else []
    ak = str(config.get("ak") or "").strip() or (from_key[0] if from_key else "")
    sk = str(config.get("sk") or "").strip() or (from_key[1] if from_key else "")
    region = str(config.get("region") or "").strip() or (from_key[2] if len(from_key) > 2 else "")
    if not (ak and sk and region):
        # Never echo the key: it holds the secret.
        raise UpstreamError(status=500, message="The AWS Bedrock channel lacks credentials: set the config "
                                                "fields ak, sk and region, or the key as AK|SK|REGION.",
                            type="one_api_error", code="invalid_channel_key", retryable=True)
    return ak, sk, region, str(config.get("session_token") or "").strip()


def bad_input(message: str, code: str = "invalid_request") -> UpstreamError:
    return UpstreamError(status=400, message=message, type="invalid_request_error", code=code, param="messages")


# --- images: Bedrock never fetches URLs -----------------------------------------------------------


def _media_type(content_type: str, data: bytes) -> str:
    for magic, media_type in IMAGE_SIGNATURES:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if content_type in ("image/png", "image/jpeg", "image/gif", "image/webp"):
        return content_type
    raise bad_input("An image URL did not answer with a PNG, JPEG, GIF or WebP image.", "invalid_image")


async def fetch_image(session: aiohttp.ClientSession, url: str, limit: int = MAX_IMAGE_BYTES) -> str:
    """The image at `url` as a data: URL (bounded, public addresses only: see providers/adapters/fetch.py)."""
    return await fetch_data_url(session, url, limit=limit, media_type=_media_type)


async def inline_remote_images(body: dict, session: aiohttp.ClientSession) -> dict:
    """The body with each http(s) image_url replaced by a data: URL whose type is read from the image's
    first bytes (providers/adapters/inline_images.py: bounded, and copied, never edited in place)."""
    return await inline_images(body, session, limit=MAX_IMAGE_BYTES, media_type=_media_type)


# --- requests and answers -------------------------------------------------------------------------


def invoke_body(body: dict) -> dict:
    """The Messages request as Bedrock wants it: the model is in the path, streaming is the endpoint's
    business, and Bedrock refuses keys it does not know (`metadata`: "extraneous key ... not permitted")."""
    request = to_messages_request(body, False)
    for key in ("model", "stream", "metadata"):
        request.pop(key, None)
    for turn in request.get("messages") or ():
        for block in turn.get("content") or ():
            if block.get("type") == "image" and (block.get("source") or {}).get("type") != "base64":
                raise bad_input("Bedrock takes images inline only; the image URL was not fetched.", "invalid_image")
    return {"anthropic_version": ANTHROPIC_VERSION, **request}


def native_invoke_body(body: dict, system_prompt: str, headers: tuple[tuple[str, str], ...]) -> dict:
    """A Claude client's Messages body as InvokeModel takes it, as the Anthropic SDK's Bedrock client sends it:
    the model in the path, streaming the endpoint's business, the beta features in the body
    (`anthropic_beta`, a list, where Anthropic takes the anthropic-beta header), and Bedrock's API version.
    `metadata` is dropped, which Bedrock refuses ("extraneous key")."""
    request = {k: v for k, v in native_body(body, system_prompt).items() if k not in ("model", "stream", "metadata")}
    betas = [beta.strip() for name, value in headers if name == "anthropic-beta" for beta in value.split(",")]
    if any(betas):
        request["anthropic_beta"] = [beta for beta in betas if beta]
    return {"anthropic_version": ANTHROPIC_VERSION, **request}


def metrics_usage(metrics: Any, *, hour: int = 0) -> Usage | None:
    """The usage in a stream's invocation metrics (what AWS bills), when they are there: prompt tokens include
    cache reads and writes, as Anthropic's do. The metrics do not split the writes by lifetime, so `hour`, the
    1-hour writes Claude's own usage gave, is taken from the caller (at most the writes the metrics count)."""
    if not isinstance(metrics, dict) or "outputTokenCount" not in metrics:
        return None
    read, written = count(metrics.get("cacheReadInputTokenCount")), count(metrics.get("cacheWriteInputTokenCount"))
    return Usage(prompt_tokens=count(metrics.get("inputTokenCount")) + read + written,
                 completion_tokens=count(metrics.get("outputTokenCount")),
                 cached_tokens=read, cache_write_tokens=written, cache_write_1h_tokens=min(hour, written))


def error_for(status: int, body: bytes, error_type: str | None = None) -> UpstreamError:
    """Bedrock's `{"message": ...}` error. Its kind travels in the `x-amzn-ErrorType` header
    (`ThrottlingException:http://internal.amazon.com/coral/...`); without it, it is read off the status."""
    payload = json_or_none(body)
    payload = payload if isinstance(payload, dict) else {}
    message = str(payload.get("message") or payload.get("Message") or "").strip()
    if not message:
        message = error_excerpt(body, status, "AWS Bedrock")
    kind = (error_type or str(payload.get("__type") or "")).split(":")[0].rsplit("#", 1)[-1]
    if not kind:
        kind = ERROR_STATUS.get(status, "")
        lowered = message.lower()
        if status == 403 and "security token" in lowered:
            kind = "UnrecognizedClientException"
        elif status == 403 and "signature" in lowered:
            kind = "InvalidSignatureException"
        elif status == 429 and "not ready" in lowered:
            kind = "ModelNotReadyException"
    kind = kind[:1].upper() + kind[1:]  # event-stream exceptions are spelled throttlingException
    type_ = ERROR_TYPES.get(kind, "upstream_error")
    code = kind or "bad_response_status_code"
    return UpstreamError(status=status, message=message, type=type_, code=code,
                         retryable=kind in RETRYABLE or (not kind and retryable_status(status)),
                         error_body={"message": message, "type": type_, "code": code, "param": None})


class BedrockAdapter(Adapter):
    channel_type: ClassVar[int] = 33
    label: ClassVar[str] = "AWS Bedrock"
    default_base_url: ClassVar[str] = ""  # https://bedrock-runtime.{region}.amazonaws.com
    config_fields: ClassVar[tuple[str, ...]] = ("region", "ak", "sk", "session_token")
    secret_config_fields = ("sk", "session_token")
    modes: ClassVar[tuple[str, ...]] = ("chat",)
    default_models: ClassVar[tuple[str, ...]] = tuple(MODEL_IDS) + CONVERSE_MODELS

    def __init__(self, now=sigv4.utcnow) -> None:
        self.now = now  # the signing clock, injectable for tests

    def secrets(self, channel: ChannelInfo) -> tuple[str, ...]:
        # The key is AK|SK|REGION: the region names a place, not a credential, and masked it would be
        # missing from every error text that names an endpoint. So the parts, never the whole key.
        parts = [p.strip() for p in (channel.key or "").split("|")][:2]
        config = channel.config or {}
        found = [*parts, *(str(config.get(name) or "").strip() for name in ("ak", "sk", "session_token")),
                 *override_secrets(channel)]
        return tuple(dict.fromkeys(s for s in found if len(s) >= SECRET_MIN_CHARS))

    native_protocols: ClassVar[tuple[str, ...]] = ("anthropic",)  # for Claude models
    signs_body: ClassVar[bool] = True

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        """A chat's remote images fetched and sent inline first (Bedrock takes no image URLs)."""
        if ctx.mode == "chat" and ctx.protocol == "openai":
            ctx = dataclasses.replace(ctx, body=await inline_remote_images(ctx.body, session))
        elif ctx.mode == "chat":
            ctx = dataclasses.replace(ctx, body=await inline_message_images(ctx.body, session, limit=MAX_IMAGE_BYTES,
                                                                            media_type=_media_type))
        return await super().open(ctx, session=session)

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        if ctx.mode != "chat":
            raise bad_input(f"AWS Bedrock channels serve chat only, not {ctx.mode}.", "unsupported_mode")
        model_id = bedrock_model_id(ctx.model)
        if is_claude(model_id):
            payload = orjson.dumps(invoke_body(ctx.body))
            action = "invoke-with-response-stream" if ctx.stream else "invoke"
        else:
            payload = orjson.dumps(converse_request(ctx.body))
            action = "converse-stream" if ctx.stream else "converse"
        return self._signed(ctx, model_id, action, payload)

    def speaks_natively(self, protocol: str, *, mode: str, model: str, channel=None) -> bool:
        return protocol == "anthropic" and mode == "chat" and is_claude(bedrock_model_id(model))

    def build_native_request(self, ctx: RequestContext) -> UpstreamRequest:
        payload = orjson.dumps(native_invoke_body(ctx.body, ctx.channel.system_prompt, ctx.headers))
        action = "invoke-with-response-stream" if ctx.stream else "invoke"
        return self._signed(ctx, bedrock_model_id(ctx.model), action, payload)

    def read_native_answer(self, ctx: RequestContext, *, body: bytes) -> tuple[Usage | None, str]:
        return read_message(body)

    def native_stream(self, ctx: RequestContext) -> NativeStream:
        return BedrockMessageEvents()

    def _signed(self, ctx: RequestContext, model_id: str, action: str, payload: bytes) -> UpstreamRequest:
        """The request to one of the model's actions, signed."""
        channel, stream = ctx.channel, ctx.stream
        payload = self.override_body(ctx, payload)  # before signing: the signature covers the body
        ak, sk, region, session_token = credentials(channel)
        base = (channel.base_url or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        # The id is one path segment: its colon (and an ARN's slashes) percent-encoded, as the AWS SDKs send it.
        url = f"{base}/model/{urllib.parse.quote(model_id, safe='')}/{action}"
        headers = sigv4.sign(method="POST", url=url, headers={"Content-Type": "application/json"},
                                 body=payload, access_key=ak, secret_key=sk, region=region, service=SERVICE,
                                 session_token=session_token, now=self.now)
        if stream:
            headers.update({"Accept": EVENT_STREAM, "X-Amzn-Bedrock-Accept": "application/json"})
        else:
            headers["Accept"] = "application/json"
        # aiohttp re-quotes a str URL and would send `%3A` as `:`, which no longer matches the signed
        # path; an already-encoded yarl URL goes on the wire byte for byte.
        return UpstreamRequest("POST", yarl.URL(url, encoded=True), headers, payload)  # type: ignore[arg-type]

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        payload = json_or_none(body)
        claude = is_claude(bedrock_model_id(ctx.model))
        shape = "content" if claude else "output"
        if not isinstance(payload, dict) or shape not in payload:
            raise UpstreamError(status=502, message="AWS Bedrock answered with something that is not a message.",
                                code="bad_response", retryable=True)
        answer, usage = to_chat_completion(payload if claude else anthropic_message(payload, ctx.client_model))
        return orjson.dumps(answer), usage

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        return error_for(status, body, header(headers, "x-amzn-ErrorType") or None)

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        if is_claude(bedrock_model_id(ctx.model)):
            return BedrockStreamDecoder(ctx.client_model)
        return ConverseStreamDecoder(ctx.client_model)


class BedrockMessageEvents(MessageEvents):
    """InvokeModelWithResponseStream for a Claude client: the Anthropic events its `chunk` frames carry, sent as
    the server-sent events Anthropic would have sent, and read for the bill as Anthropic's are; Bedrock's
    exceptions become Anthropic's error event. The invocation metrics Bedrock adds to message_stop are what
    AWS bills, so they win over message_delta's counts."""

    framing: ClassVar[str] = "raw"

    def __init__(self) -> None:
        super().__init__()
        self.parser = EventStreamParser()
        self.broken = False

    def feed_bytes(self, chunk: bytes) -> bytes:
        if self.broken:
            return b""
        try:
            messages = self.parser.feed(chunk)
        except EventStreamError as exc:
            self.broken = True
            return self._failed(UpstreamError(status=502, message=f"AWS Bedrock's event stream is corrupt: {exc}.",
                                              code="bad_event_stream", retryable=True))
        return b"".join(self._frame(message) for message in messages)

    def _frame(self, message: Message) -> bytes:
        kind = message.headers.get(":message-type")
        if kind == "exception":
            return self._failed(error_for(200, message.payload, str(message.headers.get(":exception-type") or "")
                                          or None))
        if kind == "error":
            code = str(message.headers.get(":error-code") or "upstream_error")
            text = str(message.headers.get(":error-message") or code)
            return self._failed(error_for(200, orjson.dumps({"message": text}), code))
        if message.headers.get(":event-type") != "chunk":
            return b""  # initial-response and future event types carry nothing for the client
        try:
            event = base64.b64decode(orjson.loads(message.payload)["bytes"], validate=True)
            kind = orjson.loads(event)["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error, ValueError):
            return b""  # a garbled event is dropped; the rest of the stream still counts
        if not isinstance(kind, str):
            return b""
        self.read(kind.encode(), event)
        if kind == "message_stop":
            self._metrics(orjson.loads(event).get("amazon-bedrock-invocationMetrics"))
        return b"event: " + kind.encode() + b"\ndata: " + event + b"\n\n"

    def _metrics(self, metrics: Any) -> None:
        # message_start's usage split the writes by lifetime; the metrics only count them.
        hour = usage_from(self.counts).cache_write_1h_tokens
        self.usage = metrics_usage(metrics, hour=hour) or self.usage

    def _failed(self, err: UpstreamError) -> bytes:
        self.error = self.error or err
        kind = err.type if err.type.endswith("_error") and err.type != "upstream_error" else "api_error"
        return b"event: error\ndata: " + orjson.dumps(
            {"type": "error", "error": {"type": kind, "message": err.message}}) + b"\n\n"


class EventStreamDecoder(StreamDecoder):
    """AWS event-stream frames → OpenAI chunks: the framing and the exceptions, for both Bedrock streams.

    The frames are binary, so the relay must hand over raw bytes (`framing = "raw"`, `feed_bytes`).
    A frame with a bad CRC loses the framing for good: one error chunk, then nothing more is read.
    """

    framing: ClassVar[str] = "raw"

    def __init__(self, model: str) -> None:
        self.model = model
        self.parser = EventStreamParser()
        self.broken = False

    def accepts(self, content_type: str) -> bool:
        return content_type.startswith(EVENT_STREAM)

    def feed_bytes(self, chunk: bytes) -> list[StreamEvent]:
        if self.broken:
            return []
        try:
            messages = self.parser.feed(chunk)
        except EventStreamError as exc:
            self.broken = True
            # Retryable: before any words the relay may still ask another channel.
            return [error_event(UpstreamError(status=502, message=f"AWS Bedrock's event stream is corrupt: {exc}.",
                                               type="upstream_error", code="bad_event_stream", retryable=True))]
        events: list[StreamEvent] = []
        for message in messages:
            events.extend(self.on_message(message))
        return events

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        """What a relay without raw framing calls, with the binary stream cut at newlines: the bytes
        cannot be put back together, so the client gets one clear error instead of garbage."""
        if self.broken:
            return []
        self.broken = True
        return [error_event(UpstreamError(
            status=502, message="This gateway cannot read AWS Bedrock streams yet: the relay must hand the "
                                "decoder raw bytes (framing 'raw').", code="unsupported_stream_framing"))]

    def on_message(self, message: Message) -> list[StreamEvent]:
        kind = message.headers.get(":message-type")
        if kind == "exception":
            # https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModelWithResponseStream.html
            name = str(message.headers.get(":exception-type") or "")
            return [error_event(error_for(200, message.payload, name or None))]
        if kind == "error":
            code = str(message.headers.get(":error-code") or "upstream_error")
            text = str(message.headers.get(":error-message") or code)
            return [error_event(error_for(200, orjson.dumps({"message": text}), code))]
        return self.on_event(str(message.headers.get(":event-type") or ""), message.payload)

    def on_event(self, name: str, payload: bytes) -> list[StreamEvent]:
        raise NotImplementedError


class BedrockStreamDecoder(EventStreamDecoder):
    """InvokeModelWithResponseStream (Claude): each `chunk` event carries an Anthropic stream event."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.claude = AnthropicStreamDecoder(model)
        self.held: list[StreamEvent] = []  # message_delta's usage chunk, until message_stop

    def on_event(self, name: str, payload: bytes) -> list[StreamEvent]:
        if name != "chunk":
            return []  # initial-response and future event types carry nothing for the client
        try:
            wrapper = orjson.loads(payload)
            event = base64.b64decode(wrapper["bytes"], validate=True)
            claude_event = orjson.loads(event)
        except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error, ValueError):
            return []  # a garbled event is dropped; the rest of the stream still counts
        if not isinstance(claude_event, dict):
            return []
        events = self.claude.feed(str(claude_event.get("type") or "").encode(), event)
        # The usage chunk waits for message_stop, where Bedrock adds the counts it bills by.
        self.held = [e for e in events if e.usage_only] or self.held
        events = [e for e in events if not e.usage_only]
        if claude_event.get("type") == "message_stop":
            events = self.release_usage(claude_event.get("amazon-bedrock-invocationMetrics")) + events
        return events

    def release_usage(self, metrics: Any = None) -> list[StreamEvent]:
        """The one usage chunk: Bedrock's invocation metrics when given (what AWS bills; prompt tokens
        include cache reads and writes, as Anthropic's do), else message_delta's counts."""
        held, self.held = self.held, []
        # The metrics do not split the writes by lifetime; Claude's own usage does.
        usage = metrics_usage(metrics, hour=held[0].usage.cache_write_1h_tokens
                              if held and held[0].usage is not None else 0)
        if usage is None:
            return held
        return [usage_event(id=self.claude.id, created=self.claude.created, model=self.claude.model, usage=usage,
                            as_json=usage_json(usage, cached=True))]

    def close(self) -> list[StreamEvent]:
        # A stream cut between message_delta and message_stop still bills message_delta's counts.
        return self.release_usage() + self.claude.close()


class ConverseStreamDecoder(EventStreamDecoder):
    """ConverseStream (every other model): its events, made Anthropic's (converse.py), go through
    Anthropic's decoder. A stream cut after messageStop but before metadata still ends with its finish."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.claude = AnthropicStreamDecoder(model)
        self.converse = ConverseEvents(model)
        self.finished = False

    def on_event(self, name: str, payload: bytes) -> list[StreamEvent]:
        data = json_or_none(payload)
        if not isinstance(data, dict):
            return []  # a garbled event is dropped; the rest of the stream still counts
        events: list[StreamEvent] = []
        for event in self.converse.translate(name, data):
            self.finished = self.finished or event["type"] == "message_delta"
            events.extend(getattr(self.claude, f"on_{event['type']}")(event))
        return events

    def close(self) -> list[StreamEvent]:
        if self.converse.stopped and not self.finished:
            finish = finish_reason(self.converse.stop, FINISH_REASONS)
            return [StreamEvent(data=self.claude.chunk({}, finish))]
        return []
