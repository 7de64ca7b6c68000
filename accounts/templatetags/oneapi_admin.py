"""Admin template tags: the SystemName brand and root's default-password warning."""

from __future__ import annotations

from django import template

from accounts.selectors import uses_default_password
from oneapi_site import options

register = template.Library()


@register.simple_tag
def system_name() -> str:
    return options.get("SystemName") or "One API"


@register.inclusion_tag("admin/oneapi_default_password.html", takes_context=True)
def default_password_warning(context) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    return {"show": uses_default_password(user)}
