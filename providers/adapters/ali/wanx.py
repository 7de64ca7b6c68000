"""DashScope's Wanx images: the HTTP API makes images only as tasks, submitted (`X-DashScope-Async: enable`)
and then asked after until they end.

Docs: https://help.aliyun.com/zh/model-studio/developer-reference/text-to-image-v2-api-reference (the task,
polled at /api/v1/tasks/{id}) and https://help.aliyun.com/zh/model-studio/developer-reference/manage-asynchronous-tasks
(a task still queued, PENDING, is cancelled with POST /api/v1/tasks/{id}/cancel).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from urllib.parse import quote

from django.conf import settings

from providers.adapters.ali.envelope import ali_error
from providers.adapters.base import Adapter, RequestContext, UpstreamError, UpstreamRequest, json_or_none
from providers.adapters.fetch import vendor_images_b64
from providers.adapters.openai_shapes import images_answer

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

# Cancels sent after the client left, running on their own: the loop keeps only a weak reference to a task.
_cancels: set[asyncio.Task] = set()


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


def task_request(ctx: RequestContext, task_id: str, *, base_url: str, action: str = "") -> UpstreamRequest:
    """The task's status query, or (action "cancel") its cancellation."""
    url = base_url + TASKS_PATH + quote(task_id, safe="") + (f"/{action}" if action else "")
    return UpstreamRequest("POST" if action else "GET", url,
                           {"Authorization": f"Bearer {ctx.channel.key.strip()}", "Accept": "application/json"})


async def cancel_task(adapter: Adapter, ctx: RequestContext, task_id: str, status: str, *, session) -> None:
    """Ask DashScope to drop a task given up on, so it is not made (and billed) for nobody. Best effort:
    only a task still queued can be cancelled, and any failure here is ignored, never raised over the
    reason the task was given up."""
    if status == TASK_RUNNING:
        return  # DashScope would refuse: the images are being made
    # Refused (no longer PENDING), unreachable, or the session closed: whatever it is, it changes nothing.
    with contextlib.suppress(Exception):
        await adapter.send(ctx, adapter.task_request(ctx, task_id, "cancel"), session=session, timeout=CANCEL_TIMEOUT)


async def generate(adapter: Adapter, ctx: RequestContext, *, session) -> bytes:
    """Submit the Wanx task, then ask after it until it ends or the wait runs out; its images as OpenAI's
    answer. `adapter` is the DashScope adapter: it writes the requests (build_request, task_request) and sends
    them (send, which reads the vendor's errors)."""
    loop = asyncio.get_running_loop()
    wait = settings.RELAY_TIMEOUT or TASK_WAIT
    deadline = loop.time() + wait
    submit = adapter.build_request(ctx)
    output = _task_output(await adapter.send(ctx, submit, session=session, timeout=min(REQUEST_TIMEOUT, wait)))
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
                await cancel_task(adapter, ctx, task_id, status, session=session)
                raise UpstreamError(status=504, message=f"The DashScope image task {task_id} did not finish "
                                                        f"within {wait:g} s (last status {status or 'none'}).",
                                    type="upstream_error", code="task_timeout", retryable=False)
            await asyncio.sleep(min(POLL_INTERVAL, remaining))
            try:
                query = adapter.task_request(ctx, task_id)
                output = _task_output(await adapter.send(ctx, query, session=session,
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
        cancel = asyncio.create_task(cancel_task(adapter, ctx, task_id, status, session=session))
        _cancels.add(cancel)
        cancel.add_done_callback(_cancels.discard)
        raise
    return await image_answer(ctx, output, task_id, session=session)


async def image_answer(ctx: RequestContext, output: dict, task_id: str, *, session) -> bytes:
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
        for item, image in zip(linked, await vendor_images_b64(session, [i["url"] for i in linked]), strict=True):
            item["b64_json"] = image
            del item["url"]
    return images_answer(data)
