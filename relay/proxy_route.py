"""one-api's raw pass-through, ANY /v1/oneapi/proxy/{channel id}/{target}: the request goes to a Proxy (43)
channel's base URL + /{target} as it came (method, query, headers, body), with the channel's key as its
Authorization header, and the answer comes back as the service sent it.

As in one-api it is not billed (nothing in it is a model's answer to count), so it is held closer than
one-api holds it: the caller's token must be valid, and the channel an enabled Proxy channel that serves the
caller's group (one-api lets any token use any channel id). The key's, the user's and the group's rate limits
and the channel's caps count it as any request (relay/limits), so an unbilled route is no way around them. The
gateway's own credential headers never reach the service behind it.
"""

from __future__ import annotations

from providers.adapters.base import NETWORK_ERRORS, network_failure, read_timeout
from relay import http, limits
from relay.auth import Caller
from relay.cache import cache
from relay.errors import RelayError
from relay.limits import limiter

PREFIX = "/v1/oneapi/proxy/"
PROXY_TYPE = 43
# Not forwarded: hop-by-hop headers, what the HTTP client sets itself (one-api drops these too), and the
# credentials the caller gave this gateway, its cookies included (a console session, sent to this host).
DROPPED_REQUEST = frozenset({
    b"host", b"content-length", b"accept-encoding", b"connection", b"keep-alive", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"proxy-authorization", b"authorization", b"x-api-key", b"x-goog-api-key",
    b"cookie",
})
# The gateway's own CORS headers go on every answer instead of the service's (access-control-*). A cookie the
# service sets would be this site's (it could fix a console session or CSRF cookie): dropped too.
DROPPED_RESPONSE = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                              "content-encoding", "upgrade", "trailer", "set-cookie", "set-cookie2"})


def target(path: str) -> tuple[int, str]:
    """The channel id and the path to send it, from the raw path after PREFIX."""
    channel, _, rest = path.removeprefix(PREFIX).partition("/")
    if not channel.isdigit():
        raise RelayError(404, "The proxy route is /v1/oneapi/proxy/{channel id}/{path}.",
                         type="invalid_request_error", code="unknown_url")
    if any(segment in (".", "..") for segment in rest.split("/")):
        # The HTTP client resolves them: "../" would leave the channel's base path for others on its host.
        raise RelayError(400, "The proxy route's path may not hold . or .. segments.",
                         type="invalid_request_error", code="invalid_path")
    return int(channel), "/" + rest


async def proxy_channel(caller: Caller, channel_id: int):
    """The enabled Proxy channel `channel_id`, if it serves the caller's group."""
    routes = await cache.get_routes()
    channel = routes.channels.get(channel_id)
    serves = channel is not None and channel.type == PROXY_TYPE and any(
        group == caller.user.group and any(c.id == channel_id for tier in tiers for c in tier.channels)
        for (group, _), tiers in routes.by_group_model.items())
    if not serves:
        raise RelayError(404, f"No enabled Proxy channel #{channel_id} serves your group.",
                         type="invalid_request_error", code="channel_not_found")
    return channel


async def forward(*, scope, body: bytes, response, caller: Caller) -> None:
    channel_id, rest = target(scope["path"])
    channel = await proxy_channel(caller, channel_id)
    if not channel.base_url.startswith(("http://", "https://")):  # saved through /api, which does not ask
        raise RelayError(502, f"Proxy channel #{channel_id} has no base URL to send the request to.",
                         type="upstream_error", code="channel_base_url_missing")
    ticket = limits.Ticket(response.request_id)
    scopes = limits.scopes_for(token=caller.token, user=caller.user, model="")
    if scopes or any(channel.limits):  # else nothing to count: no Redis call
        await limiter.admit(ticket, scopes=scopes, channels=(limits.channel_scope(channel),), tokens=0,
                            model=f"behind Proxy channel #{channel_id}")
    try:
        await _send(scope, body, response, channel, rest, ticket.headers())
    finally:
        await limiter.finish(ticket, tokens=0)


async def _send(scope, body: bytes, response, channel, rest: str, extra: list[tuple[bytes, bytes]]) -> None:
    url = channel.base_url.rstrip("/") + rest
    if scope.get("query_string"):
        url += "?" + scope["query_string"].decode("latin-1")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ())
               if k not in DROPPED_REQUEST]
    headers.append(("Authorization", channel.key))
    session = http.routed(http.session(), channel)  # the channel's proxy, or RELAY_PROXY
    try:
        async with session.request(scope["method"], url, headers=headers, data=body or None,
                                   allow_redirects=False) as upstream:
            await response.start(upstream.status, [
                *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in upstream.headers.items()
                  if k.lower() not in DROPPED_RESPONSE and not k.lower().startswith("access-control-")
                  and not (extra and k.lower().startswith("x-ratelimit-"))), *extra])
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.finish()
    except NETWORK_ERRORS as exc:
        err = network_failure(exc, read_timeout=read_timeout(session), started=response.started)
        if response.started:
            if not response.finished:
                await response.finish()  # a raw body has no error event: it ends where the service stopped
            return
        raise RelayError(502, err.message, type="upstream_error", code=err.code) from None

