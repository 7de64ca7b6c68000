"""The JSON parser of /api (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json as drf_json

from oneapi_site.lib import json_depth


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with the nesting depth checked first (a deep body was a RecursionError, a 500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            text = stream.read().decode(encoding)
            return json_depth.loads(text, parse_constant=drf_json.strict_constant if self.strict else None)
        except ValueError as exc:  # bytes that are not text, bad JSON, or JSON too deep
            raise ParseError(f"JSON parse error - {exc}") from None
