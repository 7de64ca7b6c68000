"""Pages and /api while Redis is down (oneapi_site/redis_cache.py); the real server is tests/e2e/test_redis_outage.py.

Issue 8: with Redis down every Django route, /api/status (the health check) included, answered
"Server Error (500)": the global rate limiter, the sign-in limits and the sessions all raised.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from contextlib import contextmanager

import pytest
from django.core.cache import caches

from oneapi_site import redis_cache
from tests.e2e.servers import RedisServer, closed_port_url

pytestmark = pytest.mark.django_db

OUTAGE = "Redis is unreachable"
BACK = "Redis is reachable again"


def caches_on(url: str) -> dict:
    """The CACHES settings.py builds for REDIS_CONN_STRING=url."""
    def one(fallback):
        return {"BACKEND": "oneapi_site.redis_cache.ResilientRedisCache", "LOCATION": url, "KEY_PREFIX": "oneapi",
                "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", "FALLBACK": fallback,
                            "SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2}}
    return {"default": one("memory"), "sessions": one("none")}


@pytest.fixture
def redis_down(settings):
    """The settings of an instance whose REDIS_CONN_STRING points at nothing."""
    settings.CACHES = caches_on(closed_port_url("redis", "/0"))
    settings.SESSION_CACHE_ALIAS = "sessions"
    yield settings
    caches.close_all()


@pytest.fixture
def own_redis(tmp_path, settings):
    if not RedisServer.available():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path).start()
    settings.CACHES = caches_on(server.url)
    settings.SESSION_CACHE_ALIAS = "sessions"
    yield server
    caches.close_all()
    server.stop()


@contextmanager
def paused(server: RedisServer):
    """Redis stops answering but keeps its data (SIGSTOP on our own redis-server, never a shared one)."""
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


@pytest.fixture
def retry_now(monkeypatch):
    """Make the next cache call try Redis again instead of waiting out RETRY_SECONDS."""
    offset = [0.0]
    real = redis_cache.monotonic
    monkeypatch.setattr(redis_cache, "monotonic", lambda: real() + offset[0])

    def advance():
        offset[0] += redis_cache.RETRY_SECONDS + 1

    return advance


def test_health_check_pages_and_api_answer_while_redis_is_down(client, redis_down, root, caplog):
    caplog.set_level(logging.WARNING)
    assert client.get("/api/status").status_code == 200
    assert client.get("/login/").status_code == 200
    response = client.post("/api/user/login", {"username": "root", "password": "root-pass-Secure1"},
                           content_type="application/json")
    assert response.json()["success"] is True
    # The session lives in the database; the next requests are signed in.
    assert client.get("/api/user/self").json()["data"]["username"] == "root"
    assert client.get("/").status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert caplog.text.count(OUTAGE) == 1  # once for the outage, not once per request


def test_the_global_limit_counts_in_this_process_while_redis_is_down(client, redis_down):
    redis_down.GLOBAL_API_RATE_LIMIT = 3
    codes = [client.get("/api/status").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_the_sign_in_limit_counts_in_this_process_while_redis_is_down(client, redis_down):
    body = {"username": "nobody", "password": "wrong-password"}
    codes = [client.post("/api/user/login", body, content_type="application/json").status_code for _ in range(21)]
    assert codes[:20] == [200] * 20 and codes[20] == 429


def test_every_cache_call_answers_from_memory_while_redis_is_down(redis_down):
    cache = caches["default"]
    assert cache.set("a", 1) is True
    assert cache.get("a") == 1
    assert cache.add("a", 2) is False and cache.add("b", 2) is True
    assert cache.incr("a") == 2
    assert cache.get_many(["a", "b", "c"]) == {"a": 2, "b": 2}
    assert cache.has_key("a") and "b" in cache
    assert cache.touch("a", 60) is True
    assert cache.set_many({"c": 3, "d": 4}) == []
    assert cache.delete("a") is True
    cache.delete_many(["b", "c"])
    assert cache.get_or_set("d", 5) == 4
    cache.clear()
    assert cache.get("d") is None


def test_sessions_miss_while_redis_is_down_so_the_database_answers(redis_down):
    sessions = caches["sessions"]
    assert sessions.set("s", {"user": 1}) is True
    assert sessions.get("s") is None and sessions.get("s", "default") == "default"
    assert sessions.has_key("s") is False and sessions.get_many(["s"]) == {}
    with pytest.raises(ValueError):
        sessions.incr("s")


def test_one_line_when_redis_goes_and_one_when_it_is_back(own_redis, caplog, retry_now):
    caplog.set_level(logging.INFO)
    cache = caches["default"]
    cache.set("k", "up")
    own_redis.stop()
    for _ in range(5):
        cache.get("k")
        retry_now()
    own_redis.start()
    retry_now()
    assert cache.set("k", "again") is True and cache.get("k") == "again"
    assert caplog.text.count(OUTAGE) == 1 and caplog.text.count(BACK) == 1


def test_what_was_written_during_the_outage_is_dropped_from_redis_when_it_is_back(own_redis, retry_now):
    cache = caches["default"]
    cache.set("code", "old code")
    cache.set("untouched", "kept")
    with paused(own_redis):
        cache.set("code", "new code")  # times out: kept in memory, Redis still holds "old code"
        assert cache.get("code") == "new code"
    retry_now()
    # Redis holds "old code", which is stale: it is deleted before anything is read.
    assert cache.get("code") is None
    assert cache.get("untouched") == "kept"


def test_a_logout_during_the_outage_holds_once_redis_is_back(client, own_redis, root, retry_now):
    """The session was cached in Redis before the outage; Redis must not bring it back afterwards."""
    response = client.post("/api/user/login", {"username": "root", "password": "root-pass-Secure1"},
                           content_type="application/json")
    assert response.json()["success"] is True
    cookie = client.cookies["session"].value
    assert client.get("/api/user/self").status_code == 200
    with paused(own_redis):
        assert client.get("/api/user/logout").json()["success"] is True
    retry_now()
    client.cookies["session"] = cookie  # someone who kept the old cookie
    assert client.get("/api/user/self").status_code == 401


def test_the_real_redis_is_used_when_it_is_up(own_redis):
    caches["default"].set("shared", "value", 60)
    with socket.create_connection(("127.0.0.1", own_redis.port)) as s:
        s.sendall(b"KEYS *\r\n")
        assert b"oneapi:1:shared" in s.recv(4096)
