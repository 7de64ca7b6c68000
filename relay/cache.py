"""What the relay reads on every request, held in this process.

Channels, routes and options are loaded whole; tokens and users one by one on
first use. Everything is refreshed after SYNC_FREQUENCY seconds, and at once
when `oneapi_site.lib.changes` reports a write (here, or on another instance
through Redis). A warm request makes no database query.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import Error as DatabaseError
from django.db import close_old_connections

from accounts.models import Token, User
from billing.ledger import ledger
from oneapi_site import metrics, options
from oneapi_site.lib import changes
from oneapi_site.lib.limit_fields import LIMIT_FIELDS
from providers import channel_keys
from providers.adapters import ADAPTERS
from providers.adapters.base import ChannelInfo
from providers.models import Ability, Channel
from relay.errors import RelayError
from relay.limits.caps import NO_LIMITS, Caps
from relay.routing import Routes, Tier

log = logging.getLogger("oneapi.relay")

NEGATIVE_TTL = 30  # seconds an unknown key stays known-unknown, so a flood of bad keys cannot reach the DB
MAX_NEGATIVE = 10_000
# While the database cannot be read, a snapshot it could not refresh is used as it is and tried again
# after this many seconds, so a warm gateway keeps serving through a database restart.
DB_RETRY = 5


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    key: str
    user_id: int
    name: str
    status: int
    remain_quota: int
    used_quota: int
    unlimited: bool
    expired_time: int
    models: frozenset[str] | None
    subnets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None
    # Budget (oneapi_site/lib/limit_fields.py), spending as the database held it when cached.
    budget_quota: int = 0
    budget_period: str = ""
    budget_spent: int = 0
    budget_period_start: int = 0
    limits: Caps = NO_LIMITS


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    username: str
    group: str
    role: int
    status: int
    quota: int
    used_quota: int
    price_ratio: float = 1  # multiplies the group ratio in every charge (billing/pricing.py)
    budget_quota: int = 0
    budget_period: str = ""
    budget_spent: int = 0
    budget_period_start: int = 0
    limits: Caps = NO_LIMITS


BUDGET_FIELDS = ("budget_quota", "budget_period", "budget_spent", "budget_period_start")


def _token_info(row: dict) -> TokenInfo:
    models = frozenset(m.strip() for m in row["models"].split(",") if m.strip()) or None
    subnets = None
    if row["subnet"].strip():
        subnets = tuple(ipaddress.ip_network(s.strip(), strict=False) for s in row["subnet"].split(",") if s.strip())
    return TokenInfo(id=row["id"], key=row["key"], user_id=row["user_id"], name=row["name"], status=row["status"],
                     remain_quota=row["remain_quota"], used_quota=row["used_quota"],
                     unlimited=row["unlimited_quota"],
                     expired_time=row["expired_time"], models=models, subnets=subnets,
                     **{f: row[f] for f in BUDGET_FIELDS}, limits=_caps(row))


def _caps(row: dict) -> Caps:
    caps = Caps(*(row.pop(column) for column in LIMIT_FIELDS))
    return caps if any(caps) else NO_LIMITS


def _load_token(key: str) -> TokenInfo | None:
    close_old_connections()
    with ledger.flush_lock:
        row = Token.objects.filter(key=key).values(
            "id", "key", "user_id", "name", "status", "remain_quota", "used_quota", "unlimited_quota", "expired_time",
            "models", "subnet", *BUDGET_FIELDS, *LIMIT_FIELDS).first()
        if row is not None:
            ledger.rebase_token(row["id"])
    return _token_info(row) if row else None


def _load_user(user_id: int) -> UserInfo | None:
    close_old_connections()
    with ledger.flush_lock:
        row = User.objects.filter(pk=user_id).values(
            "id", "username", "group", "role", "status", "quota", "used_quota", "price_ratio",
            *BUDGET_FIELDS, *LIMIT_FIELDS).first()
        if row is not None:
            ledger.rebase_user(row["id"])
    if row is None:
        return None
    limits = _caps(row)
    return UserInfo(**row, limits=limits)


def _load_routes() -> Routes:
    close_old_connections()
    options.reload_from_db()
    channels: dict[int, ChannelInfo] = {}
    status: dict[int, int] = {}
    unsupported: list[int] = []
    key_rows = channel_keys.key_rows_by_channel()
    for ch in Channel.objects.all().only(
            "id", "type", "name", "key", "base_url", "models", "model_mapping", "config", "system_prompt",
            "priority", "weight", "status", "key_mode", "key_rpm_limit", *LIMIT_FIELDS):
        status[ch.id] = ch.status
        if ch.status == Channel.Status.ENABLED and ch.type not in ADAPTERS:
            unsupported.append(ch.id)
        if ch.status != Channel.Status.ENABLED or ch.type not in ADAPTERS:
            continue
        keys = channel_keys.snapshot_keys(ch, key_rows)
        if keys is None:  # a multi-key channel whose keys are all down
            continue
        channels[ch.id] = ChannelInfo(
            id=ch.id, type=ch.type, name=ch.name, **keys, base_url=ch.base_url, models=tuple(ch.model_list),
            model_mapping=dict(ch.model_mapping or {}), config=dict(ch.config or {}),
            system_prompt=ch.system_prompt, priority=ch.priority, weight=ch.weight,
            limits=_caps({column: getattr(ch, column) for column in LIMIT_FIELDS}))
    if unsupported:  # the console and /api/channel/ say why (providers/labels.unsupported_reason)
        log.warning("channels %s are enabled but of types without an adapter: kept out of routing",
                    ", ".join(f"#{i}" for i in unsupported))
    grouped: dict[tuple[str, str], dict[int, list[tuple[ChannelInfo, int]]]] = defaultdict(lambda: defaultdict(list))
    group_models: dict[str, set[str]] = defaultdict(set)
    model_owner: dict[str, str] = {}
    for group, model, channel_id, priority, weight in Ability.objects.filter(enabled=True).values_list(
            "group", "model", "channel_id", "priority", "weight"):
        info = channels.get(channel_id)
        if info is None:
            continue
        grouped[(group, model)][priority].append((info, weight))
        group_models[group].add(model)
        model_owner.setdefault(model, ADAPTERS[info.type].label.lower())
    by_group_model = {
        gm: tuple(
            Tier(priority=p, channels=tuple(c for c, _ in members), weights=tuple(max(w, 1) for _, w in members))
            for p, members in sorted(tiers.items(), key=lambda kv: -kv[0])
        )
        for gm, tiers in grouped.items()
    }
    return Routes(by_group_model=by_group_model, channels=channels, channel_status=status,
                  group_models={g: tuple(sorted(m)) for g, m in group_models.items()}, model_owner=model_owner)


def _database_failed(what: str, exc: DatabaseError, *, stale: bool) -> None:
    """One log line, no traceback: a database that is down is an operator's matter, not a bug."""
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    log.warning("database unavailable while loading %s (%s%s)%s", what, type(exc).__name__,
                f": {detail}" if detail else "", "; using the last snapshot" if stale else "")


def _unavailable(what: str) -> RelayError:
    return RelayError(503, f"The gateway cannot {what} right now: its database is unavailable. Try again shortly.",
                      code="database_unavailable")


def _retry_soon(ttl: float) -> float:
    """The load time that makes a snapshot look fresh for DB_RETRY more seconds (or its ttl, if shorter)."""
    return time.monotonic() - ttl + min(DB_RETRY, ttl)


class RelayCache:
    def __init__(self) -> None:
        self.routes: Routes | None = None
        self.routes_loaded = 0.0
        self.tokens: dict[str, tuple[TokenInfo | None, float]] = {}
        self.users: dict[int, tuple[UserInfo | None, float]] = {}
        # Bumped by every change; a snapshot is fresh while it was loaded at the current generation.
        self._generation = 1
        self._loaded_generation = 0
        self._routes_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        changes.subscribe(self.mark_stale)
        self._listener: threading.Thread | None = None

    def mark_stale(self, kind: str) -> None:
        # Called from any thread; dict swaps and set.add are atomic enough for a flag.
        if kind == "tokens":
            self.tokens = {}
        elif kind == "users":
            self.users = {}
        else:
            self._generation += 1

    def clear(self) -> None:
        self.tokens = {}
        self.users = {}
        self._generation += 1

    def _routes_fresh(self) -> bool:
        return (self.routes is not None and self._loaded_generation == self._generation
                and time.monotonic() - self.routes_loaded < settings.SYNC_FREQUENCY)

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._routes_lock is None or self._lock_loop is not loop:
            self._routes_lock = asyncio.Lock()
            self._lock_loop = loop
        return self._routes_lock

    async def get_routes(self) -> Routes:
        if self._routes_fresh():
            return self.routes
        # Everyone waits for one reload: a request must not route by the snapshot a change made stale.
        async with self._lock():
            if not self._routes_fresh():
                generation = self._generation  # a change during the load leaves the result stale
                try:
                    routes = await sync_to_async(_load_routes, thread_sensitive=False)()
                except DatabaseError as exc:
                    metrics.cache_loaded("routes", ok=False)
                    _database_failed("the channels", exc, stale=self.routes is not None)
                    if self.routes is None:
                        raise _unavailable("load its channels") from None
                    self.routes_loaded, self._loaded_generation = _retry_soon(settings.SYNC_FREQUENCY), generation
                    return self.routes
                self.routes, self.routes_loaded, self._loaded_generation = routes, time.monotonic(), generation
                metrics.cache_loaded("routes")
        return self.routes

    async def get_token(self, key: str) -> TokenInfo | None:
        hit = self.tokens.get(key)
        now = time.monotonic()
        if hit is not None:
            info, loaded = hit
            ttl = settings.SYNC_FREQUENCY if info is not None else NEGATIVE_TTL
            if now - loaded < ttl:
                return info
        try:
            info = await sync_to_async(_load_token, thread_sensitive=False)(key)
        except DatabaseError as exc:
            metrics.cache_loaded("token", ok=False)
            _database_failed("an API key", exc, stale=hit is not None)
            if hit is None:
                raise _unavailable("check this API key") from None
            self.tokens[key] = (hit[0], _retry_soon(settings.SYNC_FREQUENCY if hit[0] is not None else NEGATIVE_TTL))
            return hit[0]
        if info is None and len(self.tokens) > MAX_NEGATIVE:
            self.tokens = {k: v for k, v in self.tokens.items() if v[0] is not None}
        self.tokens[key] = (info, now)
        metrics.cache_loaded("token")
        return info

    async def get_user(self, user_id: int) -> UserInfo | None:
        hit = self.users.get(user_id)
        now = time.monotonic()
        if hit is not None and now - hit[1] < settings.SYNC_FREQUENCY:
            return hit[0]
        try:
            info = await sync_to_async(_load_user, thread_sensitive=False)(user_id)
        except DatabaseError as exc:
            metrics.cache_loaded("user", ok=False)
            _database_failed("a user", exc, stale=hit is not None)
            if hit is None:
                raise _unavailable("check the account of this API key") from None
            self.users[user_id] = (hit[0], _retry_soon(settings.SYNC_FREQUENCY))
            return hit[0]
        self.users[user_id] = (info, now)
        metrics.cache_loaded("user")
        return info

    def start_listener(self) -> None:
        """With Redis, hear other instances' writes at once instead of after SYNC_FREQUENCY."""
        if settings.REDIS_CONN_STRING and self._listener is None:
            stop = threading.Event()
            self._listener = threading.Thread(target=changes.listen_forever, args=(stop,), daemon=True,
                                              name="oneapi-changes")
            self._listener.start()


cache = RelayCache()
