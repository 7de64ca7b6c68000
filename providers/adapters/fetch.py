"""Fetching what a client's message points at (an image URL), for vendors that cannot; and the
images (or audio) a vendor links to, for clients that asked for them inline (`b64_json`, speech).

Bounded in size and time, and refused for addresses inside the operator's network:
otherwise any API key could make the gateway read cloud metadata or internal
services (`USER_CONTENT_ALLOW_PRIVATE=true` lifts that, for gateways that serve
images from a private host).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from urllib.parse import urlsplit

import aiohttp
from django.conf import settings

from providers.adapters.base import UpstreamError

MAX_IMAGE_BYTES = 20 * 1024 * 1024


def refused(message: str, code: str = "invalid_image_url") -> UpstreamError:
    return UpstreamError(status=400, message=message, type="invalid_request_error", code=code)


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


async def fetch_image(session: aiohttp.ClientSession, url: str, *, limit: int = MAX_IMAGE_BYTES,
                      kind: str = "image") -> tuple[str, bytes]:
    """(mime type, bytes) of an http(s) image (or, `kind` "audio", a sound); an UpstreamError (400, never
    retried) otherwise."""
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
                raise refused(f"The {kind} {shown} is larger than {limit // (1024 * 1024)} MB.", "image_too_large")
            data = bytearray()
            async for chunk in response.content.iter_chunked(256 * 1024):
                data += chunk
                if len(data) > limit:
                    raise refused(f"The {kind} {shown} is larger than {limit // (1024 * 1024)} MB.",
                                  "image_too_large")
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise refused(f"Could not fetch the {kind} {shown}: {type(exc).__name__}.") from None
    return mime, bytes(data)


async def fetch_image_data_url(session: aiohttp.ClientSession, url: str) -> str:
    mime, data = await fetch_image(session, url)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


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
