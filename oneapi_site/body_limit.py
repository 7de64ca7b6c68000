"""Request bodies are limited by the server while they arrive, before anything is buffered.

Daphne receives a body through Twisted's `Request`, keeps all of it (in a temporary file past 100 kB,
then in the application's queue) and only then starts the ASGI app, so a limit checked by the app
comes after the memory is spent: a 500 MB POST without a key peaked at 634 MB (issue 8). Here the
limit is checked on Twisted's callbacks instead: a `Content-Length` over it is refused as soon as
the headers are in, and a chunked body is counted as it arrives. Either way the client gets a 413
and the connection is closed, so the rest of the body is never read.

The limits, in MB: RELAY_MAX_BODY_MB for the relay (`/v1`, where audio files and images inside
messages are legitimate), API_MAX_BODY_MB for `/api`, WEB_MAX_BODY_MB for pages and everything else.

A body for the relay that comes with no credential at all is refused here too, with the relay's own 401:
the relay would refuse it unread, but only after Daphne had taken in up to RELAY_MAX_BODY_MB of it.
Whether a credential is valid is still the relay's to decide; only its absence is judged here.
"""

from __future__ import annotations

import io
import json
import logging
from types import SimpleNamespace
from urllib.parse import parse_qs, unquote

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from relay import codecs
from relay.errors import RelayError, body_too_large, missing_api_key

log = logging.getLogger(__name__)

MB = 1024 * 1024
# The paths oneapi_site.asgi sends to the relay app.
RELAY_PREFIXES = ("/v1/", "/v1beta/", "/dashboard/billing/")
# Where clients of the OpenAI, Anthropic, Gemini and Azure protocols put their key (Gemini's also `?key=`).
CREDENTIAL_HEADERS = (b"authorization", b"x-api-key", b"x-goog-api-key", b"api-key")


def area_of(path: str) -> str:
    """"relay", "api" or "web", by the request's (decoded) path."""
    if path.startswith(RELAY_PREFIXES):
        return "relay"
    if path.startswith("/api/") or path == "/api":
        return "api"
    return "web"


def limit_mb(area: str) -> int:
    return {"relay": settings.RELAY_MAX_BODY_MB, "api": settings.API_MAX_BODY_MB}.get(area, settings.WEB_MAX_BODY_MB)


def relay_error(err: RelayError, path: str) -> bytes:
    """The relay's refusal in the shape of the client protocol `path` belongs to (OpenAI's, Anthropic's...)."""
    codec = codecs.for_path(path.rstrip("/"))
    return err.to_json("") if codec is None else codec.render_error(err, "")[1]


def refusal(area: str, *, cookies: dict[str, str], accept_language: str, path: str = "") -> tuple[bytes, bytes]:
    """The 413's content type and body: the relay's error JSON for the path's protocol, one-api's envelope
    elsewhere."""
    size = limit_mb(area)
    if area == "relay":
        return b"application/json", relay_error(body_too_large(size), path)
    visitor = SimpleNamespace(COOKIES=cookies, META={"HTTP_ACCEPT_LANGUAGE": accept_language})
    with translation.override(translation.get_language_from_request(visitor)):
        message = gettext("The request body is larger than %(size)d MB.") % {"size": size}
    return b"application/json", json.dumps({"success": False, "message": message}, ensure_ascii=False).encode()


def _target_path(raw: bytes) -> str:
    """The path Daphne will route by: the request target without its query, percent-decoded."""
    return unquote(raw.split(b"?", 1)[0].decode("latin-1"))


def has_credential(headers, target: bytes) -> bool:
    """Whether a request names a key anywhere a relay client may put one (`headers`: Twisted's Headers)."""
    for name in CREDENTIAL_HEADERS:
        for value in headers.getRawHeaders(name) or ():
            value = value.strip()
            if value[:7].lower() == b"bearer ":  # as the relay reads it (relay/auth.py)
                value = value[7:].strip()
            if value:
                return True
    query = target.partition(b"?")[2]
    return bool(query) and any(parse_qs(query.decode("latin-1")).get("key", ()))


def keyless_relay_body(request, length: int | None) -> bool:
    """A body on its way to the relay (a Content-Length above 0, or chunked) that names no key. A preflight
    and a bodiless request go on: the relay answers them at no cost."""
    if request._oneapi_area != "relay" or length == 0:
        return False
    channel = request.channel
    if (getattr(channel, "_command", b"") or b"").upper() == b"OPTIONS":
        return False
    return not has_credential(request.requestHeaders, getattr(channel, "_path", b"") or b"")


def install() -> None:
    """Hook the limit into Daphne's request class (Twisted calls these before the ASGI app runs)."""
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:  # not running under Daphne
        return
    if getattr(WebRequest, "_oneapi_body_limit", False):
        return

    got_length = WebRequest.gotLength
    handle_content_chunk = WebRequest.handleContentChunk
    request_received = WebRequest.requestReceived

    def gotLength(self, length):
        # Twisted has read the request line and the headers; the body has not been read yet.
        self._oneapi_path = _target_path(getattr(self.channel, "_path", b"") or b"")
        self._oneapi_area = area_of(self._oneapi_path)
        self._oneapi_limit = limit_mb(self._oneapi_area) * MB
        self._oneapi_received = 0
        self._oneapi_refused = False
        if length is not None and length > self._oneapi_limit:
            self.content = io.BytesIO()
            _refuse(self)
            return
        if keyless_relay_body(self, length):
            self.content = io.BytesIO()
            _refuse_keyless(self)
            return
        got_length(self, length)

    def handleContentChunk(self, data):
        if self._oneapi_refused:
            return
        self._oneapi_received += len(data)
        if self._oneapi_received > self._oneapi_limit:  # a chunked body, counted as it arrives
            _refuse(self)
            return
        handle_content_chunk(self, data)

    def requestReceived(self, command, path, version):
        if getattr(self, "_oneapi_refused", False):
            return  # the rest of a refused chunked body was already in the buffer Twisted was parsing
        request_received(self, command, path, version)

    WebRequest.gotLength = gotLength
    WebRequest.handleContentChunk = handleContentChunk
    WebRequest.requestReceived = requestReceived
    WebRequest._oneapi_body_limit = True


def _refuse(request) -> None:
    """Answer 413 on the raw connection and close it: nothing of the body is read after this."""
    cookies = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.received_cookies.items()}
    accept_language = b",".join(request.requestHeaders.getRawHeaders(b"accept-language") or []).decode("latin-1")
    content_type, body = refusal(request._oneapi_area, cookies=cookies, accept_language=accept_language,
                                 path=request._oneapi_path)
    log.debug("refused a request body over %d bytes (%s)", request._oneapi_limit, request._oneapi_area)
    _answer_and_close(request, b"413 Content Too Large", content_type, body)


def _refuse_keyless(request) -> None:
    """Answer the relay's 401 for a missing key on the raw connection and close it, the body unread."""
    log.debug("refused a request body without an API key")
    _answer_and_close(request, b"401 Unauthorized", b"application/json",
                      relay_error(missing_api_key(), request._oneapi_path))


def _answer_and_close(request, status: bytes, content_type: bytes, body: bytes) -> None:
    request._oneapi_refused = True
    channel = request.channel
    # Twisted answers "Expect: 100-continue" right after gotLength; the client must not be invited on.
    request.requestHeaders.removeHeader(b"expect")
    head = (b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type
            + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n")
    if request._oneapi_area == "relay":
        head += b"access-control-allow-origin: *\r\n"
    channel.persistent = False
    channel.transport.write(head + b"\r\n" + body)
    channel.loseConnection()
