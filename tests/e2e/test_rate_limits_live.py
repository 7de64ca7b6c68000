"""Rate limits on real servers: two instances sharing Redis hold one limit between them, and a Redis outage
moves the counting into each process without failing a request."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace

import httpx
import pytest
import redis
from django.conf import settings

from tests.e2e.servers import RedisServer, manage, prepare_database, running_gateway

ACCESS_TOKEN = "e2e-access-" + uuid.uuid4().hex
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
OUTAGE = "Rate limits are counted in this process until Redis answers again"
BACK = "Rate limits are counted in Redis again"
WAIT = 60  # seconds a failing test may wait for the server to notice Redis is back; a bound, not a check


def limited_key(gateway, upstream_url: str, **limits: int) -> str:
    """A channel at the mock upstream and a new API key with `limits` (set in the database before first use)."""
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": ACCESS_TOKEN}, timeout=10)
    created = admin.post("/api/channel/", json={"type": 1, "name": "mock", "key": "sk-upstream", "group": "default",
                                                "base_url": upstream_url, "models": "gpt-4o-mini"}).json()
    assert created["success"], created
    token = admin.post("/api/token/", json={"name": "limited", "remain_quota": 10_000_000,
                                            "expired_time": -1}).json()["data"]
    fields = ", ".join(f"{name}={value}" for name, value in limits.items())
    manage(gateway.env, "shell", "-v", "0", "-c",
           f"from accounts.models import Token; Token.objects.filter(pk={token['id']}).update({fields})")
    return f"sk-{token['key']}"


def forget_counts(url: str) -> None:
    client = redis.Redis.from_url(url)
    for key in client.scan_iter("oneapi:rl:*"):
        client.delete(key)
    client.close()


@pytest.mark.skipif(not settings.REDIS_CONN_STRING, reason="REDIS_CONN_STRING is not set")
def test_two_instances_on_one_redis_hold_one_limit(tmp_path, upstream):
    url = settings.REDIS_CONN_STRING
    forget_counts(url)
    with ExitStack() as stack:
        env = stack.enter_context(prepare_database(tmp_path, REDIS_CONN_STRING=url,
                                                   INITIAL_ROOT_ACCESS_TOKEN=ACCESS_TOKEN))
        first = stack.enter_context(running_gateway(tmp_path, env, name="first"))
        second = stack.enter_context(running_gateway(tmp_path, env, name="second"))
        key = limited_key(first, upstream.url, rpm_limit=5)
        codes = []
        for i in range(16):
            gateway = (first, second)[i % 2]
            response = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=30,
                                  headers={"Authorization": f"Bearer {key}"})
            codes.append(response.status_code)
            if response.status_code == 200:
                assert response.headers["x-ratelimit-limit-requests"] == "5"
            else:
                assert int(response.headers["retry-after"]) >= 1
        # Five between them, not five each: both count in the same window.
        assert codes == [200] * 5 + [429] * 11
        assert len(upstream.requests) == 5
    forget_counts(url)


@pytest.mark.skipif(not RedisServer.available(), reason="redis-server is not installed")
def test_a_redis_outage_moves_the_counting_into_the_process_and_back(tmp_path, upstream):
    server = RedisServer(tmp_path).start()
    try:
        with prepare_database(tmp_path, REDIS_CONN_STRING=server.url, INITIAL_ROOT_ACCESS_TOKEN=ACCESS_TOKEN) as env, \
                running_gateway(tmp_path, env) as gateway:
            key = limited_key(gateway, upstream.url, rpm_limit=1000)
            chat = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
            assert chat.post("/v1/chat/completions", json=CHAT).status_code == 200
            shared = redis.Redis.from_url(server.url)
            assert shared.keys("oneapi:rl:*")  # counted in Redis
            shared.close()

            server.stop()
            for left in range(998, 988, -1):
                response = chat.post("/v1/chat/completions", json=CHAT)
                assert response.status_code == 200, response.text
                assert int(response.headers["x-ratelimit-remaining-requests"]) >= left  # counted here now
            log = gateway.log_text()
            assert log.count(OUTAGE) == 1 and "Traceback" not in log

            server.start()  # empty: what it counted before is gone, as after any Redis restart
            deadline = time.monotonic() + WAIT
            while BACK not in gateway.log_text() and time.monotonic() < deadline:
                assert chat.post("/v1/chat/completions", json=CHAT).status_code == 200
                time.sleep(0.2)
            assert BACK in gateway.log_text()
            shared = redis.Redis.from_url(server.url)
            assert shared.keys("oneapi:rl:*")
            shared.close()
            assert gateway.log_text().count(OUTAGE) == 1 and "Traceback" not in gateway.log_text()
    finally:
        server.stop()


@pytest.mark.skipif(not settings.REDIS_CONN_STRING, reason="REDIS_CONN_STRING is not set")
def test_a_key_with_60_rpm_100k_tpm_5_concurrent_and_10_dollars_a_day_holds_across_two_instances(tmp_path, upstream):
    """The issue's operator: one key with every limit and a daily budget, used through two instances at once.
    Each call costs US$1 (ModelPrice), so the budget admits ten; the upstream is slow, so five are in flight."""
    url = settings.REDIS_CONN_STRING
    forget_counts(url)
    upstream.default = replace(upstream.default, delay=1.5)
    with ExitStack() as stack:
        env = stack.enter_context(prepare_database(tmp_path, REDIS_CONN_STRING=url,
                                                   INITIAL_ROOT_ACCESS_TOKEN=ACCESS_TOKEN))
        manage(env, "shell", "-v", "0", "-c",
               "from billing.services import option_set; option_set(key='ModelPrice', value='{\"gpt-4o-mini\": 1}')")
        first = stack.enter_context(running_gateway(tmp_path, env, name="first"))
        second = stack.enter_context(running_gateway(tmp_path, env, name="second"))
        dollar = 500_000  # QuotaPerUnit
        key = limited_key(first, upstream.url, rpm_limit=60, tpm_limit=100_000, concurrency_limit=5,
                          budget_quota=10 * dollar, budget_period="'day'")

        def ask(i: int) -> httpx.Response:
            gateway = (first, second)[i % 2]
            return httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=30,
                              headers={"Authorization": f"Bearer {key}"})

        with ThreadPoolExecutor(12) as pool:
            burst = list(pool.map(ask, range(12)))
        answered = [r for r in burst if r.status_code == 200]
        refused = [r for r in burst if r.status_code != 200]
        assert len(answered) == 5, [r.status_code for r in burst]  # five in flight between both instances
        assert {r.status_code for r in refused} == {429}
        assert all("concurrent" in r.json()["error"]["message"] and int(r.headers["retry-after"]) >= 1
                   for r in refused)
        assert answered[0].headers["x-ratelimit-limit-requests"] == "60"
        assert answered[0].headers["x-ratelimit-limit-tokens"] == "100000"

        upstream.default = replace(upstream.default, delay=0)
        later = [ask(i) for i in range(8)]
        # US$5 spent in the burst: five more calls reach the budget, the next is refused until tomorrow.
        assert [r.status_code for r in later] == [200] * 5 + [429] * 3
        spent = later[5].json()["error"]
        assert spent["code"] == "budget_exceeded" and "resets" in spent["message"]
        assert int(later[5].headers["retry-after"]) >= 1
        assert len(upstream.requests) == 10
    forget_counts(url)


def test_a_refusal_has_its_status_line_reason(tmp_path, upstream):
    """Twisted knows no reason phrase for 429, so every refusal went out as "HTTP/1.1 429 Unknown Status"
    (found with curl from a fresh clone); clients and proxies that log the status line showed that."""
    with prepare_database(tmp_path, REDIS_CONN_STRING="", INITIAL_ROOT_ACCESS_TOKEN=ACCESS_TOKEN) as env, \
            running_gateway(tmp_path, env) as gateway:
        key = limited_key(gateway, upstream.url, rpm_limit=1)
        answers = [httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=30,
                              headers={"Authorization": f"Bearer {key}"}) for _ in range(2)]
    assert [r.status_code for r in answers] == [200, 429]
    assert answers[1].reason_phrase == "Too Many Requests"
