"""What the management API's searches make of a free-text keyword: a row id, and a prefix to match."""

from __future__ import annotations

from django.db.models import Q

ID_DIGITS = 19  # BIGINT holds 19 digits; int() refuses past 4,300 digits with a ValueError
# Longer than any column searched by prefix. SQLite refuses a LIKE pattern past 50,000 bytes ("pattern
# too complex"), and a longer prefix could match nothing the columns hold anyway.
PREFIX_MAX = 1_000


def keyword_int(keyword: str) -> int | None:
    """The keyword as a whole number (an id, a log type), or None. ASCII digits only: "²" and "١"
    pass str.isdigit(), and int() refuses the first."""
    digits = keyword.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > ID_DIGITS:
        return None
    return int(keyword)


def prefix(field: str, keyword: str) -> Q:
    """`field` starts with the keyword; a keyword no column could hold matches nothing."""
    if len(keyword) > PREFIX_MAX:
        return Q(pk__in=[])
    return Q(**{f"{field}__startswith": keyword})
