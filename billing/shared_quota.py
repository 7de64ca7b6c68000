"""Quota and budgets that every instance sees at once, kept in Redis (when REDIS_CONN_STRING is set).

Without Redis each process admits requests against its cached balance minus what it settled itself
(billing/ledger.py), so N instances together may spend up to N balances. With Redis, admission and
settlement are Lua scripts over one hash per user and per token, so they are atomic across instances and
cost one round trip each.

The hash `oneapi:quota:{u|t}:<id>` holds
  bal  the balance after every settled charge, written to the database or not (= database balance minus
       settled-but-unwritten charges, the amount the ledger's flush moves into the database). A flush moves
       charges from "unwritten" to "written" without changing `bal`, so the flush never touches Redis and a
       crash between the database write and anything else cannot make the two disagree.
  res  the sum of the reservations of requests admitted and not yet settled.
  bs, bp  the budget spending of the period that began at `bp` (unix seconds), charges and adjustments only.
and the sorted set `...:leases` one member `<lease>:<amount>` per reservation, scored by its expiry.

Admission (one script for user and token, quota and budgets): seeds a missing hash from the caller's cached
database values (HSETNX, so the first instance's seed wins and later seeds are ignored), frees expired
leases, moves the budget to the current period, then refuses when the token is used up (`bal` <= 0), when
`bal - res` cannot cover the reservation, or when `bs + res + amount` passes a budget; else adds the
reservation to `res` and a lease. Settlement (one script): removes the lease, and only if it was still
there its amount from `res` (a lease that expired was already freed), then takes the charge from `bal` and
adds it to `bs` of the charge's period. So at any moment the admitted-but-unsettled requests hold at most
`bal` between them, whatever instance admitted them, and `bal` only ever falls by charges.

Seeding from a cached value is safe because a hash is missing only when nobody touched it for TTL seconds
(far longer than SYNC_FREQUENCY, so no cached value predates a charge the hash would have held) or when
Redis lost it (a restart without persistence, or eviction: run Redis with maxmemory-policy noeviction, as
these keys carry a TTL that volatile-* policies would let it drop); then the charges of other instances
made since this one's cache was loaded are missed until the hash next expires.

A settlement that failed (Redis unreachable, or its answer lost to a timeout after Redis ran it) is kept and
sent again marked as a replay: the replay takes its charge only where its lease is still held (ZREM removed
it), so a settlement Redis already ran is never charged twice. The flag rides in the replay's arguments,
which costs the normal path nothing (no key per request to remember what was settled). The trade-off: a
lease that expired before the replay came (an outage longer than LEASE_SECONDS, or an instance that
replays after that long) is not charged in Redis at all - the database still takes it, exactly - so
Redis's balance is then lenient by that charge until the hash expires, never charged twice.

A settlement still in flight when its process stops (milliseconds after the answer) is lost to Redis
while the ledger writes it to the database: Redis then holds that charge less than the database, and its
lease frees the reservation after LEASE_SECONDS. A charge the database refuses for good (the ledger parks
it) is given back in Redis too.

Balance changes outside the relay (top-ups, redemptions, admin edits of a balance) are applied to `bal` as
the same relative delta they wrote to the database, after their transaction commits, and only to a hash
that exists (a missing one is seeded later from the database, which already holds them). An edit landing
while a hash is being seeded by a cache loaded after the edit committed can be counted twice; that needs
a hash missing (idle for TTL) and an edit within the same few milliseconds.

Leases expire after LEASE_SECONDS: the reservations of an instance that died are freed then; a request
still running past it loses its reservation (its charge is still taken at settlement).

Redis unreachable: admission falls back to this process's ledger (as without Redis) for RETRY_SECONDS,
with one log line when the outage starts and one when it ends. Charges settled and balance deltas made
meanwhile are remembered per hash, and settlements that could not be sent are kept whole (their leases
freed, not left to expire), as is the release of an admission whose answer was lost (Redis may have reserved);
all are sent before the next admission that reaches Redis, or by a retry every RETRY_SECONDS when none comes.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from oneapi_site.lib import resp

log = logging.getLogger(__name__)

PREFIX = "oneapi:quota:"
TTL = 7 * 24 * 3600  # seconds a hash outlives its last use
LEASE_SECONDS = 3600  # a reservation outlives any request the relay lets run (streams included)
RETRY_SECONDS = 5.0
TIMEOUT = 2.0  # seconds: an unresponsive Redis costs a request this much once, then the fallback is used

# KEYS: user hash, user leases, token hash, token leases.
# ARGV: lease, lease_ms, ttl, amount, then per subject: limited, budget, period_start, seed_bal, seed_bs,
# period (its kind: a change of kind starts the spending afresh, as it is another budget).
# Returns {0} when admitted; {1, 2, bal} the token used up; {2, i, bal - res} short; {3, i, bs, bp} budget spent
# (i: 1 the user, 2 the token).
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease, lease_ms, ttl, amount = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 1, 2 do
  local h, l, a = KEYS[2 * i - 1], KEYS[2 * i], 4 + (i - 1) * 6
  local limited, budget, ps, kind = ARGV[a + 1] == '1', tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), ARGV[a + 6]
  if redis.call('HSETNX', h, 'bal', ARGV[a + 4]) == 1 then
    redis.call('HSET', h, 'res', 0, 'bs', ARGV[a + 5], 'bp', ps, 'bk', kind)
    redis.call('EXPIRE', h, ttl)
  elseif redis.call('HGET', h, 'bk') ~= kind then
    redis.call('HSET', h, 'bs', 0, 'bp', ps, 'bk', kind)
  end
  local dead = redis.call('ZRANGEBYSCORE', l, '-inf', now)
  if #dead > 0 then
    local freed = 0
    for _, m in ipairs(dead) do freed = freed + tonumber(string.match(m, ':(%-?%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', l, '-inf', now)
    redis.call('HINCRBY', h, 'res', -freed)
  end
  local v = redis.call('HMGET', h, 'bal', 'res', 'bs', 'bp')
  local bal, res, bs, bp = tonumber(v[1]), tonumber(v[2]), tonumber(v[3]), tonumber(v[4])
  if ps > bp then
    -- A new period: its spending starts from nothing. (An instance whose clock is behind, ps < bp,
    -- counts the newer period's spending, which refuses no later than it should.)
    bs, bp = 0, ps
    redis.call('HSET', h, 'bs', 0, 'bp', ps)
  end
  if limited then
    -- A used-up key is refused whatever the request costs (relay/auth.py's 401); an account only when short.
    if i == 2 and bal <= 0 then return {1, i, bal} end
    if bal - res < amount then return {2, i, bal - res} end
  end
  if budget > 0 and bs + res + amount > budget then return {3, i, bs, bp} end
end
for i = 1, 2 do
  redis.call('HINCRBY', KEYS[2 * i - 1], 'res', amount)
  redis.call('ZADD', KEYS[2 * i], now + lease_ms, lease .. ':' .. amount)
  redis.call('EXPIRE', KEYS[2 * i - 1], ttl)
  redis.call('EXPIRE', KEYS[2 * i], ttl)
end
return {0}
"""

# KEYS as ADMIT. ARGV: lease, reserved, ttl, then per subject: limited, charge, period_start (0: no budget),
# period kind (a charge counts in a budget of its kind only), then on a replay only '1': the charge is taken only
# where the lease is still held (the first send may have run). A release is a settlement of nothing.
SETTLE = """
local member = ARGV[1] .. ':' .. ARGV[2]
local replay = ARGV[12] == '1'
for i = 1, 2 do
  local h, l, a = KEYS[2 * i - 1], KEYS[2 * i], 3 + (i - 1) * 4
  local held = redis.call('ZREM', l, member) == 1
  if (held or not replay) and redis.call('HEXISTS', h, 'bal') == 1 then
    if held then redis.call('HINCRBY', h, 'res', -tonumber(ARGV[2])) end
    local charge, ps = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    if ARGV[a + 1] == '1' and charge ~= 0 then redis.call('HINCRBY', h, 'bal', -charge) end
    if ps > 0 and charge ~= 0 and redis.call('HGET', h, 'bk') == ARGV[a + 4] then
      local bp = tonumber(redis.call('HGET', h, 'bp'))
      if ps == bp then redis.call('HINCRBY', h, 'bs', charge)
      elseif ps > bp then redis.call('HSET', h, 'bs', charge, 'bp', ps) end
    end
    redis.call('EXPIRE', h, ARGV[3])
  end
end
return 0
"""

# KEYS: one hash. ARGV: balance delta, budget delta, period_start (0: none), period kind. Only a hash that
# exists moves.
ADJUST = """
if redis.call('HEXISTS', KEYS[1], 'bal') == 0 then return 0 end
local d, bd, ps = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if d ~= 0 then redis.call('HINCRBY', KEYS[1], 'bal', d) end
if ps > 0 and bd ~= 0 and redis.call('HGET', KEYS[1], 'bk') == ARGV[4] then
  local bp = tonumber(redis.call('HGET', KEYS[1], 'bp'))
  if ps == bp then redis.call('HINCRBY', KEYS[1], 'bs', bd)
  elseif ps > bp and bd > 0 then redis.call('HSET', KEYS[1], 'bs', bd, 'bp', ps) end
end
return 1
"""

SCRIPTS = {"admit": resp.Script(ADMIT), "settle": resp.Script(SETTLE), "adjust": resp.Script(ADJUST)}


def key(kind: str, subject_id: int) -> str:
    """The hash of a user ("u") or token ("t")."""
    return f"{PREFIX}{kind}:{subject_id}"


@dataclass(frozen=True, slots=True)
class Subject:
    """One side of a request's admission: the user or the token."""

    kind: str  # "u" or "t"
    id: int
    limited: bool  # whether its balance is checked and moved (an unlimited token's is not)
    budget: int  # 0: none
    period_start: int  # the current budget period's start; 0 without a period
    period: str  # "", "day", "week" or "month"
    seed_balance: int  # the balance to start from if Redis holds none (the cached database value)
    seed_spent: int  # the current period's spending to start from


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # "exhausted", "quota" or "budget"
    kind: str  # "u" or "t"
    spent: int = 0  # budget: what the period has spent
    period_start: int = 0


_ADMITTED = object()
_lease_ids = itertools.count(1)
_INSTANCE = os.urandom(6).hex()


_prefix: tuple[tuple, str] = ((), "")  # the database the last prefix was made for, and that prefix


def journal_prefix() -> str:
    """Where the journals of settled charges (billing/journal.py) of instances on this database are: one Redis
    shared by gateways on other databases (test runs, staging) must never replay their charges into this one."""
    global _prefix
    # Read from the settings dict, not the connection (an async-local lookup), and hashed once per database:
    # this runs on every settlement. Tests switch databases (the test database's NAME), so the key is checked.
    db = connections.settings[DEFAULT_DB_ALIAS]
    where = (db.get("ENGINE"), db.get("HOST"), db.get("PORT"), db.get("NAME"))
    if _prefix[0] != where:
        tag = hashlib.sha1(f"{connection.vendor}|{where[1]}|{where[2]}|{where[3]}".encode())
        _prefix = (where, f"oneapi:ledger:{tag.hexdigest()[:10]}:")
    return _prefix[1]


def journal_key() -> str:
    """This process's journal: its charges settled and not yet written."""
    return journal_prefix() + _INSTANCE


class SharedQuota:
    def __init__(self) -> None:
        self._down_until = 0.0
        self._down = False
        self._lock = threading.Lock()
        # hash -> [balance delta, {period_start: budget delta}] not yet applied in Redis (made during an outage)
        self.owed: dict[str, list] = {}
        self.owed_settlements: list[tuple[list[str], list]] = []  # SETTLE calls that did not reach Redis
        self._aclient: tuple[resp.Client | resp.RedisPyClient, dict] | None = None
        self._client: redis.Redis | None = None
        self._replayer: asyncio.Task | None = None  # sends what is owed when no admission comes to carry it

    def enabled(self) -> bool:
        """Redis is configured and not known to be down (it is tried again RETRY_SECONDS after a failure)."""
        return bool(settings.REDIS_CONN_STRING) and time.monotonic() >= self._down_until

    # --- connections ---------------------------------------------------------

    def _async(self) -> tuple[resp.Client | resp.RedisPyClient, dict]:
        # The event loop's connection (oneapi_site/lib/resp.py), which the rate limits' calls share: a request's
        # two admissions go out in one send. `scripts` call one script each, in a round trip of its own.
        client = resp.client_for(settings.REDIS_CONN_STRING)
        if self._aclient is None or self._aclient[0] is not client:
            def caller(script: resp.Script):
                async def call(*, keys: list, args: list):
                    return await client.script(script, keys, args, timeout=TIMEOUT, connect_timeout=TIMEOUT)
                return call

            self._aclient = (client, {name: caller(script) for name, script in SCRIPTS.items()})
        return self._aclient

    def _sync(self) -> redis.Redis:
        with self._lock:
            if self._client is None:
                self._client = redis.Redis.from_url(settings.REDIS_CONN_STRING, socket_timeout=TIMEOUT,
                                                    socket_connect_timeout=TIMEOUT)
            return self._client

    def _failed(self, exc: Exception) -> None:
        self._down_until = time.monotonic() + RETRY_SECONDS
        if not self._down:
            self._down = True
            # The error names host and port at most, never REDIS_CONN_STRING's password.
            log.warning("Shared quota cannot reach Redis (%s: %s); each instance admits requests against its own "
                        "ledger until it is back", type(exc).__name__, exc)

    def _succeeded(self) -> None:
        if self._down:
            self._down = False
            log.warning("Shared quota reaches Redis again; all instances admit against one balance again")

    def _owe(self, hash_key: str, balance: int, budget: int = 0, period_start: int = 0, period: str = "") -> None:
        with self._lock:
            entry = self.owed.setdefault(hash_key, [0, defaultdict(int)])
            entry[0] += balance
            if period_start and budget:
                entry[1][(period_start, period)] += budget

    def _take_owed(self) -> list[tuple[str, int, int, int, str]]:
        """The owed amounts as ADJUST calls, emptied; put back with _restore_owed if they cannot be sent."""
        with self._lock:
            owed, self.owed = self.owed, {}
        calls = []
        for hash_key, (balance, budgets) in owed.items():
            calls.append((hash_key, balance, 0, 0, ""))
            calls.extend((hash_key, 0, amount, ps, kind) for (ps, kind), amount in sorted(budgets.items()))
        return calls

    def _restore_owed(self, calls: list[tuple[str, int, int, int, str]]) -> None:
        for hash_key, balance, budget, ps, kind in calls:
            self._owe(hash_key, balance, budget, ps, kind)

    # --- the relay (event loop) ---------------------------------------------

    async def admit(self, *, user: Subject, token: Subject, amount: int) -> tuple[str, Refusal | None] | None:
        """Reserve `amount` for user and token: (lease, None) when admitted, ("", refusal) when refused,
        None when Redis cannot be reached (the caller falls back to its own ledger)."""
        lease = ""
        try:
            client, scripts = self._async()
            if self.owed or self.owed_settlements:
                await self._replay(client, scripts)
            lease = f"{_INSTANCE}.{next(_lease_ids)}"
            args = [lease, LEASE_SECONDS * 1000, TTL, amount]
            for s in (user, token):
                args += [int(s.limited), s.budget, s.period_start, s.seed_balance, s.seed_spent, s.period]
            answer = await scripts["admit"](
                keys=[key("u", user.id), key("u", user.id) + ":leases", key("t", token.id),
                      key("t", token.id) + ":leases"], args=args)
        except redis.RedisError as exc:
            self._failed(exc)
            if lease:
                # Redis may have run the script and lost only its answer (a timeout): the lease is released
                # with the next call that reaches it, instead of holding the amount for LEASE_SECONDS. Releasing a
                # lease Redis never took frees nothing.
                self._keep(*self._settle_call(lease=lease, reserved=amount, user=user, token=token, charge=0))
            return None
        self._succeeded()
        code = int(answer[0])
        if code == 0:
            return lease, None
        kind = "u" if int(answer[1]) == 1 else "t"
        if code == 3:
            return "", Refusal("budget", kind, spent=int(answer[2]), period_start=int(answer[3]))
        return "", Refusal("exhausted" if code == 1 else "quota", kind)

    def settle_now(self, *, lease: str, reserved: int, user: Subject, token: Subject, charge: int,
                   journal: bytes = b"") -> tuple[bool, Coroutine]:
        """Swap the lease for the charge (charge 0: a release): (queued, the coroutine that completes it). Queued
        (True): the settlement is on Redis's connection already, so every admission sent after it, on this
        instance, sees it (one connection runs its commands in order; the exception, a script Redis lost, is
        sent again after the reply); else it goes when the coroutine runs, and an admission that must see it
        waits for that. When Redis cannot be reached the settlement is kept and sent again before the next
        admission that reaches it (so the lease does not wait for its expiry), as a replay: when Redis ran it but
        its answer was lost, the lease it removed is gone and the replay takes no charge again (see the module
        docstring for a lease that expired meanwhile). `journal`, the charge as billing/journal.py keeps it, goes
        into this instance's journal in the same round trip."""
        keys, args = self._settle_call(lease=lease, reserved=reserved, user=user, token=token, charge=charge)
        calls = [(SCRIPTS["settle"], keys, args)]
        if journal:
            calls.append(("HSET", journal_key(), lease, journal))
        try:
            client, _ = self._async()
        except redis.RedisError as exc:
            return False, self._unsent(exc, keys, args)
        queued, reply = client.start(calls, timeout=TIMEOUT, connect_timeout=TIMEOUT)
        return queued, self._settled(reply, keys, args)

    async def settle(self, **kwargs) -> None:
        """settle_now's settlement, done when this returns."""
        await self.settle_now(**kwargs)[1]

    async def _settled(self, reply: Coroutine, keys: list, args: list) -> None:
        try:
            await reply
        except redis.RedisError as exc:
            await self._unsent(exc, keys, args)
            return
        self._succeeded()

    async def _unsent(self, exc: Exception, keys: list, args: list) -> None:
        self._failed(exc)
        self._keep(keys, args)

    def _keep(self, keys: list, args: list) -> None:
        """A settlement to send again, as a replay (SETTLE's last argument): Redis may have run it already."""
        with self._lock:
            self.owed_settlements.append((keys, [*args, 1]))
        self._replay_soon()

    @staticmethod
    def _settle_call(*, lease: str, reserved: int, user: Subject, token: Subject, charge: int) -> tuple[list, list]:
        """SETTLE's keys and arguments."""
        args = [lease, reserved, TTL]
        for s in (user, token):
            args += [int(s.limited), charge, s.period_start, s.period]
        keys = [key("u", user.id), key("u", user.id) + ":leases", key("t", token.id), key("t", token.id) + ":leases"]
        return keys, args

    def owe_charge(self, *, user: Subject, token: Subject, charge: int) -> None:
        """A charge settled by this instance's ledger while Redis was away: applied to Redis once it is back."""
        if not charge or not settings.REDIS_CONN_STRING:
            return
        for s in (user, token):
            self._owe(key(s.kind, s.id), -charge if s.limited else 0, charge, s.period_start, s.period)
        self._replay_soon()

    def _replay_soon(self) -> None:
        """Send what Redis is owed after RETRY_SECONDS, also when no admission of this instance comes to carry it
        (an idle instance): else its leases would free their reservations and its charges never reach Redis,
        whose balances the other instances admit against."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._replayer is None or self._replayer.done() or self._replayer.get_loop() is not loop:
            self._replayer = loop.create_task(self._replay_later())

    async def _replay_later(self) -> None:
        while self.owed or self.owed_settlements:
            await asyncio.sleep(RETRY_SECONDS)
            if not settings.REDIS_CONN_STRING or not (self.owed or self.owed_settlements):
                return
            await self.send_owed()

    async def _replay(self, client, scripts) -> None:
        calls = self._take_owed()
        with self._lock:
            settlements, self.owed_settlements = self.owed_settlements, []
        try:
            await client.run([(SCRIPTS["adjust"], [hash_key], [balance, budget, ps, kind])
                              for hash_key, balance, budget, ps, kind in calls]
                             + [(SCRIPTS["settle"], keys, args) for keys, args in settlements],
                             timeout=TIMEOUT, connect_timeout=TIMEOUT)
        except BaseException:
            self._restore_owed(calls)
            with self._lock:
                self.owed_settlements[:0] = settlements
            raise

    async def send_owed(self) -> None:
        """Send what an outage left owed now, not before a next admission (a stopping instance has none)."""
        if not settings.REDIS_CONN_STRING or not (self.owed or self.owed_settlements):
            return
        try:
            client, scripts = self._async()
            await self._replay(client, scripts)
        except redis.RedisError as exc:
            self._failed(exc)
            return
        self._succeeded()

    # --- balance changes outside the relay (services, worker threads) --------------

    def adjust_on_commit(self, *, kind: str, subject_id: int, delta: int) -> None:
        """Move the subject's shared balance by `delta` once the surrounding transaction commits."""
        if not delta or not settings.REDIS_CONN_STRING:
            return
        transaction.on_commit(lambda: self._adjust(key(kind, subject_id), delta))

    def refund(self, charge) -> None:
        """Give back a settled charge (billing.services.Charge) the database refused for good (the ledger parked
        it), so Redis's balances stay the database's."""
        if not charge.quota or not settings.REDIS_CONN_STRING:
            return
        self._adjust(key("u", charge.user_id), charge.quota, -charge.quota, charge.user_period_start,
                     charge.user_budget_period)
        self._adjust(key("t", charge.token_id), 0 if charge.unlimited else charge.quota, -charge.quota,
                     charge.token_period_start, charge.token_budget_period)

    def _adjust(self, hash_key: str, delta: int, budget: int = 0, period_start: int = 0, period: str = "") -> None:
        if not self.enabled():  # known down: no connection attempt per edit
            self._owe(hash_key, delta, budget, period_start, period)
            return
        try:
            client = self._sync()
            client.eval(ADJUST, 1, hash_key, delta, budget, period_start, period)
        except redis.RedisError as exc:
            self._failed(exc)
            self._owe(hash_key, delta, budget, period_start, period)
            return
        self._succeeded()

    def forget(self) -> None:
        """Drop connections and remembered deltas (tests)."""
        self._aclient = None
        self._client = None
        self.owed = {}
        self.owed_settlements = []
        self._replayer = None
        self._down_until = 0.0
        self._down = False


shared = SharedQuota()
