"""Length limits of the free text and lists people send, checked before anything else reads them.

A limit is what the column holds (a CharField's max_length: MySQL and PostgreSQL refuse longer text with
an error, SQLite keeps it whole) or, for a TEXT column, a sane bound for what the field means: an API
key's model allow-list has no use for 1.5 MB, and every relay request would parse it.
"""

from __future__ import annotations

from django.utils.translation import gettext

from oneapi_site.lib.errors import ServiceError


def text_bounded(value: str | None, *, field: str, maximum: int) -> str:
    """`value` ("" for None) if it has at most `maximum` characters; otherwise an error naming the field."""
    text = value or ""
    if len(text) > maximum:
        raise ServiceError(gettext("%(field)s may have at most %(max)d characters")
                              % {"field": field, "max": maximum}, field=field)
    return text


def items_bounded(items: list[str], *, field: str, item_maximum: int) -> list[str]:
    """A list's items, each at most `item_maximum` characters (the column one item goes to)."""
    for item in items:
        if len(item) > item_maximum:
            raise ServiceError(gettext("%(field)s: “%(item)s…” is longer than %(max)d characters")
                                  % {"field": field, "item": item[:20], "max": item_maximum}, field=field)
    return items
