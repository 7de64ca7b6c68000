"""A local Alibaba DashScope upstream: native text generation (JSON and SSE), text embeddings, and
Wanx images as asynchronous tasks.

It checks the Bearer key (401 InvalidApiKey otherwise), streams only when `X-DashScope-SSE: enable`
is sent (as DashScope does), and streams the whole text so far in every event unless
`incremental_output` is true. It records requests, serves fixtures and can fail on request.

Images (https://help.aliyun.com/zh/model-studio/developer-reference/text-to-image-v2-api-reference):
a POST to image-synthesis without `X-DashScope-Async: enable` is refused; with it, a task starts in the
behaviour's first `task_states` and each GET of /api/v1/tasks/{id} moves it one state on (staying at
the last), so ("PENDING", "RUNNING") never ends. Like Wanx, `n` defaults to 4 and a size must be
written "W*H". A SUCCEEDED task links to PNGs this mock serves; `failed_images` of them fail instead.
POST /api/v1/tasks/{id}/cancel cancels a task still PENDING (it is CANCELED from then on) and refuses any
other (https://help.aliyun.com/zh/model-studio/developer-reference/manage-asynchronous-tasks).

Speech (https://help.aliyun.com/zh/model-studio/qwen-tts): multimodal-generation with `{model, input: {text,
voice}}` answers as speech.json does, its link pointing at a WAV of PCM this mock serves (as OSS, unkeyed).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import time
import wave
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.mock_upstream import Behaviour, Recorded
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "ali"
REPLY = "我是通义千问，很高兴为你服务。"
TOOL_CALL = {"index": 0, "id": "call_mock_qwen", "type": "function",
             "function": {"name": "get_current_weather", "arguments": "{\"location\": \"杭州市\"}"}}
CHAT_PATH = "/api/v1/services/aigc/text-generation/generation"
EMBEDDINGS_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
IMAGES_PATH = "/api/v1/services/aigc/text2image/image-synthesis"
TASKS_PREFIX = "/api/v1/tasks/"
SPEECH_PATH = "/api/v1/services/aigc/multimodal-generation/generation"
PCM = bytes(range(256)) * 48  # 24 kHz 16-bit mono samples, as Qwen-TTS makes them
_wav = io.BytesIO()
with wave.open(_wav, "wb") as _out:
    _out.setnchannels(1)
    _out.setsampwidth(2)
    _out.setframerate(24000)
    _out.writeframes(PCM)
WAV = _wav.getvalue()
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(32))  # stands in for a picture
PARTIAL_FAILURE = {"code": "InternalError.Timeout",
                   "message": "An internal timeout error has occured during execution, please try again later "
                              "or contact service support."}


@dataclass
class AliBehaviour(Behaviour):
    reply: str = REPLY
    prompt_tokens: int = 22
    completion_tokens: int = 12
    fixture: str | None = None  # serve this file from tests/fixtures/providers/ali as the answer
    tool_call: bool = False  # answer with TOOL_CALL
    # Image tasks: the states a task goes through, one per status query; how it fails when it ends
    # FAILED; how many of its images fail (a partly failed task); how many queries answer 500 first.
    task_states: tuple[str, ...] = ("PENDING", "RUNNING", "SUCCEEDED")
    task_error: dict | None = None
    failed_images: int = 0
    poll_errors: int = 0
    cancel_delay: float = 0.0  # before answering a cancel


@dataclass
class Task:
    id: str
    body: dict
    behaviour: AliBehaviour
    polls: int = 0
    canceled: bool = False

    @property
    def state(self) -> str:
        """The state the task was last seen in (at its submit, or its last status query)."""
        b = self.behaviour
        return b.task_states[min(max(self.polls - b.poll_errors, 0), len(b.task_states) - 1)]


class MockAli(VendorMock):
    behaviour = AliBehaviour

    def __init__(self, keys: set[str] | None = None) -> None:
        super().__init__()
        self.keys = keys or set()
        self.tasks: dict[str, Task] = {}
        self._ids = itertools.count(1)

    def reset(self) -> None:
        super().reset()
        self.tasks.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        if request.method == "GET" and request.path.startswith("/files/") and request.path.endswith(".wav"):
            return web.Response(body=WAV, content_type="audio/wav")
        if request.method == "GET" and request.path.startswith("/files/"):
            return web.Response(body=PNG, content_type="image/png")  # OSS links are signed, not keyed
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.keys:
            return web.json_response({"code": "InvalidApiKey", "message": "Invalid API-key provided.",
                                      "request_id": "req-auth"}, status=401)
        if request.method == "GET" and request.path.startswith(TASKS_PREFIX):
            return self._task_status(request.path.removeprefix(TASKS_PREFIX))
        if request.method == "POST" and request.path.startswith(TASKS_PREFIX) and request.path.endswith("/cancel"):
            return await self._cancel(request.path.removeprefix(TASKS_PREFIX).removesuffix("/cancel"))
        b = self.next_behaviour()
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.status != 200:
            return web.json_response(b.error or {"code": "InternalError", "message": "Internal server error!",
                                                 "request_id": "req-500"}, status=b.status)
        if b.fixture:
            kind = "text/event-stream" if b.fixture.endswith(".sse") else "application/json"
            return web.Response(body=(FIXTURES / b.fixture).read_bytes(), content_type=kind, charset="utf-8")
        if request.path == EMBEDDINGS_PATH:
            texts = (body.get("input") or {}).get("texts") or []
            return web.json_response({"output": {"embeddings": [
                {"text_index": i, "embedding": [0.1 * (i + 1), -0.2, 0.3]} for i in range(len(texts))]},
                "usage": {"total_tokens": b.prompt_tokens}, "request_id": "req-emb"})
        if request.path == IMAGES_PATH:
            return self._submit(request, body, b)
        if request.path == SPEECH_PATH:
            return self._speech(body)
        if request.path != CHAT_PATH:
            return web.json_response({"code": "InvalidURL", "message": "url error", "request_id": "r"}, status=404)
        if request.headers.get("X-DashScope-SSE") == "enable":
            return await self._ali_stream(request, body, b)
        message = {"role": "assistant", "content": b.reply}
        if b.tool_call:
            message = {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]}
        return web.json_response({
            "output": {"choices": [{"finish_reason": "tool_calls" if b.tool_call else "stop", "message": message}]},
            "usage": self._ali_usage(b, b.completion_tokens), "request_id": "req-plain"})

    def _submit(self, request: web.Request, body: dict, b: AliBehaviour) -> web.Response:
        if request.headers.get("X-DashScope-Async") != "enable":
            return web.json_response({"code": "AccessDenied", "message": "current user api does not support "
                                      "synchronous calls", "request_id": "req-sync"}, status=403)
        size = (body.get("parameters") or {}).get("size", "1024*1024")
        if not (body.get("input") or {}).get("prompt") or not re.fullmatch(r"\d+\*\d+", str(size)):
            return web.json_response({"code": "InvalidParameter", "message": f"Parameter size {size!r} or "
                                      "input.prompt is invalid", "request_id": "req-bad"}, status=400)
        task = Task(id=f"0385dc79-5ff8-4d82-bcb6-{next(self._ids):012d}", body=body, behaviour=b)
        self.tasks[task.id] = task
        return web.json_response({"output": {"task_status": b.task_states[0], "task_id": task.id},
                                  "request_id": f"req-submit-{task.id[-4:]}"})

    def _speech(self, body: dict) -> web.Response:
        given = body.get("input") or {}
        if not given.get("text") or not given.get("voice"):
            return web.json_response({"code": "InvalidParameter", "message": "Input text or voice is missing",
                                      "request_id": "req-tts-bad"}, status=400)
        answer = json.loads((FIXTURES / "speech.json").read_bytes())
        answer["output"]["audio"]["url"] = f"{self.url}/files/{answer['output']['audio']['id']}.wav?Expires=1"
        return web.json_response(answer)

    def cancels(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/cancel")]

    async def _cancel(self, task_id: str) -> web.Response:
        task = self.tasks.get(task_id)
        request_id = f"req-cancel-{task_id[-4:]}"
        if task is not None and task.behaviour.cancel_delay:
            await asyncio.sleep(task.behaviour.cancel_delay)
        if task is None or task.canceled or task.state != "PENDING":
            return web.json_response({"request_id": request_id, "code": "UnsupportedOperation",
                                      "message": "Failed to cancel the task, please confirm if the task is in "
                                                 "PENDING status."}, status=400)
        task.canceled = True
        return web.json_response({"request_id": request_id})

    def _task_status(self, task_id: str) -> web.Response:
        task = self.tasks.get(task_id)
        request_id = f"req-task-{task_id[-4:]}"
        if task is None:
            return web.json_response({"request_id": request_id, "output": {"task_id": task_id,
                                                                            "task_status": "UNKNOWN"}})
        b = task.behaviour
        if task.canceled:
            return web.json_response({"request_id": request_id, "output": {"task_id": task.id,
                                                                            "task_status": "CANCELED"}})
        task.polls += 1
        if task.polls <= b.poll_errors:
            return web.json_response({"code": "InternalError", "message": "Internal server error!",
                                      "request_id": request_id}, status=500)
        state = task.state
        output: dict = {"task_id": task.id, "task_status": state, "submit_time": "2025-01-08 16:03:59.840"}
        n = (task.body.get("parameters") or {}).get("n", 4)  # Wanx's default
        if state == "FAILED":
            output.update(b.task_error or {"code": "InternalError", "message": "Internal server error!"})
            return web.json_response({"request_id": request_id, "output": output})
        if state != "SUCCEEDED":
            output["task_metrics"] = {"TOTAL": n, "SUCCEEDED": 0, "FAILED": 0}
            return web.json_response({"request_id": request_id, "output": output})
        prompt = task.body["input"]["prompt"]
        made = max(0, n - b.failed_images)
        results: list[dict] = [{"orig_prompt": prompt, "url": f"{self.url}/files/{task.id}-{i}.png"}
                               for i in range(made)]
        if (task.body.get("parameters") or {}).get("prompt_extend"):
            for result in results:
                result["actual_prompt"] = prompt + "，高清，细节丰富"
        results += [dict(PARTIAL_FAILURE) for _ in range(n - made)]
        output.update(end_time=time.strftime("%Y-%m-%d %H:%M:%S.000"), results=results,
                      task_metrics={"TOTAL": n, "SUCCEEDED": made, "FAILED": n - made})
        return web.json_response({"request_id": request_id, "output": output, "usage": {"image_count": made}})

    def _ali_usage(self, b: AliBehaviour, output: int) -> dict:
        return {"input_tokens": b.prompt_tokens, "output_tokens": output, "total_tokens": b.prompt_tokens + output}

    async def _ali_stream(self, request: web.Request, body: dict, b: AliBehaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream;charset=UTF-8"})
        await response.prepare(request)
        incremental = bool((body.get("parameters") or {}).get("incremental_output"))
        counter = iter(range(1, 1000))

        def event(message: dict, finish: str, output: int) -> bytes:
            payload = {"output": {"choices": [{"message": message, "finish_reason": finish}]},
                       "usage": self._ali_usage(b, output), "request_id": "req-stream"}
            return (f"id:{next(counter)}\nevent:result\n:HTTP_STATUS/200\ndata:".encode()
                    + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n")

        try:
            if b.tool_call:
                name = TOOL_CALL["function"]["name"]
                first = {**TOOL_CALL, "function": {"name": name, "arguments": "{\"location\":"}}
                rest = {**TOOL_CALL, "id": "", "function": {"arguments": " \"杭州市\"}"}}
                await response.write(event({"role": "assistant", "content": "", "tool_calls": [first]}, "null", 3))
                await response.write(event({"role": "assistant", "content": "", "tool_calls": [rest]}, "null", 9))
                await response.write(event({"role": "assistant", "content": ""}, "tool_calls", b.completion_tokens))
                await response.write_eof()
                return response
            pieces = [b.reply[i:i + 3] for i in range(0, len(b.reply), 3)]
            so_far = ""
            for n, piece in enumerate(pieces):
                if b.cut_after is not None and n >= b.cut_after:
                    request.transport.close()
                    return response
                if b.malformed and n == 1:
                    await response.write(b"id:x\nevent:result\n:HTTP_STATUS/200\ndata:{\"output\":{\"cho\n\n")
                so_far += piece
                end = n == len(pieces) - 1
                output = b.completion_tokens if end else max(1, b.completion_tokens * (n + 1) // len(pieces))
                await response.write(event({"role": "assistant", "content": piece if incremental else so_far},
                                           "stop" if end else "null", output))
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_cancelled += 1
            raise
        return response
