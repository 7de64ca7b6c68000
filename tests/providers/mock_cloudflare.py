"""A local Cloudflare Workers AI REST API for tests: `POST /client/v4/accounts/{account}/ai/run/{model}`.

Each model takes the input its page documents and answers as it does: flux-1-schnell `{"image": base64 JPEG}`
and the Stable Diffusion models the PNG itself; whisper the audio's bytes as the body, whisper-large-v3-turbo
`{audio: base64, task, language, initial_prompt}`, both answering the transcript; melotts `{"audio": base64 MP3}`.
JSON answers come in the API's envelope (`result`, `success`, `errors`, `messages`). A field the model does not
document, a wrong key or another account is refused as Cloudflare refuses it. Every request is recorded (JSON
bodies parsed, audio kept as bytes), and answers can be scripted: an error, a fixture, or any bytes at all.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.mock_upstream import Behaviour, Recorded
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "cloudflare"
ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
KEY = "cf-api-token"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(48))  # stands in for flux's picture
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(48))  # and Stable Diffusion's
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(64))  # and MeloTTS's speech
RUN = re.compile(r"^/client/v4/accounts/(?P<account>[^/]+)/ai/run/(?P<model>.+)$")
# The inputs each model documents (https://developers.cloudflare.com/workers-ai/models/).
FLUX_INPUT = {"prompt", "steps", "seed"}
DIFFUSION_INPUT = {"prompt", "negative_prompt", "height", "width", "image", "image_b64", "mask", "num_steps",
                   "strength", "guidance", "seed"}
TURBO_INPUT = {"audio", "task", "language", "vad_filter", "initial_prompt", "prefix"}
MELOTTS_INPUT = {"prompt", "lang"}


@dataclass
class CloudflareBehaviour(Behaviour):
    fixture: str | None = None  # answer with this file from tests/fixtures/providers/cloudflare
    raw: bytes | None = None  # answer 200 with these bytes (an answer that is not what the model documents)
    raw_type: str = "application/json"


def envelope(result) -> web.Response:
    return web.json_response({"result": result, "success": True, "errors": [], "messages": []})


def refusal(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"result": None, "success": False, "errors": [{"code": code, "message": message}],
                              "messages": []}, status=status)


def input_error(message: str) -> web.Response:
    return refusal(400, 5006, f"AiError: AiError: {message}")


class MockCloudflare(VendorMock):
    behaviour = CloudflareBehaviour

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw, body = await self.read_body(request)
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        b = self.next_behaviour()
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.Response(body=(FIXTURES / "error_auth.json").read_bytes(), status=401,
                                content_type="application/json")
        route = RUN.match(request.path)
        if route is None or route["account"] != ACCOUNT:
            return refusal(404, 7003, f"Could not route to {request.path}, perhaps your object identifier is invalid?")
        if b.status != 200:
            return web.json_response(b.error or json.loads((FIXTURES / "error_capacity.json").read_text()),
                                     status=b.status)
        if b.fixture:
            return web.Response(body=(FIXTURES / b.fixture).read_bytes(), content_type="application/json")
        if b.raw is not None:
            return web.Response(body=b.raw, content_type=b.raw_type)
        model = route["model"]
        if model == "@cf/openai/whisper":
            if not raw:
                return input_error("audio is required")
            return web.Response(body=(FIXTURES / "run_whisper.json").read_bytes(), content_type="application/json")
        if not isinstance(body, dict):
            return input_error("the input must be a JSON object")
        if model == "@cf/black-forest-labs/flux-1-schnell":
            return self._inputs(body, FLUX_INPUT) or envelope({"image": base64.b64encode(JPEG).decode()})
        if model in ("@cf/stabilityai/stable-diffusion-xl-base-1.0", "@cf/bytedance/stable-diffusion-xl-lightning"):
            refused = self._inputs(body, DIFFUSION_INPUT)
            outside = [side for side in ("width", "height") if side in body and not 256 <= body[side] <= 2048]
            if outside:
                refused = input_error(f"'/{outside[0]}' must be between 256 and 2048")
            return refused or web.Response(body=PNG, content_type="image/png")
        if model == "@cf/openai/whisper-large-v3-turbo":
            try:
                audio = base64.b64decode(body.get("audio") or "", validate=True)
            except (binascii.Error, ValueError):
                audio = b""
            if not audio or body.get("task", "transcribe") not in ("transcribe", "translate"):
                return input_error("'/audio' must be base64 audio and '/task' transcribe or translate")
            return self._inputs(body, TURBO_INPUT) or web.Response(
                body=(FIXTURES / "run_whisper_turbo.json").read_bytes(), content_type="application/json")
        if model == "@cf/myshell-ai/melotts":
            return self._inputs(body, MELOTTS_INPUT) or envelope({"audio": base64.b64encode(MP3).decode()})
        return refusal(400, 5007, f"No such model {model} or task")

    @staticmethod
    def _inputs(body: dict, documented: set[str]) -> web.Response | None:
        """The model's refusal of an input it does not document, or of a missing prompt."""
        unknown = sorted(set(body) - documented)
        if unknown:
            return input_error(f"additional properties are not allowed: {', '.join(unknown)}")
        if "prompt" in documented and not (isinstance(body.get("prompt"), str) and body["prompt"]):
            return input_error("required properties at '/' are 'prompt'")
        return None
