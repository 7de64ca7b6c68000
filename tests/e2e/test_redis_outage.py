"""The real server while its Redis is down: pages, /api and the health check keep answering (issue 8).

Each test runs its own redis-server, so stopping it touches no other test and no shared Redis.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.servers import RedisServer, closed_port_url, prepare_database, running_gateway

pytestmark = pytest.mark.skipif(not RedisServer.available(), reason="redis-server is not installed")

OUTAGE = "Redis is unreachable"
BACK = "Redis is reachable again"
WAIT = 60  # seconds a failing test may wait for the server to notice Redis is back; a bound, not a check


def sign_in(http: httpx.Client) -> None:
    response = http.post("/api/user/login", json={"username": "root", "password": "123456"})
    assert response.json()["success"] is True, response.text


def test_pages_api_and_sessions_keep_working_while_redis_is_stopped_and_after_it_returns(tmp_path):
    redis = RedisServer(tmp_path).start()
    try:
        with prepare_database(tmp_path, REDIS_CONN_STRING=redis.url, GLOBAL_WEB_RATE_LIMIT="30") as env, \
                running_gateway(tmp_path, env) as gateway, httpx.Client(base_url=gateway.url, timeout=30) as http:
            sign_in(http)
            assert http.get("/api/user/self").json()["data"]["username"] == "root"

            redis.stop()
            assert [http.get("/api/status").status_code for _ in range(5)] == [200] * 5
            assert http.get("/api/user/self").json()["data"]["username"] == "root"  # the session, from the database
            # A visitor's pages still count against GLOBAL_WEB_RATE_LIMIT, in this process now.
            codes = [httpx.get(f"{gateway.url}/login/", timeout=30).status_code for _ in range(40)]
            assert codes[0] == 200
            assert 429 in codes and codes.index(429) <= 30

            log = gateway.log_text()
            assert log.count(OUTAGE) == 1
            assert "Traceback" not in log and "Server Error" not in log and "Internal Server Error" not in log

            redis.start()
            deadline = time.monotonic() + WAIT
            while BACK not in gateway.log_text() and time.monotonic() < deadline:
                assert http.get("/api/status").status_code == 200
                time.sleep(0.2)
            assert BACK in gateway.log_text()
            assert http.get("/api/user/self").json()["data"]["username"] == "root"
            assert "Traceback" not in gateway.log_text()
    finally:
        redis.stop()


def test_an_instance_starting_while_redis_is_unreachable_passes_its_health_check(tmp_path):
    with prepare_database(tmp_path, REDIS_CONN_STRING=closed_port_url("redis", "/0")) as env, \
            running_gateway(tmp_path, env) as gateway, httpx.Client(base_url=gateway.url, timeout=30) as http:
        assert http.get("/api/status").status_code == 200
        sign_in(http)
        assert http.get("/api/user/self").status_code == 200
        assert "Traceback" not in gateway.log_text()
