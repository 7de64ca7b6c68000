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
from django.core.cache import cache as django_cache
from django.db import close_old_connections

from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.ids import new_request_id
from providers import health, key_health, services
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
    probe_keys(channel_id=channel_id)
    try:
        channel, model, key_index = services.channel_test_subject(channel_id=channel_id, model=model)
    except services.NoLiveKey as exc:
        return services.channel_test_record(channel_id=channel_id, model=model or "", success=False,
                                            message=str(exc), seconds=0)
    result = async_to_sync(probe)(channel=channel, model=model, prompt=settings.TEST_PROMPT)
    health.channel_tested(channel_id=channel_id, success=result.success, error=result.error,
                          key=None if key_index is None else (key_index, channel.key))
    return services.channel_test_record(channel_id=channel_id, model=model, success=result.success,
                                        message=result.message, seconds=result.seconds)


def probe_keys(*, channel_id: int | None = None) -> int:
    """The half-open probes of multi-key channels (of one, or of all): each auto-disabled key past its
    cooldown is sent one real test request, alone, and comes back if it answers (providers/key_health.py).
    How many came back."""
    back = 0
    for row in key_health.keys_due_for_probe(channel_id=channel_id):
        try:
            channel, model, _ = services.channel_test_subject(channel_id=row.channel_id, key_index=row.index)
        except ServiceError:  # edited meanwhile, or of a type without an adapter: nothing to probe
            continue
        result = async_to_sync(probe)(channel=channel, model=model, prompt=settings.TEST_PROMPT)
        back += key_health.key_probed(channel_id=row.channel_id, index=row.index, key_fingerprint=row.fingerprint,
                                      success=result.success, message=result.message)
    return back


def channels_test_all(*, scope: str = "all", background: bool = True) -> dict:
    """Test every channel (or only the disabled ones), one run at a time across instances."""
    return services.channels_test_all_start(scope=scope, test=channel_test, background=background)


_scheduler: threading.Thread | None = None


def start_scheduler() -> None:
    """Test every channel each CHANNEL_TEST_FREQUENCY minutes (one-api's scheduled test), and probe dead
    keys of multi-key channels each minute whether or not it is set.

    Every instance runs the timers; the run locks in the shared cache let only one test at a time.
    """
    global _scheduler
    start_key_prober()
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


KEY_PROBE_LOCK = "oneapi:key-probe:lock"
_key_prober: threading.Thread | None = None
key_prober_stop = threading.Event()


def probe_keys_once() -> int:
    """One round of key probes, unless another instance is running one (a lock in the shared cache)."""
    if not django_cache.add(KEY_PROBE_LOCK, 1, timeout=max(settings.KEY_PROBE_INTERVAL, 60) * 10):
        return 0
    try:
        return probe_keys()
    finally:
        django_cache.delete(KEY_PROBE_LOCK)


def start_key_prober() -> None:
    """Half-open probes of dead keys each KEY_PROBE_INTERVAL seconds: the channel test may be off
    (CHANNEL_TEST_FREQUENCY 0, the default), and a key whose account was topped up should not wait for an
    operator. A round with no key due costs one query."""
    global _key_prober
    seconds = settings.KEY_PROBE_INTERVAL
    if not seconds or (_key_prober is not None and _key_prober.is_alive()):
        return

    def loop() -> None:
        while not key_prober_stop.wait(seconds):
            try:
                probe_keys_once()
            except Exception:
                log.exception("probing dead keys failed")
            finally:
                close_old_connections()

    _key_prober = threading.Thread(target=loop, daemon=True, name="oneapi-key-probes")
    _key_prober.start()
