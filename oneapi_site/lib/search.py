"""What the management API's searches make of a free-text keyword: a prefix to match (ids go through
oneapi_site.lib.numbers.int_or_none)."""

from __future__ import annotations

from django.db.models import Q

PREFIX_MAX = 1_000


def prefix(field: str, keyword: str) -> Q:
    """`field` starts with the keyword; a keyword no column could hold matches nothing."""
    if len(keyword) > PREFIX_MAX:
        return Q(pk__in=[])
    return Q(**{f"{field}__startswith": keyword})
