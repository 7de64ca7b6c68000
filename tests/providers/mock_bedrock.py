"""A local Bedrock Runtime for tests: serves the fixtures in tests/fixtures/providers/bedrock.

`POST /model/{modelId}/invoke` answers `<answer>.json`; `/invoke-with-response-stream` answers
`<answer>_stream.ndjson` as a binary AWS event stream, frame by frame (optionally in small byte pieces,
so frames straddle reads). `/converse` and `/converse-stream` answer `converse_<answer>...` likewise.
Every request's SigV4 `Authorization` header is checked for its shape and, when botocore is
importable, recomputed with botocore's signer: a wrong signature gets Bedrock's 403
InvalidSignatureException, as the real service would answer. With a session token, requests must
carry it in `X-Amz-Security-Token`, signed. Scriptable errors carry `x-amzn-ErrorType`.
`GET /images/<name>` serves test images for the adapter to inline.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from providers.adapters.aws.eventstream import encode_message
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "bedrock"
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<ak>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/bedrock/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$")
# A 1x1 transparent PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")
ERROR_TYPES = {"error_throttling": "ThrottlingException", "error_service_unavailable": "ServiceUnavailableException",
               "error_access_denied": "AccessDeniedException", "error_validation": "ValidationException",
               "error_unrecognized_client": "UnrecognizedClientException",
               "error_model_not_ready": "ModelNotReadyException"}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def frame_of(line: dict) -> bytes:
    """One line of a `_stream.ndjson` fixture as the binary frame Bedrock sends."""
    if "chunk" in line:
        payload: dict[str, Any] = {"bytes": base64.b64encode(json.dumps(line["chunk"]).encode()).decode()}
        if "p" in line:
            payload["p"] = line["p"]
        raw = json.dumps(payload).encode()
    elif "payload" in line:
        raw = json.dumps(line["payload"]).encode()
    else:
        raw = line.get("payload_text", "").encode()
    return encode_message(line["headers"], raw)


def frames(name: str) -> list[bytes]:
    return [frame_of(json.loads(line)) for line in fixture(name).splitlines() if line.strip()]


def corrupt(frame: bytes) -> bytes:
    """The frame with its last payload byte flipped: the message CRC no longer matches."""
    return frame[:-5] + bytes([frame[-5] ^ 0xFF]) + frame[-4:]


def botocore_signature(*, method: str, url: str, headers: dict[str, str], body: bytes, access_key: str,
                       secret_key: str, region: str, amz_date: str, session_token: str = "") -> str | None:
    """The signature botocore computes for the request as received; None without botocore."""
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError:
        return None
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, secret_key, session_token or None), "bedrock", region)
    return signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)


@dataclass
class Behaviour:
    answer: str = "chat"  # <answer>.json, or <answer>_stream.ndjson when streaming
    status: int = 200
    error: str = "error_throttling"  # the error fixture for a non-200 status
    cut_after: int | None = None  # close the connection after this many frames
    piece: int | None = None  # write the stream in pieces of this many bytes
    corrupt_at: int | None = None  # flip a byte in this frame
    delay: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    raw_path: str
    headers: dict[str, str]
    body: Any
    signature_ok: bool | None  # None: botocore was not there to check


class MockBedrock(VendorMock):
    behaviour = Behaviour

    def __init__(self, *, access_key: str, secret_key: str, region: str, session_token: str = "") -> None:
        super().__init__()
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        self.session_token = session_token

    async def _image(self, request: web.Request) -> web.StreamResponse:
        name = request.path.rsplit("/", 1)[-1]
        if name == "pixel.png":
            return web.Response(body=PNG, content_type="image/png")
        if name == "huge.png":  # says it is 25 MB: a client must refuse it before reading it
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            response.content_length = 25 * 1024 * 1024
            await response.prepare(request)
            await response.write(PNG)
            return response
        if name == "page.html":
            return web.Response(text="<html>not an image</html>", content_type="text/html")
        return web.Response(status=404, text="no such image")

    def _check_signature(self, request: web.Request, raw: bytes) -> bool | None:
        match = AUTHORIZATION.match(request.headers.get("Authorization", ""))
        amz_date = request.headers.get("X-Amz-Date", "")
        signed = "content-type;host;x-amz-date" + (";x-amz-security-token" if self.session_token else "")
        if not match or match["ak"] != self.access_key or match["region"] != self.region \
                or match["signed"] != signed or match["date"] != amz_date[:8] \
                or request.headers.get("X-Amz-Security-Token", "") != self.session_token:
            return False
        headers = {"Content-Type": request.headers.get("Content-Type", ""), "Host": request.headers.get("Host", ""),
                   "X-Amz-Date": amz_date}
        if self.session_token:
            headers["X-Amz-Security-Token"] = self.session_token
        expected = botocore_signature(method=request.method, url=f"http://{headers['Host']}{request.raw_path}",
                                      headers=headers, body=raw, access_key=self.access_key,
                                      secret_key=self.secret_key, region=self.region, amz_date=amz_date,
                                      session_token=self.session_token)
        return None if expected is None else expected == match["signature"]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path.startswith("/images/"):
            return await self._image(request)
        raw, body = await self.read_body(request)
        signature_ok = self._check_signature(request, raw)
        self.requests.append(Recorded(request.method, request.path, request.raw_path, dict(request.headers), body,
                                      signature_ok))
        behaviour = self.next_behaviour()
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if signature_ok is False:
            return self._error(403, "InvalidSignatureException",
                               b'{"message": "The request signature we calculated does not match the signature '
                               b'you provided. Check your AWS Secret Access Key and signing method."}')
        action = request.path.rsplit("/", 1)[-1]
        if request.method != "POST" or not request.path.startswith("/model/") \
                or action not in ("invoke", "invoke-with-response-stream", "converse", "converse-stream"):
            return self._error(404, "UnknownOperationException", b'{"message": "Unknown operation"}')
        if behaviour.status != 200:
            return self._error(behaviour.status, ERROR_TYPES.get(behaviour.error, "ValidationException"),
                               fixture(f"{behaviour.error}.json"))
        answer = f"converse_{behaviour.answer}" if action.startswith("converse") else behaviour.answer
        if action.endswith("stream"):
            return await self._stream(request, behaviour, answer)
        return web.Response(body=fixture(f"{answer}.json"), content_type="application/json")

    @staticmethod
    def _error(status: int, kind: str, body: bytes) -> web.Response:
        kind += ":http://internal.amazon.com/coral/com.amazon.bedrock/"
        return web.Response(body=body, status=status, content_type="application/json",
                            headers={"x-amzn-ErrorType": kind})

    async def _stream(self, request: web.Request, b: Behaviour, answer: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream",
                                               "x-amzn-bedrock-content-type": "application/json"})
        await response.prepare(request)
        for sent, frame in enumerate(frames(f"{answer}_stream.ndjson")):
            if b.cut_after is not None and sent >= b.cut_after:
                request.transport.close()
                return response
            if b.corrupt_at == sent:
                frame = corrupt(frame)
            step = b.piece or len(frame)
            for start in range(0, len(frame), step):
                await response.write(frame[start:start + step])
        await response.write_eof()
        return response


def crc_ok(frame: bytes) -> bool:
    """Whether a frame's two CRCs hold (a check for the tests' own frame builder)."""
    total, _ = struct.unpack_from(">II", frame)
    return (zlib.crc32(frame[:8]) == struct.unpack_from(">I", frame, 8)[0]
            and zlib.crc32(frame[:-4]) == struct.unpack_from(">I", frame, total - 4)[0])
