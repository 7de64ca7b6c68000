"""Length limits of the free text and lists people send, checked before anything else reads them.

A limit is what the column holds (a CharField's max_length: MySQL and PostgreSQL refuse longer text with
an error, SQLite keeps it whole) or, for a TEXT column, a sane bound for what the field means: an API
key's model allow-list has no use for 1.5 MB, and every relay request would parse it.
"""

from __future__ import annotations

from django.utils.translation import gettext

from oneapi_site.lib.errors import ServiceError


def nul_refused(text: str, *, field: str) -> str:
    """`text`, unless it holds a NUL character: PostgreSQL stores none in text or jsonb (the statement fails)."""
    if "\x00" in text:
        raise ServiceError(gettext("%(field)s holds a NUL character, which is not text") % {"field": field},
                           field=field)
    return text


def text_bounded(value: str | None, *, field: str, maximum: int) -> str:
    """`value` ("" for None) if it has at most `maximum` characters and no NUL; otherwise an error naming the
    field."""
    text = value or ""
    if len(text) > maximum:
        raise ServiceError(gettext("%(field)s may have at most %(max)d characters")
                              % {"field": field, "max": maximum}, field=field)
    return nul_refused(text, field=field)


def items_bounded(items: list[str], *, field: str, item_maximum: int) -> list[str]:
    """A list's items, each at most `item_maximum` characters (the column one item goes to)."""
    for item in items:
        nul_refused(item, field=field)
        if len(item) > item_maximum:
            raise ServiceError(gettext("%(field)s: “%(item)s…” is longer than %(max)d characters")
                                  % {"field": field, "item": item[:20], "max": item_maximum}, field=field)
    return items
