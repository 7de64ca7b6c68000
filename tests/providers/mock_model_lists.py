"""Vendors' model list endpoints, each in the vendor's documented shape and checking the key where the vendor
expects it: OpenAI's GET /v1/models (Bearer), Anthropic's GET /v1/models (x-api-key, anthropic-version),
Gemini's GET /v1beta/models (x-goog-api-key) and Ollama's GET /api/tags (no key)."""

from __future__ import annotations

from aiohttp import web

from tests.mock_upstream import Recorded
from tests.providers.vendor_harness import VendorMock

KEY = "sk-models-list-key-0123456789"
OPENAI_MODELS = ["gpt-4o", "gpt-4o-mini", "o3"]
ANTHROPIC_MODELS = ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"]
GEMINI_MODELS = ["gemini-2.5-pro", "gemini-2.5-flash"]
OLLAMA_MODELS = ["llama3.2:latest", "qwen2.5:7b"]


def _refused(sent: str) -> web.Response:
    # As OpenAI does: the refusal names the key it was sent.
    return web.json_response({"error": {"message": f"Incorrect API key provided: {sent}",
                                        "type": "invalid_request_error", "code": "invalid_api_key"}}, status=401)


class MockModelLists(VendorMock):
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers),
                                      None))
        if request.path == "/api/tags":
            return web.json_response({"models": [{"name": name, "model": name, "size": 1} for name in OLLAMA_MODELS]})
        if request.path.endswith("/v1beta/models"):
            if request.headers.get("x-goog-api-key") != KEY:
                return web.json_response({"error": {"code": 400, "message": "API key not valid.",
                                                    "status": "INVALID_ARGUMENT"}}, status=400)
            return web.json_response({"models": [{"name": f"models/{name}", "displayName": name}
                                                 for name in GEMINI_MODELS]})
        if request.path.endswith("/v1/models") and "anthropic-version" in request.headers:
            if request.headers.get("x-api-key") != KEY:
                return _refused(request.headers.get("x-api-key", ""))
            return web.json_response({"data": [{"type": "model", "id": name, "display_name": name}
                                               for name in ANTHROPIC_MODELS], "has_more": False})
        if request.path.endswith("/models"):
            if request.headers.get("Authorization") != f"Bearer {KEY}":
                return _refused(request.headers.get("Authorization", "").removeprefix("Bearer "))
            if request.path.startswith("/html/"):  # a proxy's page in place of the list
                return web.Response(text="<html>gateway</html>", content_type="text/html")
            return web.json_response({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "x"}
                                                                 for name in OPENAI_MODELS]})
        return web.json_response({"error": {"message": "not found"}}, status=404)
