"""Holding a request's quota before the call and settling it after: balances and budgets, user and token.

With Redis (billing/shared_quota.py) every instance admits against the same balances and budgets in one
round trip; without it, or while Redis is unreachable, against this process's ledger (billing/ledger.py).
Either way the refusals are the same: 401 for a used-up key, 403 for a balance that cannot cover the
reservation, 429 `budget_exceeded` for a budget, saying which budget, its size and when it resets.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

from django.conf import settings

from billing import budgets, journal, money
from billing.ledger import ledger
from billing.services import Charge
from billing.shared_quota import Refusal, Subject, shared
from oneapi_site import metrics
from oneapi_site.lib.timeutil import ts_text
from relay import limits
from relay.auth import Caller
from relay.errors import RelayError

PERIOD_WORDS = {"day": "daily", "week": "weekly", "month": "monthly"}


def now() -> int:
    """Unix seconds; the tests move this clock to cross a budget period."""
    return int(time.time())


@dataclass(frozen=True, slots=True)
class Hold:
    """A request's reservation: in Redis (`lease`) or in this process's ledger."""

    amount: int
    lease: str | None
    user: Subject
    token: Subject


# user id -> Redis settlements under way that its next admission waits for: those not queued on Redis's connection
# at once (SharedQuota.settle_now); a queued one runs in Redis before any later admission anyway.
_pending: dict[int, set[asyncio.Task]] = {}
_settling: set[asyncio.Task] = set()  # every Redis settlement under way (drain)


def in_redis() -> bool:
    """Whether holds are made in Redis now (configured and not known to be down)."""
    return shared.enabled()


def _period_start(period: str, ts: int) -> int:
    return budgets.period_start(period, ts) if period else 0


def _subjects(caller: Caller, ts: int) -> tuple[Subject, Subject]:
    user, token = caller.user, caller.token
    user_ps = _period_start(user.budget_period, ts)
    token_ps = _period_start(token.budget_period, ts)
    # Seeds for a hash Redis does not hold yet: the cached database values less what this instance has
    # settled since they were read (the ledger's count), as the in-process admission sees them.
    return (
        Subject(kind="u", id=user.id, limited=True, budget=user.budget_quota if user_ps else 0,
                period_start=user_ps, period=user.budget_period, seed_balance=user.quota - ledger.user_spent(user.id),
                seed_spent=_cached_spent(user, user_ps) + ledger.budget_spent("u", user.id, user_ps)),
        Subject(kind="t", id=token.id, limited=not token.unlimited, budget=token.budget_quota if token_ps else 0,
                period_start=token_ps, period=token.budget_period,
                seed_balance=token.remain_quota - ledger.token_spent(token.id),
                seed_spent=_cached_spent(token, token_ps) + ledger.budget_spent("t", token.id, token_ps)),
    )


def _cached_spent(info, period_start: int) -> int:
    return info.budget_spent if period_start and info.budget_period_start == period_start else 0


async def hold(caller: Caller, amount: int) -> Hold:
    """Reserve `amount` for the caller's request, or raise the client's refusal."""
    ts = now()
    user, token = _subjects(caller, ts)
    if caller.user.id in _pending:
        # This user's last settlement first: a client's next request must see its previous one's charge, not
        # its reservation (which may be larger), or a budget with room for it refuses. (Only one that was not
        # queued on Redis's connection at once is waited for: a queued one runs there before this admission.)
        await asyncio.gather(*[asyncio.shield(t) for t in _pending[caller.user.id]], return_exceptions=True)
    if shared.enabled():
        call = asyncio.ensure_future(shared.admit(user=user, token=token, amount=amount))
        try:
            # Shielded: Redis may have reserved by the time a client that left cancels us, and that
            # reservation must be given back once it answers, not held until its lease lapses.
            answer = await asyncio.shield(call)
        except asyncio.CancelledError:
            call.add_done_callback(lambda done: _release_orphan(done, user, token, amount))
            raise
        if answer is not None:
            lease, refusal = answer
            if refusal is not None:
                raise _refused(caller, refusal, ts, amount)
            return Hold(amount=amount, lease=lease, user=user, token=token)
    refused = ledger.reserve(
        user_id=user.id, user_quota=caller.user.quota, token_id=token.id,
        token_quota=None if not token.limited else caller.token.remain_quota, amount=amount,
        user_budget=_local_budget(user, caller.user), token_budget=_local_budget(token, caller.token))
    if refused is not None:
        kind = "u" if refused.startswith("user") else "t"
        subject = user if kind == "u" else token
        reason = "budget" if refused.endswith("budget") else "quota"
        raise _refused(caller, Refusal(reason, kind, period_start=subject.period_start), ts, amount)
    return Hold(amount=amount, lease=None, user=user, token=token)


def _release_orphan(call: asyncio.Future, user: Subject, token: Subject, amount: int) -> None:
    if call.cancelled() or call.exception() is not None:
        return
    answer = call.result()
    if answer is not None and answer[1] is None:
        release(Hold(amount=amount, lease=answer[0], user=user, token=token))


def _local_budget(subject: Subject, info) -> tuple[int, int, int] | None:
    if not subject.budget:
        return None
    return subject.budget, subject.period_start, _cached_spent(info, subject.period_start)


def _refused(caller: Caller, refusal: Refusal, ts: int, amount: int = 0) -> RelayError:
    if refusal.reason == "exhausted" and refusal.kind == "t":
        return RelayError(401, "This API key has used up its quota.", type="invalid_request_error",
                          code="token_quota_exhausted")
    if refusal.reason in ("exhausted", "quota"):
        if refusal.kind == "u":
            return RelayError(403, "Your account's quota is not enough for this request.",
                              code="insufficient_user_quota")
        return RelayError(403, "This API key's quota is not enough for this request.",
                          code="pre_consume_token_quota_failed")
    info = caller.user if refusal.kind == "u" else caller.token
    metrics.record_refusal("user_budget" if refusal.kind == "u" else "token_budget")
    whose = "Your account's" if refusal.kind == "u" else "This API key's"
    resets = budgets.period_end(info.budget_period, max(refusal.period_start, ts))
    period = PERIOD_WORDS.get(info.budget_period, info.budget_period)
    if amount > info.budget_quota:  # no period has room for it: saying the budget is spent would mislead
        message = (f"This request may cost up to {money.usd_text(amount)}, more than {whose[0].lower()}{whose[1:]} "
                   f"{period} budget of {money.usd_text(info.budget_quota)}: send a smaller request or a lower "
                   f"max_tokens.")
    elif refusal.spent >= info.budget_quota:
        message = (f"{whose} {period} budget of {money.usd_text(info.budget_quota)} is spent; it resets at "
                   f"{ts_text(resets)} ({settings.TIME_ZONE}).")
    else:  # what is left (less what requests in flight hold) is less than this one may cost
        message = (f"{whose} {period} budget of {money.usd_text(info.budget_quota)} has too little left for this "
                   f"request, which may cost up to {money.usd_text(amount)}; it resets at {ts_text(resets)} "
                   f"({settings.TIME_ZONE}).")
    wait = max(1, resets - ts)
    headers: tuple[tuple[bytes, bytes], ...] = ((b"retry-after", str(wait).encode()),)
    if wait > limits.SDK_MAX_WAIT:  # the SDKs would retry within seconds, to be refused again
        headers = ((b"x-should-retry", b"false"), *headers)
    return RelayError(429, message, type="insufficient_quota", code="budget_exceeded", headers=headers)


def periods(hold: Hold) -> dict[str, int | str]:
    """The budget periods a charge made now counts in, as Charge's fields."""
    return {"user_period_start": hold.user.period_start, "token_period_start": hold.token.period_start,
            "user_budget_period": hold.user.period, "token_budget_period": hold.token.period}


def settle(hold: Hold, charge: Charge) -> None:
    """Charge the request (queued for the database) and give back its reservation. Never raises, never awaits:
    the Redis settlement runs as a task of its own, so a client that left cannot cancel it; the user's next
    admission on this instance waits for it."""
    entry = b""
    if hold.lease:  # kept in Redis until written, by the lease's id (billing/journal.py)
        charge = replace(charge, charge_id=hold.lease)
        entry = journal.encode(charge)
    ledger.settle(charge, reserved=0 if hold.lease else hold.amount)
    if hold.lease:
        _spawn(hold.user.id, *shared.settle_now(lease=hold.lease, reserved=hold.amount, user=hold.user,
                                                token=hold.token, charge=charge.quota, journal=entry))
    else:
        shared.owe_charge(user=hold.user, token=hold.token, charge=charge.quota)


def release(hold: Hold) -> None:
    """The request failed before any charge: its reservation is free again."""
    if hold.lease:
        _spawn(hold.user.id, *shared.settle_now(lease=hold.lease, reserved=hold.amount, user=hold.user,
                                                token=hold.token, charge=0))
    else:
        ledger.release(user_id=hold.user.id, token_id=hold.token.id, amount=hold.amount, limited=hold.token.limited)


def _spawn(user_id: int, queued: bool, coro) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _settling.add(task)  # held, or the loop may drop the task before it runs
    task.add_done_callback(_settling.discard)
    if queued:
        return
    tasks = _pending.setdefault(user_id, set())
    tasks.add(task)

    def done(task: asyncio.Task) -> None:
        tasks.discard(task)
        if not tasks and _pending.get(user_id) is tasks:
            del _pending[user_id]

    task.add_done_callback(done)


async def drain() -> None:
    """Wait for the Redis settlements under way (tests, shutdown)."""
    while _settling:
        await asyncio.gather(*_settling, return_exceptions=True)
