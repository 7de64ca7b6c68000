"""The limiter's counters, in this process and in Redis (the same cases on both), on an injected clock."""

from __future__ import annotations

import asyncio
import random

import pytest
from django.conf import settings

from relay.errors import RelayError
from relay.limits import Limiter, Ticket
from relay.limits.caps import WINDOW_MS, Caps, Refusal, Scope
from relay.limits.cluster import LEASE_MS, PREFIX, ClusterCounts
from relay.limits.local import LocalCounts

DAY_END = 86_400_000
REDIS = settings.REDIS_CONN_STRING  # as the run configures it (the environment or .env)


class Counts:
    """One backend behind one synchronous-looking face: `admit` and `finish` at a given time (ms)."""

    def __init__(self, backend) -> None:
        self.backend = backend

    async def admit(self, *scopes: Scope, at: int, rid: str, tokens: int = 1, channels: tuple[Scope, ...] = (),
                    spare: bool = False, day: int = 0, day_end: int = DAY_END):
        answer = self.backend.admit(scopes=scopes, channels=channels, spare=spare, rid=rid, tokens=tokens, now=at,
                                    day=day, day_end=day_end)
        return await answer if isinstance(self.backend, ClusterCounts) else answer

    async def finish(self, *scopes: Scope, rid: str, at: int, reserved: int, tokens: int | None) -> None:
        if isinstance(self.backend, ClusterCounts):
            await self.backend.finish([(rid, scopes, reserved, tokens, None)], at)
        else:
            self.backend.finish(rid=rid, scopes=scopes, tokens=tokens)

    async def undo(self, *scopes: Scope, rid: str, admitted: int, at: int, reserved: int, day: int = 0) -> None:
        """The request admitted at `admitted` never reached an upstream: out of every count."""
        if isinstance(self.backend, ClusterCounts):
            await self.backend.finish([(rid, scopes, reserved, 0, day)], at)
        else:
            self.backend.undo(rid=rid, scopes=scopes, at=admitted, day=day)


@pytest.fixture(params=["local", "redis"])
async def counts(request):
    if request.param == "local":
        yield Counts(LocalCounts())
        return
    if not REDIS:
        pytest.skip("REDIS_CONN_STRING is not set")
    import redis

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)
    yield Counts(ClusterCounts(REDIS))
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)
    client.close()


def key_scope(caps: Caps, name: str = "t:1") -> Scope:
    return Scope(name, "this API key's", caps)


async def test_rpm_admits_the_limit_and_refuses_one_more_until_the_oldest_leaves(counts):
    scope = key_scope(Caps(rpm=3))
    for i, at in enumerate((0, 10_000, 20_000)):
        admitted = await counts.admit(scope, at=at, rid=f"r{i}")
        assert not isinstance(admitted, Refusal)
    refused = await counts.admit(scope, at=59_999, rid="r3")
    assert isinstance(refused, Refusal) and (refused.kind, refused.limit, refused.retry_ms) == ("rpm", 3, 1)
    # At 60 s the first request is 60 s old: it no longer counts (the window is (now - 60 s, now]).
    index, requests, _ = await counts.admit(scope, at=60_000, rid="r4")
    assert (requests.limit, requests.remaining) == (3, 0)
    refused = await counts.admit(scope, at=60_001, rid="r5")
    assert isinstance(refused, Refusal) and refused.retry_ms == 10_000 + WINDOW_MS - 60_001


async def test_rpm_never_admits_more_than_the_limit_in_any_window(counts):
    scope = key_scope(Caps(rpm=5))
    rng = random.Random(11)
    at, admitted = 0, []
    for i in range(300):
        at += rng.randrange(0, 4_000)
        if not isinstance(await counts.admit(scope, at=at, rid=f"r{i}"), Refusal):
            admitted.append(at)
    assert len(admitted) > 20
    for start in admitted:  # every window that starts at an admission holds at most the limit
        assert sum(start <= t < start + WINDOW_MS for t in admitted) <= 5


async def test_remaining_and_reset_count_down_in_the_window(counts):
    scope = key_scope(Caps(rpm=3, tpm=100))
    _, requests, tokens = await counts.admit(scope, at=1_000, rid="a", tokens=30)
    assert (requests.limit, requests.remaining, requests.reset_ms) == (3, 2, WINDOW_MS)
    assert (tokens.limit, tokens.remaining, tokens.reset_ms) == (100, 70, WINDOW_MS)
    _, requests, tokens = await counts.admit(scope, at=21_000, rid="b", tokens=30)
    assert (requests.remaining, requests.reset_ms) == (1, WINDOW_MS - 20_000)  # until the first one leaves
    assert (tokens.remaining, tokens.reset_ms) == (40, WINDOW_MS - 20_000)


async def test_tpm_reserves_the_estimate_and_is_corrected_to_what_was_billed(counts):
    scope = key_scope(Caps(tpm=100))
    assert not isinstance(await counts.admit(scope, at=0, rid="a", tokens=40), Refusal)
    assert not isinstance(await counts.admit(scope, at=1_000, rid="b", tokens=40), Refusal)
    refused = await counts.admit(scope, at=2_000, rid="c", tokens=40)
    assert isinstance(refused, Refusal) and refused.kind == "tpm" and refused.retry_ms == WINDOW_MS - 2_000
    await counts.finish(scope, rid="a", at=2_500, reserved=40, tokens=10)  # it used 10 of its 40
    _, _, tokens = await counts.admit(scope, at=3_000, rid="c", tokens=40)
    assert tokens.remaining == 100 - 10 - 40 - 40
    await counts.finish(scope, rid="b", at=3_500, reserved=40, tokens=55)  # and this one more than its estimate
    refused = await counts.admit(scope, at=4_000, rid="d", tokens=1)
    assert isinstance(refused, Refusal)
    # Once "a" (10) leaves, 10 + 55 + 40 - 10 = 95 leaves room for 5.
    assert not isinstance(await counts.admit(scope, at=WINDOW_MS, rid="e", tokens=5), Refusal)


async def test_a_request_larger_than_the_tpm_limit_is_refused_as_too_large(counts):
    scope = key_scope(Caps(tpm=100))
    refused = await counts.admit(scope, at=0, rid="a", tokens=101)
    assert isinstance(refused, Refusal) and refused.too_large and refused.remaining == 100
    await counts.admit(scope, at=0, rid="b", tokens=30)
    refused = await counts.admit(scope, at=1, rid="c", tokens=101)
    assert refused.too_large and refused.remaining == 70  # what the window has left, not 0


async def test_an_undone_request_counts_in_no_limit(counts):
    scope = key_scope(Caps(rpm=3, tpm=100, concurrency=1, rpd=3))
    await counts.admit(scope, at=0, rid="a", tokens=40)
    await counts.undo(scope, rid="a", admitted=0, at=5, reserved=40)
    _, requests, tokens = await counts.admit(scope, at=10, rid="b", tokens=40)  # the lease "a" held is free too
    assert requests.remaining == 2  # "a" is in neither the minute's nor the day's count
    assert tokens.remaining == 100 - 40
    await counts.finish(scope, rid="b", at=20, reserved=40, tokens=None)
    _, requests, tokens = await counts.admit(scope, at=30, rid="c", tokens=40)
    assert requests.remaining == 1 and tokens.remaining == 100 - 80
    refused = await counts.admit(scope, at=40, rid="d")
    assert isinstance(refused, Refusal) and refused.kind == "concurrency"  # "c" is in flight


async def test_an_undo_sent_twice_takes_the_request_off_the_days_count_once(counts):
    # A call that timed out after Redis ran it is sent again with the ends it carried.
    scope = key_scope(Caps(rpd=2))
    await counts.admit(scope, at=0, rid="a")
    await counts.admit(scope, at=1, rid="b")
    await counts.undo(scope, rid="a", admitted=0, at=2, reserved=1)
    if isinstance(counts.backend, ClusterCounts):
        await counts.undo(scope, rid="a", admitted=0, at=3, reserved=1)
    assert not isinstance(await counts.admit(scope, at=4, rid="c"), Refusal)
    assert isinstance(await counts.admit(scope, at=5, rid="d"), Refusal)


async def test_concurrency_counts_requests_in_flight(counts):
    scope = key_scope(Caps(concurrency=2))
    await counts.admit(scope, at=0, rid="a")
    await counts.admit(scope, at=0, rid="b")
    refused = await counts.admit(scope, at=5, rid="c")
    assert isinstance(refused, Refusal) and (refused.kind, refused.limit) == ("concurrency", 2)
    await counts.finish(scope, rid="a", at=6, reserved=1, tokens=None)
    assert not isinstance(await counts.admit(scope, at=7, rid="c"), Refusal)


async def test_rpd_counts_per_day_and_starts_again_the_next(counts):
    scope = key_scope(Caps(rpd=2))
    await counts.admit(scope, at=1_000, rid="a", day=0, day_end=DAY_END)
    _, requests, _ = await counts.admit(scope, at=2_000, rid="b", day=0, day_end=DAY_END)
    assert (requests.limit, requests.remaining, requests.reset_ms) == (2, 0, DAY_END - 2_000)
    refused = await counts.admit(scope, at=3_000, rid="c", day=0, day_end=DAY_END)
    assert isinstance(refused, Refusal) and (refused.kind, refused.retry_ms) == ("rpd", DAY_END - 3_000)
    admitted = await counts.admit(scope, at=DAY_END, rid="d", day=86_400, day_end=2 * DAY_END)
    assert not isinstance(admitted, Refusal)


async def test_nothing_is_counted_when_one_scope_refuses(counts):
    key, user = key_scope(Caps(rpm=5)), Scope("u:1", "your account's", Caps(rpm=1))
    await counts.admit(key, user, at=0, rid="a")
    for i in range(3):
        assert isinstance(await counts.admit(key, user, at=1 + i, rid=f"x{i}"), Refusal)
    _, requests, _ = await counts.admit(key, at=10, rid="b")
    assert requests.remaining == 3  # the key counted "a" and "b" only


async def test_the_first_channel_with_room_is_taken(counts):
    first, second = Scope("c:1", "channel 1's", Caps(rpm=1)), Scope("c:2", "channel 2's", Caps(rpm=1))
    assert (await counts.admit(at=0, rid="a", channels=(first, second)))[0] == 0
    assert (await counts.admit(at=1, rid="b", channels=(first, second)))[0] == 1
    refused = await counts.admit(at=2, rid="c", channels=(first, second))
    assert isinstance(refused, Refusal) and refused.scope is None and refused.retry_ms == WINDOW_MS - 2
    # With a channel without caps after them, that one takes it.
    assert (await counts.admit(at=3, rid="d", channels=(first, second), spare=True))[0] == 2


async def test_a_channel_refusal_leaves_the_requests_own_scopes_uncounted(counts):
    key, full = key_scope(Caps(rpm=2)), Scope("c:1", "channel 1's", Caps(rpm=1))
    await counts.admit(at=0, rid="a", channels=(full,))
    assert isinstance(await counts.admit(key, at=1, rid="b", channels=(full,)), Refusal)
    _, requests, _ = await counts.admit(key, at=2, rid="c")
    assert requests.remaining == 1


async def test_a_lease_in_redis_lapses_unless_renewed():
    if not REDIS:
        pytest.skip("REDIS_CONN_STRING is not set")
    counts = Counts(ClusterCounts(REDIS))
    import redis

    redis.Redis.from_url(REDIS).delete(*[f"{PREFIX}t:lease:c", f"{PREFIX}t:kept:c"])
    lapsing, kept = key_scope(Caps(concurrency=1), "t:lease"), key_scope(Caps(concurrency=1), "t:kept")
    await counts.admit(lapsing, at=0, rid="dead-instance")
    await counts.admit(kept, at=0, rid="long-stream")
    await counts.backend.renew([("t:kept", "long-stream")], LEASE_MS // 2)
    assert isinstance(await counts.admit(lapsing, at=LEASE_MS - 1, rid="b"), Refusal)
    assert not isinstance(await counts.admit(lapsing, at=LEASE_MS, rid="b"), Refusal)
    assert isinstance(await counts.admit(kept, at=LEASE_MS, rid="c"), Refusal)


@pytest.fixture(params=["local", "redis"])
def any_limiter(request, settings):
    if request.param == "redis":
        return request.getfixturevalue("redis_limiter")
    settings.REDIS_CONN_STRING = ""
    limiter = Limiter()
    limiter.clock = lambda: 1_800_000_000.0
    return limiter


async def test_failover_releases_the_failed_channels_lease(any_limiter):
    limiter = any_limiter
    first, second = Scope("c:1", "channel 1's", Caps(concurrency=1)), Scope("c:2", "channel 2's", Caps(concurrency=1))
    ticket = Ticket("a")
    assert await limiter.admit(ticket, scopes=(), channels=(first,), tokens=1, model="m") == 0
    assert await limiter.switch_channel(ticket, (second,), model="m") == 0
    assert ticket.channel is second
    # While "a" runs on channel 2, channel 1 has room again and channel 2 has none.
    other = Ticket("b")
    assert await limiter.admit(other, scopes=(), channels=(second, first), tokens=1, model="m") == 1
    await limiter.finish(ticket, tokens=None)
    assert await limiter.admit(Ticket("c"), scopes=(), channels=(second,), tokens=1, model="m") == 0


@pytest.fixture
def redis_limiter(settings):
    if not REDIS:
        pytest.skip("REDIS_CONN_STRING is not set")
    import redis

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)
    client.close()
    settings.REDIS_CONN_STRING = REDIS
    limiter = Limiter()
    limiter.clock = lambda: 1_800_000_000.0
    return limiter


async def test_requests_ending_together_release_their_leases_in_redis(redis_limiter):
    scope = key_scope(Caps(concurrency=20), "t:together")
    tickets = [Ticket(f"r{i}") for i in range(20)]
    for ticket in tickets:
        await redis_limiter.admit(ticket, scopes=(scope,), channels=(), tokens=1, model="m")
    with pytest.raises(RelayError):
        await redis_limiter.admit(Ticket("over"), scopes=(scope,), channels=(), tokens=1, model="m")
    await asyncio.gather(*(redis_limiter.finish(ticket, tokens=None) for ticket in tickets))
    for i in range(20):
        await redis_limiter.admit(Ticket(f"again{i}"), scopes=(scope,), channels=(), tokens=1, model="m")


async def test_a_requests_end_goes_to_redis_with_the_next_admission(redis_limiter):
    import redis

    client = redis.Redis.from_url(REDIS)
    scope = key_scope(Caps(concurrency=1), "t:carried")
    ticket = Ticket("a")
    await redis_limiter.admit(ticket, scopes=(scope,), channels=(), tokens=1, model="m")
    await redis_limiter.finish(ticket, tokens=None)
    assert client.zcard(f"{PREFIX}t:carried:c") == 1  # not sent yet: the next admission carries it
    await redis_limiter.admit(Ticket("b"), scopes=(scope,), channels=(), tokens=1, model="m")
    assert client.zrange(f"{PREFIX}t:carried:c", 0, -1) == [b"b"]
    await redis_limiter.finish(Ticket("b"), tokens=None)
    client.close()


async def test_an_end_no_admission_carries_goes_on_its_own(redis_limiter):
    import redis

    scope = key_scope(Caps(concurrency=1), "t:alone")
    ticket = Ticket("a")
    await redis_limiter.admit(ticket, scopes=(scope,), channels=(), tokens=1, model="m")
    await redis_limiter.finish(ticket, tokens=None)
    assert redis_limiter._end_timer is not None  # due in END_DELAY
    await redis_limiter.drain()  # what the timer does then
    client = redis.Redis.from_url(REDIS)
    assert client.zcard(f"{PREFIX}t:alone:c") == 0
    client.close()


def test_the_process_forgets_scopes_that_hold_nothing(monkeypatch):
    from relay.limits import local

    monkeypatch.setattr(local, "SWEEP_EVERY", 3)
    counts = LocalCounts()
    busy, done = key_scope(Caps(concurrency=1), "t:busy"), key_scope(Caps(rpm=5), "t:done")
    counts.admit(scopes=(busy,), channels=(), spare=False, rid="a", tokens=1, now=0, day=0, day_end=DAY_END)
    counts.admit(scopes=(done,), channels=(), spare=False, rid="b", tokens=1, now=0, day=0, day_end=DAY_END)
    assert set(counts.scopes) == {"t:busy", "t:done"}
    counts.admit(scopes=(), channels=(), spare=False, rid="c", tokens=1, now=WINDOW_MS, day=0, day_end=DAY_END)
    assert set(counts.scopes) == {"t:busy"}  # "b" left the window; "a" is still in flight


async def test_a_corrected_tpm_log_in_redis_still_expires_with_its_total():
    if not REDIS:
        pytest.skip("REDIS_CONN_STRING is not set")
    import redis

    client = redis.Redis.from_url(REDIS)
    client.delete(f"{PREFIX}t:expiring:t", f"{PREFIX}t:expiring:tt")
    counts = Counts(ClusterCounts(REDIS))
    scope = key_scope(Caps(tpm=100), "t:expiring")
    await counts.admit(scope, at=0, rid="only", tokens=40)
    await counts.finish(scope, rid="only", at=10, reserved=40, tokens=10)  # its only entry, replaced
    assert client.pttl(f"{PREFIX}t:expiring:t") > 0 and client.pttl(f"{PREFIX}t:expiring:tt") > 0
    assert int(client.get(f"{PREFIX}t:expiring:tt")) == 10
    client.close()


async def test_the_leases_of_running_requests_are_renewed_and_lapse_once_their_instance_stops(redis_limiter):
    now = [1_800_000_000.0]
    redis_limiter.clock = lambda: now[0]
    scope = key_scope(Caps(concurrency=1), "t:renewed")
    await redis_limiter.admit(Ticket("long-stream"), scopes=(scope,), channels=(), tokens=1, model="m")
    now[0] += LEASE_MS / 2000
    await redis_limiter.renew_leases()  # what the running process does every LEASE_MS / 3
    now[0] += LEASE_MS / 2000 + 1
    with pytest.raises(RelayError):  # past the first expiry, the renewed lease still holds
        await redis_limiter.admit(Ticket("b"), scopes=(scope,), channels=(), tokens=1, model="m")
    # The process died: nobody renews; a lease's length after its last renewal the slot is free.
    now[0] += LEASE_MS / 2000
    await redis_limiter.admit(Ticket("c"), scopes=(scope,), channels=(), tokens=1, model="m")


@pytest.mark.parametrize(("ms", "text"), [
    (0, "0s"), (20, "20ms"), (999, "999ms"), (1000, "1s"), (1500, "1.5s"), (46_500, "46.5s"), (60_000, "1m0s"),
    (360_000, "6m0s"), (3_723_500, "1h2m3.5s"), (57_600_000, "16h0m0s"),
])
def test_reset_times_are_written_as_openai_writes_them(ms, text):
    from relay.limits import duration

    assert duration(ms) == text


async def test_a_client_that_leaves_while_redis_admits_it_holds_no_lease(redis_limiter):
    import redis

    scope = key_scope(Caps(rpm=10, concurrency=1), "t:left")
    admitting = asyncio.ensure_future(
        redis_limiter.admit(Ticket("gone"), scopes=(scope,), channels=(), tokens=1, model="m"))
    await asyncio.sleep(0)  # the script call is on its way
    admitting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await admitting
    await redis_limiter.drain()
    client = redis.Redis.from_url(REDIS)
    # Redis admitted it all the same (the call, which may carry other requests' ends, is not cut off), and it is
    # undone once the answer comes: it never reached an upstream, so it holds neither its lease nor its minute's
    # request.
    assert client.zcard(f"{PREFIX}t:left:r") == 0 and client.zcard(f"{PREFIX}t:left:c") == 0
    client.close()
    await redis_limiter.admit(Ticket("next"), scopes=(scope,), channels=(), tokens=1, model="m")


async def test_an_admission_whose_answer_from_redis_is_lost_holds_no_lease_there(redis_limiter, monkeypatch):
    import redis

    scope = key_scope(Caps(concurrency=1), "t:lost")
    backend = redis_limiter._backend()
    real = backend.admit

    async def answer_lost(**kwargs):
        await real(**kwargs)  # Redis has run the script and taken a lease
        raise redis.TimeoutError("Timeout reading from socket")  # and its answer never came

    monkeypatch.setattr(backend, "admit", answer_lost)
    ticket = Ticket("lost")
    await redis_limiter.admit(ticket, scopes=(scope,), channels=(), tokens=1, model="m")
    assert ticket.backend is redis_limiter.local  # counted in this process instead
    await redis_limiter.finish(ticket, tokens=1)
    await redis_limiter.drain()
    client = redis.Redis.from_url(REDIS)
    assert client.zcard(f"{PREFIX}t:lost:c") == 0
    client.close()
