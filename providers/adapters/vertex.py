"""Google Vertex AI (type 42): Gemini and Claude models behind one Google Cloud project.

Gemini speaks the same generateContent API as the Gemini adapter
(https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference), Claude the
Anthropic Messages API through rawPredict
(https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude), and Imagen
the same `:predict` bodies as on the Gemini API (gemini/imagen.py), so every conversion is reused (Gemini's
image and speech models too); what is Vertex's own is the URL and the OAuth access token, minted from a
service-account key (https://developers.google.com/identity/protocols/oauth2/service-account#httprest).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from providers.adapters import anthropic, vertex_claude_count
from providers.adapters.anthropic import (
    AnthropicAdapter,
    AnthropicStreamDecoder,
    MessageEvents,
    native_body,
    native_headers,
    read_message,
    to_messages_request,
)
from providers.adapters.base import (
    SECRET_MIN_CHARS,
    Adapter,
    ChannelInfo,
    NativeStream,
    Opened,
    RequestContext,
    StreamDecoder,
    UpstreamError,
    UpstreamRequest,
    Usage,
    check_answer,
    json_or_none,
    override_secrets,
    unexpected_answer,
)
from providers.adapters.gemini import native as gemini_native
from providers.adapters.gemini.adapter import GeminiAdapter
from providers.adapters.gemini.answers import GeminiStreamDecoder, gemini_error
from providers.adapters.gemini.convert import inline_remote_images, invalid
from providers.adapters.gemini.imagen import imagen_request, is_imagen
from providers.adapters.inline_images import inline_images, inline_message_images
from providers.adapters.openai_shapes import embedding, embeddings_list

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
DEFAULT_REGION = "us-central1"
# https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude#anthropic-version
ANTHROPIC_VERSION = "vertex-2023-10-16"
TOKEN_LIFETIME = 3600
REFRESH_MARGIN = 300  # a token is renewed five minutes before Google says it expires
TOKEN_FIELD = "_vertex_token"  # the body key carrying the token from open() to build_request()

# Vertex names Claude `<name>@<date>`; most OpenAI-side names map by their trailing date, these not.
# https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude (model ids per version)
CLAUDE_MODELS = {
    "claude-3-5-sonnet-20241022": "claude-3-5-sonnet-v2@20241022",
    "claude-3-5-sonnet-latest": "claude-3-5-sonnet-v2@20241022",
    "claude-3-5-haiku-latest": "claude-3-5-haiku@20241022",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet@20250219",
}
DATED = re.compile(r"^(?P<name>claude-.+)-(?P<date>20\d{6})$")

DEFAULT_MODELS = (
    "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash", "gemini-2.0-flash-lite",
    "claude-sonnet-4-5@20250929", "claude-haiku-4-5@20251001", "claude-opus-4-1@20250805",
    "claude-sonnet-4@20250514", "claude-3-7-sonnet@20250219", "claude-3-5-haiku@20241022",
)

def claude_model(model: str) -> str:
    """The Vertex id of a Claude model: `@`-versioned ids pass through."""
    if "@" in model:
        return model
    if model in CLAUDE_MODELS:
        return CLAUDE_MODELS[model]
    match = DATED.match(model)
    return f"{match['name']}@{match['date']}" if match else model


def is_claude(model: str) -> bool:
    return model.startswith("claude")


# --- credentials ---------------------------------------------------------------------------------


def credentials_error(message: str) -> UpstreamError:
    body = {"message": message, "type": "authentication_error", "code": "invalid_vertex_credentials",
            "param": None}
    return UpstreamError(status=401, message=message, type="authentication_error",
                         code="invalid_vertex_credentials", error_body=body)


@dataclass(frozen=True)
class ServiceAccount:
    client_email: str
    private_key: str
    token_uri: str
    project_id: str
    private_key_id: str = ""

    def __repr__(self) -> str:  # the private key must never reach a log or a traceback
        return f"ServiceAccount({self.client_email!r})"


def service_account(channel: ChannelInfo) -> ServiceAccount:
    """The channel's service-account key: config `vertex_ai_adc` (one-api's name), else the channel key."""
    raw: Any = (channel.config or {}).get("vertex_ai_adc") or channel.key
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raw = None
    if not isinstance(raw, dict) or not raw.get("client_email") or not raw.get("private_key"):
        raise credentials_error("The Vertex AI channel needs a service-account JSON key (with client_email "
                                "and private_key) in vertex_ai_adc or as its key.")
    return ServiceAccount(client_email=str(raw["client_email"]), private_key=str(raw["private_key"]),
                          token_uri=str(raw.get("token_uri") or DEFAULT_TOKEN_URI),
                          project_id=str(raw.get("project_id") or ""),
                          private_key_id=str(raw.get("private_key_id") or ""))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signed_assertion(account: ServiceAccount, now: int | None = None) -> str:
    """The RS256 JWT Google exchanges for an access token (the OAuth 2.0 JWT bearer grant)."""
    now = int(time.time()) if now is None else now
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    claims = {"iss": account.client_email, "scope": SCOPE, "aud": account.token_uri, "iat": now,
              "exp": now + TOKEN_LIFETIME}
    signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}"
    try:
        key = serialization.load_pem_private_key(account.private_key.encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        # The exception text of `cryptography` is not shown: it could quote the key.
        raise credentials_error("The Vertex AI service-account private_key is not a PEM RSA key.") from None
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


# client_email -> (access token, monotonic deadline for reuse)
_tokens: dict[str, tuple[str, float]] = {}
_locks: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = {}


def _lock_for(email: str) -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    held = _locks.get(email)
    if held is None or held[0] is not loop:  # an asyncio.Lock belongs to one event loop
        held = _locks[email] = (loop, asyncio.Lock())
    return held[1]


def forget_token(email: str) -> None:
    _tokens.pop(email, None)


async def access_token(account: ServiceAccount, session: aiohttp.ClientSession) -> str:
    cached = _tokens.get(account.client_email)
    if cached and cached[1] > time.monotonic():
        return cached[0]
    async with _lock_for(account.client_email):  # concurrent requests wait for one exchange
        cached = _tokens.get(account.client_email)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": signed_assertion(account)}
        async with session.post(account.token_uri, data=form, timeout=aiohttp.ClientTimeout(total=30)) as response:
            raw = await response.read()
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        if response.status != 200 or not isinstance(payload, dict) or not payload.get("access_token"):
            raise token_error(response.status, payload)
        expires_in = int(payload.get("expires_in") or TOKEN_LIFETIME)
        token = str(payload["access_token"])
        _tokens[account.client_email] = (token, time.monotonic() + max(expires_in - REFRESH_MARGIN, 0))
        return token


def token_error(status: int, payload: Any) -> UpstreamError:
    """Google's OAuth errors: `{"error": "invalid_grant", "error_description": "..."}`."""
    detail = ""
    if isinstance(payload, dict):
        detail = str(payload.get("error_description") or payload.get("error") or "")
    message = f"Google refused the Vertex AI service account (HTTP {status})" + (f": {detail}" if detail else ".")
    if status == 429 or status >= 500:
        return UpstreamError(status=502, message=message, code="vertex_token_unavailable", retryable=True)
    return credentials_error(message)


# --- the adapter ---------------------------------------------------------------------------------


def embedding_request(body: dict) -> dict:
    """Vertex's text-embedding `:predict`: one instance per input text."""
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    if not texts or not all(isinstance(t, str) for t in texts):
        raise invalid("Vertex AI embeddings take text input (a string or a list of strings).", "invalid_input")
    payload: dict[str, Any] = {"instances": [{"content": t} for t in texts]}
    if body.get("dimensions"):
        payload["parameters"] = {"outputDimensionality": body["dimensions"]}
    return payload


def embedding_answer(payload: dict, model: str) -> tuple[bytes, Usage | None]:
    """`predictions[].embeddings{values, statistics.token_count}` → OpenAI's list, with the counted tokens."""
    predictions = payload.get("predictions") or []
    data = [embedding(i, (p.get("embeddings") or {}).get("values", [])) for i, p in enumerate(predictions)]
    tokens = sum(int(((p.get("embeddings") or {}).get("statistics") or {}).get("token_count") or 0)
                 for p in predictions)
    usage = Usage(prompt_tokens=tokens) if tokens else None
    return orjson.dumps(embeddings_list(data, model, tokens)), usage


class VertexAdapter(Adapter):
    channel_type: ClassVar[int] = 42
    label: ClassVar[str] = "Google Vertex AI"
    default_base_url: ClassVar[str] = ""  # https://{region}-aiplatform.googleapis.com, built per channel
    config_fields: ClassVar[tuple[str, ...]] = ("region", "vertex_ai_project_id", "vertex_ai_adc")
    secret_config_fields = ("vertex_ai_adc",)
    modes: ClassVar[tuple[str, ...]] = ("chat", "embeddings", "images", "speech")
    complete_modes: ClassVar[tuple[str, ...]] = GeminiAdapter.complete_modes  # Gemini's speech, made into audio
    default_models: ClassVar[tuple[str, ...]] = DEFAULT_MODELS
    # Claude clients for Claude models, Gemini clients for Gemini models.
    native_protocols: ClassVar[tuple[str, ...]] = ("anthropic", "gemini")

    def __init__(self) -> None:
        self.gemini = GeminiAdapter()
        self.claude = AnthropicAdapter()

    def secrets(self, channel: ChannelInfo) -> tuple[str, ...]:
        # The service-account JSON is mostly public (type, client_email, URLs): its private key and key id
        # are what must not leak. The PEM's lines are joined, its BEGIN/END lines left out.
        try:
            account = service_account(channel)
        except UpstreamError:
            return super().secrets(channel)
        pem = "".join(line.strip() for line in account.private_key.splitlines()
                      if line.strip() and not line.startswith("-----"))
        return tuple(s for s in (pem, account.private_key_id, *override_secrets(channel)) if len(s) >= SECRET_MIN_CHARS)

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        """An access token minted first (and the chat's remote images inlined), then Gemini's speech is
        answered whole (converted into audio), the rest as one HTTP call."""
        if ctx.mode not in self.modes and ctx.protocol == "openai":  # a native call may count tokens
            raise invalid(f"Vertex AI channels serve {', '.join(self.modes)}, not {ctx.mode}.",
                          "unsupported_endpoint")
        token = await access_token(service_account(ctx.channel), session)
        body = ctx.body
        if ctx.mode == "chat" and ctx.protocol == "openai":
            inline = inline_claude_images if is_claude(ctx.model) else inline_remote_images
            body = await inline(body, session)
        elif ctx.mode == "chat" and ctx.protocol == "anthropic":
            # A Claude client's own body: its URL images, which Vertex does not fetch.
            body = await inline_message_images(body, session)
        # The token rides in the body to build_request (which does no I/O); it never goes upstream.
        ctx = dataclasses.replace(ctx, body={**body, TOKEN_FIELD: token})
        if ctx.mode in self.complete_modes:
            return await self.answer_whole(ctx, session=session)
        return await super().open(ctx, session=session)

    def endpoint(self, channel: ChannelInfo, publisher: str, model: str, action: str) -> str:
        config = channel.config or {}
        region = str(config.get("region") or DEFAULT_REGION)
        project = str(config.get("vertex_ai_project_id") or service_account(channel).project_id)
        if not project:
            raise credentials_error("The Vertex AI channel needs vertex_ai_project_id (or project_id in its key).")
        host = "https://aiplatform.googleapis.com" if region == "global" \
            else f"https://{region}-aiplatform.googleapis.com"
        base = (channel.base_url or host).rstrip("/")
        return f"{base}/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{action}"

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        channel, stream = ctx.channel, ctx.stream
        body = dict(ctx.body)
        token = body.pop(TOKEN_FIELD, None)
        if token is None:
            raise credentials_error("No Vertex AI access token: open() was not run.")
        model = ctx.model
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        if ctx.mode == "embeddings":
            url = self.endpoint(channel, "google", model.removeprefix("models/"), "predict")
            return UpstreamRequest("POST", url, headers, orjson.dumps(embedding_request(body)))
        if ctx.mode == "images" and is_imagen(model):
            url = self.endpoint(channel, "google", model.removeprefix("models/"), "predict")
            return UpstreamRequest("POST", url, headers, orjson.dumps(imagen_request(body)))
        if ctx.mode == "chat" and is_claude(model):
            payload = to_messages_request(body, stream)
            payload.pop("model", None)  # the model is in the URL
            payload["anthropic_version"] = ANTHROPIC_VERSION
            action = "streamRawPredict" if stream else "rawPredict"
            url = self.endpoint(channel, "anthropic", claude_model(model), action)
            headers["Accept"] = "text/event-stream" if stream else "application/json"
            return UpstreamRequest("POST", url, headers, orjson.dumps(payload))
        gemini = self.gemini.build_request(dataclasses.replace(ctx, body=body))
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = self.endpoint(channel, "google", model.removeprefix("models/"), action)
        headers.update({k: v for k, v in gemini.headers.items() if k not in ("x-goog-api-key", "Content-Type")})
        return UpstreamRequest("POST", url, headers, gemini.body)

    def speaks_natively(self, protocol: str, *, mode: str, model: str, channel=None) -> bool:
        if protocol == "gemini":
            # Vertex embeds with `predict`, not Gemini's embedContent: a Gemini client's embeddings are converted.
            return mode in ("chat", "count_tokens") and not is_claude(model) and not is_imagen(model)
        if protocol != "anthropic" or not is_claude(model):
            return False
        # Vertex counts Claude's tokens too, but not for every model and region: those it lately refused are
        # counted locally for a while (vertex_claude_count).
        return mode == "chat" or (mode == "count_tokens" and not (
            channel is not None and vertex_claude_count.refused(channel.id, model)))

    def build_native_request(self, ctx: RequestContext) -> UpstreamRequest:
        if ctx.protocol == "gemini":
            return self._gemini_native_request(ctx)
        return self._claude_native_request(ctx)

    def _gemini_native_request(self, ctx: RequestContext) -> UpstreamRequest:
        """A Gemini client's body as it sent it: Vertex's Gemini takes Gemini's own request, with the model in
        the URL under Google's publisher."""
        token = ctx.body.get(TOKEN_FIELD)
        if token is None:
            raise credentials_error("No Vertex AI access token: open() was not run.")
        model = ctx.model.removeprefix("models/")
        body = gemini_native.native_body(ctx, model)
        body.pop(TOKEN_FIELD, None)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        if ctx.stream:
            headers["Accept"] = "text/event-stream"
        url = self.endpoint(ctx.channel, "google", model, gemini_native.method(ctx))
        return UpstreamRequest("POST", url, headers, orjson.dumps(body))

    def _claude_native_request(self, ctx: RequestContext) -> UpstreamRequest:
        """Claude's Messages body as the client sent it, with Vertex's two differences: the model in the URL,
        and `anthropic_version` in the body instead of the header. A token count names its model in the body,
        at the one count-tokens model of Anthropic's publisher."""
        counting = ctx.mode == "count_tokens"
        body = dict(ctx.body if counting else native_body(ctx.body, ctx.channel.system_prompt))
        token = body.pop(TOKEN_FIELD, None)
        if token is None:
            raise credentials_error("No Vertex AI access token: open() was not run.")
        model = claude_model(str(body.pop("model", "") or ""))
        if counting:
            body["model"] = model
        body["anthropic_version"] = ANTHROPIC_VERSION
        headers = native_headers(ctx, default_version=None)
        headers.pop("anthropic-version", None)
        headers["Authorization"] = f"Bearer {token}"
        headers["Accept"] = "text/event-stream" if ctx.stream else "application/json"
        action = "streamRawPredict" if ctx.stream else "rawPredict"
        url = self.endpoint(ctx.channel, "anthropic", "count-tokens" if counting else model, action)
        return UpstreamRequest("POST", url, headers, orjson.dumps(body))

    def read_native_answer(self, ctx: RequestContext, *, body: bytes) -> tuple[Usage | None, str]:
        if ctx.protocol == "gemini":
            return gemini_native.read_answer(ctx, body, "Vertex AI")
        if ctx.mode == "count_tokens":
            check_answer(json_or_none(body), "Vertex AI", "input_tokens", what="a token count")
            return None, ""
        return read_message(body)

    def native_stream(self, ctx: RequestContext) -> NativeStream:
        return gemini_native.GenerateEvents() if ctx.protocol == "gemini" else MessageEvents()

    @staticmethod
    def _publisher(ctx: RequestContext) -> str:
        """Who answers: Anthropic for Claude chats, Google for the rest."""
        return "anthropic" if ctx.mode == "chat" and is_claude(ctx.model) else "google"

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        if ctx.mode == "embeddings":
            payload = json_or_none(body)
            if not isinstance(payload, dict) or not isinstance(payload.get("predictions"), list):
                raise unexpected_answer("Vertex AI", "embeddings")
            return embedding_answer(payload, ctx.model)
        if self._publisher(ctx) == "anthropic":
            return self.claude.parse_response(ctx, body=body)
        return self.gemini.parse_response(ctx, body=body)  # Imagen's and Gemini's images, Gemini's speech

    def answer_content_type(self, ctx: RequestContext) -> str:
        return self.gemini.answer_content_type(ctx)

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        if self._publisher(ctx) == "anthropic":
            return AnthropicStreamDecoder(ctx.client_model)
        return GeminiStreamDecoder(ctx.client_model)

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        payload = json_or_none(body)
        if isinstance(payload, dict) and payload.get("type") == "error" and isinstance(payload.get("error"), dict):
            # Claude's own errors (overloaded, invalid request) pass through rawPredict in Anthropic's shape.
            err = anthropic.error_from(status, payload["error"])
        else:
            err = gemini_error(status, body) or super().parse_error(ctx, status=status, body=body, headers=headers)
        if ctx.protocol == "anthropic" and ctx.mode == "count_tokens" and status in vertex_claude_count.UNSUPPORTED:
            # No count-tokens for this model or region: remembered, and retryable, so the count is made locally.
            vertex_claude_count.remember(ctx.channel.id, ctx.model)
            return dataclasses.replace(err, retryable=True)
        if status == 401 or err.code == "unauthenticated":
            try:  # revoked or expired early: the next request mints a new one
                forget_token(service_account(ctx.channel).client_email)
            except UpstreamError:
                pass  # no usable service account: no token was minted with it
        return err


async def inline_claude_images(body: dict, session: aiohttp.ClientSession) -> dict:
    """Claude on Vertex takes images as base64 only (no URL source), so http(s) images are fetched here
    (providers/adapters/inline_images.py: bounded, and copied: the relay reuses the body on failover)."""
    return await inline_images(body, session)
