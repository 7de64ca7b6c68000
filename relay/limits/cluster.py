"""The limits counted in Redis, shared by every instance: one script call admits a request for all its scopes.

The client is oneapi_site/lib/resp.py's (one connection per event loop, shared with the shared quota's calls,
so a request's limits and quota admissions go out in one send), and the scripts go by EVALSHA. Errors (redis-py's
exceptions) reach the caller (relay/limits/__init__.py), which counts in
this process while Redis is away.
"""

from __future__ import annotations

from oneapi_site.lib import resp
from relay.limits import scripts
from relay.limits.caps import Refusal, Scope, Usage

PREFIX = "oneapi:rl:"
# A lease outlives its instance by at most this long; a running request renews it every LEASE_MS / 3.
LEASE_MS = 60_000
CONNECT_TIMEOUT = 0.5  # seconds: a Redis that does not answer soon is treated as down, and the request
READ_TIMEOUT = 1.0  # is counted in this process instead


# A request that ended: its id, scopes, tokens reserved, tokens billed (None: as reserved) and, for a request
# undone (it never reached an upstream: it leaves every count), the day start it was admitted in, else None.
Ended = tuple[str, tuple[Scope, ...], int, int | None, int | None]


def _ends(args: list, ended: list[Ended]) -> None:
    for rid, scopes, reserved, tokens, undone in ended:
        if undone is None:
            args += (rid, max(reserved, 1), -1 if tokens is None else tokens, len(scopes))
        else:
            args += (rid, max(reserved, 1), -2, undone, len(scopes))
        args.extend(scope.key for scope in scopes)


ADMIT, FINISH, RENEW = resp.Script(scripts.ADMIT), resp.Script(scripts.FINISH), resp.Script(scripts.RENEW)


class ClusterCounts:
    def __init__(self, url: str) -> None:
        self.url = url

    async def _run(self, script: resp.Script, args: list):
        return await resp.client_for(self.url).script(script, (), args, timeout=READ_TIMEOUT,
                                                      connect_timeout=CONNECT_TIMEOUT)

    async def admit(self, *, scopes: tuple[Scope, ...], channels: tuple[Scope, ...], spare: bool, rid: str,
                    tokens: int, now: int | None, day: int, day_end: int,
                    ended: list[Ended] = ()) -> tuple[int, Usage | None, Usage | None] | Refusal:
        """As LocalCounts.admit, in one round trip, which also ends the requests in `ended` (as `finish`) first."""
        args: list = [PREFIX, "" if now is None else now, rid, tokens, day, day_end, LEASE_MS, len(scopes),
                      len(channels), int(spare)]
        for scope in (*scopes, *channels):
            args.append(scope.key)
            args.extend(scope.caps)
        _ends(args, ended)
        answer = await self._run(ADMIT, args)
        if answer[0] == 1:
            index, r_limit, r_left, r_reset, t_limit, t_left, t_reset = answer[1:]
            return (index, Usage(r_limit, r_left, r_reset) if r_limit else None,
                    Usage(t_limit, t_left, t_reset) if t_limit else None)
        _, index, kind, limit, retry, too_large, remaining = answer
        scope = scopes[index] if index >= 0 else None
        return Refusal(scope, kind.decode() if isinstance(kind, bytes) else kind, limit, retry, bool(too_large),
                       remaining)

    async def finish(self, ended: list[Ended], now: int | None) -> None:
        """Requests that ended: their leases released and their TPM entries corrected (or, undone, out of every
        count), in one call."""
        args: list = [PREFIX, "" if now is None else now]
        _ends(args, ended)
        await self._run(FINISH, args)

    async def renew(self, leases: list[tuple[str, str]], now: int | None) -> None:
        """Push back the expiry of these (scope key, request id) leases."""
        args: list = [PREFIX, "" if now is None else now, LEASE_MS]
        for key, rid in leases:
            args += (key, rid)
        await self._run(RENEW, args)
