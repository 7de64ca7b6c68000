"""The client's address behind a reverse proxy: X-Forwarded-For, believed only from trusted proxies.

Per-IP limits (sign-in, sign-up, resets, the global limits) and a token's IP allow-list key on the
address in the ASGI scope; Django copies it to REMOTE_ADDR. Daphne's --proxy-headers would take the
first X-Forwarded-For entry from any peer, which any client can write, so every limit and allow-list
could be dodged with one header. Here the list is read from the right, stepping back only while the
address at hand is a proxy the operator trusts (TRUSTED_PROXIES, none by default); the first one that is
not is the client.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: bare, "1.2.3.4:5678" or "[2001:db8::1]:443"."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    """Whether `address` is one of the trusted proxies; cached, since a few peers make most requests."""
    ip = _parse(address)
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in trusted)


def client_address(peer: str, forwarded_for: Sequence[str], trusted: tuple[Network, ...]) -> str:
    """The client: `peer`, or while it is a trusted proxy, the hop it names in X-Forwarded-For."""
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    address = peer
    while hops and is_trusted(address, trusted):
        hop = _parse(hops.pop())
        if hop is None:  # a garbled entry: the proxy that wrote it is the last address we can vouch for
            break
        address = str(hop)
    return address


class ForwardedClientMiddleware:
    """ASGI: put the real client (and scheme) in the scope when a trusted proxy forwarded the request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and scope.get("client"):
            forwarded: list[str] = []
            proto = ""
            for name, value in scope.get("headers") or ():
                if name == b"x-forwarded-for":
                    forwarded.append(value.decode("latin-1"))
                elif name == b"x-forwarded-proto":
                    proto = value.decode("latin-1").split(",")[0].strip().lower()
            if forwarded or proto:
                trusted = settings.TRUSTED_PROXIES
                peer = scope["client"][0] or ""
                if is_trusted(peer, trusted):
                    scope = dict(scope)
                    if forwarded:
                        address = client_address(peer, forwarded, trusted)
                        if address != peer:
                            scope["client"] = (address, 0)
                    if proto in ("http", "https") and scope["type"] == "http":
                        scope["scheme"] = proto
        return await self.app(scope, receive, send)
