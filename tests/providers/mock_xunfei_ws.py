"""A local Xunfei Spark WebSocket upstream: checks the signed URL like Spark does, records the request
frame, then answers with scripted frames (a fixture, a failure frame, or a connection dropped mid-answer)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "xunfei_ws"


@dataclass
class SparkWSBehaviour:
    fixture: str = "plain.ndjson"  # frames, one a line
    error: str | None = None  # a failure-frame fixture sent instead of an answer
    drop_after: int | None = None  # close the socket after this many frames, before the last
    refuse_handshake: int | None = None  # an HTTP status instead of the upgrade


@dataclass
class Seen:
    path: str
    query: dict
    frame: dict


def expected_signature(secret: str, host: str, date: str, path: str) -> str:
    origin = f"host: {host}\ndate: {date}\nGET {path} HTTP/1.1"
    return base64.b64encode(hmac.new(secret.encode(), origin.encode(), hashlib.sha256).digest()).decode()


class MockXunfeiWS(VendorMock):
    behaviour = SparkWSBehaviour

    def __init__(self, api_key: str, api_secret: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.api_secret = api_secret

    def _signature_ok(self, request: web.Request) -> bool:
        q = request.query
        try:
            authorization = base64.b64decode(q["authorization"]).decode()
        except (KeyError, ValueError):
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', authorization))
        if q.get("host") != request.host or fields.get("api_key") != self.api_key:
            return False
        return fields.get("signature") == expected_signature(self.api_secret, q["host"], q.get("date", ""),
                                                            request.path)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        b = self.next_behaviour()
        if b.refuse_handshake:
            return web.json_response({"message": "HMAC signature cannot be verified"}, status=b.refuse_handshake)
        if not self._signature_ok(request):
            return web.json_response({"message": "HMAC signature cannot be verified"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        frame = json.loads((await ws.receive()).data)
        self.requests.append(Seen(request.path, dict(request.query), frame))
        if b.error:
            await ws.send_str((FIXTURES / b.error).read_text().strip())
        else:
            lines = [line for line in (FIXTURES / b.fixture).read_text().splitlines() if line.strip()]
            for i, line in enumerate(lines):
                if b.drop_after is not None and i >= b.drop_after:
                    break
                await ws.send_str(line)
        await ws.close()
        return ws
