"""The shared upstream client: one aiohttp session per event loop.

aiohttp rather than httpx on the hot path: measured on this 2-core machine, an
httpx pool holding 50 connections spent 4-5 ms of CPU per request re-checking
idle connections (encode/httpx#3215), against 0.3 ms for aiohttp. httpx stays
for everything off the hot path.

Outbound proxies (a channel's `proxy` config, else RELAY_PROXY): one more session per event loop and proxy,
made the first time a call needs it and kept (its pool is the proxy's); a call without a proxy takes the
shared session as before and pays one dict lookup for it.
"""

from __future__ import annotations

import asyncio
import weakref

import aiohttp
from django.conf import settings

from providers import outbound_proxy
from providers.adapters.base import ChannelInfo

_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
_proxied: dict[tuple[asyncio.AbstractEventLoop, str], aiohttp.ClientSession] = {}
# The proxy each proxied session goes through, so a session made for a proxy is not swapped again.
_proxy_of: weakref.WeakKeyDictionary[aiohttp.ClientSession, str] = weakref.WeakKeyDictionary()

# Short connect, unbounded or RELAY_TIMEOUT read: a long generation must not be cut at 5 s.
CONNECT_TIMEOUT = 10


def timeout() -> aiohttp.ClientTimeout:
    read = settings.RELAY_TIMEOUT or None
    return aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_connect=CONNECT_TIMEOUT, sock_read=read)


def session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    current = _sessions.get(loop)
    if current is None or current.closed:
        for old_loop in [lp for lp in _sessions if lp.is_closed()]:
            _sessions.pop(old_loop, None)
        current = _new_session()
        _sessions[loop] = current
    return current


def _new_session(proxy: str = "") -> aiohttp.ClientSession:
    pool = {"limit": 1024, "limit_per_host": 512, "ttl_dns_cache": 300, "enable_cleanup_closed": True}
    extra = {}
    if proxy.startswith(("socks5://", "socks5h://")):
        connector = outbound_proxy.socks_connector(proxy, **pool)
    else:
        connector = aiohttp.TCPConnector(**pool)
        if proxy:
            extra["proxy"] = proxy  # aiohttp speaks to HTTP(S) proxies itself, credentials from the URL
    made = aiohttp.ClientSession(connector=connector, timeout=timeout(), auto_decompress=True,
                                 skip_auto_headers=("User-Agent",),
                                 # trust_env reads ~/.netrc in a thread on every request: 1 ms of CPU each.
                                 trust_env=False, **extra)
    if proxy:
        _proxy_of[made] = proxy
    return made


def channel_proxy(channel: ChannelInfo) -> str:
    """The proxy `channel`'s calls go through: its own, else RELAY_PROXY; "" for none."""
    return (channel.config.get("proxy") if channel.config else "") or settings.RELAY_PROXY


def routed(session: aiohttp.ClientSession, channel: ChannelInfo) -> aiohttp.ClientSession:
    """The session for a call to `channel`: `session` itself without a proxy (or when it was made for the
    channel's proxy), else this loop's session for that proxy."""
    proxy = channel_proxy(channel)
    if not proxy or _proxy_of.get(session) == proxy:
        return session
    loop = asyncio.get_running_loop()
    current = _proxied.get((loop, proxy))
    if current is None or current.closed:
        for key in [key for key in _proxied if key[0].is_closed()]:
            _proxied.pop(key, None)
        current = _proxied[(loop, proxy)] = _new_session(proxy)
    return current


def own_session(channel: ChannelInfo) -> aiohttp.ClientSession:
    """A session of its own for calls to `channel` (a channel test on a short-lived loop), through its proxy;
    the caller closes it."""
    return _new_session(channel_proxy(channel))


async def close() -> None:
    """Close this loop's sessions (tests and shutdown)."""
    loop = asyncio.get_running_loop()
    closing = [_sessions.pop(loop, None), *(_proxied.pop(key) for key in [k for k in _proxied if k[0] is loop])]
    for current in closing:
        if current is not None and not current.closed:
            await current.close()
