"""Fetching what a client's message points at (an image URL), for vendors that cannot; and the
images (or audio) a vendor links to, for clients that asked for them inline (`b64_json`, speech).

Bounded in size and time, and refused for addresses inside the operator's network:
otherwise any API key could make the gateway read cloud metadata or internal
services (`USER_CONTENT_ALLOW_PRIVATE=true` lifts that, for gateways that serve
images from a private host). A size is checked against the Content-Length before the
body is read, then counted as it arrives: nothing past the limit is ever read.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp
from django.conf import settings

from providers.adapters.base import UpstreamError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
CHUNK = 64 * 1024  # the most raw bytes a data: URL fetch holds at once
SNIFF = 16  # bytes a media-type check may look at (the signatures of PNG, JPEG, GIF and WebP fit)


def refused(message: str, code: str = "invalid_image_url") -> UpstreamError:
    return UpstreamError(status=400, message=message, type="invalid_request_error", code=code, local=True)


def size_text(nbytes: int) -> str:
    mib = 1024 * 1024
    if nbytes >= mib and nbytes % mib == 0:
        return f"{nbytes // mib} MB"
    return f"{nbytes / mib:.1f} MB" if nbytes >= mib else f"{nbytes} bytes"


def _too_large(kind: str, shown: str, limit: int) -> UpstreamError:
    return refused(f"The {kind} {shown} is larger than {size_text(limit)}.", "image_too_large")


async def _check_public(host: str) -> None:
    if settings.USER_CONTENT_ALLOW_PRIVATE:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise refused(f"Could not resolve the image host {host}.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise refused(f"The image host {host} is not a public address.", "image_url_not_public")


@asynccontextmanager
async def _opened(session: aiohttp.ClientSession, url: str, *, kind: str, limit: int):
    """The answer to GET `url` once it is known to be an `kind` of at most `limit` bytes by its headers:
    (response, mime type, the URL as messages show it). Failures reading it are refusals too."""
    shown = url if len(url) <= 120 else url[:117] + "..."
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refused(f"The {kind} URL {shown} is not an http(s) URL.")
    await _check_public(parts.hostname)
    timeout = aiohttp.ClientTimeout(total=settings.USER_CONTENT_REQUEST_TIMEOUT)
    try:
        # No redirects: a public URL must not bounce the gateway to a private one.
        async with session.get(url, timeout=timeout, allow_redirects=False) as response:
            if response.status != 200:
                raise refused(f"Could not fetch the {kind} {shown}: it answered HTTP {response.status}.")
            mime = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if not mime.startswith(f"{kind}/"):
                raise refused(f"The URL {shown} is not an {kind} (Content-Type {mime or 'missing'}).")
            if (response.content_length or 0) > limit:
                raise _too_large(kind, shown, limit)
            yield response, mime, shown
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise refused(f"Could not fetch the {kind} {shown}: {type(exc).__name__}.") from None


async def fetch_image(session: aiohttp.ClientSession, url: str, *, limit: int = MAX_IMAGE_BYTES,
                      kind: str = "image") -> tuple[str, bytes]:
    """(mime type, bytes) of an http(s) image (or, `kind` "audio", a sound); an UpstreamError (400, never
    retried) otherwise."""
    async with _opened(session, url, kind=kind, limit=limit) as (response, mime, shown):
        data = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK):
            data += chunk
            if len(data) > limit:
                raise _too_large(kind, shown, limit)
    return mime, bytes(data)


Reserve = Callable[[int], Awaitable[None]]
MediaType = Callable[[str, bytes], str]


async def fetch_data_url(session: aiohttp.ClientSession, url: str, *, limit: int = MAX_IMAGE_BYTES,
                         reserve: Reserve | None = None, media_type: MediaType | None = None) -> str:
    """The image at `url` as a data: URL, base64-encoded as it arrives.

    `reserve(n)` is awaited before `n` more bytes are taken in (the whole Content-Length at once when
    the server gives one), and may refuse them by raising: that is how a caller bounds what many
    fetches hold together. `media_type(content_type, first_bytes)` names the type in the URL (default:
    the Content-Type).

    Memory: the raw bytes are never held beyond one network chunk; the URL grows in place (CPython
    extends a string nothing else refers to without copying it), so an image of S bytes peaks at about
    1.33 S (its base64) plus a chunk, where reading it whole and then encoding it held about 5 S.
    """
    async with _opened(session, url, kind="image", limit=limit) as (response, mime, shown):
        reserved = 0
        if reserve is not None and response.content_length:
            await reserve(response.content_length)
            reserved = response.content_length
        received = 0
        text: str | None = None
        pending = b""  # not yet encoded: the bytes a media-type check waits for, or fewer than 3
        async for chunk in response.content.iter_chunked(CHUNK):
            received += len(chunk)
            if received > limit:
                raise _too_large("image", shown, limit)
            if reserve is not None and received > reserved:
                await reserve(received - reserved)
                reserved = received
            pending += chunk
            if text is None:
                if len(pending) < SNIFF:
                    continue
                text = f"data:{media_type(mime, pending) if media_type else mime};base64,"
            whole = len(pending) - len(pending) % 3  # base64 of whole 3-byte groups joins without padding
            text += base64.b64encode(memoryview(pending)[:whole]).decode("ascii")
            pending = pending[whole:]
        if text is None:
            text = f"data:{media_type(mime, pending) if media_type else mime};base64,"
        text += base64.b64encode(pending).decode("ascii")
    return text


async def vendor_images_b64(session: aiohttp.ClientSession, urls: list[str]) -> list[str]:
    """The images a vendor's answer links to, base64-encoded, for a client that asked for `b64_json`
    from a vendor that answers with links only. Same bounds as a client's image; a failure is the
    upstream's (502), and not retried elsewhere: the vendor has already made, and billed, the images."""
    try:
        # A task group: the first failure cancels the other fetches rather than leaving them running.
        async with asyncio.TaskGroup() as group:
            fetches = [group.create_task(fetch_image(session, url)) for url in urls]
    except* UpstreamError as failed:
        err = failed.exceptions[0]
        raise UpstreamError(status=502, message=f"The generated image could not be fetched: {err.message}",
                            code="image_fetch_failed", retryable=False) from None
    return [base64.b64encode(task.result()[1]).decode("ascii") for task in fetches]


async def vendor_audio(session: aiohttp.ClientSession, url: str) -> bytes:
    """The audio a vendor's answer links to (DashScope's Qwen-TTS), for the client that asked for the sound
    itself. Same bounds as an image; a failure is the upstream's (502), not retried elsewhere: the vendor has
    already made, and billed, the audio."""
    try:
        return (await fetch_image(session, url, kind="audio"))[1]
    except UpstreamError as err:
        raise UpstreamError(status=502, message=f"The generated audio could not be fetched: {err.message}",
                            code="audio_fetch_failed", retryable=False) from None
