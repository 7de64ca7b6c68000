"""The channel test: one short chat sent to one channel through the relay's own call (relay/upstream.py),
its verdict recorded by the providers app.

The admin, the API and the scheduled test call this module; providers/health.py switches the channel
off or back on by what it finds and providers/services.py records it (response time, log), so the
providers app never calls the relay.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.conf import settings

from oneapi_site.lib.ids import new_request_id
from providers import health, services
from providers.adapters import adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError
from relay import http
from relay.errors import RelayError
from relay.upstream import Call, call_channel

log = logging.getLogger(__name__)


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
    """Ask `channel` one chat question; whether it answered, and its answer or why not."""
    call = Call(mode="chat", model=model, body={"model": model, "messages": [{"role": "user", "content": prompt}]},
                request_id=new_request_id())
    capture = _Capture()
    started = time.monotonic()
    # A session of its own: the test may run on a short-lived event loop, not the server's.
    async with http.own_session(channel) as session:
        try:
            outcome = await call_channel(session=session, channel=channel, call=call, out=capture)
        except UpstreamError as err:  # its text masked by call_channel
            return ProbeResult(False, err.message, time.monotonic() - started, err)
        except RelayError as err:  # a fault of the gateway's own, logged by call_channel
            return ProbeResult(False, err.message, time.monotonic() - started)
    elapsed = time.monotonic() - started
    if outcome.interrupted is not None:
        return ProbeResult(False, outcome.interrupted.message, elapsed, outcome.interrupted)
    reply = adapter_for(channel.type).completion_text(mode="chat", body=capture.body)
    return ProbeResult(True, reply or "(empty reply)", elapsed)


def channel_test(*, channel_id: int, model: str | None = None) -> services.ChannelTestResult:
    """Send one short chat to the channel, as one-api's test button does, and record the verdict.

    It goes through the relay's own call (adapters' signing, token fetches and stream gathering
    included), on a session of its own."""
    channel, model = services.channel_test_subject(channel_id=channel_id, model=model)
    result = async_to_sync(probe)(channel=channel, model=model, prompt=settings.TEST_PROMPT)
    health.channel_tested(channel_id=channel_id, success=result.success, error=result.error)
    return services.channel_test_record(channel_id=channel_id, model=model, success=result.success,
                                        message=result.message, seconds=result.seconds)


def channels_test_all(*, scope: str = "all", background: bool = True) -> dict:
    """Test every channel (or only the disabled ones), one run at a time across instances."""
    return services.channels_test_all_start(scope=scope, test=channel_test, background=background)


_scheduler: threading.Thread | None = None


def start_scheduler() -> None:
    """Test every channel each CHANNEL_TEST_FREQUENCY minutes (one-api's scheduled test).

    Every instance runs the timer; the run lock in the shared cache lets only one test at a time.
    """
    global _scheduler
    minutes = settings.CHANNEL_TEST_FREQUENCY
    if not minutes or (_scheduler is not None and _scheduler.is_alive()):
        return

    def loop() -> None:
        stop = threading.Event()
        while not stop.wait(minutes * 60):
            try:
                channels_test_all(scope="all", background=False)
            except Exception:
                log.exception("the scheduled channel test failed")

    _scheduler = threading.Thread(target=loop, daemon=True, name="oneapi-channel-tests")
    _scheduler.start()
