"""The images of a chat request inlined, for a vendor that takes no image URLs (Gemini, Vertex AI, Cohere,
Ollama, Bedrock): every http(s) image a message links to is fetched and replaced by a data: URL (and those of
a Claude client's Messages body, for Bedrock's and Vertex's Claude, which it goes to as it is).

One chat request once made the gateway download any number of images at once (60 links to 5 MB images
took it from 104 MB to 1.41 GB of memory), so a request is bounded:
- USER_CONTENT_MAX_IMAGES images at most, the data: URLs the client sent itself included, refused
  before anything is fetched;
- USER_CONTENT_MAX_BYTES bytes of images together (data: URLs first, then each fetched image, by its
  Content-Length before its body is read, else as it arrives), refused as soon as they would exceed it,
  and the fetches still running are cancelled;
- USER_CONTENT_CONCURRENCY fetches at once;
and the process is bounded across requests by providers/adapters/image_budget.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
from django.conf import settings

from providers.adapters import image_budget
from providers.adapters.base import UpstreamError
from providers.adapters.fetch import MAX_IMAGE_BYTES, MediaType, fetch_data_url, refused, size_text


def image_url(part: Any) -> str | None:
    """The URL of an OpenAI `image_url` part (`{"url": ...}` or, as some clients send, the bare string)."""
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    return url if isinstance(url, str) else None


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def data_url_bytes(url: str) -> int:
    """How many bytes a data: URL holds (base64 decodes 4 characters to 3), without decoding it."""
    comma = url.find(",")
    if comma < 0:
        return 0
    length = len(url) - comma - 1
    return length * 3 // 4 if ";base64" in url[:comma] else length


def _parts(body: dict):
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            yield from content


class _RequestBytes:
    """The bytes of images one request has taken so far, against USER_CONTENT_MAX_BYTES."""

    def __init__(self) -> None:
        self.limit = settings.USER_CONTENT_MAX_BYTES
        self.used = 0

    def take(self, nbytes: int) -> None:
        if self.used + nbytes > self.limit:
            raise refused(f"The images in this request add up to more than {size_text(self.limit)}, the most "
                          "this gateway takes in one request.", "images_too_large")
        self.used += nbytes


async def inline_images(body: dict, session: aiohttp.ClientSession, *,
                        fetchable: Callable[[str], bool] = is_http, limit: int = MAX_IMAGE_BYTES,
                        media_type: MediaType | None = None) -> dict:
    """`body` with each image URL that is `fetchable` (http(s) by default) replaced by a data: URL of at
    most `limit` bytes (the vendor's own ceiling for one image). The body is copied where it changes: the
    relay reuses the original when it fails over to another channel. UpstreamError 400 names the limit a
    request goes past; 503 when the process has no room left (image_budget)."""
    remote: Counter[str] = Counter()  # a URL sent twice is fetched once, but counts (and is sent) twice
    inline = count = 0
    for part in _parts(body):
        url = image_url(part)
        if url is None:
            continue
        if url.startswith("data:"):
            inline += data_url_bytes(url)
            count += 1
        elif is_http(url) and fetchable(url):
            remote[url] += 1
            count += 1
    most = settings.USER_CONTENT_MAX_IMAGES
    if count > most:
        raise UpstreamError(status=400, message=f"This request has {count} images; this gateway takes at most "
                            f"{most} in one request.", type="invalid_request_error", code="too_many_images",
                            param="messages", local=True)
    taken = _RequestBytes()
    taken.take(inline)  # what the client sent inline is refused before anything is fetched
    if not remote:
        return body

    slots = asyncio.Semaphore(settings.USER_CONTENT_CONCURRENCY)
    stopped = False
    async with image_budget.lease() as lease:

        async def fetch(url: str, uses: int) -> str:
            nonlocal stopped

            async def reserve(nbytes: int) -> None:
                taken.take(nbytes * uses)
                await lease.take(nbytes * uses)

            async with slots:
                # A fetch that failed hands its slot on before the task group cancels the others: the
                # request has failed, so whoever gets the slot starts nothing.
                if stopped:
                    return ""
                try:
                    async with image_budget.budget.fetch_slot():
                        return await fetch_data_url(session, url, limit=limit, reserve=reserve,
                                                    media_type=media_type)
                except BaseException:
                    stopped = True
                    raise

        try:
            # A task group: the first refusal cancels the fetches still running, and none starts after it.
            async with asyncio.TaskGroup() as group:
                tasks = {url: group.create_task(fetch(url, uses)) for url, uses in remote.items()}
        except* UpstreamError as failed:
            raise failed.exceptions[0] from None
        return _replaced(body, {url: task.result() for url, task in tasks.items()})


def _replaced(body: dict, fetched: dict[str, str]) -> dict:
    messages = []
    for message in body["messages"]:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(image_url(part) in fetched for part in content):
            message = {**message, "content": [_inlined(part, fetched) for part in content]}
        messages.append(message)
    return {**body, "messages": messages}


def _inlined(part: Any, fetched: dict[str, str]) -> Any:
    data_url = fetched.get(image_url(part) or "")
    if data_url is None:
        return part
    image = part["image_url"]
    return {**part, "image_url": {**image, "url": data_url} if isinstance(image, dict) else {"url": data_url}}


# --- the same for a Claude client's Messages body (passed as it is to Bedrock's and Vertex's Claude) -------


def _message_images(body: dict):
    """The image blocks of a Messages body: in its turns, and in the tool results they hold."""
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else ():
            if not isinstance(block, dict):
                continue
            if block.get("type") == "image":
                yield block
            elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                yield from (part for part in block["content"] if isinstance(part, dict) and part.get("type") == "image")


def _url_of(block: dict) -> str | None:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return source["url"]
    return None


async def inline_message_images(body: dict, session: aiohttp.ClientSession, *, limit: int = MAX_IMAGE_BYTES,
                                media_type: MediaType | None = None) -> dict:
    """A Messages body with each image given by URL (`source.type: url`) fetched and given inline (base64),
    under the same bounds as a chat request's images (inline_images), and copied where it changes."""
    urls = [url for block in _message_images(body) if (url := _url_of(block)) is not None and is_http(url)]
    if not urls:
        return body
    as_chat = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}
                                                         for url in urls]}]}
    fetched = await inline_images(as_chat, session, limit=limit, media_type=media_type)
    data_urls = {url: part["image_url"]["url"] for url, part in zip(urls, fetched["messages"][0]["content"],
                                                                    strict=True)}

    def inlined(block: Any) -> Any:
        url = _url_of(block) if isinstance(block, dict) and block.get("type") == "image" else None
        if url not in data_urls:
            return block
        header, _, data = data_urls[url].removeprefix("data:").partition(",")
        return {**block, "source": {"type": "base64", "media_type": header.split(";")[0], "data": data}}

    messages = []
    for message in body["messages"]:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            blocks = []
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result" and isinstance(
                        block.get("content"), list):
                    block = {**block, "content": [inlined(part) for part in block["content"]]}
                blocks.append(inlined(block))
            message = {**message, "content": blocks}
        messages.append(message)
    return {**body, "messages": messages}
