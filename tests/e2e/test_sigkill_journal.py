"""A gateway killed with SIGKILL under load loses no answered request's charge when Redis is configured
(billing/journal.py): the restarted instance writes what the killed one kept in Redis, each charge once.

Before, with BATCH_UPDATE_ENABLED, every charge since the last batch was lost. Here the batch never comes (an hour
apart), 30 requests are answered, 10 more are waiting on a slow upstream when the process is killed: the database
has none of them then, and after the restart exactly the 30 answered ones, with balances equal to the logs.
Needs MariaDB/MySQL or PostgreSQL (SQL_DSN) and REDIS_CONN_STRING.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import httpx
import pytest
import redis

from oneapi_site.config import parse_sql_dsn
from tests.e2e.servers import prepare_database, running_gateway
from tests.e2e.test_cluster_quota import CHARGE, body, clear_redis, read, setup

REDIS = os.environ.get("REDIS_CONN_STRING", "")
pytestmark = pytest.mark.skipif(
    not REDIS or parse_sql_dsn(os.environ.get("SQL_DSN", "").strip(), sqlite_path="x").engine == "sqlite",
    reason="needs REDIS_CONN_STRING and a database server (SQL_DSN)")

ANSWERED, IN_FLIGHT = 30, 10
WAIT = 120  # seconds: the killed instance's key expires (15 s), then the next beat replays; a bound


def journal_sizes(client: redis.Redis) -> dict[str, int]:
    return {k.decode(): client.hlen(k) for k in client.scan_iter("oneapi:ledger:*") if client.type(k) == b"hash"}


def eventually(condition, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"never happened: {what}")


def test_sigkill_under_load_loses_no_answered_charge_and_the_restart_writes_each_once(tmp_path, upstream):
    client = redis.Redis.from_url(REDIS)
    clear_redis()
    key = uuid.uuid4().hex
    raw = body()
    headers = {"Authorization": f"Bearer sk-{key}", "Content-Type": "application/json"}
    with prepare_database(tmp_path, REDIS_CONN_STRING=REDIS, BATCH_UPDATE_ENABLED="true",
                          BATCH_UPDATE_INTERVAL="3600") as env:
        ids = setup(env, upstream, user_quota=10**9, token_quota=10**8, key=key)
        with running_gateway(tmp_path, env, name="killed") as killed:
            async def load():
                async with httpx.AsyncClient(timeout=60) as http:
                    url = f"{killed.url}/v1/chat/completions"
                    answered = await asyncio.gather(*[http.post(url, content=raw, headers=headers)
                                                      for _ in range(ANSWERED)])
                    assert [r.status_code for r in answered] == [200] * ANSWERED
                    # Settled: each in the journal (the answer goes out just before its charge is settled).
                    eventually(lambda: sum(journal_sizes(client).values()) == ANSWERED, "30 charges journaled")
                    upstream.default.delay = 8  # long enough to be in flight at the kill
                    seen = len(upstream.requests)
                    slow = [asyncio.create_task(http.post(url, content=raw, headers=headers))
                            for _ in range(IN_FLIGHT)]
                    while len(upstream.requests) < seen + IN_FLIGHT:
                        await asyncio.sleep(0.1)
                    killed.proc.kill()
                    killed.proc.wait(30)
                    return await asyncio.gather(*slow, return_exceptions=True)

            cut = asyncio.run(load())
        assert all(isinstance(r, httpx.HTTPError) for r in cut), cut
        assert read(env, ids)["logs"] == 0  # the batch never came: all of it was only in memory and Redis
        upstream.default.delay = 0

        with running_gateway(tmp_path, env, name="restarted") as restarted:
            eventually(lambda: not journal_sizes(client), "the killed instance's journal replayed")
            state = read(env, ids)
            log = restarted.log_text()
    assert state["logs"] == ANSWERED and state["logged"] == ANSWERED * CHARGE, state
    assert state["user"][1] == state["logged"] and state["token"][1] == state["logged"], state
    assert "wrote 30 charges an instance that stopped without writing them kept in Redis" in log, log
    bal = int(client.hget(f"oneapi:quota:t:{ids['token']}", "bal"))
    assert bal == state["token"][0]  # Redis and the database agree again
    client.close()
    clear_redis()
