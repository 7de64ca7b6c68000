"""A local DeepL for tests: POST /v2/translate answered in DeepL's documented shape
(https://developers.deepl.com/docs/api-reference/translate), its `{"message": ...}` errors when scripted."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from tests.mock_upstream import Behaviour, Recorded
from tests.providers.vendor_harness import VendorMock

TRANSLATIONS = {"ZH": "你好，世界", "EN-US": "Hello, world", "JA": "こんにちは世界"}


@dataclass
class DeepLBehaviour(Behaviour):
    detected: str = "EN"


class MockDeepL(VendorMock):
    behaviour = DeepLBehaviour

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw, body = await self.read_body(request)
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        b = self.next_behaviour()
        if b.status != 200:
            return web.json_response(b.error or {"message": f"mock failure {b.status}"}, status=b.status)
        if request.path != "/v2/translate" or not isinstance(body, dict):
            return web.json_response({"message": "Not found"}, status=404)
        text = TRANSLATIONS.get(body.get("target_lang"), f"[{body.get('target_lang')}] {body['text'][0]}")
        return web.json_response({"translations": [{"detected_source_language": b.detected, "text": text}]})
