"""A local Gemini API for tests: generateContent (text, images and speech, by the response modalities
asked for), streamGenerateContent?alt=sse, batchEmbedContents and Imagen's predict, answered from the
fixtures in tests/fixtures/providers/gemini/; and, on the OpenAI-compatible endpoint, images/generations.
It also answers countTokens and embedContent (for Gemini clients passed through). It records every request
(its bytes too, to compare with what a client sent the gateway), can be scripted to fail or to cut a stream,
and also serves images for the inlining tests."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.mock_upstream import Recorded
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "providers" / "gemini"
# A 1x1 transparent PNG.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002"
                    "000154a24f5d0000000049454e44ae426082")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def content_fixture(body, name: str | None) -> str:
    """The generateContent answer for a request: the scripted fixture, else one by what it asks for."""
    if name:
        return name
    config = (body.get("generationConfig") or {}) if isinstance(body, dict) else {}
    modalities = config.get("responseModalities") or ()
    if "AUDIO" in modalities:
        return "speech.json"
    if "IMAGE" in modalities:
        return "image.json"
    return "tool_call.json" if isinstance(body, dict) and body.get("tools") else "chat.json"


def invalid_argument(message: str) -> web.Response:
    return web.json_response({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}, status=400)


def imagen_predict(body) -> web.Response:
    """Imagen's predict as Google documents it (https://ai.google.dev/gemini-api/docs/imagen): it checks
    the parameters it knows and makes `sampleCount` PNGs."""
    instances = body.get("instances") if isinstance(body, dict) else None
    if not instances or not isinstance(instances[0].get("prompt"), str) or not instances[0]["prompt"]:
        return invalid_argument("instances[0].prompt is required.")
    parameters = body.get("parameters") or {}
    count = parameters.get("sampleCount", 4)
    if not isinstance(count, int) or not 1 <= count <= 4:
        return invalid_argument("sampleCount must be between 1 and 4.")
    if parameters.get("aspectRatio", "1:1") not in ("1:1", "3:4", "4:3", "9:16", "16:9"):
        return invalid_argument(f"Unsupported aspect ratio: {parameters['aspectRatio']}")
    if parameters.get("personGeneration", "allow_adult") not in ("dont_allow", "allow_adult", "allow_all"):
        return invalid_argument("Invalid personGeneration.")
    image = base64.b64encode(PNG).decode()
    return web.json_response({"predictions": [{"mimeType": "image/png", "bytesBase64Encoded": image}] * count})


def openai_images(body) -> web.Response:
    """images/generations on the OpenAI-compatible endpoint (https://ai.google.dev/gemini-api/docs/openai):
    OpenAI's answer with `n` (1 to 4, Imagen's bound) PNGs as `b64_json`; errors in Gemini's shape, listed."""
    n = body.get("n", 1) if isinstance(body, dict) else None
    if not isinstance(n, int) or not 1 <= n <= 4 or not body.get("prompt"):
        return web.json_response([{"error": {"code": 400, "message": "Number of images must be between 1 and 4.",
                                             "status": "INVALID_ARGUMENT"}}], status=400)
    return web.json_response({"created": int(time.time()), "data": [{"b64_json": base64.b64encode(PNG).decode()}] * n})


# What countTokens answers (https://ai.google.dev/api/tokens#method:-models.counttokens).
COUNT = {"totalTokens": 31, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 31}]}


@dataclass
class Received(Recorded):
    raw: bytes = b""  # the request's bytes as they came


def method_answer(path: str, body) -> web.Response | None:
    """countTokens and embedContent, the same at Gemini and on Vertex; None for other methods."""
    if path.endswith(":countTokens"):
        return web.json_response(COUNT)
    if path.endswith(":embedContent"):
        return web.json_response({"embedding": json.loads(fixture("embeddings.json"))["embeddings"][0]})
    return None


@dataclass
class Behaviour:
    status: int = 200
    error: str | dict | None = None  # a fixture name or the JSON body of an error answer
    fixture: str | None = None  # answer with this fixture instead of the default one
    cut_after: int | None = None  # close a stream after this many events


class MockGemini(VendorMock):
    behaviour = Behaviour

    def __init__(self) -> None:
        super().__init__()
        self.image_size = 0  # extra bytes appended to the served image (for the size limit)

    def reset(self) -> None:
        super().reset()
        self.image_size = 0

    async def _image(self, request: web.Request) -> web.Response:
        if request.path.rsplit("/", 1)[-1] == "page.html":
            return web.Response(body=b"<html></html>", content_type="text/html")
        return web.Response(body=PNG + b"\0" * self.image_size, content_type="image/png")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path.startswith("/images/"):
            return await self._image(request)
        raw, body = await self.read_body(request)
        self.requests.append(Received(request.method, request.path, request.query_string, dict(request.headers),
                                      body, raw))
        b = self.next_behaviour()
        if b.status != 200:
            error = b.error or "error_400.json"
            data = fixture(error) if isinstance(error, str) else json.dumps(error).encode()
            return web.Response(body=data, status=b.status, content_type="application/json")
        tools = isinstance(body, dict) and bool(body.get("tools"))
        answered = method_answer(request.path, body)
        if answered is not None:
            return answered
        if request.path.endswith(":batchEmbedContents"):
            vectors = json.loads(fixture("embeddings.json"))["embeddings"]
            count = len(body["requests"])
            return web.json_response({"embeddings": [vectors[i % len(vectors)] for i in range(count)]})
        if request.path.endswith(":streamGenerateContent"):
            return await self._stream(request, b.fixture or ("tool_call_stream.sse" if tools else "chat_stream.sse"),
                                      b.cut_after)
        if request.path.endswith(":generateContent"):
            return web.Response(body=fixture(content_fixture(body, b.fixture)), content_type="application/json")
        if request.path == "/v1beta/openai/images/generations":
            return openai_images(body)
        if request.path.endswith(":predict"):
            if b.fixture:
                return web.Response(body=fixture(b.fixture), content_type="application/json")
            return imagen_predict(body)
        return web.json_response({"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}},
                                 status=404)

    async def _stream(self, request: web.Request, name: str, cut_after: int | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = [e for e in fixture(name).split(b"\r\n\r\n") if e.strip()]
        for sent, event in enumerate(events):
            if cut_after is not None and sent >= cut_after:
                request.transport.close()
                return response
            await response.write(event + b"\r\n\r\n")
        await response.write_eof()
        return response
