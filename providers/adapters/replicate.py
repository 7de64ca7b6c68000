"""Replicate (type 46): chat and image models run as predictions (https://replicate.com/docs/reference/http),
as one-api's adaptor runs them (relay/adaptor/replicate).

A prediction is created at {base}/v1/models/{owner}/{name}/predictions with the model's `input`, answered 201
with its urls. A chat's prompt is the messages as `role: content` lines (one-api's); a streaming client gets
the prediction's event stream (`urls.stream`: `output` events, then `done`) as OpenAI chunks, then the counts
the ended prediction tells; any other is answered when the prediction has succeeded, asked after at
`urls.get` (the create asks Replicate to wait first, `Prefer: wait`, so a quick model needs no poll). An image
prediction's output (one link or a list) is OpenAI's images answer, links or, when asked, the images
themselves. Once a prediction exists, no failure sends the request to another channel: Replicate bills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import orjson
from django.conf import settings

from providers import channel_overrides
from providers.adapters.base import (
    NETWORK_ERRORS,
    Adapter,
    EventAnswer,
    Opened,
    RequestContext,
    StreamEvent,
    UpstreamError,
    Usage,
    WholeAnswer,
    json_or_none,
    network_failure,
    read_timeout,
    text_only,
)
from providers.adapters.fetch import vendor_images_b64
from providers.adapters.openai_shapes import (
    chat_chunk,
    chat_completion,
    delta_choice,
    images_answer,
    message_choice,
    usage_event,
    usage_json,
)

TASK_WAIT = 300.0  # how long a prediction is asked after before it is given up (RELAY_TIMEOUT when set)
POLL_INTERVAL = 2.0
REQUEST_TIMEOUT = 70.0  # one request: `Prefer: wait` holds the create up to 60 s
CANCEL_TIMEOUT = 3.0  # a prediction given up on is cancelled on the way out, never waited on long
DEFAULT_MAX_TOKENS = 500  # one-api's, for a chat that sets none
ENDED = ("failed", "canceled")
# Sizes as Replicate's image models take them (aspect_ratio); one-api asks for a square.
ASPECT_RATIOS = {"1024x1024": "1:1", "1792x1024": "16:9", "1024x1792": "9:16", "1536x1024": "3:2",
                 "1024x1536": "2:3", "512x512": "1:1", "256x256": "1:1"}


_cancels: set[asyncio.Task] = set()  # cancels under way, held so they are not collected before they run


def invalid(message: str) -> UpstreamError:
    return UpstreamError(status=400, message=message, type="invalid_request_error", code="invalid_request")


def chat_input(body: dict) -> dict:
    """A language model's input: the messages as `role: content` lines, and the sampling fields."""
    lines = [f"{m.get('role')}: {text_only(m.get('content'), 'Replicate chat models take text, not {kind} parts.')}"
             for m in body.get("messages") or () if isinstance(m, dict)]
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
    found: dict[str, Any] = {"prompt": "\n".join(lines) + "\n", "max_tokens": max_tokens, "temperature": 1.0,
                             "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        if isinstance(body.get(name), int | float):
            found[name] = body[name]
    return found


def image_input(body: dict) -> dict:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise invalid("An image request needs a prompt.")
    return {"prompt": prompt, "aspect_ratio": ASPECT_RATIOS.get(str(body.get("size") or ""), "1:1")}


def outputs(prediction: dict) -> list[str]:
    """A prediction's output as a list of strings (Replicate gives one string, a list, or null)."""
    output = prediction.get("output")
    if output is None:
        return []
    if isinstance(output, str):
        return [output]
    if isinstance(output, list):
        return [str(item) for item in output if item is not None]
    raise UpstreamError(status=502, message="Replicate's prediction has an output of an unknown shape.",
                        code="bad_response_body")


def prediction_usage(prediction: dict) -> Usage | None:
    """The token counts a language model's finished prediction reports in its metrics, if it does."""
    metrics = prediction.get("metrics")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("output_token_count"), int):
        return None
    return Usage(prompt_tokens=int(metrics.get("input_token_count") or 0),
                 completion_tokens=metrics["output_token_count"])


class ReplicateAdapter(Adapter):
    channel_type: ClassVar[int] = 46
    label: ClassVar[str] = "Replicate"
    default_base_url: ClassVar[str] = "https://api.replicate.com"
    modes: ClassVar[tuple[str, ...]] = ("chat", "images")
    complete_modes: ClassVar[tuple[str, ...]] = ("images",)
    default_models: ClassVar[tuple[str, ...]] = (
        "black-forest-labs/flux-schnell", "black-forest-labs/flux-dev", "black-forest-labs/flux-1.1-pro",
        "stability-ai/stable-diffusion-3.5-large", "ideogram-ai/ideogram-v2", "recraft-ai/recraft-v3",
        "meta/meta-llama-3-70b-instruct", "meta/meta-llama-3-8b-instruct", "meta/meta-llama-3.1-405b-instruct",
        "mistralai/mixtral-8x7b-instruct-v0.1", "ibm-granite/granite-3.0-8b-instruct",
    )

    def base_url(self, ctx: RequestContext) -> str:
        # one-api's stored default is https://api.replicate.com/v1/models/ (its adaptor ignores it).
        base = (ctx.channel.base_url or self.default_base_url).rstrip("/")
        return base.removesuffix("/v1/models").removesuffix("/v1")

    def headers(self, ctx: RequestContext) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {ctx.channel.key}", "Content-Type": "application/json"}
        overrides = channel_overrides.for_channel(ctx.channel)
        if overrides is not None:
            overrides.apply_headers(headers, ctx.channel.key)
        return headers

    def parse_error(self, ctx, *, status, body, headers=None):
        # Errors are problem details: {"title", "detail", "status"}.
        payload = json_or_none(body)
        if isinstance(payload, dict) and isinstance(payload.get("detail"), str) and payload["detail"]:
            code = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}.get(status)
            return UpstreamError(status=status, message=payload["detail"], retryable=status == 429 or status >= 500,
                                 code=code or "bad_response_status_code")
        return super().parse_error(ctx, status=status, body=body, headers=headers)

    async def call(self, ctx: RequestContext, method: str, url: str, *, session, body: dict | None = None,
                   headers: dict | None = None) -> dict:
        """One request to Replicate's API: its JSON answer (200 or 201), else its error."""
        try:
            async with session.request(method, url, headers={**self.headers(ctx), **(headers or {})},
                                       data=orjson.dumps(body) if body is not None else None,
                                       timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as response:
                status, raw = response.status, await response.read()
        except NETWORK_ERRORS as exc:
            raise network_failure(exc, read_timeout=REQUEST_TIMEOUT, setting=None,
                                  upstream="Replicate") from None
        if status not in (200, 201):
            raise self.parse_error(ctx, status=status, body=raw)
        payload = json_or_none(raw)
        if not isinstance(payload, dict):
            raise UpstreamError(status=502, message="Replicate answered with a body that is not a prediction.",
                                code="bad_response_body", retryable=status == 200)
        return payload

    async def create(self, ctx: RequestContext, *, session, wait: bool) -> dict:
        model = ctx.model
        if model.count("/") != 1 or not all(model.split("/")):
            raise invalid(f"Replicate models are named owner/name; {model!r} is not.")
        payload = chat_input(ctx.body) if ctx.mode == "chat" else image_input(ctx.body)
        body = {"input": payload, **({"stream": True} if ctx.stream else {})}
        # The prediction's body is the vendor's request the channel's param_override edits.
        body = orjson.loads(self.override_body(ctx, orjson.dumps(body)) or b"{}")
        return await self.call(ctx, "POST", f"{self.base_url(ctx)}/v1/models/{model}/predictions", session=session,
                               body=body, headers={"Prefer": "wait"} if wait else None)

    async def finished(self, ctx: RequestContext, prediction: dict, *, session) -> dict:
        """Ask after a created prediction until it succeeds; its failure, or the wait running out, is an
        error no other channel retries (this one has billed the prediction)."""
        loop = asyncio.get_running_loop()
        wait = settings.RELAY_TIMEOUT or TASK_WAIT
        deadline = loop.time() + wait
        try:
            while prediction.get("status") != "succeeded":
                if prediction.get("status") in ENDED:
                    raise UpstreamError(status=502, message=f"The Replicate prediction {prediction.get('status')}: "
                                                            f"{prediction.get('error') or 'no reason given'}",
                                        code="prediction_failed")
                url = (prediction.get("urls") or {}).get("get")
                if not url or loop.time() >= deadline:
                    await self.cancel(ctx, prediction, session=session)
                    raise UpstreamError(status=504, code="task_timeout",
                                        message=f"The Replicate prediction did not finish within {wait:g} s.")
                await asyncio.sleep(POLL_INTERVAL)
                prediction = await self.call(ctx, "GET", url, session=session)
        except UpstreamError as err:
            raise dataclasses.replace(err, retryable=False) from None
        except asyncio.CancelledError:
            self.cancel_later(ctx, prediction, session=session)  # the client left: stop paying for the run
            raise
        return prediction

    async def cancel(self, ctx: RequestContext, prediction: dict, *, session) -> None:
        """Cancel a prediction given up on, best effort: Replicate bills a prediction for the time it runs."""
        url = (prediction.get("urls") or {}).get("cancel")
        if url:
            with contextlib.suppress(Exception):
                async with session.post(url, headers=self.headers(ctx),
                                        timeout=aiohttp.ClientTimeout(total=CANCEL_TIMEOUT)):
                    pass

    def cancel_later(self, ctx: RequestContext, prediction: dict, *, session) -> None:
        """The cancel from a task of its own: the call it ends is being cancelled, and must not wait for it."""
        task = asyncio.get_running_loop().create_task(self.cancel(ctx, prediction, session=session))
        _cancels.add(task)
        task.add_done_callback(_cancels.discard)

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        if ctx.mode == "chat" and ctx.stream:
            return EventAnswer(ctx, self.stream_events(ctx, session=session))
        prediction = await self.finished(ctx, await self.create(ctx, session=session, wait=True), session=session)
        if ctx.mode == "images":
            return WholeAnswer(ctx, await self.images(ctx, prediction, session=session))
        text = "".join(outputs(prediction))
        usage = prediction_usage(prediction)
        answer = chat_completion(id=f"chatcmpl-{prediction.get('id') or uuid.uuid4().hex}", model=ctx.client_model,
                                 choices=[message_choice(0, {"role": "assistant", "content": text}, "stop")],
                                 usage=usage_json(usage) if usage else None)
        return WholeAnswer(ctx, orjson.dumps(answer), usage)

    async def images(self, ctx: RequestContext, prediction: dict, *, session) -> bytes:
        links = outputs(prediction)
        if not links:
            raise UpstreamError(status=502, message="The Replicate prediction succeeded without an image.",
                                code="bad_response_body")
        if ctx.body.get("response_format") == "b64_json":
            return images_answer([{"b64_json": data} for data in await vendor_images_b64(session, links)])
        return images_answer([{"url": link} for link in links])

    async def stream_events(self, ctx: RequestContext, *, session) -> AsyncIterator[StreamEvent]:
        """The prediction's server-sent events as OpenAI chunks: each `output` event's data is text."""
        prediction = await self.create(ctx, session=session, wait=False)
        url = (prediction.get("urls") or {}).get("stream")
        if not url:
            raise UpstreamError(status=502, message="Replicate gave the prediction no stream.",
                                code="bad_response_body")
        id, created = f"chatcmpl-{prediction.get('id') or uuid.uuid4().hex}", int(time.time())
        timeout = read_timeout(session)
        try:
            headers = {"Authorization": f"Bearer {ctx.channel.key}", "Accept": "text/event-stream",
                       "Cache-Control": "no-store"}
            async with session.get(url, headers=headers) as response:
                if response.status != 200:
                    raise self.parse_error(ctx, status=response.status, body=await response.content.read(65536))
                async for name, data in sse_events(response.content):
                    if name == "output":
                        yield StreamEvent(data=chat_chunk(id=id, created=created, model=ctx.client_model,
                                                          choices=[delta_choice({"content": data})]), text=data)
                    elif name == "error":
                        detail = json_or_none(data.encode())
                        message = detail.get("detail") if isinstance(detail, dict) else data
                        raise UpstreamError(status=502, message=f"The Replicate prediction failed: {message}",
                                            code="prediction_failed")
                    elif name == "done":
                        break
        except NETWORK_ERRORS as exc:
            raise dataclasses.replace(network_failure(exc, read_timeout=timeout), retryable=False) from None
        except UpstreamError as err:
            raise dataclasses.replace(err, retryable=False) from None
        except (asyncio.CancelledError, GeneratorExit):
            self.cancel_later(ctx, prediction, session=session)  # the client left mid-answer
            raise
        yield StreamEvent(data=chat_chunk(id=id, created=created, model=ctx.client_model,
                                          choices=[delta_choice({}, "stop")]))
        usage = await self.final_usage(ctx, prediction, session=session)
        if usage is not None:
            yield usage_event(id=id, created=created, model=ctx.client_model, usage=usage)

    async def final_usage(self, ctx: RequestContext, prediction: dict, *, session) -> Usage | None:
        """The counts of a streamed prediction, which its events never tell: read from the prediction once
        it has ended (None when it cannot be read, or tells none: the relay then counts the text)."""
        url = (prediction.get("urls") or {}).get("get")
        if not url:
            return None
        try:
            return prediction_usage(await self.call(ctx, "GET", url, session=session))
        except (UpstreamError, *NETWORK_ERRORS):
            return None


async def sse_events(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, str]]:
    """(event, data) of each server-sent event; a multi-line data is joined by newlines, as SSE says."""
    name, data = "message", []
    async for raw in content:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield name, "\n".join(data)
