"""/healthz and /readyz through the whole ASGI application (oneapi_site/health.py); a real server's shutdown
turning /readyz unready is tests/e2e/test_graceful_shutdown.py, a real database going away
tests/e2e/test_readyz_live.py."""

from __future__ import annotations

import threading

import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper

from billing.ledger import ledger
from billing.services import Charge
from oneapi_site import health
from relay.cache import cache
from tests.e2e.servers import RedisServer, closed_port_url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def not_draining():
    health.draining.clear()
    yield
    health.draining.clear()


def refuse_cursors(monkeypatch) -> None:
    """Every new cursor fails as a database that is down fails (the probe's own thread included)."""
    def cursor(self, *args, **kwargs):
        raise OperationalError("(2002, \"Can't connect to server on 'db-secret-host' (115)\")")

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", cursor)


@pytest.fixture
def database_refuses(monkeypatch):
    refuse_cursors(monkeypatch)


async def test_healthz_answers_ok_without_touching_the_database(relay_client, database_refuses):
    r = await relay_client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["cache-control"] == "no-store"


async def test_readyz_answers_ok_when_database_channels_and_ledger_are(relay_client, settings):
    settings.REDIS_CONN_STRING = ""  # its check is the test below
    r = await relay_client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "channels": "ok", "ledger": "ok"}}


async def test_readyz_names_the_database_when_it_is_down_and_never_its_message(relay_client, database_refuses,
                                                                              monkeypatch, settings):
    settings.REDIS_CONN_STRING = ""
    monkeypatch.setattr(cache, "routes", None)  # never loaded: not loadable either
    r = await relay_client.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "checks": {
        "database": "unreachable (OperationalError)", "channels": "not loaded (RelayError)", "ledger": "ok"}}
    assert "secret" not in r.text


async def test_channels_loaded_before_the_database_went_down_still_count_as_loaded(relay_client, monkeypatch):
    assert (await relay_client.get("/readyz")).json()["checks"]["channels"] == "ok"
    refuse_cursors(monkeypatch)
    cache.clear()  # stale: the relay would try to reload them, and serve the old ones when it cannot
    checks = (await relay_client.get("/readyz")).json()["checks"]
    assert checks["channels"] == "ok" and checks["database"] == "unreachable (OperationalError)"


async def test_a_hung_database_times_out_and_probes_do_not_pile_up_behind_it(relay_client, monkeypatch):
    release = threading.Event()
    original = BaseDatabaseWrapper.cursor

    def cursor(self, *args, **kwargs):
        if threading.current_thread().name.startswith("oneapi-readyz"):
            release.wait(30)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", cursor)
    monkeypatch.setattr(health, "CHECK_TIMEOUT", 0.2)
    try:
        first = await relay_client.get("/readyz")
        second = await relay_client.get("/readyz")
    finally:
        release.set()
    assert first.status_code == second.status_code == 503
    assert first.json()["checks"]["database"] == "unreachable (timed out)"
    assert second.json()["checks"]["database"] == "unreachable (the last probe has not returned)"
    health._db_thread.submit(lambda: None).result(30)  # the hung probe has returned
    assert (await relay_client.get("/readyz")).json()["checks"]["database"] == "ok"


async def test_readyz_checks_redis_only_when_configured(relay_client, settings, tmp_path):
    if not RedisServer.available():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path).start()
    try:
        settings.REDIS_CONN_STRING = server.url
        r = await relay_client.get("/readyz")
        assert r.status_code == 200 and r.json()["checks"]["redis"] == "ok"
    finally:
        server.stop()
    settings.REDIS_CONN_STRING = closed_port_url("redis", "/0")
    r = await relay_client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["redis"] == "unreachable (ConnectionError)"
    assert str(server.port) not in r.text


def charge(n: int) -> Charge:
    return Charge(user_id=1, username="root", token_id=1, token_name="t", unlimited=True, channel_id=1,
                  model_name="m", quota=1, prompt_tokens=1, completion_tokens=1, request_id=f"r{n}", elapsed_ms=1,
                  is_stream=False, content="", created_at=0)


async def test_readyz_says_when_the_ledger_is_backed_up(relay_client, monkeypatch):
    monkeypatch.setattr(health, "LEDGER_BACKLOG_MAX", 3)
    for n in range(3):
        ledger.settle(charge(n), reserved=0)  # no writer started in this test: they stay queued
    r = await relay_client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["ledger"] == "backed up (3 charges queued)"
    ledger.pending.clear()


async def test_readyz_says_when_the_ledger_writer_is_dead(relay_client, monkeypatch):
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    monkeypatch.setattr(ledger, "_thread", dead)
    r = await relay_client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["ledger"] == "writer stopped"


async def test_readyz_is_unready_while_shutting_down(relay_client):
    health.draining.set()
    r = await relay_client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"status": "unavailable", "checks": {"shutdown": "shutting down"}}
    assert (await relay_client.get("/healthz")).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_only_get_and_head_are_answered(relay_client, path):
    assert (await relay_client.post(path)).status_code == 405
    assert (await relay_client.head(path)).status_code in (200, 503)
