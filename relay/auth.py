"""Token authentication as one-api does it: `Bearer sk-KEY`, or `sk-KEY-CHANNELID` to pin a channel."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from accounts.models import Token, User
from billing.ledger import ledger
from oneapi_site.lib.timeutil import now_ts
from relay.cache import TokenInfo, UserInfo, cache
from relay.errors import RelayError, missing_api_key


@dataclass(frozen=True, slots=True)
class Caller:
    token: TokenInfo
    user: UserInfo
    pinned_channel: int | None


def parse_authorization(header: str) -> tuple[str, int | None]:
    value = header.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    value = value.removeprefix("sk-")
    key, _, rest = value.partition("-")
    if rest:
        try:
            return key, int(rest.split("-")[0])
        except ValueError:
            raise RelayError(401, "The API key is malformed: expected sk-KEY or sk-KEY-CHANNELID.",
                             code="invalid_api_key") from None
    return key, None


def _unauthorized(message: str, code: str) -> RelayError:
    return RelayError(401, message, type="invalid_request_error", code=code)


async def authenticate(*, authorization: str, client_ip: str) -> Caller:
    if not authorization.strip():
        raise missing_api_key()
    key, channel_id = parse_authorization(authorization)
    if not key:
        raise missing_api_key()
    if "\x00" in key:  # (Gemini's ?key=%00...) PostgreSQL refuses it in a query: an outage to the cache, a 503
        raise _unauthorized("Invalid API key.", "invalid_api_key")
    token = await cache.get_token(key)
    if token is None:
        raise _unauthorized("Invalid API key.", "invalid_api_key")
    if token.status == Token.Status.EXHAUSTED:
        raise _unauthorized("This API key has used up its quota.", "token_quota_exhausted")
    if token.status == Token.Status.EXPIRED or (token.expired_time != -1 and token.expired_time < now_ts()):
        raise _unauthorized("This API key has expired.", "token_expired")
    if token.status != Token.Status.ENABLED:
        raise _unauthorized("This API key is disabled.", "token_disabled")
    if not token.unlimited:
        if token.remain_quota - ledger.token_spent(token.id) <= 0:
            raise _unauthorized("This API key has used up its quota.", "token_quota_exhausted")
    if token.subnets is not None:
        try:
            ip = ipaddress.ip_address(client_ip)
        except ValueError:
            ip = None
        if ip is None or not any(ip in net for net in token.subnets):
            raise RelayError(403, f"This API key may not be used from {client_ip or 'an unknown address'}.",
                             code="ip_not_allowed")
    user = await cache.get_user(token.user_id)
    if user is None or user.status != User.Status.ENABLED:
        raise RelayError(403, "The user of this API key is disabled.", code="user_disabled")
    if channel_id is not None and user.role < User.Role.ADMIN:
        raise RelayError(403, "Only administrators may pin a channel with sk-KEY-CHANNELID.",
                         code="channel_pinning_forbidden")
    return Caller(token=token, user=user, pinned_channel=channel_id)


def check_model_allowed(caller: Caller, model: str) -> None:
    allowed = caller.token.models
    if allowed is not None and model not in allowed:
        raise RelayError(403, f"This API key may not use the model {model}.", code="model_not_allowed")
