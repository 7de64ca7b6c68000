"""Rate limits on `/v1`: requests and tokens per minute, requests in flight and requests per day, per API key,
user, group (option GroupRateLimit), model in a group (GroupModelRateLimit) and channel.

Exact, not approximate: RPM and TPM are sliding window logs, so "60 RPM" never admits a 61st request in any
60 s (a request counts in (now - 60 s, now]; a fixed window admits twice the limit across its edge, a sliding
window counter estimates, and GCRA admits a burst on top of its steady rate). The log costs one entry per
request in the window, which a limit sized for an upstream keeps small. TPM reserves the request's estimate
(its body's prompt estimate plus max_tokens) and is corrected to the tokens billed when it ends. RPD counts
per calendar day in the gateway's time zone (TZ), as budgets do (billing/budgets.py): an operator's
"1000 a day" starts again at midnight, and the count is one number rather than a day-long log.
Concurrency counts leases, which in Redis expire LEASE_MS after their last renewal, so a dead instance's
requests stop counting.

With REDIS_CONN_STRING every instance counts in Redis (relay/limits/cluster.py), all of a request's scopes in
one script call, which also carries the ends of this process's requests that finished since its last call (so
one call per request, unless none follows within END_DELAY); without Redis, or while it does not answer, each
process counts in itself (relay/limits/local.py). A
request to which no limit applies costs nothing here: the pipeline admits only a request with a scope that has
limits, or a channel that has caps (`scopes_for`, ChannelInfo.limits).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from django.conf import settings
from redis.exceptions import RedisError

from billing import budgets
from oneapi_site import metrics, options
from oneapi_site.lib.limit_fields import BudgetPeriod
from relay.errors import RelayError
from relay.limits.caps import NO_LIMITS, Caps, Refusal, Scope, Usage, limit_text
from relay.limits.cluster import LEASE_MS, ClusterCounts
from relay.limits.local import LocalCounts

__all__ = ["Caps", "Limiter", "NO_LIMITS", "Scope", "Ticket", "channel_scope", "limiter", "scopes_for"]

log = logging.getLogger("oneapi.relay")

RETRY_SECONDS = 5.0  # while Redis is down it is tried again this often, not on every request
# How long the end of a request (its lease released, its tokens corrected) waits to go to Redis with the next
# admission of this process, which then costs no call of its own: a client sending one request after another
# gets one call per request. Until then the lease counts, so the wait never lets a limit be exceeded; another
# instance may refuse for those few milliseconds what it would have admitted.
END_DELAY = 0.002
_UNAVAILABLE = (RedisError, OSError, asyncio.TimeoutError)


class Ticket:
    """One request's admission: what it holds and where, until `Limiter.finish`."""

    __slots__ = ("rid", "scopes", "channel", "tokens", "backend", "requests", "token_usage", "at", "day")

    def __init__(self, rid: str) -> None:
        self.rid = rid
        self.scopes: tuple[Scope, ...] = ()  # the request's own scopes (key, user, group, model)
        self.channel: Scope | None = None  # the admitted channel's scope, when it has caps
        self.tokens = 0  # reserved by the admission
        self.backend: LocalCounts | ClusterCounts | None = None  # None: nothing held
        self.requests: Usage | None = None
        self.token_usage: Usage | None = None
        self.at = 0  # when it was admitted (ms, this process's clock) and the day (its start, s) it counts in
        self.day = 0

    def held(self) -> tuple[Scope, ...]:
        return self.scopes if self.channel is None else (*self.scopes, self.channel)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """OpenAI's x-ratelimit-* headers for the tightest limits; none for a kind without a limit."""
        headers: list[tuple[bytes, bytes]] = []
        for names, usage in ((REQUEST_HEADERS, self.requests), (TOKEN_HEADERS, self.token_usage)):
            if usage is not None:
                limit, remaining, reset = names
                headers += ((limit, b"%d" % usage.limit), (remaining, b"%d" % usage.remaining),
                            (reset, duration(usage.reset_ms).encode()))
        return headers


REQUEST_HEADERS = (b"x-ratelimit-limit-requests", b"x-ratelimit-remaining-requests", b"x-ratelimit-reset-requests")
TOKEN_HEADERS = (b"x-ratelimit-limit-tokens", b"x-ratelimit-remaining-tokens", b"x-ratelimit-reset-tokens")


def duration(ms: int) -> str:
    """A span as OpenAI's reset headers write it (Go's duration format): "20ms", "1s", "6m0s", "1h2m3.5s"."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    if ms == 60_000:  # a window's full length: most answers' reset
        return "1m0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{seconds}s"


def _wait_text(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{math.ceil(seconds / 60)} min"
    return f"{seconds // 3600} h {math.ceil(seconds % 3600 / 60)} min"


# The longest Retry-After the openai SDK waits for (its MAX_RETRY_AFTER_DELAY); past it, it retries after its
# own backoff of a second or so.
SDK_MAX_WAIT = 120


def retry_seconds(refusal: Refusal) -> int:
    return max(1, math.ceil(refusal.retry_ms / 1000))


# A scope's kind by the first letter of its key (caps.Scope.key), as /metrics labels its refusals.
SCOPE_NAMES = {"t": "token", "u": "user", "g": "group", "m": "group_model", "c": "channel"}


def refused(refusal: Refusal, *, model: str, tokens: int) -> RelayError:
    """The client's 429, naming the scope and its limit."""
    wait = _wait_text(retry_seconds(refusal))
    kind = "tokens" if refusal.kind == "tpm" else "requests"  # OpenAI's error type for its own rate limits
    limit = limit_text(refusal.kind, refusal.limit)
    if refusal.scope is None:
        message = (f"The model {model} is at capacity: every channel serving it is at its limit of {limit}; "
                   f"retry in {wait}.")
        return RelayError(429, message, type=kind, code="model_capacity_exceeded")
    owner = refusal.scope.owner
    if refusal.too_large:
        message = (f"This request's estimated {tokens} tokens are more than {owner} limit of {limit}; "
                   f"send a smaller request or a lower max_tokens.")
    else:
        message = f"{owner[0].upper()}{owner[1:]} limit of {limit} is reached; retry in {wait}."
    return RelayError(429, message, type=kind, code="rate_limit_exceeded")


# --- where limits come from

_option_caps: dict[str, tuple[object, dict]] = {}


def _caps_option(key: str) -> dict:
    """A limits option as Caps, converted once per stored value (the options snapshot swaps its dicts)."""
    raw = options.get(key)
    hit = _option_caps.get(key)
    if hit is not None and hit[0] is raw:
        return hit[1]

    def caps(entry: dict) -> Caps:
        found = Caps(*(int(entry.get(kind) or 0) for kind in options.LIMIT_KINDS))
        return found if any(found) else NO_LIMITS

    if key == "GroupRateLimit":
        converted = {group: caps(entry) for group, entry in raw.items()}
    else:
        converted = {group: {model: caps(entry) for model, entry in models.items()} for group, models in raw.items()}
    _option_caps[key] = (raw, converted)
    return converted


def scopes_for(*, token, user, model: str) -> tuple[Scope, ...]:
    """The scopes with limits that a request of this key's, for `model`, counts in; () when none has one."""
    found: tuple[Scope, ...] = ()
    if any(token.limits):
        found += (Scope(f"t:{token.id}", "this API key's", token.limits),)
    if any(user.limits):
        found += (Scope(f"u:{user.id}", "your account's", user.limits),)
    group = user.group
    by_group = _caps_option("GroupRateLimit")
    if by_group:
        caps = by_group.get(group, NO_LIMITS)
        if caps is not NO_LIMITS:
            found += (Scope(f"g:{group}", f"the group {group}'s", caps),)
    by_model = _caps_option("GroupModelRateLimit")
    if by_model:
        caps = by_model.get(group, {}).get(model, NO_LIMITS)
        if caps is not NO_LIMITS:
            found += (Scope(f"m:{len(group)}:{group}:{model}", f"the group {group}'s {model}", caps),)
    return found


def channel_scope(channel) -> Scope | None:
    """A channel's own caps as a scope; None for a channel without any."""
    if not any(channel.limits):
        return None
    return Scope(f"c:{channel.id}", f"channel {channel.id}'s", Caps(*channel.limits))


# --- the limiter


class Limiter:
    def __init__(self) -> None:
        self.local = LocalCounts()
        # Tests set a clock (seconds); without one, Redis's own clock times its windows (instances' clocks
        # may differ) and this process's clock the local ones.
        self.clock: Callable[[], float] | None = None
        self._cluster: ClusterCounts | None = None
        self._down = False
        self._retry_at = 0.0
        self._day = (0, 0)  # the current day's start (s) and end (ms)
        self._leases: dict[str, tuple[str, ...]] = {}  # request id -> scope keys of its Redis leases
        self._renewer: asyncio.Task | None = None
        # Ends of requests not yet sent to Redis: the next admission carries them, or after END_DELAY a call of
        # their own, which takes all that queued up meanwhile.
        self._ended: list[tuple[ClusterCounts, tuple]] = []
        self._ender: asyncio.Task | None = None
        self._end_timer: asyncio.TimerHandle | None = None
        self._orphans: set[asyncio.Future] = set()  # admissions still under way for clients that left

    def reset(self) -> None:
        """Forget every count (tests)."""
        self.__init__()

    # ---- backends and outages

    def _backend(self) -> LocalCounts | ClusterCounts:
        url = settings.REDIS_CONN_STRING
        if not url or (self._down and time.monotonic() < self._retry_at):
            return self.local
        if self._cluster is None or self._cluster.url != url:
            self._cluster = ClusterCounts(url)
        return self._cluster

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if not self._down:
            self._down = True
            # redis-py's message names host and port at most, never the password of REDIS_CONN_STRING.
            log.warning("Rate limits are counted in this process until Redis answers again (%s: %s)",
                        type(exc).__name__, exc)

    def _succeeded(self) -> None:
        if self._down:
            self._down = False
            log.warning("Rate limits are counted in Redis again")

    def _now(self) -> tuple[int | None, int]:
        """(now for Redis: None to use its clock; now here), in ms."""
        if self.clock is not None:
            now = int(self.clock() * 1000)
            return now, now
        return None, int(time.time() * 1000)

    def _today(self, now_ms: int) -> tuple[int, int]:
        start, end = self._day
        if now_ms >= end or now_ms < start * 1000:
            ts = now_ms // 1000
            start, end = budgets.period_start(BudgetPeriod.DAY, ts), budgets.period_end(BudgetPeriod.DAY, ts) * 1000
            self._day = (start, end)
        return start, end

    # ---- admission and its end

    async def admit(self, ticket: Ticket, *, scopes: tuple[Scope, ...], channels: tuple[Scope | None, ...],
                    tokens: int, model: str) -> int:
        """Count the request in `scopes` and in the first of `channels` with room (None: a channel without caps,
        which always has room); the index of that channel. A RelayError (429) when a limit is reached, with
        its Retry-After and x-ratelimit-* `headers`."""
        capped: tuple[Scope, ...] = ()
        for scope in channels:
            if scope is None:
                break
            capped += (scope,)
        spare = len(capped) < len(channels)  # a channel without caps follows the capped ones
        redis_now, now = self._now()
        day, day_end = self._today(now)
        backend, answer = await self._admit(scopes, capped, spare, ticket.rid, tokens, redis_now, now, day, day_end)
        if isinstance(answer, Refusal):
            raise self._refusal(answer, model=model, tokens=tokens)
        index, ticket.requests, ticket.token_usage = answer
        ticket.scopes, ticket.tokens, ticket.backend, ticket.at, ticket.day = scopes, tokens, backend, now, day
        ticket.channel = capped[index] if 0 <= index < len(capped) else None
        self._track(ticket)
        return max(index, 0)

    async def _admit(self, scopes, channels, spare, rid, tokens, redis_now, now, day, day_end):
        backend = self._backend()
        if backend is not self.local:
            carried = [end for end in self._ended if end[0] is backend]
            if carried:
                self._ended = [end for end in self._ended if end[0] is not backend]
            call = asyncio.ensure_future(backend.admit(
                scopes=scopes, channels=channels, spare=spare, rid=rid, tokens=tokens, now=redis_now, day=day,
                day_end=day_end, ended=[item for _, item in carried]))
            try:
                # Shielded: the call also carries other requests' ends, and what Redis admits for a client that
                # left meanwhile must be undone once it answers, not held until its lease lapses.
                answer = await asyncio.shield(call)
            except asyncio.CancelledError:
                self._orphans.add(call)
                call.add_done_callback(self._orphans.discard)
                call.add_done_callback(lambda done: self._undo(done, backend, rid, scopes, channels, tokens, day))
                raise
            except _UNAVAILABLE as exc:
                self._failed(exc)
                # Redis may have run the script and lost only its answer (a timeout): the carried ends go again,
                # and so does this request's (over every channel it may have been given), so a lease it took
                # there does not hold a place for LEASE_MS. Ending what Redis never took changes nothing.
                self._ended += carried
                self._queue_end(backend, (rid, scopes + channels, tokens, 0, None))
            else:
                self._succeeded()
                return backend, answer
        return self.local, self.local.admit(scopes=scopes, channels=channels, spare=spare, rid=rid, tokens=tokens,
                                            now=now, day=day, day_end=day_end)

    def _undo(self, call: asyncio.Future, backend: ClusterCounts, rid: str, scopes: tuple[Scope, ...],
              channels: tuple[Scope, ...], tokens: int, day: int) -> None:
        """An admission whose request was gone by the time Redis answered: undone with the next call."""
        if call.cancelled() or call.exception() is not None or isinstance(call.result(), Refusal):
            return
        index = call.result()[0]
        held = scopes + ((channels[index],) if 0 <= index < len(channels) else ())
        self._queue_end(backend, (rid, held, tokens, 0, day))

    def _refusal(self, refusal: Refusal, *, model: str, tokens: int) -> RelayError:
        err = refused(refusal, model=model, tokens=tokens)
        metrics.record_refusal(SCOPE_NAMES[refusal.scope.key[0]] if refusal.scope else "model_channels")
        usage = Usage(refusal.limit, refusal.remaining, refusal.retry_ms)
        ticket = Ticket("")
        if refusal.kind in ("rpm", "rpd"):
            ticket.requests = usage
        elif refusal.kind == "tpm":
            ticket.token_usage = usage
        if refusal.too_large:
            # No wait lets it through: the SDKs honour x-should-retry (a Retry-After of 60 s had the openai
            # SDK wait two minutes for it).
            err.headers = ((b"x-should-retry", b"false"), *ticket.headers())
            return err
        wait = retry_seconds(refusal)
        err.headers = ((b"retry-after", b"%d" % wait), *ticket.headers())
        if wait > SDK_MAX_WAIT:  # a day's limit: the SDKs would retry within seconds instead, to be refused again
            err.headers = ((b"x-should-retry", b"false"), *err.headers)
        return err

    async def switch_channel(self, ticket: Ticket, channels: tuple[Scope | None, ...], *, model: str) -> int | None:
        """Failover: the failed channel's lease goes, and the next channel with room (index in `channels`) is
        counted; None when every one is at its cap."""
        if ticket.channel is not None:
            failed, ticket.channel = ticket.channel, None
            await self._finish(ticket.backend, ticket.rid, (failed,), ticket.tokens, 0)
        if not channels or channels[0] is None:
            return 0
        sub = Ticket(ticket.rid)
        try:
            index = await self.admit(sub, scopes=(), channels=channels, tokens=ticket.tokens, model=model)
        except RelayError:
            return None
        if sub.channel is None:
            return index
        if ticket.backend is not None and sub.backend is not ticket.backend:
            # Redis went away (or came back) between the admissions: one ticket holds counts in one place, so
            # this channel's goes at once (its request counted; its lease not held).
            await self._finish(sub.backend, sub.rid, (sub.channel,), sub.tokens, None)
        else:
            ticket.channel, ticket.backend = sub.channel, sub.backend
        self._untrack(ticket)
        self._track(ticket)
        return index

    async def finish(self, ticket: Ticket, *, tokens: int | None) -> None:
        """The request ended: leases released, TPM corrected to `tokens` (None: as reserved)."""
        held = ticket.held()
        if ticket.backend is None or not held:
            return
        self._untrack(ticket)
        await self._finish(ticket.backend, ticket.rid, held, ticket.tokens, tokens)
        ticket.backend = None

    async def undo(self, ticket: Ticket) -> None:
        """The request never reached an upstream (the quota or a budget refused it, or its client left first):
        it leaves every count, requests per minute and per day too, as if it had never been admitted."""
        held = ticket.held()
        backend, ticket.backend = ticket.backend, None
        if backend is None or not held:
            return
        self._untrack(ticket)
        if backend is self.local:
            self.local.undo(rid=ticket.rid, scopes=held, at=ticket.at, day=ticket.day)
        else:
            self._queue_end(backend, (ticket.rid, held, ticket.tokens, 0, ticket.day))

    async def _finish(self, backend, rid: str, scopes: tuple[Scope, ...], reserved: int, tokens: int | None) -> None:
        if backend is self.local:
            self.local.finish(rid=rid, scopes=scopes, tokens=tokens)
            return
        # Not waited for: the answer has gone, and the request is done with; the next admission of this process
        # carries its end, or a call of its own does after END_DELAY (a task of the limiter's, which a client
        # that leaves cannot cut off).
        self._queue_end(backend, (rid, scopes, reserved, tokens, None))

    def _queue_end(self, backend: ClusterCounts, end: tuple) -> None:
        self._ended.append((backend, end))
        if self._end_timer is None:
            self._end_timer = asyncio.get_running_loop().call_later(END_DELAY, self._send_ends_soon)

    async def drain(self) -> None:
        """Send the ends of requests still waiting for a call, and wait for the calls under way (tests, shutdown)."""
        if self._orphans:
            await asyncio.gather(*self._orphans, return_exceptions=True)
        if self._end_timer is not None:
            self._end_timer.cancel()
            self._end_timer = None
        while self._ended or (self._ender is not None and not self._ender.done()):
            if self._ender is None or self._ender.done():
                self._ender = asyncio.get_running_loop().create_task(self._send_ends())
            await asyncio.shield(self._ender)

    def _send_ends_soon(self) -> None:
        self._end_timer = None
        if self._ended and (self._ender is None or self._ender.done()):
            self._ender = asyncio.get_running_loop().create_task(self._send_ends())

    async def _send_ends(self) -> None:
        while self._ended:
            ended, self._ended = self._ended, []
            backends = {id(backend): backend for backend, _ in ended}
            for key, backend in backends.items():
                try:
                    await backend.finish([item for b, item in ended if id(b) == key], self._now()[0])
                except _UNAVAILABLE as exc:
                    self._failed(exc)  # the leases lapse within LEASE_MS
                except Exception:  # a bug of ours: logged, and the leases lapse within LEASE_MS
                    log.exception("rate limits: releasing requests' leases failed")

    # ---- lease renewal for long requests

    def _track(self, ticket: Ticket) -> None:
        if ticket.backend is self.local:
            return
        keys = tuple(scope.key for scope in ticket.held() if scope.caps.concurrency)
        if not keys:
            return
        self._leases[ticket.rid] = keys
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_leases())

    def _untrack(self, ticket: Ticket) -> None:
        self._leases.pop(ticket.rid, None)

    async def _renew_leases(self) -> None:
        while self._leases:
            await asyncio.sleep(LEASE_MS / 3000)
            await self.renew_leases()

    async def renew_leases(self) -> None:
        """Push back the expiry of the Redis leases of this process's requests still running."""
        leases = [(key, rid) for rid, keys in list(self._leases.items()) for key in keys]
        if not leases or self._cluster is None:
            return
        try:
            await self._cluster.renew(leases, self._now()[0])
        except _UNAVAILABLE as exc:
            self._failed(exc)


limiter = Limiter()

