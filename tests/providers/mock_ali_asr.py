"""A local DashScope Paraformer real-time recognition socket (wss://.../api-ws/v1/inference), in the documented
protocol (https://help.aliyun.com/zh/model-studio/websocket-for-paraformer-real-time-service, paraformer-client-events,
paraformer-server-events): the key in `Authorization: Bearer` at the handshake (401 otherwise); a run-task whose
fields it checks (a bad one is a task-failed, as DashScope answers); task-started after a pause in which no audio
may arrive; the audio as binary frames; finish-task only after some audio. It answers with the scripted
result-generated events (the first as soon as audio arrives, the rest after finish-task), then task-finished, and
records what it saw. Any breach of the order is a task-failed naming it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSMsgType, web

from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "ali"
WS_PATH = "/api-ws/v1/inference"
START_PAUSE = 0.05  # seconds the mock waits before task-started: audio arriving then breaks the protocol


@dataclass
class ASRBehaviour:
    fixture: str = "asr_sentences.ndjson"  # result-generated events, one a line
    fail_at: str | None = None  # "start" (instead of task-started) or "finish" (after finish-task)
    stall: bool = False  # task-started, then silence
    refuse_handshake: int | None = None


@dataclass
class Seen:
    headers: dict
    run_task: dict
    audio: bytes = b""
    frames: int = 0
    finish_task: dict | None = None
    order: list[str] = field(default_factory=list)  # "run-task", "task-started", "audio", "finish-task"


def _event(task_id: str, name: str, **header) -> str:
    return json.dumps({"header": {"task_id": task_id, "event": name, "attributes": {}, **header}, "payload": {}})


def _failed(task_id: str, code: str, message: str) -> str:
    return _event(task_id, "task-failed", error_code=code, error_message=message)


def _run_task_problem(frame: dict) -> str | None:
    header, payload = frame.get("header") or {}, frame.get("payload") or {}
    if header.get("action") != "run-task" or header.get("streaming") != "duplex":
        return "header.action must be run-task and header.streaming duplex"
    if not re.fullmatch(r"[0-9a-f]{32}", str(header.get("task_id") or "")):
        return "header.task_id must be 32 hex characters"
    if (payload.get("task_group"), payload.get("task"), payload.get("function")) != ("audio", "asr", "recognition"):
        return "payload must name task_group audio, task asr, function recognition"
    parameters = payload.get("parameters") or {}
    if not payload.get("model") or payload.get("input") != {}:
        return "payload.model is required and payload.input must be {}"
    if parameters.get("format") not in ("pcm", "wav", "mp3", "opus", "speex", "aac", "amr"):
        return "parameters.format is not a supported format"
    if not isinstance(parameters.get("sample_rate"), int):
        return "parameters.sample_rate must be an integer"
    return None


class MockAliASR(VendorMock):
    behaviour = ASRBehaviour

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.closed = 0  # sockets that ended with the client's close

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        b = self.next_behaviour()
        if b.refuse_handshake:
            return web.json_response({"code": "InvalidApiKey", "message": "Invalid API-key provided."},
                                     status=b.refuse_handshake)
        if request.path != WS_PATH:
            return web.json_response({"code": "NotFound", "message": "no such path"}, status=404)
        if request.headers.get("Authorization", "").lower() != f"bearer {self.key}".lower():
            return web.json_response({"code": "InvalidApiKey", "message": "Invalid API-key provided."}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = await ws.receive()
        seen = Seen(headers=dict(request.headers), run_task=json.loads(first.data), order=["run-task"])
        self.requests.append(seen)
        task_id = str(seen.run_task.get("header", {}).get("task_id") or "")
        try:
            await self._converse(ws, b, seen, task_id)
        finally:
            if not ws.closed:
                await ws.close()
        return ws

    async def _converse(self, ws: web.WebSocketResponse, b: ASRBehaviour, seen: Seen, task_id: str) -> None:
        problem = _run_task_problem(seen.run_task)
        if problem:
            await ws.send_str(_failed(task_id, "InvalidParameter", problem))
            return
        try:
            early = await ws.receive(timeout=START_PAUSE)
        except TimeoutError:
            early = None
        if early is not None:
            await ws.send_str(_failed(task_id, "InvalidParameter", "a message came before task-started"))
            return
        if b.fail_at == "start":
            await ws.send_str((FIXTURES / "asr_task_failed.json").read_text().replace("TASK", task_id))
            return
        await ws.send_str(_event(task_id, "task-started"))
        seen.order.append("task-started")
        events = [line.replace("TASK", task_id) for line in (FIXTURES / b.fixture).read_text().splitlines()
                  if line.strip()]
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                if seen.finish_task is not None:
                    await ws.send_str(_failed(task_id, "InvalidParameter", "audio came after finish-task"))
                    return
                seen.audio += message.data
                seen.frames += 1
                if seen.order[-1] != "audio":
                    seen.order.append("audio")
                    if events and not b.stall:
                        await ws.send_str(events.pop(0))
                continue
            frame = json.loads(message.data)
            if frame.get("header", {}).get("action") != "finish-task" or not seen.audio:
                await ws.send_str(_failed(task_id, "InvalidParameter", "finish-task must follow the audio"))
                return
            seen.finish_task = frame
            seen.order.append("finish-task")
            if b.stall:
                continue
            if b.fail_at == "finish":
                await ws.send_str((FIXTURES / "asr_task_failed.json").read_text().replace("TASK", task_id))
                return
            for line in events:
                await ws.send_str(line)
            await ws.send_str(_event(task_id, "task-finished"))
            return
        self.closed += 1  # the client closed the socket (a stalled task given up on)
