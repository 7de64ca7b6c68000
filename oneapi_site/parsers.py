"""The JSON parser of `/api` (DRF's, stricter).

Its own module: DRF reads DEFAULT_PARSER_CLASSES while `rest_framework.views` is being imported, so
the parser may not live beside the views' helpers in oneapi_site/api.py (a circular import).
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """Refuses a string holding a lone UTF-16 surrogate ("\\ud800" unpaired). Python's json module
    reads one, but it is no Unicode text: no UTF-8 column can store it, so saving it was a 500.
    (The relay's orjson refuses them too.)"""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if holds_lone_surrogate(data):
            raise exceptions.ParseError("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
        return data


def holds_lone_surrogate(data: Any) -> bool:
    pending = [data]  # iterative: the body may nest as deep as the parser allowed
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
