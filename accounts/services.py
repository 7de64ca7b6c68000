"""Writes to users and tokens. Quota moves live in billing.services."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import Token, User
from oneapi_site.lib import changes
from oneapi_site.lib.keys import random_key, uuid_hex
from oneapi_site.lib.timeutil import now_ts


class ValidationError(ValueError):
    """Bad input for a service; `field` names what to fix."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


DEFAULT_ROOT_PASSWORD = "123456"
ROOT_INITIAL_QUOTA = 500_000_000_000_000  # one-api's root start balance


def _new_aff_code() -> str:
    return random_key(4)


def user_create(*, username: str, password: str, display_name: str = "", role: int = User.Role.COMMON,
                group: str = "default", quota: int = 0, email: str = "", inviter_id: int = 0) -> User:
    username = (username or "").strip()
    if not username:
        raise ValidationError("username is required", field="username")
    if User.objects.filter(username=username).exists():
        raise ValidationError(f"username {username!r} is taken", field="username")
    user = User(username=username, display_name=display_name or username, role=role, group=group,
                quota=quota, email=email, inviter_id=inviter_id)
    user.set_password(password)
    for _ in range(5):
        user.aff_code = _new_aff_code()
        try:
            with transaction.atomic():
                user.save()
            break
        except IntegrityError:
            if User.objects.filter(username=username).exists():
                raise ValidationError(f"username {username!r} is taken", field="username") from None
    changes.publish("users")
    return user


def user_access_token_reset(*, user: User, value: str | None = None) -> str:
    """A new management access token (one-api's GET /api/user/token); the old one stops working."""
    user.access_token = value or uuid_hex()
    user.save(update_fields=["access_token"])
    return user.access_token


def root_seed(*, root_token: str = "", root_access_token: str = "") -> User:
    """Create root (root/123456) if there are no users; apply the INITIAL_ROOT_* seeds. Idempotent."""
    with transaction.atomic():
        root = User.objects.filter(role=User.Role.ROOT).order_by("id").first()
        if root is None and not User.objects.exists():
            root = User(username="root", display_name="Root User", role=User.Role.ROOT,
                        quota=ROOT_INITIAL_QUOTA, aff_code=_new_aff_code())
            root.set_password(DEFAULT_ROOT_PASSWORD)
            root.save()
            changes.publish("users")
        if root is None:
            raise ValidationError("there are users but no root; refusing to create one")
        if root_access_token and root.access_token != root_access_token:
            user_access_token_reset(user=root, value=root_access_token)
        if root_token:
            key = root_token.removeprefix("sk-")
            if not Token.objects.filter(key=key).exists():
                token_create(user=root, name="Initial Root Token", key=key, unlimited_quota=True)
    return root


def validate_subnets(value: str) -> str:
    items = [s.strip() for s in (value or "").split(",") if s.strip()]
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValidationError(f"subnet {item!r} is not a valid IP or CIDR", field="subnet") from None
    return ",".join(items)


def _clean_models(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return ",".join(m.strip() for m in (value or "").split(",") if m.strip())


def _check_token_fields(*, name: str, expired_time: int, remain_quota: int) -> None:
    if len(name) > 30:
        raise ValidationError("name is longer than 30 characters", field="name")
    if expired_time != -1 and expired_time < 0:
        raise ValidationError("expired_time must be -1 (never) or a unix time", field="expired_time")
    if remain_quota < 0:
        raise ValidationError("remain_quota must not be negative", field="remain_quota")


def token_create(*, user: User, name: str = "", remain_quota: int = 0, unlimited_quota: bool = False,
                 expired_time: int = -1, models: Any = "", subnet: str = "", key: str | None = None) -> Token:
    _check_token_fields(name=name, expired_time=expired_time, remain_quota=remain_quota)
    token = Token.objects.create(
        user=user, key=key or random_key(48), name=name, remain_quota=remain_quota,
        unlimited_quota=unlimited_quota, expired_time=expired_time, models=_clean_models(models),
        subnet=validate_subnets(subnet),
    )
    changes.publish("tokens")
    return token


TOKEN_EDITABLE = ("name", "remain_quota", "unlimited_quota", "expired_time", "models", "subnet", "status")


def token_update(*, token: Token, status_only: bool = False, **fields: Any) -> Token:
    """Change a token; re-enabling an expired or exhausted one is refused until it is fixed (one-api)."""
    allowed = ("status",) if status_only else TOKEN_EDITABLE
    for field, value in fields.items():
        if field not in allowed or value is None:
            continue
        if field == "models":
            value = _clean_models(value)
        elif field == "subnet":
            value = validate_subnets(value)
        setattr(token, field, value)
    _check_token_fields(name=token.name, expired_time=token.expired_time, remain_quota=token.remain_quota)
    if token.status == Token.Status.ENABLED:
        if token.is_expired:
            raise ValidationError("the token has expired: change its expiry before enabling it", field="expired_time")
        if not token.unlimited_quota and token.remain_quota <= 0:
            raise ValidationError("the token has no quota left: add quota before enabling it", field="remain_quota")
    token.save()
    changes.publish("tokens")
    return token


def token_delete(*, token: Token) -> None:
    token.delete()
    changes.publish("tokens")
