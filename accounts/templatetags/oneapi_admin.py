"""Admin template tags: the SystemName brand and root's default-password warning."""

from __future__ import annotations

import hashlib

from django import template
from django.core.cache import cache

from accounts.services import DEFAULT_ROOT_PASSWORD
from billing import options

register = template.Library()


@register.simple_tag
def system_name() -> str:
    return options.get("SystemName") or "One API"


def uses_default_password(user) -> bool:
    """Whether root still has one-api's 123456; remembered per password hash, since hashing is slow on purpose."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_root", False):
        return False
    key = "oneapi:default-password:%s:%s" % (user.pk, hashlib.sha256(user.password.encode()).hexdigest()[:32])
    cached = cache.get(key)
    if cached is None:
        cached = user.check_password(DEFAULT_ROOT_PASSWORD)
        cache.set(key, cached, 24 * 3600)
    return cached


@register.inclusion_tag("admin/oneapi_default_password.html", takes_context=True)
def default_password_warning(context) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    return {"show": uses_default_password(user)}
