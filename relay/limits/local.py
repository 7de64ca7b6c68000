"""The limits counted in this process: without Redis, and while Redis is unreachable.

The same rules as relay/limits/cluster.py's script, step for step, so a limit means the same on either:
RPM and TPM are sliding window logs over the last 60 s (a request counts in (now - 60 s, now]),
concurrency is the set of requests in flight, RPD a count per calendar day.
"""

from __future__ import annotations

import contextlib
from collections import deque

from relay.limits.caps import WINDOW_MS, Refusal, Scope, Usage, tighter


class _Counters:
    __slots__ = ("requests", "tokens", "tokens_total", "by_request", "leases", "day", "day_count")

    def __init__(self) -> None:
        self.requests: deque[int] = deque()  # admission times (ms), oldest first
        self.tokens: deque[list] = deque()  # [time ms, tokens, request id], oldest first
        self.tokens_total = 0
        self.by_request: dict[str, list] = {}  # request id -> its entry in `tokens`, for the correction
        self.leases: set[str] = set()
        self.day = -1  # the day (its start) that day_count counts; none yet
        self.day_count = 0

    def prune(self, now: int) -> None:
        edge = now - WINDOW_MS
        requests = self.requests
        while requests and requests[0] <= edge:
            requests.popleft()
        tokens = self.tokens
        while tokens and tokens[0][0] <= edge:
            entry = tokens.popleft()
            self.tokens_total -= entry[1]
            self.by_request.pop(entry[2], None)


SWEEP_EVERY = 10_000  # admissions between sweeps of the counters of scopes that hold nothing any more


class LocalCounts:
    def __init__(self) -> None:
        self.scopes: dict[str, _Counters] = {}
        self._until_sweep = SWEEP_EVERY

    def _sweep(self, now: int, day: int) -> None:
        """Forget scopes with nothing in their windows, nothing in flight and no count today, so that the
        counters of keys used once do not pile up."""
        idle = []
        for key, counters in self.scopes.items():
            counters.prune(now)
            if not (counters.requests or counters.tokens or counters.leases or counters.day == day):
                idle.append(key)
        for key in idle:
            del self.scopes[key]

    def admit(self, *, scopes: tuple[Scope, ...], channels: tuple[Scope, ...], spare: bool, rid: str, tokens: int,
              now: int, day: int, day_end: int) -> tuple[int, Usage | None, Usage | None] | Refusal:
        """(index of the channel admitted: -1 without channel scopes, len(channels) for the `spare` channel
        without caps that follows them when all are full; the tightest requests and tokens limits), or the
        refusal. Nothing is counted unless every scope has room."""
        self._until_sweep -= 1
        if not self._until_sweep:
            self._until_sweep = SWEEP_EVERY
            self._sweep(now, day)
        usage: list[Usage | None] = [None, None]
        for scope in scopes:
            refusal = self._check(scope, tokens, now, day, day_end, usage)
            if refusal is not None:
                return refusal
        chosen = -1
        if channels:
            soonest: Refusal | None = None
            for index, scope in enumerate(channels):
                tried = list(usage)
                refusal = self._check(scope, tokens, now, day, day_end, tried)
                if refusal is None:
                    chosen, usage = index, tried
                    break
                if soonest is None or refusal.retry_ms < soonest.retry_ms:
                    soonest = refusal
            else:
                if not spare:
                    return Refusal(None, soonest.kind, soonest.limit, soonest.retry_ms)
                chosen = len(channels)
        for scope in scopes:
            self._commit(scope, rid, tokens, now, day)
        if 0 <= chosen < len(channels):
            self._commit(channels[chosen], rid, tokens, now, day)
        return chosen, usage[0], usage[1]

    def _counters(self, key: str) -> _Counters:
        counters = self.scopes.get(key)
        if counters is None:
            counters = self.scopes[key] = _Counters()
        return counters

    def _check(self, scope: Scope, tokens: int, now: int, day: int, day_end: int,
               usage: list[Usage | None]) -> Refusal | None:
        rpm, tpm, concurrency, rpd = scope.caps
        counters = self._counters(scope.key)
        counters.prune(now)
        if rpm:
            log = counters.requests
            count = len(log)
            if count >= rpm:  # room comes when the request that leaves it rpm - 1 requests has left
                return Refusal(scope, "rpm", rpm, log[count - rpm] + WINDOW_MS - now)
            oldest = log[0] if log else now
            usage[0] = tighter(usage[0], rpm, rpm - count - 1, oldest + WINDOW_MS - now)
        if tpm:
            need = max(tokens, 1)
            total = counters.tokens_total
            if need > tpm:
                return Refusal(scope, "tpm", tpm, WINDOW_MS, too_large=True, remaining=max(tpm - total, 0))
            if total + need > tpm:
                freed = 0
                for at, spent, _ in counters.tokens:
                    freed += spent
                    if total - freed + need <= tpm:
                        return Refusal(scope, "tpm", tpm, at + WINDOW_MS - now)
                return Refusal(scope, "tpm", tpm, WINDOW_MS)  # unreachable: an empty window has room
            oldest = counters.tokens[0][0] if counters.tokens else now
            usage[1] = tighter(usage[1], tpm, tpm - total - need, oldest + WINDOW_MS - now)
        if concurrency and len(counters.leases) >= concurrency:
            return Refusal(scope, "concurrency", concurrency, 1000)  # no telling when one ends: try again soon
        if rpd:
            count = counters.day_count if counters.day == day else 0
            if count >= rpd:
                return Refusal(scope, "rpd", rpd, day_end - now)
            usage[0] = tighter(usage[0], rpd, rpd - count - 1, day_end - now)
        return None

    def _commit(self, scope: Scope, rid: str, tokens: int, now: int, day: int) -> None:
        rpm, tpm, concurrency, rpd = scope.caps
        counters = self.scopes[scope.key]
        if rpm:
            counters.requests.append(now)
        if tpm:
            entry = [now, max(tokens, 1), rid]
            counters.tokens.append(entry)
            counters.tokens_total += entry[1]
            counters.by_request[rid] = entry
        if concurrency:
            counters.leases.add(rid)
        if rpd:
            if counters.day != day:
                counters.day, counters.day_count = day, 0
            counters.day_count += 1

    def finish(self, *, rid: str, scopes: tuple[Scope, ...], tokens: int | None) -> None:
        """The request ended: its leases go, and its tokens become `tokens` (None: as reserved)."""
        for scope in scopes:
            counters = self.scopes.get(scope.key)
            if counters is None:
                continue
            counters.leases.discard(rid)
            if tokens is not None:
                entry = counters.by_request.get(rid)
                if entry is not None:
                    counters.tokens_total += tokens - entry[1]
                    entry[1] = tokens

    def undo(self, *, rid: str, scopes: tuple[Scope, ...], at: int, day: int) -> None:
        """A request admitted at `at` (ms) on `day` that never reached an upstream: out of every count."""
        for scope in scopes:
            counters = self.scopes.get(scope.key)
            if counters is None:
                continue
            rpm, _, _, rpd = scope.caps
            counters.leases.discard(rid)
            if rpm:
                # Admission times alike are alike to remove; one gone already was out of the window.
                with contextlib.suppress(ValueError):
                    counters.requests.remove(at)
            entry = counters.by_request.pop(rid, None)
            if entry is not None:
                counters.tokens.remove(entry)
                counters.tokens_total -= entry[1]
            if rpd and counters.day == day and counters.day_count > 0:
                counters.day_count -= 1

    def release_lease(self, *, rid: str, scope: Scope) -> None:
        counters = self.scopes.get(scope.key)
        if counters is not None:
            counters.leases.discard(rid)
