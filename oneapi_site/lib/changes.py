"""Tell every relay cache, here and on other instances, that stored data changed.

Services call `publish("channels")` after a write. Listeners on this instance
run once the transaction commits (the relay marks its snapshot stale and
reloads before the next request); with Redis configured the same word goes to
the other instances at once, and without it they catch up within SYNC_FREQUENCY.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

# Imported here, in the thread that imports this module, never first in the listener's thread: two
# threads importing redis at once deadlock on its circular imports (_DeadlockError, or "cannot import
# name ... from partially initialized module"), which killed the listener or failed the first request.
import redis
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "oneapi:changes"
RETRY_SECONDS = 5.0
# Messages carry the sender, so an instance does not reload for its own writes twice.
INSTANCE = os.urandom(8).hex()
KINDS = ("tokens", "users", "channels", "options")

_listeners: list[Callable[[str], None]] = []


def subscribe(listener: Callable[[str], None]) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def _notify_local(kind: str) -> None:
    for listener in list(_listeners):
        try:
            listener(kind)
        except Exception:  # a listener's bug must not fail the write that triggered it
            log.exception("change listener failed for %s", kind)


def publish(kind: str) -> None:
    assert kind in KINDS, kind

    def deliver() -> None:
        _notify_local(kind)
        if settings.REDIS_CONN_STRING:
            try:
                _redis().publish(channel_name(), f"{INSTANCE}:{kind}")
            except Exception:
                log.warning("could not publish %s change to Redis; other instances catch up by timer", kind)

    transaction.on_commit(deliver)


_client = None
_client_lock = threading.Lock()


def channel_name(url: str | None = None) -> str:
    """Pub/sub channels are one namespace for the whole Redis server, whatever the database number: the
    number goes in the name, so deployments sharing a server on different databases do not hear (and
    reload for) each other's writes. `url`: that of another instance, else this one's REDIS_CONN_STRING."""
    url = settings.REDIS_CONN_STRING if url is None else url
    db = redis.connection.parse_url(url).get("db") or 0 if url else 0
    return f"{CHANNEL_PREFIX}:{db}"


def _redis():
    global _client
    with _client_lock:
        if _client is None:
            _client = redis.Redis.from_url(settings.REDIS_CONN_STRING, socket_timeout=5, socket_connect_timeout=2)
        return _client


def listen_forever(stop: threading.Event) -> None:
    """Relay other instances' changes to local listeners (run in a daemon thread).

    Nothing but `stop` ends this loop: an instance that stops listening serves other instances'
    disabled tokens and channels until SYNC_FREQUENCY, so any failure is logged and retried.
    """
    lost = False  # a change published while we were not subscribed may have been missed
    while not stop.is_set():
        try:
            _listen(stop, after_loss=lost)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if not lost:
                log.warning("Redis change feed lost (%s); retrying every %g s", type(exc).__name__, RETRY_SECONDS)
        except Exception:
            log.exception("Redis change feed failed; retrying in %g s", RETRY_SECONDS)
        else:
            return  # stopped
        lost = True
        stop.wait(RETRY_SECONDS)


def _listen(stop: threading.Event, *, after_loss: bool) -> None:
    pubsub = redis.Redis.from_url(settings.REDIS_CONN_STRING, socket_connect_timeout=5).pubsub(
        ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(channel_name())
        if after_loss:
            log.info("Redis change feed restored; reloading cached data")
            for kind in KINDS:
                _notify_local(kind)
        while not stop.is_set():
            message = pubsub.get_message(timeout=1.0)
            if message and message.get("type") == "message":
                data = message["data"].decode() if isinstance(message["data"], bytes) else message["data"]
                sender, _, kind = data.rpartition(":")
                if kind in KINDS and sender != INSTANCE:
                    _notify_local(kind)
    finally:
        pubsub.close()
