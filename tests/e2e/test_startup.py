"""A real instance with Redis, health-checked from its first moment, as in the two-instance set-up of issue 8.

There 4 of 315 health checks during start-up answered 500, and 4 of 10 restarts left the instance deaf to
the other instance's changes (its listener thread had died at start-up). Here: no answer but 200 while
it starts, nothing in the log, and a change announced by "another instance" on Redis takes effect.
"""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
import redis

from oneapi_site.lib import changes
from tests.e2e.servers import START_TIMEOUT, RedisServer, manage, prepare_database, running_gateway

pytestmark = pytest.mark.skipif(not RedisServer.available(), reason="redis-server is not installed")

WAIT = 30  # seconds a failing test waits for the change to arrive; a bound, not a timing check


def test_health_checks_during_start_up_all_pass_and_the_instance_hears_other_instances(tmp_path):
    redis_server = RedisServer(tmp_path).start()
    root_key = "startup" + uuid.uuid4().hex
    try:
        with prepare_database(tmp_path, REDIS_CONN_STRING=redis_server.url, INITIAL_ROOT_TOKEN=root_key,
                              GLOBAL_API_RATE_LIMIT="100000") as env, \
                running_gateway(tmp_path, env, wait=False) as gateway:
            codes: list[int] = []
            up = threading.Event()

            def health_check():
                deadline = time.monotonic() + START_TIMEOUT
                with httpx.Client(base_url=gateway.url, timeout=30) as http:
                    answered = 0
                    while answered < 50 and time.monotonic() < deadline:
                        try:
                            codes.append(http.get("/api/status").status_code)
                            answered += 1
                            up.set()
                        except httpx.TransportError:
                            time.sleep(0.005)  # not listening yet

            checkers = [threading.Thread(target=health_check) for _ in range(4)]
            for checker in checkers:
                checker.start()
            for checker in checkers:
                checker.join()
            assert up.is_set(), gateway.log_text()
            assert set(codes) == {200}, codes
            log = gateway.log_text()
            assert "Traceback" not in log and "Exception in thread" not in log, log

            auth = {"Authorization": f"Bearer sk-{root_key}"}
            assert httpx.get(f"{gateway.url}/v1/models", headers=auth).status_code == 200  # the token is cached now
            # Another instance disables the token and announces it.
            manage(env, "shell", "-c", "from accounts.models import Token; "
                   f"Token.objects.filter(key={root_key!r}).update(status=Token.Status.DISABLED)")
            announcer = redis.Redis.from_url(redis_server.url)
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                # Again each time, in case it is not subscribed yet.
                announcer.publish(changes.channel_name(redis_server.url), "another-instance:tokens")
                if httpx.get(f"{gateway.url}/v1/models", headers=auth).status_code == 401:
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the instance never heard the change:\n" + gateway.log_text())
    finally:
        redis_server.stop()
