"""The shared cache on Redis, which pages and /api outlive.

With django-redis alone, Redis being down raised on every cache call, so every Django route (the image's
health check /api/status included) answered "Server Error (500)" while the relay kept serving (issue 8).
This backend answers from this process instead while Redis is unreachable, with the FALLBACK option:

- "memory" (the default alias): a per-process memory cache. Rate limits and sign-in limits count per
  instance, and e-mail codes, reset links and the test-all lock hold on the instance that made them.
- "none" (the sessions alias): every read misses and every write is dropped. Sessions are `cached_db`, so
  they come from the database, which holds them all; a copy in this process's memory could outlive a
  logout made on another instance.

Redis is tried again every RETRY_SECONDS, not on every call, so an outage does not cost each request a
connection attempt, and the outage is logged once when it starts and once when it ends. Keys written or
deleted during the outage are deleted from Redis before anything else once it is back: Redis still holds
what they were before (a session since logged out, an e-mail code since replaced).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from time import monotonic
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
MAX_STALE_KEYS = 100_000  # remembered per alias during one outage; past that, some expire on their own
FALLBACKS = ("memory", "none")
_UNAVAILABLE = (RedisError, ConnectionInterrupted)  # django-redis raises redis-py's own error, or wraps it


class _Outage:
    """Whether Redis at one address is reachable; shared by the aliases on it, so each outage logs once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down = False
        self._retry_at = 0.0

    def worth_trying(self) -> bool:
        return not self.down or monotonic() >= self._retry_at

    def failed(self, exc: Exception) -> None:
        with self._lock:
            self._retry_at = monotonic() + RETRY_SECONDS
            if self.down:
                return
            self.down = True
        # The error names host and port at most, never the password of REDIS_CONN_STRING.
        log.warning("Redis is unreachable (%s: %s); pages and /api count limits in this process and read sessions "
                    "from the database until it is back", type(exc).__name__, exc)

    def succeeded(self) -> None:
        if self.down:
            with self._lock:
                if not self.down:
                    return
                self.down = False
            log.warning("Redis is reachable again; the shared cache is back in use")


class _StaleKeys:
    """Keys written or deleted while Redis was away, for every thread's instance of one alias."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: set[tuple[str, int | None]] = set()


_outages: dict[str, _Outage] = {}
_stale: dict[tuple, _StaleKeys] = {}
_registry_lock = threading.Lock()


def _shared(registry: dict, key, factory):
    with _registry_lock:
        if key not in registry:
            registry[key] = factory()
        return registry[key]


class ResilientRedisCache(BaseCache):
    def __init__(self, server: str, params: dict[str, Any]):
        options = dict(params.get("OPTIONS", {}))
        fallback = options.pop("FALLBACK", "memory")
        if fallback not in FALLBACKS:
            raise ValueError(f"FALLBACK must be one of {FALLBACKS}, got {fallback!r}")
        super().__init__(params)
        self._redis = RedisCache(server, {**params, "OPTIONS": options})
        # Django makes an instance per thread; the outage, the memory and the stale keys are per process.
        alias = (server, fallback, self.key_prefix)
        self._memory = LocMemCache(f"oneapi-fallback:{alias}", {**params, "OPTIONS": {"MAX_ENTRIES": 10_000}}) \
            if fallback == "memory" else None
        self._outage = _shared(_outages, server, _Outage)
        self._stale = _shared(_stale, alias, _StaleKeys)

    # --- plumbing

    def _call(self, method: str, *args, **kwargs) -> tuple[bool, Any]:
        """(True, Redis's answer), or (False, None) when Redis is unavailable."""
        if not self._outage.worth_trying():
            return False, None
        try:
            if self._stale.keys:
                self._forget_stale()
            result = getattr(self._redis, method)(*args, **kwargs)
        except _UNAVAILABLE as exc:
            self._outage.failed(exc)
            return False, None
        self._outage.succeeded()
        return True, result

    def _forget_stale(self) -> None:
        with self._stale.lock:
            stale, self._stale.keys = self._stale.keys, set()
        by_version: dict[int | None, list[str]] = defaultdict(list)
        for key, version in stale:
            by_version[version].append(key)
        try:
            for version, keys in by_version.items():
                self._redis.delete_many(keys, version=version)
        except Exception:
            with self._stale.lock:
                self._stale.keys |= stale
            raise

    def _written(self, keys, version) -> None:
        with self._stale.lock:
            if len(self._stale.keys) < MAX_STALE_KEYS:
                self._stale.keys.update((key, version) for key in keys)

    # --- Django's cache API

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        ok, result = self._call("add", key, value, timeout=timeout, version=version)
        if ok:
            return result
        self._written([key], version)
        return self._memory.add(key, value, timeout, version) if self._memory else True

    def get(self, key, default=None, version=None):
        ok, result = self._call("get", key, default=default, version=version)
        if ok:
            return result
        return self._memory.get(key, default, version) if self._memory else default

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        ok, result = self._call("set", key, value, timeout=timeout, version=version)
        if ok:
            return result
        self._written([key], version)
        if self._memory:
            self._memory.set(key, value, timeout, version)
        return True

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        ok, result = self._call("touch", key, timeout=timeout, version=version)
        if ok:
            return result
        return self._memory.touch(key, timeout, version) if self._memory else False

    def delete(self, key, version=None):
        ok, result = self._call("delete", key, version=version)
        if ok:
            return result
        self._written([key], version)
        return self._memory.delete(key, version) if self._memory else False

    def get_many(self, keys, version=None):
        ok, result = self._call("get_many", keys, version=version)
        if ok:
            return result
        return self._memory.get_many(keys, version) if self._memory else {}

    def has_key(self, key, version=None):
        ok, result = self._call("has_key", key, version=version)
        if ok:
            return result
        return self._memory.has_key(key, version) if self._memory else False

    def incr(self, key, delta=1, version=None):
        ok, result = self._call("incr", key, delta=delta, version=version)
        if ok:
            return result
        self._written([key], version)
        if self._memory:
            return self._memory.incr(key, delta, version)
        raise ValueError(f"Key '{key}' not found")  # what a miss means to incr

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        ok, result = self._call("set_many", data, timeout=timeout, version=version)
        if ok:
            return result or []
        self._written(list(data), version)
        if self._memory:
            self._memory.set_many(data, timeout, version)
        return []

    def delete_many(self, keys, version=None):
        keys = list(keys)
        ok, _ = self._call("delete_many", keys, version=version)
        if not ok:
            self._written(keys, version)
            if self._memory:
                self._memory.delete_many(keys, version)

    def clear(self):
        self._call("clear")
        if self._memory:
            self._memory.clear()
        return True

    def close(self, **kwargs):
        try:
            self._redis.close(**kwargs)
        except _UNAVAILABLE:
            pass
