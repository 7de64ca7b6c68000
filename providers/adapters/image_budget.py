"""What all the client images a process inlines may hold at once: bytes and open fetches.

A request is bounded on its own (providers/adapters/inline_images.py), but many requests at once
would still add up: the budget here is the process's. Bytes are held from the moment they are fetched
until the upstream call that sends them ends (the inlined images stay in the body, and in the vendor's
JSON, that long), so the relay opens `held_for_call()` around each upstream call. Fetches are held while
they download.

When the budget is spent a fetch waits up to USER_CONTENT_QUEUE_TIMEOUT seconds for other calls to give
some back, then the request is answered 503: the gateway, not the client, is out of room, so it is not a
429 (the client has exceeded no limit of its own), and a client retrying later will likely get through.
The 503 is never retried on another channel and never counts against the channel's health.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

from django.conf import settings

from providers.adapters.base import UpstreamError


def busy() -> UpstreamError:
    return UpstreamError(status=503, message="The gateway is busy fetching other requests' images; try again "
                         "shortly.", type="server_error", code="image_budget_exhausted", local=True)


class Budget:
    """Counters shared by every request of the process. Waiters are futures of their own event loop,
    woken thread-safely, so the budget is not tied to one loop (asyncio primitives are)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0
        self.fetches = 0
        self._waiters: list[asyncio.Future] = []

    @property
    def waiting(self) -> int:
        """How many fetches wait for room."""
        return len(self._waiters)

    def _take(self, nbytes: int, fetches: int) -> bool:
        with self._lock:
            if nbytes and self.bytes + nbytes > settings.USER_CONTENT_PROCESS_MAX_BYTES:
                return False
            if fetches and self.fetches + fetches > settings.USER_CONTENT_PROCESS_MAX_FETCHES:
                return False
            self.bytes += nbytes
            self.fetches += fetches
            return True

    async def acquire(self, *, nbytes: int = 0, fetches: int = 0) -> None:
        """Take `nbytes` and `fetches`, waiting (bounded) for room; UpstreamError 503 when none comes."""
        if self._take(nbytes, fetches):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.USER_CONTENT_QUEUE_TIMEOUT
        while True:
            waiter = loop.create_future()
            with self._lock:
                self._waiters.append(waiter)
            try:
                # Checked again once registered: room given back in between would otherwise wake nobody.
                if self._take(nbytes, fetches):
                    return
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise busy()
                try:
                    await asyncio.wait_for(waiter, remaining)
                except TimeoutError:
                    raise busy() from None
            finally:
                with self._lock:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)

    def release(self, *, nbytes: int = 0, fetches: int = 0) -> None:
        if not nbytes and not fetches:
            return
        with self._lock:
            self.bytes -= nbytes
            self.fetches -= fetches
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:  # each checks again whether its share now fits
            waiter.get_loop().call_soon_threadsafe(_wake, waiter)

    @asynccontextmanager
    async def fetch_slot(self) -> AsyncIterator[None]:
        await self.acquire(fetches=1)
        try:
            yield
        finally:
            self.release(fetches=1)


def _wake(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


budget = Budget()


class Lease:
    """The image bytes one upstream call holds, given back all at once when it ends."""

    def __init__(self) -> None:
        self.bytes = 0

    async def take(self, nbytes: int) -> None:
        await budget.acquire(nbytes=nbytes)
        self.bytes += nbytes

    def release(self) -> None:
        held, self.bytes = self.bytes, 0
        budget.release(nbytes=held)


# The lease of the upstream call under way: an adapter's open() (where images are inlined) has no other way
# to learn how long the call will keep what it fetched.
_call_lease: ContextVar[Lease | None] = ContextVar("image_lease", default=None)


@asynccontextmanager
async def held_for_call() -> AsyncIterator[None]:
    """Around one upstream call: the images its body inlines count against the budget until it ends."""
    lease = Lease()
    token = _call_lease.set(lease)
    try:
        yield
    finally:
        _call_lease.reset(token)
        lease.release()


@asynccontextmanager
async def lease() -> AsyncIterator[Lease]:
    """The current call's lease; outside one (an adapter called directly), a lease held while inlining."""
    current = _call_lease.get()
    if current is not None:
        yield current
        return
    own = Lease()
    try:
        yield own
    finally:
        own.release()
