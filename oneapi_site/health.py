"""`GET /healthz` and `GET /readyz`: liveness and readiness for load balancers, Docker and Kubernetes.

/healthz answers 200 while the event loop turns; it touches nothing else, so a database outage never gets a
live process restarted. /readyz answers 200 only when this instance can serve a request and record its charge:
the database answers `SELECT 1`, Redis answers PING (when configured), the relay's channels are loaded (or
load now), the ledger's writer thread is alive and its queue is short, and the server is not shutting down
(oneapi_site/graceful.py). Otherwise 503, naming each check that failed. Both are plain ASGI apps ahead of
Django: no authentication, no middleware, no query beyond the probe, and no error text in the body (a driver's
message may name hosts or users), only the kind of failure.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection

CHECK_TIMEOUT = 2.0  # seconds each of the database, Redis and channel checks may take
LEDGER_BACKLOG_MAX = 5000  # queued charges past which the writer is taken to be falling behind

# A probe that hangs (a database that accepts connections but never answers) keeps its thread: one thread
# only, so a flood of probes against a hung database cannot pile threads up; the next probe reports "busy".
_db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oneapi-readyz")
_db_busy = threading.Lock()
_redis_clients: dict[int, object] = {}

draining = threading.Event()  # set on SIGTERM: not ready, so balancers stop sending before the listener closes


async def _answer(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": data})


async def healthz(scope, receive, send) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        await _answer(send, 405, {"status": "method not allowed"})
        return
    await _answer(send, 200, {"status": "ok"})


async def readyz(scope, receive, send) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        await _answer(send, 405, {"status": "method not allowed"})
        return
    checks = await readiness()
    ready = all(result == "ok" for result in checks.values())
    await _answer(send, 200 if ready else 503, {"status": "ok" if ready else "unavailable", "checks": checks})


async def readiness() -> dict[str, str]:
    """Each check's result: "ok", or a few words saying what is wrong."""
    if draining.is_set():
        return {"shutdown": "shutting down"}
    database, redis_result, channels = await asyncio.gather(_database(), _redis(), _channels())
    checks = {"database": database, "channels": channels, "ledger": _ledger()}
    if redis_result is not None:
        checks["redis"] = redis_result
    return checks


def _select_one() -> None:
    try:
        close_old_connections()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        _db_busy.release()


async def _database() -> str:
    if not _db_busy.acquire(blocking=False):
        return "unreachable (the last probe has not returned)"
    try:
        future = asyncio.get_running_loop().run_in_executor(_db_thread, _select_one)
    except BaseException:
        _db_busy.release()
        raise
    try:
        await asyncio.wait_for(asyncio.shield(future), CHECK_TIMEOUT)
    except TimeoutError:
        return "unreachable (timed out)"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok"


async def _redis() -> str | None:
    if not settings.REDIS_CONN_STRING:
        return None
    import redis.asyncio as aredis  # only with Redis configured

    loop = asyncio.get_running_loop()
    client = _redis_clients.get(id(loop))
    if client is None:  # connections belong to the loop that opened them (tests run one loop each)
        _redis_clients.clear()
        client = aredis.Redis.from_url(settings.REDIS_CONN_STRING, socket_timeout=CHECK_TIMEOUT,
                                       socket_connect_timeout=CHECK_TIMEOUT)
        _redis_clients[id(loop)] = client
    try:
        await asyncio.wait_for(client.ping(), CHECK_TIMEOUT)
    except TimeoutError:
        return "unreachable (timed out)"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok"


async def _channels() -> str:
    from relay.cache import cache  # the relay imports billing; this module must not load it at import

    if cache.routes is not None:  # a snapshot the database could not refresh still serves
        return "ok"
    try:
        await asyncio.wait_for(cache.get_routes(), CHECK_TIMEOUT)
    except TimeoutError:
        return "not loaded (timed out)"
    except Exception as exc:
        return f"not loaded ({type(exc).__name__})"
    return "ok"


def _ledger() -> str:
    from billing.ledger import ledger

    if ledger.writer_stopped():
        return "writer stopped"
    backlog = len(ledger.pending)
    if backlog >= LEDGER_BACKLOG_MAX:
        return f"backed up ({backlog} charges queued)"
    return "ok"
