"""Writes to API tokens (sk- keys), and the rules their fields follow. Quota moves live in billing.services."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.db import transaction
from django.utils.translation import gettext

from accounts import permissions
from accounts.models import Token, User
from billing.shared_quota import shared
from oneapi_site.lib import changes, limit_values, numbers
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.keys import random_key
from oneapi_site.lib.lengths import items_bounded, text_bounded
from oneapi_site.lib.limit_values import BUDGET_FIELDS, LIMIT_FIELDS

TOKEN_NAME_MAX_LENGTH = 30  # one-api's limit
# Text columns, so the limits are what the fields mean: some 400 model names, some 100 address ranges.
TOKEN_MODELS_MAX_LENGTH = 10_000
TOKEN_SUBNET_MAX_LENGTH = 4_096
MODEL_NAME_MAX_LENGTH = 255  # the abilities' and logs' model column: a longer name never matches a route
# 9999-01-01 UTC: a later expiry cannot be shown as a date in every time zone (Python's datetime ends in 9999).
EXPIRY_MAX = 253_370_764_800


def validate_subnets(value: str) -> str:
    value = text_bounded(value, field="subnet", maximum=TOKEN_SUBNET_MAX_LENGTH)
    items = [s.strip() for s in value.split(",") if s.strip()]
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ServiceError(f"subnet {item!r} is not a valid IP or CIDR", field="subnet") from None
    return ",".join(items)


def _clean_models(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    value = text_bounded(value, field="models", maximum=TOKEN_MODELS_MAX_LENGTH)
    items = items_bounded([m.strip() for m in value.split(",") if m.strip()], field="models",
                          item_maximum=MODEL_NAME_MAX_LENGTH)
    return ",".join(items)


def _check_token_fields(*, name: str, expired_time: int, remain_quota: int) -> tuple[int, int]:
    """(expired_time, remain_quota) once checked: names bounded, numbers within their BIGINT columns."""
    if len(name) > TOKEN_NAME_MAX_LENGTH:
        raise ServiceError("name is longer than 30 characters", field="name")
    expired_time = numbers.parse_int(expired_time, field="expired_time", minimum=numbers.BIGINT[0],
                                     maximum=EXPIRY_MAX)
    if expired_time != -1 and expired_time < 0:
        raise ServiceError("expired_time must be -1 (never) or a unix time", field="expired_time")
    remain_quota = numbers.parse_int(remain_quota, field="remain_quota", minimum=numbers.BIGINT[0],
                                     maximum=numbers.BIGINT[1])
    if remain_quota < 0:
        raise ServiceError("remain_quota must not be negative", field="remain_quota")
    return expired_time, remain_quota


def _check_token_actor(*, by: User | None, token: Token | None = None, owner: User | None = None) -> None:
    """`by` is who asks (None: the system, e.g. the seed or a sign-up); see accounts.permissions."""
    if by is None:
        return
    if owner is not None and not permissions.token_can_give(by, owner):
        raise ServiceError(gettext("You cannot make a token for a user whose role is equal to or above yours."),
                           field="user")
    if token is not None and not permissions.token_can_manage(by, token):
        raise ServiceError(gettext("You cannot change a token of a user whose role is equal to or above yours."))


def caps_apply(*, by: User | None, owner: User) -> bool:
    """Whether `by` sets this token's limits under the owner's own: a user on their own token (self-service).
    Whoever may manage the owner (an admin over a common user, root) sets any."""
    return by is not None and by.pk == owner.pk and not permissions.user_can_manage(by, owner)


def _most_allowed(field: str, most: int) -> ServiceError:
    return ServiceError(gettext("%(field)s: the most allowed is %(most)s, your account's own limit "
                                "(0, no limit, is more than that).") % {"field": field, "most": f"{most:,}"},
                        field=field, code="max_value")


def _check_token_caps(*, owner: User, values: dict[str, Any], given: set[str]) -> None:
    """A token's limits, and its budget in the owner's budget period, at most the owner's (0 is none)."""
    for name in LIMIT_FIELDS:
        most = getattr(owner, name)
        if name in given and most and not 1 <= values[name] <= most:
            raise _most_allowed(name, most)
    if given & set(BUDGET_FIELDS) and owner.budget_quota and owner.budget_period:
        if values["budget_period"] == owner.budget_period and not 1 <= values["budget_quota"] <= owner.budget_quota:
            raise _most_allowed("budget_quota", owner.budget_quota)


def _limits_for_create(*, owner: User, by: User | None, given: dict[str, Any]) -> dict[str, Any]:
    """The limit and budget columns of a new token. A self-service token left without a limit gets its
    owner's (one-api's bodies carry none, and "none" is more than such a user may give)."""
    values = {name: 0 for name in LIMIT_FIELDS} | {"budget_quota": 0, "budget_period": ""}
    values |= limit_values.values_clean(given)
    if caps_apply(by=by, owner=owner):
        for name in LIMIT_FIELDS:
            if given.get(name) is None:
                values[name] = getattr(owner, name)
        _check_token_caps(owner=owner, values=values, given={k for k, v in given.items() if v is not None})
    limit_values.budget_check(quota=values["budget_quota"], period=values["budget_period"])
    return values


def token_create(*, user: User, name: str = "", remain_quota: int = 0, unlimited_quota: bool = False,
                 expired_time: int = -1, models: Any = "", subnet: str = "", key: str | None = None,
                 by: User | None = None, **limits: Any) -> Token:
    """`limits`: rpm_limit, tpm_limit, concurrency_limit, rpd_limit, budget_quota, budget_period."""
    _check_token_actor(by=by, owner=user)
    unknown = set(limits) - set(LIMIT_FIELDS) - set(BUDGET_FIELDS)
    if unknown:
        raise TypeError(f"token_create() got unexpected fields {sorted(unknown)}")
    expired_time, remain_quota = _check_token_fields(name=name, expired_time=expired_time,
                                                     remain_quota=remain_quota)
    token = Token.objects.create(
        user=user, key=key or random_key(48), name=name, remain_quota=remain_quota,
        unlimited_quota=unlimited_quota, expired_time=expired_time, models=_clean_models(models),
        subnet=validate_subnets(subnet), **_limits_for_create(owner=user, by=by, given=limits),
    )
    changes.publish("tokens")
    return token


TOKEN_EDITABLE = ("name", "remain_quota", "unlimited_quota", "expired_time", "models", "subnet", "status",
                  *LIMIT_FIELDS, *BUDGET_FIELDS)


def token_update(*, token: Token, status_only: bool = False, by: User | None = None, **fields: Any) -> Token:
    """Change a token; re-enabling an expired or exhausted one is refused until it is fixed (one-api).

    Only the columns that change are written: the ledger moves remain_quota, used_quota and the status
    (exhausted) of this row meanwhile, and a whole-row save would put back the values read here.
    """
    _check_token_actor(by=by, token=token)
    token.refresh_from_db()  # the checks below judge the balance and status the ledger has left
    before = {name: getattr(token, name) for name in TOKEN_EDITABLE}
    allowed = ("status",) if status_only else TOKEN_EDITABLE
    limits = limit_values.values_clean({k: v for k, v in fields.items() if k in allowed})
    for field, value in fields.items():
        if field not in allowed or value is None:
            continue
        if field == "models":
            value = _clean_models(value)
        elif field == "subnet":
            value = validate_subnets(value)
        setattr(token, field, limits.get(field, value))
    token.expired_time, token.remain_quota = _check_token_fields(
        name=token.name, expired_time=token.expired_time, remain_quota=token.remain_quota)
    if limits:
        if caps_apply(by=by, owner=token.user):
            values = {name: getattr(token, name) for name in (*LIMIT_FIELDS, *BUDGET_FIELDS)}
            # Only what changes: a body that sends a stored value back (one-api's pages PUT the whole token)
            # passes even if the owner's limits were lowered since.
            _check_token_caps(owner=token.user, values=values,
                              given={name for name in limits if values[name] != before[name]})
        limit_values.budget_check(quota=token.budget_quota, period=token.budget_period)
    if token.status == Token.Status.ENABLED:
        if token.is_expired:
            raise ServiceError("the token has expired: change its expiry before enabling it", field="expired_time")
        if not token.unlimited_quota and token.remain_quota <= 0:
            raise ServiceError("the token has no quota left: add quota before enabling it", field="remain_quota")
    changed = [name for name in TOKEN_EDITABLE if getattr(token, name) != before[name]]
    if "budget_period" in changed:
        # Another kind of period is another budget: its spending starts from nothing, and the ledger no longer
        # counts charges of the old kind in it (billing.services.charges_apply).
        token.budget_spent = token.budget_period_start = 0
        changed += ["budget_spent", "budget_period_start"]
    if changed:
        with transaction.atomic():
            # The owner's row first, as charges_apply locks users before tokens. A rename rewrites the
            # (user, name) index, for which InnoDB checks the owner row of the foreign key: taken in the
            # other order, a rename and a batch of charges deadlock on MariaDB.
            list(User.objects.select_for_update().filter(pk=token.user_id).values_list("pk", flat=True))
            token.save(update_fields=changed)
            if "remain_quota" in changed:  # the shared balance moves by what this write moved
                shared.adjust_on_commit(kind="t", subject_id=token.pk,
                                        delta=token.remain_quota - before["remain_quota"])
    changes.publish("tokens")
    return token


def token_delete(*, token: Token, by: User | None = None) -> None:
    _check_token_actor(by=by, token=token)
    token.delete()
    changes.publish("tokens")
