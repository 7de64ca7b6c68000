"""Alibaba DashScope native API (Qwen text generation and text embeddings), and Bailian's
OpenAI-compatible mode.

Docs: https://help.aliyun.com/zh/model-studio/developer-reference/use-qwen-by-calling-api
(text generation, `result_format: "message"`, SSE with `X-DashScope-SSE: enable`),
https://help.aliyun.com/zh/model-studio/developer-reference/text-embedding-synchronous-api
(embeddings), https://help.aliyun.com/zh/model-studio/developer-reference/text-to-image-v2-api-reference
(Wanx images: a task submitted with `X-DashScope-Async: enable`, then polled at /api/v1/tasks/{id}),
https://help.aliyun.com/zh/model-studio/developer-reference/manage-asynchronous-tasks (a task still queued,
PENDING, is cancelled with POST /api/v1/tasks/{id}/cancel)
and https://help.aliyun.com/zh/model-studio/developer-reference/error-code (errors).
Multimodal (qwen-vl, a different endpoint) is not spoken here: image parts are refused. Speech (Qwen-TTS) is
in ali_audio.py, transcription (Paraformer over WebSocket) in ali_asr.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import quote

import orjson
from django.conf import settings

from providers.adapters.ali import asr as ali_asr, speech as ali_audio
from providers.adapters.base import (
    Adapter,
    ChannelInfo,
    RequestContext,
    StreamDecoder,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    answer_object,
    check_answer,
    json_or_none,
    retryable_status,
    text_only,
)
from providers.adapters.fetch import vendor_audio, vendor_images_b64
from providers.adapters.openai import PATHS, OpenAIAdapter

CHAT_PATH = "/api/v1/services/aigc/text-generation/generation"
EMBEDDINGS_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
IMAGES_PATH = "/api/v1/services/aigc/text2image/image-synthesis"
TASKS_PATH = "/api/v1/tasks/"
# How long an image task may take in all (RELAY_TIMEOUT instead, when the operator set one) and how
# often it is asked after: Wanx takes some 5-60 s, and a task query is cheap.
TASK_WAIT = 300.0
POLL_INTERVAL = 1.0
REQUEST_TIMEOUT = 30.0  # the submit, or one status query: each is quick
CANCEL_TIMEOUT = 3.0  # a task given up on is cancelled on the way out: best effort, never a long wait
TASK_DONE = "SUCCEEDED"
TASK_ENDED = ("FAILED", "CANCELED", "UNKNOWN")  # UNKNOWN: no such task, or it expired (24 h)
TASK_RUNNING = "RUNNING"  # started: too late to cancel (only a PENDING task can be)
# Wanx parameters that are not OpenAI's but a client may send for them (as extra body fields).
IMAGE_PASSTHROUGH = ("seed", "style", "prompt_extend", "watermark")
SEARCH_SUFFIX = "-internet"  # one-api's convention: `qwen-max-internet` = qwen-max with enable_search

# Qwen parameters that are not OpenAI's but clients send them to one-api for Qwen: forwarded as given.
PASSTHROUGH = ("top_k", "repetition_penalty", "presence_penalty", "seed", "response_format", "enable_thinking",
               "thinking_budget", "parallel_tool_calls", "n", "logprobs", "top_logprobs")

FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}

# Cancels sent after the client left, running on their own: the loop keeps only a weak reference to a task.
_cancels: set[asyncio.Task] = set()


def _invalid(message: str, code: str = "invalid_request") -> UpstreamError:
    return UpstreamError(status=400, message=message, type="invalid_request_error", code=code)


def ali_error(payload: dict, status: int = 200) -> UpstreamError:
    """DashScope's `{"code", "message", "request_id"}` as an OpenAI-style error."""
    code = str(payload.get("code") or "")
    message = str(payload.get("message") or code or f"DashScope answered HTTP {status}")
    status = status if status != 200 else 400
    type_, mapped, retryable = "upstream_error", code, retryable_status(status)
    if code.startswith("Throttling"):  # Throttling, .RateQuota, .BurstRate, .AllocationQuota
        status, type_, mapped, retryable = 429, "rate_limit_error", "rate_limit_exceeded", True
    elif code == "InvalidApiKey":
        status, type_, mapped, retryable = 401, "authentication_error", "invalid_api_key", False
    elif code in ("Arrearage", "Quota.Exhausted"):
        type_, mapped, retryable = "insufficient_quota", "insufficient_quota", False
    elif code in ("DataInspectionFailed", "data_inspection_failed"):
        type_, mapped, retryable = "invalid_request_error", "content_filter", False
    elif code.startswith("InvalidParameter") or code in ("InvalidInput", "BadRequest.TooLarge"):
        type_, retryable = "invalid_request_error", False
    elif code.startswith(("AccessDenied", "Model.AccessDenied")):
        type_, retryable = "permission_error", False
    elif code in ("ModelNotFound", "Model.NotFound"):
        type_, mapped, retryable = "invalid_request_error", "model_not_found", False
    elif code.startswith(("InternalError", "ServiceUnavailable", "RequestTimeOut", "SystemError")):
        status, retryable = (status if status >= 500 else 503), True
    error_body = {"message": message, "type": type_, "param": None, "code": mapped or "upstream_error"}
    if payload.get("request_id"):
        error_body["request_id"] = payload["request_id"]
    return UpstreamError(status=status, message=message, type=type_, code=mapped or "upstream_error",
                         retryable=retryable, error_body=error_body)


def _text(content) -> str:
    return text_only(content, "DashScope's text-generation API takes text only; a `{kind}` part cannot be sent. "
                              "Use a Bailian (OpenAI-compatible) channel for qwen-vl models.")


def _messages(messages: list) -> list[dict]:
    out = []
    names: dict[str, str] = {}  # tool_call_id -> function name: DashScope's tool messages carry `name`
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role") or "user").lower()
        if role == "developer":
            role = "system"
        converted: dict = {"role": role, "content": _text(message.get("content"))}
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                fn = call.get("function") or {}
                names[call.get("id") or ""] = fn.get("name") or ""
                calls.append({"id": call.get("id") or "", "type": "function",
                              "function": {"name": fn.get("name") or "", "arguments": fn.get("arguments") or "{}"}})
            converted["tool_calls"] = calls
        elif role in ("tool", "function"):
            converted["role"] = "tool"
            if message.get("tool_call_id"):
                converted["tool_call_id"] = message["tool_call_id"]
            name = message.get("name") or names.get(message.get("tool_call_id") or "")
            if name:
                converted["name"] = name
        out.append(converted)
    return out


def chat_body(body: dict, stream: bool) -> dict:
    model = str(body.get("model") or "")
    parameters: dict = {"result_format": "message"}
    if model.endswith(SEARCH_SUFFIX):
        model = model.removesuffix(SEARCH_SUFFIX)
        parameters["enable_search"] = True
    elif body.get("enable_search") is not None:
        parameters["enable_search"] = bool(body["enable_search"])
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    if max_tokens:
        parameters["max_tokens"] = max_tokens
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        parameters["temperature"] = min(max(temperature, 0.0), 1.99)  # DashScope: [0, 2)
    top_p = body.get("top_p")
    if isinstance(top_p, (int, float)) and not isinstance(top_p, bool):
        parameters["top_p"] = 0.9999 if top_p >= 1 else max(top_p, 0.0001)  # (0, 1), as one-api clamps
    if body.get("stop"):
        parameters["stop"] = body["stop"]
    for key in PASSTHROUGH:
        if body.get(key) is not None:
            parameters[key] = body[key]
    tools = body.get("tools")
    if not tools and body.get("functions"):  # the legacy OpenAI form
        tools = [{"type": "function", "function": f} for f in body["functions"]]
    if tools:
        parameters["tools"] = tools
        choice = body.get("tool_choice", body.get("function_call"))
        if isinstance(choice, dict) and "function" not in choice and choice.get("name"):
            choice = {"type": "function", "function": {"name": choice["name"]}}
        if choice == "required":
            choice = "auto"  # DashScope knows auto, none and a named function
        if choice is not None:
            parameters["tool_choice"] = choice
    if stream:
        parameters["incremental_output"] = True  # deltas, not the whole text so far in every event
    return {"model": model, "input": {"messages": _messages(body.get("messages") or [])}, "parameters": parameters}


def _usage(raw) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = int(raw.get("input_tokens") or 0)
    completion = int(raw.get("output_tokens") or 0)
    if not prompt and not completion and raw.get("total_tokens"):
        prompt = int(raw["total_tokens"])  # embeddings report a total only
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def _usage_json(usage: Usage) -> dict:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


def _finish(reason, has_calls: bool) -> str | None:
    if reason in (None, "", "null"):  # DashScope streams say "null", the string, until the end
        return None
    if has_calls and reason == "stop":
        return "tool_calls"
    return FINISH.get(reason, "stop")


def _choices(output: dict) -> list[dict]:
    choices = output.get("choices")
    if isinstance(choices, list) and choices:
        return [c for c in choices if isinstance(c, dict)]
    if "text" in output:  # result_format "text", should a proxy in front have forced it
        return [{"message": {"role": "assistant", "content": output.get("text") or ""},
                 "finish_reason": output.get("finish_reason")}]
    return []


def image_body(body: dict) -> dict:
    """An OpenAI image request as a Wanx task: the size written "1024*1024", `n` always sent (Wanx makes
    four when it is missing, OpenAI one)."""
    prompt: dict = {"prompt": body.get("prompt")}
    if body.get("negative_prompt"):
        prompt["negative_prompt"] = body["negative_prompt"]
    parameters: dict = {"n": body.get("n", 1)}
    size = body.get("size")
    if isinstance(size, str) and size and size != "auto":
        parameters["size"] = size.lower().replace("x", "*")
    for key in IMAGE_PASSTHROUGH:
        if body.get(key) is not None:
            parameters[key] = body[key]
    return {"model": body.get("model"), "input": prompt, "parameters": parameters}


def _task_output(raw: bytes) -> dict:
    payload = json_or_none(raw)
    if not isinstance(payload, dict):
        raise UpstreamError(status=502, message="DashScope answered the image task with an unexpected body.",
                            code="bad_response_body", retryable=False)
    if payload.get("code"):
        raise ali_error(payload)
    output = payload.get("output")
    return output if isinstance(output, dict) else {}


def _task_failed(output: dict, task_id: str) -> UpstreamError:
    """A task that ended without images, with DashScope's own code and message (`code`/`message` in the
    output; for a partly failed task, in its results)."""
    detail = output if output.get("message") or output.get("code") else next(
        (r for r in output.get("results") or () if isinstance(r, dict) and (r.get("code") or r.get("message"))), {})
    if detail.get("code"):
        return ali_error({"code": detail["code"], "message": detail.get("message") or detail["code"],
                          "request_id": task_id})
    status = output.get("task_status") or "without images"
    if detail.get("message"):
        message = str(detail["message"])
    elif status == "UNKNOWN":
        message = f"DashScope does not know the image task {task_id} (it may have expired)."
    else:
        message = f"The DashScope image task {task_id} ended {status}."
    return UpstreamError(status=502, message=message, code="task_failed", retryable=False,
                         error_body={"message": message, "type": "upstream_error", "param": None, "code": "task_failed",
                                     "request_id": task_id})


class AliAdapter(Adapter):
    channel_type: ClassVar[int] = 17
    label: ClassVar[str] = "Alibaba DashScope"
    default_base_url: ClassVar[str] = "https://dashscope.aliyuncs.com"
    config_fields: ClassVar[tuple[str, ...]] = ("plugin",)
    modes: ClassVar[tuple[str, ...]] = ("chat", "embeddings", "images", "speech", "transcriptions", "translations")
    # Wanx images are a task to submit and then poll, Qwen-TTS links to its audio, and Paraformer listens on a
    # WebSocket (translations only to be refused: Paraformer does not translate).
    complete_modes: ClassVar[tuple[str, ...]] = ("images", "speech", "transcriptions", "translations")

    def base_url(self, channel: ChannelInfo) -> str:
        return (channel.base_url or self.default_base_url).rstrip("/")

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        channel, mode, body, stream = ctx.channel, ctx.mode, ctx.body, ctx.stream
        base = self.base_url(channel)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {channel.key.strip()}",
                   "Accept": "text/event-stream" if stream else "application/json"}
        plugin = (channel.config or {}).get("plugin")
        if plugin:
            headers["X-DashScope-Plugin"] = str(plugin)
        if mode == "embeddings":
            payload = embeddings_body(body)
            return UpstreamRequest("POST", base + EMBEDDINGS_PATH, headers, orjson.dumps(payload))
        if mode == "speech":
            return UpstreamRequest("POST", base + ali_audio.SPEECH_PATH, headers,
                                   orjson.dumps(ali_audio.speech_body(body)))
        if mode == "images":
            headers["X-DashScope-Async"] = "enable"  # the HTTP API makes images only as tasks
            return UpstreamRequest("POST", base + IMAGES_PATH, headers, orjson.dumps(image_body(body)))
        if mode != "chat":
            raise _invalid(f"DashScope channels do not serve {mode}; use /v1/chat/completions.", "unsupported_mode")
        if stream:
            headers["X-DashScope-SSE"] = "enable"
        return UpstreamRequest("POST", base + CHAT_PATH, headers, orjson.dumps(chat_body(body, stream)))

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        payload = answer_object(body, "DashScope")
        if payload.get("code"):
            raise ali_error(payload, int(payload.get("status_code") or 200))
        output = payload.get("output")
        if ctx.mode == "embeddings":
            check_answer(output, "DashScope", "embeddings", what="embeddings")
        else:
            check_answer(output, "DashScope", "choices", "text", what="a chat answer")
        usage = _usage(payload.get("usage"))
        model = ctx.model
        if ctx.mode == "embeddings":
            items = sorted((e for e in output.get("embeddings") or () if isinstance(e, dict)),
                           key=lambda e: e.get("text_index", 0))
            tokens = usage.prompt_tokens if usage else 0
            answer = {"object": "list", "model": model,
                      "data": [{"object": "embedding", "index": e.get("text_index", i), "embedding": e.get("embedding")}
                               for i, e in enumerate(items)],
                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
            return orjson.dumps(answer), usage
        choices = []
        for i, choice in enumerate(_choices(output)):
            message = choice.get("message") or {}
            converted: dict = {"role": "assistant", "content": _text(message.get("content"))}
            if message.get("reasoning_content"):
                converted["reasoning_content"] = message["reasoning_content"]
            calls = [_tool_call(c, j) for j, c in enumerate(message.get("tool_calls") or ()) if isinstance(c, dict)]
            if calls:
                for call in calls:
                    call.pop("index", None)
                converted["tool_calls"] = calls
                converted["content"] = converted["content"] or None
            choices.append({"index": i, "message": converted, "logprobs": None,
                            "finish_reason": _finish(choice.get("finish_reason"), bool(calls)) or "stop"})
        request_id = payload.get("request_id") or str(int(time.time()))
        answer = {"id": f"chatcmpl-{request_id}", "object": "chat.completion", "created": int(time.time()),
                  "model": model, "choices": choices}
        if usage is not None:
            answer["usage"] = _usage_json(usage)
        return orjson.dumps(answer), usage

    def task_request(self, ctx: RequestContext, task_id: str, action: str = "") -> UpstreamRequest:
        """The task's status query, or (action "cancel") its cancellation."""
        url = self.base_url(ctx.channel) + TASKS_PATH + quote(task_id, safe="") + (f"/{action}" if action else "")
        return UpstreamRequest("POST" if action else "GET", url,
                               {"Authorization": f"Bearer {ctx.channel.key.strip()}", "Accept": "application/json"})

    async def cancel_task(self, ctx: RequestContext, task_id: str, status: str, *, session) -> None:
        """Ask DashScope to drop a task given up on, so it is not made (and billed) for nobody. Best effort:
        only a task still queued can be cancelled, and any failure here is ignored, never raised over the
        reason the task was given up."""
        if status == TASK_RUNNING:
            return  # DashScope would refuse: the images are being made
        # Refused (no longer PENDING), unreachable, or the session closed: whatever it is, it changes nothing.
        with contextlib.suppress(Exception):
            await self.send(ctx, self.task_request(ctx, task_id, "cancel"), session=session, timeout=CANCEL_TIMEOUT)

    async def complete(self, ctx: RequestContext, *, session) -> tuple[bytes, Usage | None]:
        """Submit the Wanx task, then ask after it until it ends or the wait runs out (speech: see `speech`)."""
        if ctx.mode == "speech":
            return await self.speech(ctx, session=session)
        if ctx.mode in ("transcriptions", "translations"):
            return await ali_asr.recognize(ctx, session=session, base_url=self.base_url(ctx.channel)), None
        if ctx.mode != "images":
            raise _invalid(f"DashScope channels do not serve {ctx.mode} this way.", "unsupported_mode")
        loop = asyncio.get_running_loop()
        wait = settings.RELAY_TIMEOUT or TASK_WAIT
        deadline = loop.time() + wait
        submit = self.build_request(ctx)
        output = _task_output(await self.send(ctx, submit, session=session, timeout=min(REQUEST_TIMEOUT, wait)))
        task_id = str(output.get("task_id") or "")
        if not task_id:
            raise UpstreamError(status=502, message="DashScope accepted the image task but gave no task id.",
                                code="bad_response_body", retryable=False)
        # From here on a task exists at DashScope: no failure to follow it may send the request to another
        # channel, which would start (and pay for) a second task.
        status = str(output.get("task_status") or "")
        try:
            while status != TASK_DONE:
                if status in TASK_ENDED:
                    # A task that ended without images cost nothing: ali_error judges whether another may try.
                    raise _task_failed(output, task_id)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    await self.cancel_task(ctx, task_id, status, session=session)
                    raise UpstreamError(status=504, message=f"The DashScope image task {task_id} did not finish "
                                                            f"within {wait:g} s (last status {status or 'none'}).",
                                        type="upstream_error", code="task_timeout", retryable=False)
                await asyncio.sleep(min(POLL_INTERVAL, remaining))
                try:
                    output = _task_output(await self.send(ctx, self.task_request(ctx, task_id), session=session,
                                                          timeout=min(REQUEST_TIMEOUT, max(remaining, 1.0))))
                except UpstreamError as err:
                    if err.retryable:
                        continue  # a query failed (network, 5xx, throttled): the task goes on, ask again
                    raise dataclasses.replace(err, retryable=False) from None
                status = str(output.get("task_status") or "")
        except asyncio.CancelledError:
            # The client went away and the relay cancelled this call. The cancel goes out from a task of its
            # own: awaiting it here, even behind asyncio.shield, would hold the relay's cancellation (and its
            # release of the quota held for the images) for up to CANCEL_TIMEOUT. The task needs nothing of
            # this call but the relay's shared session, and CANCEL_TIMEOUT bounds it.
            cancel = asyncio.create_task(self.cancel_task(ctx, task_id, status, session=session))
            _cancels.add(cancel)
            cancel.add_done_callback(_cancels.discard)
            raise
        return await self.image_answer(ctx, output, task_id, session=session), None

    async def speech(self, ctx: RequestContext, *, session) -> tuple[bytes, Usage | None]:
        """Qwen-TTS: the synthesis, then the WAV it links to, as the format asked for. The relay bills speech
        by characters; DashScope's own counts (tokens, or characters for qwen3-tts-flash) are only logged."""
        payload = json_or_none(await self.send(ctx, self.build_request(ctx), session=session))
        if not isinstance(payload, dict):
            raise ali_audio.malformed("with a body that is not JSON")
        if payload.get("code"):
            raise ali_error(payload)
        output = payload.get("output") if isinstance(payload.get("output"), dict) else {}
        url = ali_audio.audio_url(output)
        if not url:
            reason = output.get("finish_reason")
            raise ali_audio.malformed("without audio" + (f" (finish_reason {reason})" if reason else ""))
        return ali_audio.speech_answer(await vendor_audio(session, url), ctx.body), _usage(payload.get("usage"))

    def answer_content_type(self, ctx: RequestContext) -> str:
        if ctx.mode == "speech":
            return ali_audio.SPEECH_FORMATS[ali_audio.speech_format(ctx.body)]
        if ctx.mode in ("transcriptions", "translations"):
            return ali_asr.content_type(ctx.body)
        return "application/json"

    async def image_answer(self, ctx: RequestContext, output: dict, task_id: str, *, session) -> bytes:
        """A finished task's results as OpenAI's images answer. Results that failed (a partly failed task)
        are left out: DashScope bills only the images it made, and so does the relay."""
        data = []
        for result in output.get("results") or ():
            if not isinstance(result, dict) or not (result.get("url") or result.get("b64_image")):
                continue
            item = {"url": result["url"]} if result.get("url") else {"b64_json": result["b64_image"]}
            if result.get("actual_prompt"):  # the prompt as Wanx rewrote it (prompt_extend)
                item["revised_prompt"] = result["actual_prompt"]
            data.append(item)
        if not data:
            raise _task_failed(output, task_id)
        if ctx.body.get("response_format") == "b64_json":
            linked = [item for item in data if "url" in item]
            for item, image in zip(linked, await vendor_images_b64(session, [i["url"] for i in linked])):
                item["b64_json"] = image
                del item["url"]
        return orjson.dumps({"created": int(time.time()), "data": data})

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return AliStreamDecoder(ctx.client_model)

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        payload = json_or_none(body)
        if isinstance(payload, dict) and isinstance(payload.get("code"), str) and payload.get("code"):
            return ali_error(payload, status)
        return super().parse_error(ctx, status=status, body=body, headers=headers)


def embeddings_body(body: dict) -> dict:
    value = body.get("input")
    texts = value if isinstance(value, list) else [value]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise _invalid("DashScope embeddings take a string or a list of strings (not token ids).", "invalid_input")
    parameters: dict = {"text_type": "query"}
    if body.get("dimensions"):
        parameters["dimension"] = body["dimensions"]  # text-embedding-v3: 1024 (default), 768, 512...
    return {"model": body.get("model"), "input": {"texts": texts}, "parameters": parameters}


def _tool_call(call: dict, position: int) -> dict:
    fn = call.get("function") or {}
    arguments = fn.get("arguments")
    if arguments is not None and not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    return {"index": call.get("index", position), "id": call.get("id") or "", "type": "function",
            "function": {"name": fn.get("name") or "", "arguments": arguments or ""}}


class AliStreamDecoder(StreamDecoder):
    """DashScope's SSE (`id:`, `event:result`, `:HTTP_STATUS/200`, `data:{...}`) as OpenAI chunks.
    With incremental_output each event holds the new text only, and usage counted so far: every
    event reports it (so a cut stream bills what Qwen counted), the last one becomes OpenAI's usage chunk."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.started = False
        self.called: dict[int, dict] = {}  # tool call index -> what was already sent (id, name)
        self.usage: Usage | None = None
        self.finished = False

    def _chunk(self, choices: list, **extra) -> bytes:
        return orjson.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                             "model": self.model, "choices": choices, **extra})

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        payload = json_or_none(data)
        if not isinstance(payload, dict):
            return []  # a broken event is skipped; the stream goes on
        if event == b"error" or payload.get("code"):
            err = ali_error(payload)
            return [StreamEvent(data=orjson.dumps({"error": err.error_body}), error=err)]
        self.id = self.id or f"chatcmpl-{payload.get('request_id') or int(time.time())}"
        usage = _usage(payload.get("usage"))
        if usage is not None:
            self.usage = usage
        output = payload.get("output") if isinstance(payload.get("output"), dict) else {}
        events: list[StreamEvent] = []
        for i, choice in enumerate(_choices(output)):
            message = choice.get("message") or {}
            delta: dict = {}
            if not self.started:
                delta["role"] = "assistant"
                self.started = True
            piece = _text(message.get("content")) if not isinstance(message.get("content"), list) else ""
            text = piece
            if piece:
                delta["content"] = piece
            if message.get("reasoning_content"):
                delta["reasoning_content"] = message["reasoning_content"]
            calls = []
            for j, raw in enumerate(message.get("tool_calls") or ()):
                if not isinstance(raw, dict):
                    continue
                call = _tool_call(raw, j)
                sent = self.called.setdefault(call["index"], {})
                # OpenAI sends id and name once; DashScope may repeat them (or send "") in later pieces.
                for key, holder in (("id", call), ("name", call["function"])):
                    if not holder[key] or holder[key] == sent.get(key):
                        holder.pop(key)
                    else:
                        sent[key] = holder[key]
                if "id" not in call:
                    call.pop("type")
                text += call["function"].get("name", "") + call["function"].get("arguments", "")
                calls.append(call)
            if calls:
                delta["tool_calls"] = calls
            finish = _finish(choice.get("finish_reason"), bool(self.called))
            if not delta and finish is None:
                continue
            events.append(StreamEvent(data=self._chunk([{"index": i, "delta": delta, "logprobs": None,
                                                         "finish_reason": finish}]), text=text,
                                      reasoning="reasoning_content" in delta))
            if finish is not None:
                self.finished = True
        if events:
            events[-1].usage = usage
        elif usage is not None:
            events.append(StreamEvent(data=None, usage=usage))
        if self.finished and self.usage is not None:
            events.append(StreamEvent(data=self._chunk([], usage=_usage_json(self.usage)), usage=self.usage,
                                      usage_only=True))
            self.usage = None  # sent once
        return events


class BailianAdapter(OpenAIAdapter):
    """Bailian (Model Studio) in OpenAI-compatible mode, on the same DashScope host and key."""

    channel_type = 49
    label = "Alibaba Bailian (OpenAI-compatible)"
    default_base_url = "https://dashscope.aliyuncs.com"
    modes: ClassVar[tuple[str, ...]] = ("chat", "completions", "embeddings")

    def base_url(self, channel: ChannelInfo) -> str:
        return super().base_url(channel).removesuffix("/compatible-mode/v1")  # accept the SDK-style base too

    def path(self, mode: str, model: str, channel: ChannelInfo) -> str:
        return "/compatible-mode" + PATHS[mode]

    def balance_requests(self, channel: ChannelInfo) -> list:
        return []  # billed through the Alibaba Cloud console; no balance endpoint
