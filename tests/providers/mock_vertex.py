"""A local Vertex AI for tests: Google's OAuth token endpoint and the Gemini, Imagen and Claude publisher
endpoints.

The token endpoint checks the JWT bearer grant as Google does (form, RS256 signature against the
trusted public key, claims) and issues access tokens; the model endpoints accept only tokens it
issued and not revoked, and answer from the Gemini and Anthropic fixtures
(tests/fixtures/providers/gemini, /anthropic) or Vertex's own (tests/fixtures/providers/vertex).
Every request is recorded; answers can be scripted to fail or to cut a stream.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.providers.mock_gemini import (
    Behaviour,  # the same scriptable answers, fixture paths by publisher
    Received,
    content_fixture,
    imagen_predict,
    method_answer,
)
from tests.providers.vendor_harness import VendorMock

PROVIDERS = Path(__file__).resolve().parents[1] / "fixtures" / "providers"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def fixture(path: str) -> bytes:
    """A fixture by `<vendor>/<name>`: gemini/, anthropic/ or vertex/."""
    return (PROVIDERS / path).read_bytes()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_jwt(assertion: str, public_key: rsa.RSAPublicKey) -> tuple[dict, dict]:
    """(header, claims) of an RS256 JWT whose signature checks out; ValueError otherwise."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    if header.get("alg") != "RS256":
        raise ValueError("alg is not RS256")
    try:
        public_key.verify(b64url_decode(parts[2]), f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(),
                          hashes.SHA256())
    except InvalidSignature:
        raise ValueError("Invalid JWT Signature.") from None
    return header, claims


class MockVertex(VendorMock):
    behaviour = Behaviour

    def __init__(self) -> None:
        super().__init__()
        self.token_requests: list[dict] = []  # the decoded claims of each accepted assertion
        self.public_key: rsa.RSAPublicKey | None = None
        self.issued: set[str] = set()
        self.expires_in = 3599
        self.token_failure: tuple[int, str] | None = None  # (status, fixture path) for the token endpoint

    def reset(self) -> None:
        super().reset()
        self.token_requests.clear()
        self.issued.clear()
        self.expires_in = 3599
        self.token_failure = None

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def trust(self, public_key: rsa.RSAPublicKey) -> MockVertex:
        self.public_key = public_key
        return self

    def revoke_all(self) -> None:
        self.issued.clear()

    # --- https://oauth2.googleapis.com/token -----------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        if self.token_failure:
            status, path = self.token_failure
            return web.Response(body=fixture(path), status=status, content_type="application/json")
        if request.content_type != "application/x-www-form-urlencoded":
            return self._grant_error("invalid_request", "Expected a form body.")
        form = await request.post()
        if form.get("grant_type") != GRANT_TYPE:
            return self._grant_error("unsupported_grant_type", "Invalid grant_type.")
        try:
            assert self.public_key is not None, "the mock trusts no key"
            _, claims = verify_jwt(str(form.get("assertion") or ""), self.public_key)
        except (ValueError, AssertionError) as exc:
            return self._grant_error("invalid_grant", str(exc))
        now = time.time()
        if claims.get("aud") != self.token_uri or claims.get("scope") != SCOPE or not claims.get("iss"):
            return self._grant_error("invalid_grant", "Invalid JWT claims.")
        if not (claims["iat"] - 60 <= now <= claims["exp"]) or claims["exp"] - claims["iat"] > 3600:
            return self._grant_error("invalid_grant", "Invalid JWT: Token must be a short-lived token.")
        self.token_requests.append(claims)
        token = f"ya29.mock-{len(self.token_requests)}"
        self.issued.add(token)
        return web.json_response({"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"})

    @staticmethod
    def _grant_error(error: str, description: str) -> web.Response:
        return web.json_response({"error": error, "error_description": description}, status=400)

    # --- the publisher endpoints -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == "/token":
            return await self._token(request)
        raw, body = await self.read_body(request)
        self.requests.append(Received(request.method, request.path, request.query_string, dict(request.headers),
                                      body, raw))
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.issued:
            return web.Response(body=fixture("vertex/error_unauthenticated.json"), status=401,
                                content_type="application/json")
        b = self.next_behaviour()
        if b.status != 200:
            error = b.error or "vertex/error_permission_denied.json"
            data = fixture(error) if isinstance(error, str) else json.dumps(error).encode()
            return web.Response(body=data, status=b.status, content_type="application/json")
        tools = isinstance(body, dict) and bool(body.get("tools"))
        path = request.path
        if "/publishers/google/" in path and path.endswith(":countTokens"):
            return method_answer(path, body)
        if "/publishers/google/" in path and path.endswith(":streamGenerateContent"):
            name = b.fixture or ("gemini/tool_call_stream.sse" if tools else "gemini/chat_stream.sse")
            return await self._stream(request, name, b"\r\n\r\n", b.cut_after)
        if "/publishers/google/" in path and path.endswith(":generateContent"):
            name = b.fixture or "gemini/" + content_fixture(body, None)
            return web.Response(body=fixture(name), content_type="application/json")
        if "/publishers/anthropic/" in path and path.endswith(":streamRawPredict"):
            name = b.fixture or ("anthropic/tool_call_stream.sse" if tools else "anthropic/chat_stream.sse")
            return await self._stream(request, name, b"\n\n", b.cut_after)
        if "/publishers/google/" in path and path.endswith(":predict") and "/models/imagen" in path:
            return web.Response(body=fixture(b.fixture), content_type="application/json") if b.fixture \
                else imagen_predict(body)
        if "/publishers/google/" in path and path.endswith(":predict"):
            instances = body.get("instances") or []
            return web.json_response({"predictions": [
                {"embeddings": {"values": [0.1 * (i + 1), 0.2],
                                "statistics": {"token_count": 3 + i, "truncated": False}}}
                for i in range(len(instances))], "metadata": {"billableCharacterCount": 10}})
        if path.endswith("/publishers/anthropic/models/count-tokens:rawPredict"):
            return web.json_response({"input_tokens": 2095})  # Anthropic's count, as count_tokens answers
        if "/publishers/anthropic/" in path and path.endswith(":rawPredict"):
            name = b.fixture or ("anthropic/tool_call.json" if tools else "anthropic/chat.json")
            return web.Response(body=fixture(name), content_type="application/json")
        return web.json_response({"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}},
                                 status=404)

    async def _stream(self, request: web.Request, name: str, separator: bytes,
                      cut_after: int | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = [e for e in fixture(name).split(separator) if e.strip()]
        for sent, event in enumerate(events):
            if cut_after is not None and sent >= cut_after:
                request.transport.close()
                return response
            await response.write(event.strip(b"\r\n") + separator)
        await response.write_eof()
        return response
