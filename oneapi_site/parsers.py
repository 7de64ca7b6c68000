"""The JSON parser of `/api` (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES): DRF's, stricter.

Its own module: DRF reads DEFAULT_PARSER_CLASSES while `rest_framework.views` is being imported, so
the parser may not live beside the views' helpers in oneapi_site/api.py (a circular import).
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json as drf_json

from oneapi_site.lib import json_depth
from oneapi_site.lib.json_depth import holds_lone_surrogate, holds_nul


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the nesting depth checked first (a deep body was a RecursionError, a 500),
    refusing a string holding a lone UTF-16 surrogate ("\\ud800" unpaired): Python's json module reads
    one, but it is no Unicode text, no UTF-8 column can store it, so saving it was a 500. (The relay's
    orjson refuses them too.)"""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            text = stream.read().decode(encoding)
            data = json_depth.loads(text, parse_constant=drf_json.strict_constant if self.strict else None)
        except ValueError as exc:  # bytes that are not text, bad JSON, or JSON too deep
            raise ParseError(f"JSON parse error - {exc}") from None
        if holds_lone_surrogate(data):
            raise ParseError("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
        if holds_nul(data):  # PostgreSQL refuses it in any text it stores or compares: a 500 there
            raise ParseError("a string holds a NUL character (\\u0000), which is not text this site keeps")
        return data
