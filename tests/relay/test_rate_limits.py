"""Rate limits on `/v1` through the ASGI app, per scope and kind, counted in this process and in Redis.

Time is the limiter's injected clock: a test moves it past a window instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.conf import settings

from accounts.models import Token, User
from billing import pricing, shared_quota
from billing.services import option_set
from providers.models import Channel
from relay import admission
from relay.cache import cache
from relay.limits import limiter
from relay.limits.cluster import PREFIX
from tests.e2e.servers import closed_port_url

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
REDIS = settings.REDIS_CONN_STRING  # as the run configures it (the environment or .env)
START = 1_800_000_000.0  # a Friday, 08:00 UTC


@pytest.fixture(params=["local", "redis"])
def backend(request, settings):
    """Where the limits are counted: this process, or Redis (when the run has one)."""
    if request.param == "redis":
        if not REDIS:
            pytest.skip("REDIS_CONN_STRING is not set")
        import redis

        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"{PREFIX}*"):
            client.delete(key)
        client.close()
        settings.REDIS_CONN_STRING = REDIS
    else:
        settings.REDIS_CONN_STRING = ""
    return request.param


@pytest.fixture
def clock():
    now = [START]
    limiter.clock = lambda: now[0]
    yield now
    limiter.clock = None


async def limit(model, pk: int, **fields) -> None:
    await sync_to_async(lambda: model.objects.filter(pk=pk).update(**fields))()
    cache.clear()


async def chat(client, world, body=None, **headers):
    return await client.post("/v1/chat/completions", content=orjson.dumps(body or CHAT),
                             headers={**world.auth, "content-type": "application/json", **headers})


def estimate(body: dict) -> int:
    """The tokens the relay reserves for `body` as sent by `chat`."""
    return pricing.estimate_prompt_tokens(len(orjson.dumps(body))) + body.get("max_tokens", 0)


async def test_a_keys_rpm_refuses_the_request_over_it_then_the_next_window_admits(client, world, backend, clock):
    await limit(Token, world.token.pk, rpm_limit=2)
    first = await chat(client, world)
    assert first.status_code == 200
    assert (first.headers["x-ratelimit-limit-requests"], first.headers["x-ratelimit-remaining-requests"],
            first.headers["x-ratelimit-reset-requests"]) == ("2", "1", "1m0s")
    assert "x-ratelimit-limit-tokens" not in first.headers  # no token limit applies
    clock[0] += 12
    second = await chat(client, world)
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert second.headers["x-ratelimit-reset-requests"] == "48s"  # until the first one leaves the window
    clock[0] += 1.5
    refused = await chat(client, world)
    assert refused.status_code == 429
    assert refused.headers.get_list("retry-after") == ["47"]  # 46.5 s, rounded up; once
    assert "x-should-retry" not in refused.headers  # the SDKs wait the Retry-After and send it again
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "46.5s"
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert error["message"].startswith("This API key's limit of 2 requests per minute is reached; retry in 47 s.")
    assert len(world.upstream.requests) == 2
    clock[0] = START + 60
    assert (await chat(client, world)).status_code == 200


async def test_a_users_tpm_counts_the_estimate_and_then_the_tokens_billed(client, world, backend, clock):
    await limit(User, world.user.pk, tpm_limit=150)
    body = {**CHAT, "max_tokens": 100}
    billed = 11 + 7  # the mock's usage
    first = await chat(client, world, body)
    assert first.headers["x-ratelimit-remaining-tokens"] == str(150 - estimate(body))
    # The first request is counted at what it was billed now, so a second estimate fits.
    second = await chat(client, world, body)
    assert second.status_code == 200, second.text
    assert second.headers["x-ratelimit-remaining-tokens"] == str(150 - billed - estimate(body))
    larger = {**CHAT, "max_tokens": 110}
    assert 150 - 2 * billed < estimate(larger) <= 150
    refused = await chat(client, world, larger)
    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith("Your account's limit of 150 tokens per minute is reached")
    assert refused.json()["error"]["type"] == "tokens"
    assert refused.headers["x-ratelimit-limit-tokens"] == "150" and refused.headers["retry-after"] == "60"
    clock[0] += 60
    assert (await chat(client, world, larger)).status_code == 200


async def test_a_request_larger_than_a_tpm_limit_says_so(client, world, backend, clock):
    await limit(Token, world.token.pk, tpm_limit=50)
    refused = await chat(client, world, {**CHAT, "max_tokens": 100})
    assert refused.status_code == 429
    assert "are more than this API key's limit of 50 tokens per minute" in refused.json()["error"]["message"]
    # No wait makes it pass: the SDKs (openai, anthropic) must not retry it. Before, its Retry-After of 60 s had
    # the openai SDK wait twice, two minutes, before failing (found with the SDK from a fresh clone).
    assert refused.headers["x-should-retry"] == "false"
    assert "x-should-retry" in refused.headers["access-control-expose-headers"]  # the SDKs in a browser too
    assert "retry-after" not in refused.headers


async def test_a_request_larger_than_a_tpm_limit_is_told_what_is_really_left(client, world, backend, clock):
    await limit(Token, world.token.pk, tpm_limit=100)
    assert (await chat(client, world)).status_code == 200
    refused = await chat(client, world, {**CHAT, "max_tokens": 200})
    assert refused.status_code == 429
    # Not 0: the window has the limit less the first request's tokens billed (the mock's usage) left.
    assert refused.headers["x-ratelimit-remaining-tokens"] == str(100 - (11 + 7))
    assert refused.headers["x-ratelimit-limit-tokens"] == "100"


async def test_a_negative_max_completion_tokens_takes_nothing_off_the_tpm_estimate(client, world, backend, clock):
    await limit(Token, world.token.pk, tpm_limit=50)
    long = {**CHAT, "messages": [{"role": "user", "content": "word " * 100}]}  # some 170 tokens estimated
    refused = await chat(client, world, {**long, "max_tokens": 0, "max_completion_tokens": -10_000})
    assert refused.status_code == 429
    assert "are more than this API key's limit of 50 tokens per minute" in refused.json()["error"]["message"]


async def test_a_groups_limit_holds_over_all_its_users(client, world, backend, clock):
    await sync_to_async(option_set)(key="GroupRateLimit", value='{"default": {"rpm": 1}}')
    assert (await chat(client, world)).status_code == 200
    refused = await chat(client, world)
    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith("The group default's limit of 1 request per minute")


async def test_a_models_limit_in_a_group_leaves_its_other_models_alone(client, world, backend, clock):
    await sync_to_async(option_set)(key="GroupModelRateLimit", value='{"default": {"gpt-4o-mini": {"rpm": 1}}}')
    assert (await chat(client, world)).status_code == 200
    refused = await chat(client, world)
    assert refused.status_code == 429
    assert "The group default's gpt-4o-mini limit of 1 request per minute" in refused.json()["error"]["message"]
    assert (await chat(client, world, {**CHAT, "model": "gpt-3.5-turbo"})).status_code == 200


async def test_requests_per_day_start_again_the_next_day(client, world, backend, clock, settings):
    settings.TIME_ZONE = "UTC"
    await limit(Token, world.token.pk, rpd_limit=1)
    first = await chat(client, world)
    assert first.headers["x-ratelimit-limit-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"] == "16h0m0s"  # until midnight
    refused = await chat(client, world)
    assert refused.status_code == 429 and refused.headers["retry-after"] == str(16 * 3600)
    assert "limit of 1 request per day is reached; retry in 16 h 0 min" in refused.json()["error"]["message"]
    # The openai SDK ignores a Retry-After over 2 minutes and retries within seconds, to be refused again.
    assert refused.headers["x-should-retry"] == "false"
    clock[0] += 16 * 3600
    assert (await chat(client, world)).status_code == 200


async def test_concurrency_refuses_while_the_limit_is_in_flight(client, world, backend, clock):
    await limit(Token, world.token.pk, concurrency_limit=1)
    world.upstream.then(delay=0.5)
    slow = asyncio.ensure_future(chat(client, world))
    while not world.upstream.requests:  # the slow request holds its lease at the upstream
        await asyncio.sleep(0.01)
    refused = await chat(client, world)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert "This API key's limit of 1 concurrent request is reached" in refused.json()["error"]["message"]
    assert (await slow).status_code == 200
    assert (await chat(client, world)).status_code == 200


async def test_a_request_refused_for_its_quota_holds_no_place_under_a_concurrency_limit(client, world, backend, clock):
    # With Redis both admissions go at once: the one the balance refuses must give back its lease.
    await limit(Token, world.token.pk, concurrency_limit=1, unlimited_quota=False, remain_quota=1)
    for _ in range(3):
        refused = await chat(client, world)
        assert refused.status_code == 403, refused.json()  # not the 429 of a lease still held
    await admission.drain()


@pytest.mark.parametrize("path", ["joint", "limits then hold"])
@pytest.mark.parametrize("refusal", ["budget", "quota"])
async def test_a_request_the_quota_refuses_counts_in_no_limit(client, world, backend, clock, settings, path, refusal):
    # Refused before any upstream call, it must use up no request of a minute's or a day's limit, no tokens and
    # no place; before, a key with one request a day and a budget spent was told its day's request was used.
    settings.TIME_ZONE = "UTC"
    body = {**CHAT, "max_tokens": 50}
    caps = {"rpm_limit": 1, "rpd_limit": 1, "tpm_limit": estimate(body), "concurrency_limit": 1}
    if refusal == "budget":
        await limit(Token, world.token.pk, budget_quota=1, budget_period="day", **caps)
    else:
        await limit(Token, world.token.pk, unlimited_quota=False, remain_quota=1, **caps)
    if path == "limits then hold":  # a channel with caps: the limits are counted first, then the quota is held
        await limit(Channel, world.channel.pk, **caps)
    for _ in range(3):
        refused = await chat(client, world, body)
        await limiter.drain()
        assert refused.status_code == (429 if refusal == "budget" else 403), refused.text
        assert refused.json()["error"]["code"] == (
            "budget_exceeded" if refusal == "budget" else "pre_consume_token_quota_failed")
    await admission.drain()
    assert not world.upstream.requests
    if refusal == "budget":
        await limit(Token, world.token.pk, budget_quota=0, budget_period="")
        served = await chat(client, world, body)
        assert served.status_code == 200, served.text
        assert served.headers["x-ratelimit-remaining-requests"] == "0"  # this request is the one of its day
        assert served.headers["x-ratelimit-remaining-tokens"] == "0"  # its estimate is the whole minute's
        refused = await chat(client, world, body)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"


async def test_a_request_refused_by_a_rate_limit_holds_no_quota(client, world, backend, clock):
    await limit(Token, world.token.pk, rpm_limit=1)
    assert (await chat(client, world)).status_code == 200
    assert (await chat(client, world)).status_code == 429
    await admission.drain()
    if backend == "redis":
        import redis

        r = redis.Redis.from_url(REDIS)
        try:
            for kind, subject in (("u", world.user.id), ("t", world.token.id)):
                assert int(r.hget(shared_quota.key(kind, subject), "res")) == 0
                assert r.zcard(shared_quota.key(kind, subject) + ":leases") == 0
        finally:
            r.close()


@pytest.mark.parametrize("turns", range(8))
async def test_a_client_leaving_during_admission_holds_neither_a_place_nor_quota(asgi_app, client, world, backend,
                                                                                clock, turns, monkeypatch):
    await limit(Token, world.token.pk, concurrency_limit=1)
    holding = asyncio.Event()
    hold = admission.hold

    async def hold_and_tell(*args):
        holding.set()
        return await hold(*args)

    monkeypatch.setattr(admission, "hold", hold_and_tell)
    app = ApplicationCommunicator(asgi_app, {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        "headers": [(b"authorization", f"Bearer sk-{world.token.key}".encode()),
                    (b"content-type", b"application/json")]})
    await app.send_input({"type": "http.request", "body": orjson.dumps(CHAT), "more_body": False})
    await holding.wait()
    for _ in range(turns):  # cut off at a different step of the admissions each time
        await asyncio.sleep(0)
    app.future.cancel()  # (a request counted in this process may be answered by then: the same must hold)
    with contextlib.suppress(asyncio.CancelledError):
        await app.future
    await limiter.drain()
    await admission.drain()
    await limiter.drain()
    assert (await chat(client, world)).status_code == 200
    await admission.drain()
    if backend == "redis":
        import redis

        r = redis.Redis.from_url(REDIS)
        try:
            for kind, subject in (("u", world.user.id), ("t", world.token.id)):
                assert int(r.hget(shared_quota.key(kind, subject), "res") or 0) == 0
        finally:
            r.close()


async def test_a_failing_upstream_releases_its_lease(client, world, backend, clock):
    await limit(Token, world.token.pk, concurrency_limit=1)
    world.upstream.then(status=500)
    assert (await chat(client, world)).status_code == 500
    assert (await chat(client, world)).status_code == 200


async def test_a_stream_carries_the_headers_at_its_start(client, world, backend, clock):
    await limit(Token, world.token.pk, rpm_limit=5, tpm_limit=1000)
    async with client.stream("POST", "/v1/chat/completions", headers=world.auth,
                             json={**CHAT, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["x-ratelimit-remaining-requests"] == "4"
        assert response.headers["x-ratelimit-limit-tokens"] == "1000"
        assert b"[DONE]" in b"".join([chunk async for chunk in response.aiter_bytes()])


async def test_no_limit_no_headers(client, world, backend, clock):
    response = await chat(client, world)
    assert response.status_code == 200
    assert not [name for name in response.headers if name.startswith("x-ratelimit")]


async def test_the_tightest_scope_is_reported(client, world, backend, clock):
    await limit(Token, world.token.pk, rpm_limit=10, tpm_limit=100_000)
    await limit(User, world.user.pk, rpm_limit=3, tpm_limit=200_000)
    response = await chat(client, world)
    assert (response.headers["x-ratelimit-limit-requests"], response.headers["x-ratelimit-remaining-requests"]) == \
        ("3", "2")
    assert response.headers["x-ratelimit-limit-tokens"] == "100000"


@pytest.mark.parametrize("route", ["messages", "responses", "gemini"])
async def test_other_protocols_get_the_429_in_their_shape_with_retry_after(client, world, backend, clock, route):
    await limit(Token, world.token.pk, rpm_limit=1)
    key = f"sk-{world.token.key}"
    if route == "messages":
        path, body, headers = "/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 50, "messages": [
            {"role": "user", "content": "hi"}]}, {"x-api-key": key}
    elif route == "responses":
        path, body, headers = "/v1/responses", {"model": "gpt-4o-mini", "input": "hi"}, {
            "Authorization": f"Bearer {key}"}
    else:
        path, body, headers = "/v1beta/models/gpt-4o-mini:generateContent", {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, {"x-goog-api-key": key}
    first = await client.post(path, json=body, headers=headers)
    # Admitted (the mock speaks chat, not Responses: what the upstream answered does not matter here).
    assert first.status_code != 429 and first.headers["x-ratelimit-remaining-requests"] == "0"
    refused = await client.post(path, json=body, headers=headers)
    assert refused.status_code == 429 and refused.headers.get_list("retry-after") == ["60"]
    assert refused.headers.get_list("x-ratelimit-limit-requests") == ["1"]
    error = refused.json()
    if route == "messages":
        assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
        assert error["error"]["message"].startswith("This API key's limit of 1 request per minute")
    elif route == "responses":
        assert error["error"]["code"] == "rate_limit_exceeded"
    else:
        assert error["error"]["code"] == 429 and error["error"]["status"] == "RESOURCE_EXHAUSTED"


async def test_without_any_limit_redis_is_never_asked(client, world, settings, caplog):
    """No limit anywhere: not one call to Redis (here an address where nothing answers, which a call would log)."""
    settings.REDIS_CONN_STRING = closed_port_url("redis", "/0")
    for _ in range(3):
        assert (await chat(client, world)).status_code == 200
    assert limiter._cluster is None
    assert "Rate limits are counted in this process" not in caplog.text


async def test_with_redis_unreachable_limits_hold_in_the_process(client, world, settings, clock, caplog):
    settings.REDIS_CONN_STRING = closed_port_url("redis", "/0")
    await limit(Token, world.token.pk, rpm_limit=2)
    codes = [(await chat(client, world)).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]
    assert caplog.text.count("Rate limits are counted in this process until Redis answers again") == 1


SCOPES = {  # how each scope is given a limit, and how a refusal names it
    "key": "This API key's",
    "user": "Your account's",
    "group": "The group default's",
    "model": "The group default's gpt-4o-mini",
}


async def set_limit(world, scope: str, kind: str, value: int) -> None:
    if scope == "key":
        await limit(Token, world.token.pk, **{f"{kind}_limit": value})
    elif scope == "user":
        await limit(User, world.user.pk, **{f"{kind}_limit": value})
    elif scope == "group":
        await sync_to_async(option_set)(key="GroupRateLimit", value=orjson.dumps({"default": {kind: value}}).decode())
    else:
        await sync_to_async(option_set)(key="GroupModelRateLimit",
                                        value=orjson.dumps({"default": {"gpt-4o-mini": {kind: value}}}).decode())


@pytest.mark.parametrize("kind", ["rpm", "tpm", "concurrency", "rpd"])
@pytest.mark.parametrize("scope", list(SCOPES))
async def test_every_scope_and_kind_refuses_over_its_limit_and_admits_again(client, world, backend, clock, settings,
                                                                            scope, kind):
    settings.TIME_ZONE = "UTC"
    body = {**CHAT, "max_tokens": 50}
    value = {"tpm": estimate(body) + 10}.get(kind, 1)  # one request's estimate fits, a second's does not
    await set_limit(world, scope, kind, value)
    slow = None
    if kind == "concurrency":
        world.upstream.then(delay=0.5)
        slow = asyncio.ensure_future(chat(client, world, body))
        while not world.upstream.requests:
            await asyncio.sleep(0.01)
    else:
        assert (await chat(client, world, body)).status_code == 200
    refused = await chat(client, world, body)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    message = refused.json()["error"]["message"]
    assert message.startswith(f"{SCOPES[scope]} limit of {value} "), message
    if kind in ("rpm", "rpd"):
        assert refused.headers["x-ratelimit-limit-requests"] == "1"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    elif kind == "tpm":
        assert refused.headers["x-ratelimit-limit-tokens"] == str(value)
    if slow is not None:
        assert (await slow).status_code == 200
    else:
        clock[0] += 16 * 3600 if kind == "rpd" else 60  # the next window; for RPD, the next day (midnight UTC)
    assert (await chat(client, world, body)).status_code == 200


@pytest.mark.parametrize("when", ["mid-stream", "before the answer"])
async def test_a_client_that_leaves_releases_its_lease(asgi_app, client, world, backend, clock, when):
    await limit(Token, world.token.pk, concurrency_limit=1)
    if when == "mid-stream":
        world.upstream.then(reply=" ".join(f"word{i}" for i in range(200)), chunk_delay=0.02)
    else:
        world.upstream.then(delay=1.0)
    body = {**CHAT, "stream": when == "mid-stream"}
    app = ApplicationCommunicator(asgi_app, {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        "headers": [(b"authorization", f"Bearer sk-{world.token.key}".encode()),
                    (b"content-type", b"application/json")]})
    await app.send_input({"type": "http.request", "body": orjson.dumps(body), "more_body": False})
    if when == "mid-stream":
        start = await app.receive_output(5)
        assert start["status"] == 200
        await app.receive_output(5)
    else:
        while not world.upstream.requests:
            await asyncio.sleep(0.01)
    assert (await chat(client, world)).status_code == 429  # the lease is held while it runs
    await app.send_input({"type": "http.disconnect"})
    await app.wait(5)
    world.upstream.reset()
    assert (await chat(client, world)).status_code == 200
