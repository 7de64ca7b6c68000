"""One short chat sent to one channel through the relay's own call path (the channel test)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp

from providers.adapters import adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError
from relay import http
from relay.asgi import new_request_id
from relay.errors import RelayError
from relay.pipeline import Plan, Progress, _call_once, upstream_body


class _Capture:
    """A Responder that keeps the answer instead of sending it."""

    def __init__(self) -> None:
        self.started = False
        self.status = 0
        self.body = b""

    async def start(self, status: int, headers) -> None:
        self.started, self.status = True, status

    async def write(self, data: bytes) -> None:
        self.body += data

    async def finish(self, data: bytes = b"") -> None:
        self.body += data


@dataclass(frozen=True)
class ProbeResult:
    success: bool
    message: str
    seconds: float
    error: UpstreamError | None = None


async def probe(*, channel: ChannelInfo, model: str, prompt: str) -> ProbeResult:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    plan = Plan(caller=None, mode="chat", model=model, body=body, stream=False, client_wants_usage=False,
                prompt_estimate=0, group_ratio=1, request_id=new_request_id(), started_at=time.monotonic())
    upstream, _ = upstream_body(plan, channel)
    capture = _Capture()
    started = time.monotonic()
    # A session of its own: the test may run on a short-lived event loop, not the server's.
    progress = Progress()
    async with aiohttp.ClientSession(timeout=http.timeout()) as session:
        try:
            await _call_once(plan, channel, upstream, capture, progress, session=session)
        except UpstreamError as err:  # its text masked by _call_once
            return ProbeResult(False, err.message, time.monotonic() - started, err)
        except RelayError as err:  # a fault of the gateway's own, logged by _call_once
            return ProbeResult(False, err.message, time.monotonic() - started)
    elapsed = time.monotonic() - started
    if progress.interrupted is not None:
        return ProbeResult(False, progress.interrupted.message, elapsed, progress.interrupted)
    reply = adapter_for(channel.type).completion_text(mode="chat", body=capture.body)
    return ProbeResult(True, reply or "(empty reply)", elapsed)
