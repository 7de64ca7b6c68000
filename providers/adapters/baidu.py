"""Baidu Wenxin / Qianfan v1 (ERNIE on aip.baidubce.com), and Qianfan v2 (OpenAI-compatible).

v1 docs: https://cloud.baidu.com/doc/WENXINWORKSHOP/s/jlil56u11 (ERNIE chat),
https://cloud.baidu.com/doc/WENXINWORKSHOP/s/alj562vvu (Embedding-V1) and
https://cloud.baidu.com/doc/WENXINWORKSHOP/s/Ilkkrb0i5 (access token). The channel key is
`APIKey|SecretKey`; it buys a 30-day access token that goes in the URL (`?access_token=`).
Errors come as HTTP 200 with `{"error_code", "error_msg"}`
(https://cloud.baidu.com/doc/WENXINWORKSHOP/s/tlmyncueh).
v2 docs: https://cloud.baidu.com/doc/WENXINWORKSHOP/s/Fm2vrveyu (OpenAI's shape, Bearer key).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
import weakref
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import urlencode

import aiohttp
import orjson

from providers.adapters.base import (
    NETWORK_ERRORS,
    Adapter,
    ChannelInfo,
    Opened,
    RequestContext,
    StreamDecoder,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    answer_object,
    check_answer,
    json_or_none,
    network_failure,
    retryable_status,
    text_only,
)
from providers.adapters.openai import PATHS, CacheHitsOwnFieldMixin, OpenAIAdapter
from providers.adapters.openai_shapes import (
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

CHAT_PATH = "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"
EMBEDDINGS_PATH = "/rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/"
TOKEN_PATH = "/oauth/2.0/token"

# Model name -> endpoint where the endpoint is not the lower-cased name (one-api's map, plus the
# current ERNIE names from the Qianfan model list).
ENDPOINTS = {
    "ERNIE-4.0-8K": "completions_pro", "ERNIE-4.0": "completions_pro", "ERNIE-Bot-4": "completions_pro",
    "ERNIE-3.5-8K": "completions", "ERNIE-Bot": "completions",
    "ERNIE-Bot-turbo": "eb-instant", "ERNIE-Lite-8K-0922": "eb-instant",
    "ERNIE-Speed": "ernie_speed", "ERNIE-Speed-8K": "ernie_speed",
    "ERNIE-Lite-8K": "ernie-lite-8k", "ERNIE-Lite-8K-0308": "ernie-lite-8k",
    "ERNIE-Bot-8K": "ernie_bot_8k", "ERNIE-Character-8K": "ernie-char-8k", "ERNIE-Functions-8K": "ernie-func-8k",
    "BLOOMZ-7B": "bloomz_7b1",
}
EMBEDDING_ENDPOINTS = {"Embedding-V1": "embedding-v1", "bge-large-zh": "bge_large_zh",
                       "bge-large-en": "bge_large_en", "tao-8k": "tao_8k"}

FINISH = {"normal": "stop", "stop": "stop", "length": "length", "content_filter": "content_filter",
          "function_call": "tool_calls", "tool_calls": "tool_calls"}

# Error codes (https://cloud.baidu.com/doc/WENXINWORKSHOP/s/tlmyncueh).
TOKEN_INVALID = {110, 111}  # the access token is invalid / expired: drop it, fetch afresh next time
RATE_LIMITED = {4, 18, 336501, 336502}  # cluster limit, QPS, RPM, TPM: another channel may answer
QUOTA = {17, 19}  # daily / total request limit
AUTH = {6, 13, 14, 15, 100}  # no permission, bad IAM credentials, no such app
TRANSIENT = {1, 2, 336000, 336100, 336200}  # unknown error, service unavailable, internal, "try again later"

TOKEN_RENEW_BEFORE = 3600  # one-api refreshes an hour before the token expires
TOKEN_TIMEOUT = 15
ACCESS_TOKEN = "_baidu_access_token"  # body key carrying the token from open() to build_request()

_tokens: dict[str, tuple[str, float]] = {}  # sha256(base, key) -> (access token, renew at, epoch seconds)
_TOKENS_MAX = 1024
# One lock per key and event loop, so concurrent requests fetch a token once (asyncio locks are loop-bound).
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


def _invalid(message: str, code: str = "invalid_request") -> UpstreamError:
    return UpstreamError(status=400, message=message, type="invalid_request_error", code=code)


def split_key(key: str) -> tuple[str, str]:
    api_key, sep, secret = key.strip().partition("|")
    if not sep or not api_key.strip() or not secret.strip() or "|" in secret:
        # Never echo the key: its second half is the secret.
        raise UpstreamError(status=500, message="The Baidu channel key is malformed: it must be `APIKey|SecretKey` "
                                                "from the Qianfan console.",
                            type="one_api_error", code="invalid_channel_key", retryable=False)
    return api_key.strip(), secret.strip()


def _cache_key(base: str, key: str) -> str:
    return hashlib.sha256(f"{base}\n{key.strip()}".encode()).hexdigest()


def _lock(cache_key: str) -> asyncio.Lock:
    per_loop = _locks.setdefault(asyncio.get_running_loop(), {})
    lock = per_loop.get(cache_key)
    if lock is None:
        lock = per_loop[cache_key] = asyncio.Lock()
    return lock


def base_url(channel: ChannelInfo) -> str:
    return (channel.base_url or BaiduAdapter.default_base_url).rstrip("/")


def drop_token(cache_key: str, token: str | None = None) -> None:
    """Forget a token Baidu refused (only if it is still the one cached: a newer one may be in)."""
    cached = _tokens.get(cache_key)
    if cached is not None and (token is None or cached[0] == token):
        _tokens.pop(cache_key, None)


async def access_token(channel: ChannelInfo, session: aiohttp.ClientSession, *, base: str) -> tuple[str, str]:
    """The channel's access token and its cache key: cached until an hour before it expires."""
    api_key, secret = split_key(channel.key)
    cache_key = _cache_key(base, channel.key)
    cached = _tokens.get(cache_key)
    if cached is not None and cached[1] > time.time():
        return cached[0], cache_key
    async with _lock(cache_key):
        cached = _tokens.get(cache_key)  # another request may have fetched it while we waited
        if cached is not None and cached[1] > time.time():
            return cached[0], cache_key
        token, expires_in = await _fetch_token(session, base, api_key, secret)
        if len(_tokens) >= _TOKENS_MAX:
            _tokens.clear()
        renew_at = time.time() + expires_in - min(TOKEN_RENEW_BEFORE, expires_in // 2)
        _tokens[cache_key] = (token, renew_at)
        return token, cache_key


async def with_access_token(body: dict, *, channel: ChannelInfo, session: aiohttp.ClientSession) -> dict:
    """A copy of `body` carrying the channel's access token, for build_request (which does no I/O): the token
    goes in the URL, never in the vendor's body."""
    token, _ = await access_token(channel, session, base=base_url(channel))
    return {**body, ACCESS_TOKEN: token}


async def _fetch_token(session, base: str, api_key: str, secret: str) -> tuple[str, int]:
    query = urlencode({"grant_type": "client_credentials", "client_id": api_key, "client_secret": secret})
    try:
        async with session.post(f"{base}{TOKEN_PATH}?{query}", headers={"Accept": "application/json"},
                                timeout=aiohttp.ClientTimeout(total=TOKEN_TIMEOUT)) as response:
            status, raw = response.status, await response.read()
    except NETWORK_ERRORS as exc:
        raise network_failure(exc, read_timeout=TOKEN_TIMEOUT, setting=None,
                              upstream="Baidu's token endpoint") from None
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and payload.get("access_token"):
        return str(payload["access_token"]), int(payload.get("expires_in") or 2592000)
    detail = ""
    if isinstance(payload, dict):
        detail = str(payload.get("error_description") or payload.get("error") or "")
    detail = detail.replace(secret, "***").replace(api_key, "***")[:300] or f"HTTP {status}"
    if status >= 500 or status == 429:
        raise UpstreamError(status=502, message=f"Baidu's token endpoint failed: {detail}",
                            code="access_token_unavailable", retryable=True)
    # invalid_client ("unknown client id", "Client authentication failed"): the key is wrong.
    raise UpstreamError(status=401, message=f"Baidu refused the channel's API key: {detail}",
                        type="authentication_error", code="invalid_api_key", retryable=False)


def baidu_error(payload: dict, ctx: RequestContext) -> UpstreamError:
    """Baidu's `{"error_code", "error_msg"}` (in an HTTP 200) as an OpenAI-style error. A token Baidu
    refuses is forgotten, if it is the one this request (`ctx`) was sent with."""
    try:
        code = int(payload.get("error_code"))
    except (TypeError, ValueError):
        code = -1
    message = str(payload.get("error_msg") or f"Baidu error {payload.get('error_code')}")
    status, type_, mapped, retryable = 500, "upstream_error", str(code), False
    if code in TOKEN_INVALID:
        if ctx.body.get(ACCESS_TOKEN):
            drop_token(_cache_key(base_url(ctx.channel), ctx.channel.key), ctx.body[ACCESS_TOKEN])
        # Not 401: that would disable the channel, and the next request fetches a fresh token.
        status, mapped, retryable = 503, "access_token_expired", True
    elif code in RATE_LIMITED:
        status, type_, mapped, retryable = 429, "rate_limit_error", "rate_limit_exceeded", True
    elif code in QUOTA:
        status, type_, mapped = 429, "insufficient_quota", "insufficient_quota"
    elif code in AUTH:
        status, type_, mapped = 401, "authentication_error", "invalid_api_key"
    elif code in TRANSIENT:
        status, retryable = 503, True
    elif 336000 <= code < 337000:
        status, type_ = 400, "invalid_request_error"  # 3360xx-3361xx: bad parameters, prompt too long...
    error_body = {"message": message, "type": type_, "param": None, "code": mapped, "baidu_code": code}
    return UpstreamError(status=status, message=message, type=type_, code=mapped, retryable=retryable,
                         error_body=error_body)


def _text(content) -> str:
    """ERNIE v1 takes text only: an image part is refused rather than silently dropped."""
    return text_only(content, "Baidu ERNIE (Qianfan v1) takes text only; a `{kind}` part cannot be sent. "
                              "Use a Qianfan v2 channel for vision models.")


def _call(call: dict) -> dict:
    fn = call.get("function") if isinstance(call.get("function"), dict) else call
    arguments = fn.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments or {}).decode()
    return {"name": fn.get("name") or "", "arguments": arguments}


def chat_messages(messages: list) -> tuple[str, list[dict]]:
    """OpenAI messages -> (system, ERNIE messages). ERNIE wants user/assistant turns alternating
    (a `function` result stands on the user's side) and one function_call per assistant turn, so
    consecutive same-role messages are joined and parallel tool calls are asked one at a time."""
    system: list[str] = []
    out: list[dict] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, for the `function` results
    open_turn: dict | None = None  # an assistant turn whose tool calls await their results

    def add(role: str, text: str) -> None:
        if out and out[-1]["role"] == role and "function_call" not in out[-1] and role != "function":
            out[-1]["content"] += "\n\n" + text
        else:
            out.append({"role": role, "content": text})

    def flush() -> None:
        nonlocal open_turn
        if open_turn and open_turn["calls"]:
            out.append({"role": "assistant", "content": open_turn["content"],
                        "function_call": _call(open_turn["calls"][0])})
        open_turn = None

    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        text = _text(message.get("content"))
        if role in ("tool", "function") and open_turn is not None:
            name = message.get("name") or names.get(message.get("tool_call_id") or "", "")
            calls = open_turn["calls"]
            call = next((c for c in calls if c.get("id") and c.get("id") == message.get("tool_call_id")), None) \
                or next((c for c in calls if _call(c)["name"] == name), None) or (calls[0] if calls else None)
            if call is not None:
                calls.remove(call)
                out.append({"role": "assistant", "content": open_turn["content"], "function_call": _call(call)})
                open_turn["content"] = ""
                name = name or _call(call)["name"]
            out.append({"role": "function", "name": name, "content": text})
            continue
        flush()
        if role in ("system", "developer"):
            system.append(text)
        elif role == "assistant":
            calls = list(message.get("tool_calls") or ())
            if message.get("function_call"):
                calls.append({"function": message["function_call"]})
            if calls:
                for c in calls:
                    if c.get("id"):
                        names[c["id"]] = _call(c)["name"]
                open_turn = {"content": text, "calls": calls}
            else:
                add("assistant", text)
        elif role in ("tool", "function"):
            out.append({"role": "function", "name": message.get("name") or "", "content": text})
        else:
            add("user", text)
    flush()
    return "\n".join(s for s in system if s), out


def _functions(body: dict) -> list[dict] | None:
    specs = body.get("functions") or [t.get("function") for t in body.get("tools") or ()
                                      if isinstance(t, dict) and t.get("type") == "function"]
    functions = []
    for spec in specs:
        if not isinstance(spec, dict) or not spec.get("name"):
            continue
        # ERNIE requires both description and parameters.
        functions.append({"name": spec["name"], "description": spec.get("description") or spec["name"],
                          "parameters": spec.get("parameters") or {"type": "object", "properties": {}}})
    return functions or None


def _clamp(value, low: float, high: float):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return min(max(value, low), high)


def chat_body(body: dict, stream: bool) -> dict:
    system, messages = chat_messages(body.get("messages") or [])
    out: dict = {"messages": messages, "stream": stream}
    if system:
        out["system"] = system
    # Ranges from the ERNIE doc: temperature (0, 1], top_p [0, 1], penalty_score [1, 2].
    temperature = _clamp(body.get("temperature"), 0.01, 1.0)
    if temperature is not None:
        out["temperature"] = temperature
    top_p = _clamp(body.get("top_p"), 0.0, 1.0)
    if top_p is not None:
        out["top_p"] = top_p
    penalty = _clamp(body.get("frequency_penalty"), 1.0, 2.0)
    if penalty is not None and body.get("frequency_penalty"):  # one-api's mapping; 0 ("none") = Baidu's 1.0
        out["penalty_score"] = penalty
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    if max_tokens:
        out["max_output_tokens"] = max(2, int(max_tokens))  # ERNIE's floor is 2
    stop = body.get("stop")
    if isinstance(stop, str) and stop:
        out["stop"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop"] = stop[:4]  # "stop: 元素不超过4个"
    if body.get("user"):
        out["user_id"] = str(body["user"])
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_object":
        out["response_format"] = "json_object"
    choice = body.get("tool_choice", body.get("function_call"))
    functions = None if choice == "none" else _functions(body)
    if functions:
        out["functions"] = functions
        name = None
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name") if "function" in choice else choice.get("name")
        if name:
            out["tool_choice"] = {"type": "function", "function": {"name": name}}
    return out


def _tool_calls(call: dict, answer_id: str, index: int | None = None) -> list[dict]:
    """ERNIE's one function_call as OpenAI's tool calls; it has no id of its own, the answer's is used."""
    return [tool_call(f"call_{answer_id or int(time.time())}", call.get("name") or "", call.get("arguments") or "{}",
                      index=index)]


def _finish(payload: dict) -> str:
    if payload.get("function_call"):
        return "tool_calls"
    if payload.get("need_clear_history"):  # the safety filter answered instead of the model
        return "content_filter"
    return finish_reason(payload.get("finish_reason"), FINISH)


def usage_from(raw) -> Usage | None:
    """ERNIE's usage. A prompt-cache hit adds `cached_tokens` beside the counts (part of prompt_tokens, billed
    at 40% of the input price: https://ai.baidu.com/ai-doc/WENXINWORKSHOP/Rm6uq7jy9); it is left out on a miss."""
    if not isinstance(raw, dict):
        return None
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = raw.get("completion_tokens")
    if completion is None and raw.get("total_tokens"):
        completion = int(raw["total_tokens"]) - prompt
    return Usage(prompt_tokens=prompt, completion_tokens=int(completion or 0),
                 cached_tokens=min(count(raw.get("cached_tokens")), prompt))


class BaiduAdapter(Adapter):
    channel_type: ClassVar[int] = 15
    label: ClassVar[str] = "Baidu Wenxin (Qianfan v1)"
    default_base_url: ClassVar[str] = "https://aip.baidubce.com"
    modes: ClassVar[tuple[str, ...]] = ("chat", "embeddings")

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        if ctx.mode not in self.modes:
            raise _invalid(f"Baidu ERNIE (Qianfan v1) does not serve {ctx.mode}.", "unsupported_mode")
        body = await with_access_token(ctx.body, channel=ctx.channel, session=session)
        return await super().open(dataclasses.replace(ctx, body=body), session=session)

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        mode, stream = ctx.mode, ctx.stream
        body = dict(ctx.body)
        token = body.pop(ACCESS_TOKEN, None)
        if not token:
            raise UpstreamError(status=500, message="No Baidu access token: open() was not called.",
                                type="one_api_error", code="access_token_missing")
        model = ctx.model
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        if mode == "embeddings":
            payload = {"input": _embedding_input(body.get("input"))}
            if body.get("user"):
                payload["user_id"] = str(body["user"])
            path = EMBEDDINGS_PATH + EMBEDDING_ENDPOINTS.get(model, model.lower())
        elif mode == "chat":
            payload = chat_body(body, stream)
            path = CHAT_PATH + ENDPOINTS.get(model, model.lower())
        else:
            raise _invalid(f"Baidu ERNIE (Qianfan v1) does not serve {mode}.", "unsupported_mode")
        url = f"{base_url(ctx.channel)}{path}?{urlencode({'access_token': token})}"
        return UpstreamRequest("POST", url, headers, orjson.dumps(payload))

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        payload = answer_object(body, "Baidu")
        if payload.get("error_code"):
            raise baidu_error(payload, ctx)
        if ctx.mode == "embeddings":
            check_answer(payload, "Baidu", "data", what="embeddings")
        else:  # a function call answers with an empty `result` beside it
            check_answer(payload, "Baidu", "result", "function_call", what="a chat answer")
        model = ctx.model
        usage = usage_from(payload.get("usage"))
        if ctx.mode == "embeddings":
            data = sorted((d for d in payload.get("data") or () if isinstance(d, dict)),
                          key=lambda d: d.get("index", 0))
            items = [embedding(d.get("index", i), d.get("embedding")) for i, d in enumerate(data)]
            return orjson.dumps(embeddings_list(items, model, usage.prompt_tokens if usage else 0)), usage
        message: dict = {"role": "assistant", "content": payload.get("result") or ""}
        if payload.get("function_call"):
            message["tool_calls"] = _tool_calls(payload["function_call"], payload.get("id") or "")
            message["content"] = message["content"] or None
        answer = chat_completion(id=payload.get("id") or f"chatcmpl-{int(time.time())}", model=model,
                                 choices=[message_choice(0, message, _finish(payload))],
                                 usage=usage_json(usage) if usage is not None else None,
                                 created=payload.get("created") or int(time.time()))
        return orjson.dumps(answer), usage

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return BaiduStreamDecoder(ctx)

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        payload = json_or_none(body)
        if isinstance(payload, dict) and payload.get("error_code"):
            err = baidu_error(payload, ctx)
            err.retryable = err.retryable or retryable_status(status)
            return err
        return super().parse_error(ctx, status=status, body=body, headers=headers)


def _embedding_input(value) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, str) for i in items):
        raise _invalid("Baidu embeddings take a string or a list of strings (not token ids).", "invalid_input")
    return items


class BaiduStreamDecoder(StreamDecoder):
    """ERNIE's SSE events (`{"result": piece, "is_end", "usage", "function_call"?}`) as OpenAI chunks.
    Usage is read at `is_end` only (completion = total - prompt, as one-api reads it), so a stream cut
    short is counted locally instead of billed as empty."""

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self.model = ctx.client_model
        self.id = ""
        self.created = 0
        self.started = False

    def _chunk(self, choices: list) -> bytes:
        return chat_chunk(id=self.id, created=self.created, model=self.model, choices=choices)

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        payload = json_or_none(data)
        if not isinstance(payload, dict):
            return []  # a broken event is skipped; the stream goes on
        if payload.get("error_code"):
            err = baidu_error(payload, self.ctx)
            return [error_event(err, err.error_body)]
        if "result" not in payload and "function_call" not in payload:
            return []  # not an ERNIE event: skipped, as a broken one is
        self.id = self.id or str(payload.get("id") or f"chatcmpl-{int(time.time())}")
        self.created = self.created or int(payload.get("created") or time.time())
        delta: dict = {}
        if not self.started:
            delta["role"] = "assistant"
            self.started = True
        piece = payload.get("result") or ""
        text = piece
        call = payload.get("function_call")
        if isinstance(call, dict):
            calls = _tool_calls(call, self.id, index=0)
            delta["tool_calls"] = calls
            text += calls[0]["function"]["name"] + calls[0]["function"]["arguments"]
            if piece:
                delta["content"] = piece
        else:
            delta["content"] = piece
        end = bool(payload.get("is_end"))
        events = [StreamEvent(data=self._chunk([delta_choice(delta, _finish(payload) if end else None)]), text=text)]
        usage = usage_from(payload.get("usage")) if end else None
        if usage is not None:
            events.append(usage_event(id=self.id, created=self.created, model=self.model, usage=usage))
        return events


class QianfanAdapter(CacheHitsOwnFieldMixin, OpenAIAdapter):
    """Qianfan v2: OpenAI's protocol at /v2, with the console's Bearer API key. Its prompt-cache hits come as
    `usage.cached_tokens` (as ERNIE v1 tells them), so answers get OpenAI's detail too."""

    channel_type = 47
    label = "Baidu Qianfan v2"
    default_base_url = "https://qianfan.baidubce.com"
    modes: ClassVar[tuple[str, ...]] = ("chat", "embeddings")  # what this adapter was checked against

    def base_url(self, channel: ChannelInfo) -> str:
        return super().base_url(channel).removesuffix("/v2")  # accept the SDK-style base too

    def path(self, mode: str, model: str, channel: ChannelInfo) -> str:
        return "/v2" + PATHS[mode].removeprefix("/v1")

    def balance_requests(self, channel: ChannelInfo) -> list:
        return []  # Qianfan bills through the Baidu Cloud console; no balance endpoint
