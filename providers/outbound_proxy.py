"""Outbound proxies for upstream calls: a channel's `proxy` config key, else RELAY_PROXY (one-api's name).

http:// and https:// proxies are spoken by aiohttp and httpx themselves; socks5:// (names resolved here) and
socks5h:// (names resolved by the proxy) go through aiohttp-socks on the relay and socksio in httpx. A
password in the URL is a credential: shown back masked (`mask`), and a masked value saved again keeps the
stored one (`restore`).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

SCHEMES = ("http", "https", "socks5", "socks5h")
MASK = "***"


class ProxyInvalid(ValueError):
    pass


def check(url: str, *, name: str = "proxy") -> str:
    """The proxy URL, stripped; ProxyInvalid names what is wrong with it."""
    url = (url or "").strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ProxyInvalid(f"{name} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ProxyInvalid(f"{name} must start with http://, https://, socks5:// or socks5h://")
    if not parts.hostname:
        raise ProxyInvalid(f"{name} names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyInvalid(f"{name} must be scheme://[user:password@]host:port, with no path or query")
    if port is None and parts.scheme.lower().startswith("socks"):
        raise ProxyInvalid(f"{name} needs a port (socks5://host:1080)")
    return url.rstrip("/")


def mask(url: str) -> str:
    """The URL with its password replaced by MASK, to show it back."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


def restore(submitted: str, stored: str) -> str:
    """What to store: the stored URL when `submitted` is that URL as it was shown (masked)."""
    if stored and submitted and submitted.strip() == mask(stored) and submitted.strip() != stored:
        return stored
    return submitted


def secret(url: str) -> str:
    """The password in the URL ("" for none), for the channel's secrets."""
    try:
        return unquote(urlsplit(url).password or "") if url else ""
    except ValueError:
        return ""


_socks_connector_class = None


def socks_connector(url: str, **pool):
    """An aiohttp connector through a SOCKS5 proxy (socks5h: the proxy resolves names). aiohttp-socks is
    imported the first time a channel needs it, so a gateway without SOCKS proxies never loads it."""
    global _socks_connector_class
    if _socks_connector_class is None:
        from aiohttp_socks import ProxyConnectionError, ProxyConnector, ProxyError, ProxyTimeoutError

        class SocksConnector(ProxyConnector):
            """Its failures as the OSError and TimeoutError every network failure is (the relay's 502, which
            another channel may answer), not aiohttp-socks' own exceptions."""

            async def _wrap_create_connection(self, *args, **kwargs):
                try:
                    return await super()._wrap_create_connection(*args, **kwargs)
                except ProxyTimeoutError as exc:
                    raise TimeoutError(f"SOCKS proxy: {exc}") from None
                except (ProxyConnectionError, ProxyError) as exc:
                    raise ConnectionError(f"SOCKS proxy: {exc}") from None

        _socks_connector_class = SocksConnector
    from aiohttp_socks import ProxyType

    parts = urlsplit(url)
    return _socks_connector_class(proxy_type=ProxyType.SOCKS5, host=parts.hostname, port=parts.port or 1080,
                                  username=unquote(parts.username) if parts.username else None,
                                  password=unquote(parts.password) if parts.password else None,
                                  rdns=parts.scheme.lower() == "socks5h", **pool)


def httpx_proxy(url: str) -> str | None:
    """The proxy argument for httpx (off the relay path: balances); None for none."""
    return url or None
