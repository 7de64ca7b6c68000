"""Read-only `/v1` answers: the model list and the billing endpoints chat UIs call."""

from __future__ import annotations

import orjson

from billing.ledger import ledger
from oneapi_site import options
from relay.auth import Caller
from relay.cache import cache


def _model(model: str, owner: str) -> dict:
    return {"id": model, "object": "model", "created": 1626777600, "owned_by": owner,
            "permission": [], "root": model, "parent": None}


async def model_names(caller: Caller) -> tuple[str, ...]:
    """The models the caller's group has a channel for and their key may use."""
    routes = await cache.get_routes()
    available = routes.group_models.get(caller.user.group, ())
    if caller.token.models is not None:
        available = tuple(m for m in available if m in caller.token.models)
    return available


async def models(caller: Caller, model_id: str) -> tuple[int, bytes]:
    available = await model_names(caller)
    routes = await cache.get_routes()
    if not model_id:
        data = [_model(m, routes.model_owner.get(m, "custom")) for m in available]
        return 200, orjson.dumps({"object": "list", "data": data})
    if model_id in available:
        return 200, orjson.dumps(_model(model_id, routes.model_owner.get(model_id, "custom")))
    error = {"message": f"The model '{model_id}' does not exist or you do not have access to it.",
             "type": "invalid_request_error", "param": "model", "code": "model_not_found"}
    return 404, orjson.dumps({"error": error})


def _amounts(caller: Caller) -> tuple[float, float, bool]:
    """(remaining + used, used) in US$, from the token (DisplayTokenStatEnabled) or the user."""
    per_unit = float(options.quota_per_unit())
    token = caller.token
    if options.get("DisplayTokenStatEnabled"):
        if token.unlimited:
            return 100000000.0, 0.0, True
        spent = ledger.token_spent(token.id)
        remain = token.remain_quota - spent
        used = token.used_quota + spent
    else:
        spent = ledger.user_spent(caller.user.id)
        remain = caller.user.quota - spent
        used = caller.user.used_quota + spent
    return (remain + used) / per_unit, used / per_unit, False


def subscription(caller: Caller) -> bytes:
    total, _, _ = _amounts(caller)
    expires = caller.token.expired_time if caller.token.expired_time != -1 else 0
    return orjson.dumps({
        "object": "billing_subscription", "has_payment_method": True, "soft_limit_usd": total,
        "hard_limit_usd": total, "system_hard_limit_usd": total, "access_until": expires,
    })


def usage(caller: Caller) -> bytes:
    _, used, _ = _amounts(caller)
    return orjson.dumps({"object": "list", "total_usage": used * 100})
