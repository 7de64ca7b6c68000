"""SIGTERM on a real server with streams in flight (issue 13, oneapi_site/graceful.py).

Before, Daphne cancelled every request at once ("Killed 14 pending application instances"): of 15 clients in
the middle of a stream, 1 to 12 got a dropped connection. Now they all finish, the server takes no new
connection meanwhile, /readyz says so on a connection kept open, and every answered request's charge and consume
log is in the database once the process has exited. Runs on the suite's database (SQLite, or MariaDB with
REDIS_CONN_STRING for the shared quota too).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import httpx
import pytest
import redis

from tests.e2e.servers import ROOT, prepare_database, running_gateway
from tests.e2e.test_cluster_quota import CHARGE, body, clear_redis, read, setup

REDIS = os.environ.get("REDIS_CONN_STRING", "")
CLIENTS = 15
EXIT_WAIT = 120  # seconds the process may take to exit on a busy machine; a bound, not a measurement


def stream_body() -> bytes:
    request = json.loads(body())
    request.update(stream=True, stream_options={"include_usage": True})
    return json.dumps(request).encode()


async def stream(client: httpx.AsyncClient, url: str, key: str, raw: bytes) -> tuple[int, bytes]:
    """The status and every byte of a streamed answer, or the error that ended it early."""
    async with client.stream("POST", f"{url}/v1/chat/completions", content=raw,
                             headers={"Authorization": f"Bearer sk-{key}", "Content-Type": "application/json"}) as r:
        return r.status_code, b"".join([chunk async for chunk in r.aiter_bytes()])


async def wait_for(condition, what: str) -> None:
    for _ in range(600):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def exit_code(proc: subprocess.Popen) -> int:
    return proc.wait(EXIT_WAIT)


@pytest.fixture
def gateway_env(tmp_path, upstream):
    if REDIS:  # the gateway shares the suite's Redis (its environment's REDIS_CONN_STRING)
        clear_redis()
    with prepare_database(tmp_path) as env:
        yield env
    if REDIS:
        clear_redis()


def shut_down_under_load(tmp_path, env, upstream, *, grace: int, chunks: int, chunk_delay: float):
    """15 streams in flight, SIGTERM, and what each client got, the exit code, the log and the database."""
    upstream.default.reply = "word " * chunks
    upstream.default.chunks, upstream.default.chunk_delay = chunks, chunk_delay
    key = uuid.uuid4().hex
    ids = setup(env, upstream, user_quota=10**9, token_quota=10**8, key=key)
    raw = stream_body()
    with running_gateway(tmp_path, {**env, "SHUTDOWN_GRACE_SECONDS": str(grace)}) as gateway:
        async def scenario():
            limits = httpx.Limits(max_connections=CLIENTS + 1, max_keepalive_connections=CLIENTS + 1)
            async with httpx.AsyncClient(timeout=120, limits=limits) as client, \
                    httpx.AsyncClient(timeout=30) as probe:
                ready_before = (await probe.get(f"{gateway.url}/readyz")).status_code
                started = len(upstream.requests)
                streams = [asyncio.create_task(stream(client, gateway.url, key, raw)) for _ in range(CLIENTS)]
                await wait_for(lambda: len(upstream.requests) - started >= CLIENTS, "every stream under way")
                gateway.proc.send_signal(signal.SIGTERM)
                await wait_for(lambda: "shutting down" in gateway.log_text(), "the shutdown began")
                ready_during = (await probe.get(f"{gateway.url}/readyz")).json()  # the kept-alive connection
                try:
                    await httpx.AsyncClient(timeout=5).get(f"{gateway.url}/healthz")
                    new_connection = "accepted"
                except httpx.ConnectError:
                    new_connection = "refused"
                answers = await asyncio.gather(*streams, return_exceptions=True)
                return ready_before, ready_during, new_connection, answers

        ready_before, ready_during, new_connection, answers = asyncio.run(scenario())
        code = exit_code(gateway.proc)
        log = gateway.log_text()
    return ready_before, ready_during, new_connection, answers, code, log, read(env, ids)


def test_sigterm_lets_every_stream_in_flight_finish_and_writes_every_charge(tmp_path, gateway_env, upstream):
    ready_before, ready_during, new_connection, answers, code, log, state = shut_down_under_load(
        tmp_path, gateway_env, upstream, grace=60, chunks=12, chunk_delay=0.25)

    assert ready_before == 200
    assert ready_during == {"status": "unavailable", "checks": {"shutdown": "shutting down"}}
    assert new_connection == "refused"
    failed = [a for a in answers if isinstance(a, BaseException)]
    assert not failed, failed
    assert [status for status, _ in answers] == [200] * CLIENTS
    for _, raw in answers:
        assert raw.rstrip().endswith(b"data: [DONE]"), raw[-200:]
    assert code == 0, log
    assert "Killed" not in log and "Traceback" not in log, log
    # The upstream session is closed before the loop ends: no "ERROR asyncio Unclosed client session" at every stop.
    assert "Unclosed" not in log, log
    assert f"{CLIENTS} requests in flight" in log
    assert state["logs"] == CLIENTS and state["logged"] == CLIENTS * CHARGE
    assert state["user"][1] == state["logged"] and state["token"][1] == state["logged"]
    if REDIS:  # every charge written, so none is left in Redis to replay
        client = redis.Redis.from_url(REDIS)
        journals = [k for k in client.scan_iter("oneapi:ledger:*") if client.type(k) == b"hash"]
        assert not journals, "a journal outlived a clean stop"
        client.close()


def test_streams_past_the_grace_end_cleanly_and_are_charged_for_what_was_sent(tmp_path, gateway_env, upstream):
    ready_before, _, _, answers, code, log, state = shut_down_under_load(
        tmp_path, gateway_env, upstream, grace=1, chunks=200, chunk_delay=0.2)

    failed = [a for a in answers if isinstance(a, BaseException)]
    assert not failed, failed  # a complete HTTP answer each, not a dropped connection
    assert [status for status, _ in answers] == [200] * CLIENTS
    for _, raw in answers:
        assert raw.startswith(b"data: ") and b"[DONE]" not in raw, raw[-200:]
    assert code == 0, log
    assert f"{CLIENTS} requests still running after 1 s are stopped" in log
    # Each stopped request is charged as a client that left is: what was used, logged once.
    assert state["logs"] == CLIENTS
    assert state["user"][1] == state["logged"] == state["token"][1]


def test_a_bad_grace_setting_stops_the_start_with_its_name(tmp_path):
    done = subprocess.run([sys.executable, "-m", "oneapi_site.serve"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "SHUTDOWN_GRACE_SECONDS": "soon", "SQLITE_PATH": str(tmp_path / "x.db")},
                          timeout=60)
    assert done.returncode != 0 and "SHUTDOWN_GRACE_SECONDS" in done.stderr


def test_a_request_not_yet_answered_past_the_grace_gets_503_and_costs_nothing(tmp_path, gateway_env, upstream):
    upstream.default.delay = 8  # past the grace; short, as the mock upstream waits for its handlers to stop
    key = uuid.uuid4().hex
    ids = setup(gateway_env, upstream, user_quota=10**9, token_quota=10**8, key=key)
    with running_gateway(tmp_path, {**gateway_env, "SHUTDOWN_GRACE_SECONDS": "1"}) as gateway:
        async def scenario():
            async with httpx.AsyncClient(timeout=120) as client:
                waiting = [asyncio.create_task(client.post(
                    f"{gateway.url}/v1/chat/completions", content=body(),
                    headers={"Authorization": f"Bearer sk-{key}", "Content-Type": "application/json"}))
                    for _ in range(3)]
                await wait_for(lambda: len(upstream.requests) >= 3, "every request at the upstream")
                gateway.proc.send_signal(signal.SIGTERM)
                return await asyncio.gather(*waiting)

        answers = asyncio.run(scenario())
        code = exit_code(gateway.proc)
        log = gateway.log_text()
    assert [r.status_code for r in answers] == [503] * 3
    assert {r.json()["error"]["code"] for r in answers} == {"server_shutting_down"}
    assert code == 0, log
    state = read(gateway_env, ids)
    assert state["logs"] == 0 and state["user"][1] == 0
