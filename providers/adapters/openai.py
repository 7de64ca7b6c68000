"""OpenAI and the vendors that speak its protocol.

The request is forwarded nearly as sent (model mapped, system prompt applied,
usage asked for in streams); the answer is passed through byte for byte and
only read for its usage.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import ClassVar
from urllib.parse import urlencode, urlsplit

import orjson

from billing import pricing
from oneapi_site.lib.modes import TRANSCRIPT_MODES
from providers.adapters import openai_responses
from providers.adapters.base import (
    Adapter,
    ChannelInfo,
    NativeStream,
    RequestContext,
    StreamDecoder,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    check_answer,
    json_or_none,
)
from providers.adapters.openai_shapes import TEXT_FORMATS, usage_from

PATHS = {
    "chat": "/v1/chat/completions", "completions": "/v1/completions", "embeddings": "/v1/embeddings",
    "images": "/v1/images/generations", "speech": "/v1/audio/speech", "transcriptions": "/v1/audio/transcriptions",
    "translations": "/v1/audio/translations", "moderations": "/v1/moderations", "rerank": "/v1/rerank",
}


# What every answer of a mode holds (one of): a 200 without it is no answer (an empty body, a proxy's page).
ANSWER_FIELDS = {
    "chat": ("choices",), "completions": ("choices",), "embeddings": ("data",), "images": ("data",),
    "moderations": ("results",), "rerank": ("results", "data"), "transcriptions": ("text",),
    "translations": ("text",),
}


# Where OpenAI-shaped streams carry a reasoning model's thinking: `reasoning_content` (DeepSeek, Qwen, GLM,
# Spark X1), `reasoning` (OpenRouter, vLLM, Groq) and `reasoning_details` (OpenRouter).
REASONING_FIELDS = ("reasoning_content", "reasoning", "reasoning_details")


# The channel config key that says whether an OpenAI-protocol channel serves the Responses API (/v1/responses);
# OpenAI's and Azure's do unless it says otherwise, the others only when it says so.
RESPONSES_SETTING = "responses_api"
RESPONSES_BY_DEFAULT = (1, 3)
TRUE_WORDS = ("1", "true", "yes", "on")


def serves_responses(channel: ChannelInfo) -> bool:
    """Whether the channel serves OpenAI's Responses API natively (its `responses_api` config, a JSON boolean
    or the form's text; unset: OpenAI and Azure do)."""
    value = (channel.config or {}).get(RESPONSES_SETTING)
    if value is None or value == "":
        return channel.type in RESPONSES_BY_DEFAULT
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return value is True


def _with_query(url: str, query: str) -> str:
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + query


def has_reasoning(delta) -> bool:
    """Whether an OpenAI chunk's delta carries some of the model's thinking."""
    return isinstance(delta, dict) and any(delta.get(name) for name in REASONING_FIELDS)


class OpenAIAdapter(Adapter):
    channel_type: ClassVar[int] = 1
    label: ClassVar[str] = "OpenAI"
    default_base_url: ClassVar[str] = "https://api.openai.com"
    modes: ClassVar[tuple[str, ...]] = tuple(PATHS)
    config_fields: ClassVar[tuple[str, ...]] = (RESPONSES_SETTING,)
    # A Responses client's request goes as it is to a channel that serves the API (serves_responses).
    native_protocols: ClassVar[tuple[str, ...]] = ("responses",)

    def base_url(self, channel: ChannelInfo) -> str:
        return (channel.base_url or self.default_base_url).rstrip("/")

    # --- the Responses API, natively (providers/adapters/openai_responses.py reads its answers) ---------------

    def responses_url(self, channel: ChannelInfo, model: str, rest: str = "") -> str:
        """Where the channel serves Responses: beside its chat completions (`rest`: "/{id}..." of a stored one)."""
        path = self.path("chat", model, channel).replace("/chat/completions", "/responses" + rest, 1)
        return self.base_url(channel) + path

    def responses_model(self, model: str) -> str:
        """The upstream model as the Responses request names it."""
        return model

    def speaks_natively(self, protocol: str, *, mode: str, model: str, channel: ChannelInfo | None = None) -> bool:
        return (protocol == "responses" and mode in ("chat", "count_tokens") and channel is not None
                and serves_responses(channel))

    def build_native_request(self, ctx: RequestContext) -> UpstreamRequest:
        channel = ctx.channel
        headers = {"Content-Type": "application/json"}
        headers.update(self.auth_headers(channel))
        body = {**ctx.body, "model": self.responses_model(ctx.model)}
        if ctx.mode == "count_tokens":  # https://platform.openai.com/docs/api-reference/responses/input-tokens
            return UpstreamRequest("POST", self.responses_url(channel, ctx.model, "/input_tokens"), headers,
                                   orjson.dumps(body))
        headers["Accept"] = "text/event-stream" if ctx.stream else "application/json"
        if channel.system_prompt:  # the channel's prompt replaces the client's instructions
            body["instructions"] = channel.system_prompt
        return UpstreamRequest("POST", self.responses_url(channel, ctx.model), headers, orjson.dumps(body))

    def read_native_answer(self, ctx: RequestContext, *, body: bytes) -> tuple[Usage | None, str]:
        if ctx.mode == "count_tokens":
            openai_responses.read_count(body, self.label)
            return None, ""
        usage, words, _ = openai_responses.read_response(body, self.label)
        return usage, words

    def native_answer_id(self, ctx: RequestContext, *, body: bytes) -> str:
        payload = json_or_none(body)
        return openai_responses.stored_id(payload) if ctx.mode == "chat" else ""

    def native_stream(self, ctx: RequestContext) -> NativeStream:
        return openai_responses.ResponseEvents(self.label)

    def build_stored_request(self, channel: ChannelInfo, *, method: str, path: str,
                             query: str) -> UpstreamRequest:
        url = _with_query(self.responses_url(channel, "", "/" + path), query)
        return UpstreamRequest(method, url, {"Accept": "application/json", **self.auth_headers(channel)})

    def path(self, mode: str, model: str, channel: ChannelInfo) -> str:
        return PATHS[mode]

    def auth_headers(self, channel: ChannelInfo) -> dict[str, str]:
        return {"Authorization": f"Bearer {channel.key}"}

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        channel, mode, body, stream = ctx.channel, ctx.mode, ctx.body, ctx.stream
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        headers.update(self.auth_headers(channel))
        if stream and not body.get("stream"):  # a stream the relay asked for itself (stream_only)
            body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        url = self.base_url(channel) + self.path(mode, body.get("model", ""), channel)
        return UpstreamRequest("POST", url, headers, orjson.dumps(body))

    def _get(self, channel: ChannelInfo, path: str) -> UpstreamRequest:
        return UpstreamRequest("GET", self.base_url(channel) + path, self.auth_headers(channel))

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest | None:
        # GET /v1/models beside the chat endpoint, so a vendor's prefix or SDK-style base applies as well.
        chat = self.path("chat", "", channel)
        if not chat.endswith("/chat/completions"):
            return None
        return self._get(channel, chat.removesuffix("/chat/completions") + "/models")

    def balance_requests(self, channel: ChannelInfo) -> list[UpstreamRequest]:
        # OpenAI's (and its clones') billing endpoints: the hard limit minus the last 100 days' usage.
        today = datetime.date.today()
        start, end = today - datetime.timedelta(days=99), today + datetime.timedelta(days=1)
        return [self._get(channel, "/v1/dashboard/billing/subscription"),
                self._get(channel, f"/v1/dashboard/billing/usage?start_date={start}&end_date={end}")]

    def parse_balance(self, bodies: list[bytes]) -> float:
        subscription, usage = (orjson.loads(b) for b in bodies)
        return float(subscription["hard_limit_usd"]) - float(usage.get("total_usage", 0)) / 100

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        fields = ANSWER_FIELDS.get(ctx.mode, ())
        if ctx.body.get("response_format") in TEXT_FORMATS and ctx.mode in TRANSCRIPT_MODES:
            fields = ()
        payload = json_or_none(body)
        if fields:
            check_answer(payload, self.label, *fields, what=f"an OpenAI {ctx.mode} answer",
                         error=lambda found: self.error_in_answer(ctx, found, body))
        return body, usage_from(payload) if isinstance(payload, dict) else None

    def error_in_answer(self, ctx: RequestContext, payload, body: bytes) -> UpstreamError | None:
        """The error object some proxies send with a 200 that is no answer (kept, as a 502); None when the
        body holds none."""
        if isinstance(payload, dict) and ("error" in payload or "errors" in payload):
            return self.parse_error(ctx, status=502, body=body)
        return None

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return OpenAIStreamDecoder()


class OpenAIStreamDecoder(StreamDecoder):
    """OpenAI's chunks pass through untouched; each is read only for its text and usage."""

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        return [parse_chunk(data)]


def parse_chunk(data: bytes) -> StreamEvent:
    """One OpenAI chunk: forwarded as is, read for its text and usage."""
    if data == b"[DONE]":
        return StreamEvent(data=None, done=True)
    text = ""
    payload = json_or_none(data)
    if not isinstance(payload, dict):
        return StreamEvent(data=data, malformed=True)
    if isinstance(payload.get("error"), dict):
        error = payload["error"]
        message = str(error.get("message") or "The upstream reported an error in the stream.")
        return StreamEvent(data=data, error=UpstreamError(
            status=502, message=message, type=str(error.get("type") or "upstream_error"),
            code=str(error.get("code") or "bad_response_status_code"), retryable=True, error_body=error))
    usage = usage_from(payload)
    if usage is None and "choices" not in payload:
        return StreamEvent(data=data, malformed=True)
    reasoning = False
    choices = payload.get("choices")
    # Read where OpenAI's shape puts the text; a vendor's choice, delta or call in another shape holds none
    # (the chunk still goes out as it came), rather than cutting off the stream.
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        piece = delta.get("content") if isinstance(delta, dict) else None
        if piece is None:
            piece = choice.get("text")
        if isinstance(piece, str):
            text += piece
        if isinstance(delta, dict):
            reasoning = reasoning or has_reasoning(delta)
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    text += "".join(value for value in (function.get("name"), function.get("arguments"))
                                    if isinstance(value, str))
    return StreamEvent(data=data, usage=usage, text=text, reasoning=reasoning,
                       usage_only=usage is not None and not payload.get("choices"), chunk=payload)


class AzureAdapter(OpenAIAdapter):
    """Azure OpenAI: deployment URLs, `api-key`, and `api_version` from the channel config."""

    channel_type = 3
    label = "Azure OpenAI"
    default_base_url = ""
    config_fields = ("api_version", RESPONSES_SETTING)
    DEFAULT_API_VERSION = "2024-03-01-preview"
    # The first dated API version that serves Responses (older ones, and the default above, do not).
    RESPONSES_SINCE = "2025-03-01-preview"
    TASKS = {"chat": "chat/completions", "completions": "completions", "embeddings": "embeddings",
             "images": "images/generations", "speech": "audio/speech", "transcriptions": "audio/transcriptions",
             "translations": "audio/translations"}
    modes = tuple(TASKS)

    def path(self, mode: str, model: str, channel: ChannelInfo) -> str:
        version = channel.config.get("api_version") or self.DEFAULT_API_VERSION
        # Azure deployment names cannot contain dots (gpt-3.5-turbo is deployed as gpt-35-turbo).
        deployment = model.replace(".", "")
        return f"/openai/deployments/{deployment}/{self.TASKS[mode]}?api-version={version}"

    def auth_headers(self, channel: ChannelInfo) -> dict[str, str]:
        return {"api-key": channel.key}

    def responses_url(self, channel: ChannelInfo, model: str, rest: str = "") -> str:
        # https://learn.microsoft.com/azure/ai-foundry/openai/how-to/responses: the v1 API (/openai/v1/responses,
        # no dated version) and the preview versions since 2025-03-01 (/openai/responses?api-version=...); the
        # deployment is named by `model` in the body, not in the URL, on both.
        version = channel.config.get("api_version") or ""
        if version[:4].isdigit() and version >= self.RESPONSES_SINCE:
            return f"{self.base_url(channel)}/openai/responses{rest}?api-version={version}"
        query = f"?api-version={version}" if version in ("preview", "latest") else ""
        return f"{self.base_url(channel)}/openai/v1/responses{rest}{query}"

    def responses_model(self, model: str) -> str:
        return model.replace(".", "")  # a deployment's name, as in the chat URL

    def model_list_request(self, channel: ChannelInfo) -> None:
        return None  # an Azure channel serves its deployments, which no endpoint of the key lists

    def balance_requests(self, channel: ChannelInfo) -> list:
        return []  # Azure bills through the Azure portal; there is no balance endpoint


class CustomAdapter(OpenAIAdapter):
    """Type 8: the base URL replaces the host; the path keeps its /v1."""

    channel_type = 8
    label = "Custom"
    default_base_url = ""


class OpenAICompatibleAdapter(OpenAIAdapter):
    """Type 50: the base URL is SDK-style (https://host/v1), so the request path drops its /v1."""

    channel_type = 50
    label = "OpenAI-compatible"
    default_base_url = ""

    def path(self, mode, model, channel):
        return PATHS[mode].removeprefix("/v1")


def vendor_adapter(type_id: int, name: str, base: str, *, strip_v1: bool = False, prefix: str = "",
            models: tuple[str, ...] = ()) -> type[OpenAIAdapter]:
    """An OpenAI-protocol vendor that differs only in its default URL (and the models a new channel offers)."""

    def path(self, mode, model, channel):
        p = PATHS[mode].removeprefix("/v1") if strip_v1 else PATHS[mode]
        return prefix + p

    attrs = {"channel_type": type_id, "label": name, "default_base_url": base, "default_models": models}
    if strip_v1 or prefix:
        attrs["path"] = path
    return type(f"{name.replace('.', '').replace(' ', '')}Adapter", (OpenAIAdapter,), attrs)


class OpenRouterAdapter(OpenAIAdapter):
    channel_type = 20
    label = "OpenRouter"
    default_base_url = "https://openrouter.ai/api"

    def balance_requests(self, channel):
        return [self._get(channel, "/v1/credits")]  # the base already ends in /api

    def parse_balance(self, bodies):
        data = orjson.loads(bodies[0])["data"]
        return float(data["total_credits"]) - float(data.get("total_usage", 0))

    def auth_headers(self, channel):
        # OpenRouter ranks apps by these; one-api sends them too.
        return {"Authorization": f"Bearer {channel.key}", "HTTP-Referer": "https://github.com/oneapi",
                "X-Title": "oneapi"}


def balance_refused(vendor: str, message: str) -> UpstreamError:
    """A balance answer in which the vendor says no (a bad key, a suspended account)."""
    return UpstreamError(status=400, message=f"{vendor} refused the balance query: {message}",
                         code="balance_refused")


class CreditGrantsAdapter(OpenAIAdapter):
    """Resellers that answer OpenAI's retired `/dashboard/billing/credit_grants` (without /v1), read as
    one-api reads them (controller/channel-billing.go): the balance is one field of the answer."""

    balance_field: ClassVar[str] = "total_available"

    def balance_requests(self, channel):
        return [self._get(channel, "/dashboard/billing/credit_grants")]

    def parse_balance(self, bodies):
        return float(orjson.loads(bodies[0])[self.balance_field])


class CloseAIAdapter(CreditGrantsAdapter):
    channel_type = 4
    label = "CloseAI"
    default_base_url = "https://api.closeai-proxy.xyz"


class API2GPTAdapter(CreditGrantsAdapter):
    channel_type = 12
    label = "API2GPT"
    default_base_url = "https://api.api2gpt.com"
    balance_field = "total_remaining"


class AIGC2DAdapter(CreditGrantsAdapter):
    channel_type = 13
    label = "AIGC2D"
    default_base_url = "https://api.aigc2d.com"


class OpenAISBAdapter(OpenAIAdapter):
    channel_type = 5
    label = "OpenAI-SB"
    default_base_url = "https://api.openai-sb.com"

    def balance_requests(self, channel):
        # The account API takes the key in the query as well (one-api sends both).
        return [self._get(channel, "/sb-api/user/status?" + urlencode({"api_key": channel.key}))]

    def parse_balance(self, bodies):
        payload = orjson.loads(bodies[0])
        if not payload.get("data"):  # `{"msg": "...", "data": null}`
            raise balance_refused(self.label, str(payload.get("msg") or "no account data"))
        return float(payload["data"]["credit"])  # a decimal string


class AIProxyAdapter(OpenAIAdapter):
    channel_type = 10
    label = "AIProxy"
    default_base_url = "https://api.aiproxy.io"

    def balance_requests(self, channel):
        # The account report lives on the site's host (aiproxy.io), not the API's, with the key in Api-Key.
        base = self.base_url(channel).replace("://api.aiproxy.io", "://aiproxy.io")
        return [UpstreamRequest("GET", base + "/api/report/getUserOverview", {"Api-Key": channel.key})]

    def parse_balance(self, bodies):
        payload = orjson.loads(bodies[0])
        if not payload.get("success"):
            raise balance_refused(self.label, f"code {payload.get('error_code')}, {payload.get('message')}")
        return float(payload["data"]["totalPoints"])


def with_cached_details(data: bytes, usage: Usage | None) -> bytes:
    """An answer or chunk whose usage tells its cache hits only in the vendor's own field, given OpenAI's
    `prompt_tokens_details.cached_tokens` too, which OpenAI's clients read; anything else as it is."""
    if usage is None or not usage.cached_tokens:
        return data
    payload = json_or_none(data)
    if not isinstance(payload, dict) or not isinstance(payload.get("usage"), dict) \
            or isinstance(payload["usage"].get("prompt_tokens_details"), dict):
        return data
    payload["usage"]["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return orjson.dumps(payload)


class CachedDetailsStreamDecoder(OpenAIStreamDecoder):
    """OpenAI's chunks, the usage chunk given OpenAI's cached-tokens detail (with_cached_details)."""

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        events = super().feed(event, data)
        for decoded in events:
            if decoded.usage is not None and decoded.data is not None:
                decoded.data = with_cached_details(decoded.data, decoded.usage)
        return events


class CacheHitsOwnFieldMixin:
    """For a clone that tells its cache hits in a field of its own, which OpenAI's clients do not read:
    DeepSeek's prompt_cache_hit_tokens (https://api-docs.deepseek.com/guides/kv_cache), Moonshot's
    cached_tokens. Its answers get OpenAI's detail too."""

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        body, usage = super().parse_response(ctx, body=body)  # type: ignore[misc]
        return with_cached_details(body, usage), usage

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return CachedDetailsStreamDecoder()


class YuanOnCnHostAdapter(OpenAIAdapter):
    """A vendor with a mainland platform that bills in yuan and an international one that bills in US$, the
    same account API on both (Moonshot: api.moonshot.cn / api.moonshot.ai; SiliconFlow: api.siliconflow.cn /
    api.siliconflow.com). The rule: a channel whose base URL (the default when it has none) is on a .cn host
    holds yuan, converted at the rate yuan prices are; any other host gives US$ as it is. A proxy in front of
    the .cn platform under another name is read as US$: its operator knows which, and can set the balance."""

    def balance_usd(self, channel: ChannelInfo, balance: float) -> float:
        host = urlsplit(self.base_url(channel)).hostname or ""
        if host.endswith(".cn"):
            return float(Decimal(str(balance)) / pricing.CNY_PER_USD)
        return balance


class MoonshotAdapter(CacheHitsOwnFieldMixin, YuanOnCnHostAdapter):
    channel_type = 25
    label = "Moonshot"
    default_base_url = "https://api.moonshot.cn"

    def balance_requests(self, channel):
        # https://platform.moonshot.cn/docs/api/balance: cash plus vouchers (CNY on .cn, USD on .ai).
        return [self._get(channel, "/v1/users/me/balance")]

    def parse_balance(self, bodies):
        return float(orjson.loads(bodies[0])["data"]["available_balance"])


MistralAdapter = vendor_adapter(28, "Mistral", "https://api.mistral.ai")
GroqAdapter = vendor_adapter(29, "Groq", "https://api.groq.com/openai")
StepFunAdapter = vendor_adapter(32, "StepFun", "https://api.stepfun.com")
class DeepSeekAdapter(CacheHitsOwnFieldMixin, OpenAIAdapter):
    channel_type = 36
    label = "DeepSeek"
    default_base_url = "https://api.deepseek.com"

    def balance_requests(self, channel):
        return [self._get(channel, "/user/balance")]

    def parse_balance(self, bodies):
        # https://api-docs.deepseek.com/api/get-user-balance: {is_available, balance_infos: [{currency ("CNY" or
        # "USD"), total_balance, granted_balance, topped_up_balance}]}, amounts as decimal strings, one entry a
        # currency. The gateway's balances are US$: the USD entry when there is one, else the CNY one at the
        # rate the yuan prices are converted at. one-api reads the CNY entry only and stores it as it is (yuan
        # shown as dollars), and fails for an account that holds US$ only.
        infos = {info.get("currency"): info for info in orjson.loads(bodies[0]).get("balance_infos") or ()
                 if isinstance(info, dict)}
        if "USD" in infos:
            return float(infos["USD"]["total_balance"])
        if "CNY" in infos:
            return float(Decimal(infos["CNY"]["total_balance"]) / pricing.CNY_PER_USD)
        if infos:
            raise ValueError(f"DeepSeek gave a balance in {', '.join(map(str, infos))} only")
        return 0.0
TogetherAdapter = vendor_adapter(39, "together.ai", "https://api.together.xyz")
DoubaoAdapter = vendor_adapter(40, "Doubao", "https://ark.cn-beijing.volces.com", strip_v1=True, prefix="/api/v3")
NovitaAdapter = vendor_adapter(41, "Novita", "https://api.novita.ai/v3/openai", strip_v1=True)
class SiliconFlowAdapter(YuanOnCnHostAdapter):
    channel_type = 44
    label = "SiliconFlow"
    default_base_url = "https://api.siliconflow.cn"

    def balance_requests(self, channel):
        # https://docs.siliconflow.cn/cn/api-reference/userinfo/get-user-info: data.totalBalance, a decimal string
        # (CNY on .cn, USD on api.siliconflow.com).
        return [self._get(channel, "/v1/user/info")]

    def parse_balance(self, bodies):
        return float(orjson.loads(bodies[0])["data"]["totalBalance"])
XAIAdapter = vendor_adapter(45, "xAI", "https://api.x.ai")
