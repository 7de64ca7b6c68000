"""Client images inlined for vendors that take no URLs: bounded per request (count, bytes, fetches at once)
and per process (bytes held, fetches at once), for every such vendor, and encoded as they arrive."""

import asyncio
import base64
import functools
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from providers import health
from providers.adapters import cohere, image_budget, ollama, vertex
from providers.adapters.base import UpstreamError
from providers.adapters.bedrock import adapter as bedrock
from providers.adapters.fetch import fetch_data_url
from providers.adapters.gemini import convert as gemini_convert
from providers.adapters.inline_images import inline_images
from tests.helpers import consume_log
from tests.providers.mock_gemini import PNG, MockGemini
from tests.providers.vendor_harness import no_consume_log, serve
from tests.world import new_world

ROOT = Path(__file__).resolve().parents[2]
BLOCK = 64 * 1024


class ImageHost:
    """A local image server: /img/<name>?size=N serves a PNG of N bytes (with its Content-Length, or
    without one under /chunked/). It counts the fetches and the most it ever served at once; a fetch is
    held briefly (or until more than `bound` are in flight), so fetches that may overlap do."""

    def __init__(self) -> None:
        self.fetches: list[str] = []
        self.in_flight = 0
        self.most_at_once = 0
        self.bound = 1_000
        self.hold = 0.0
        self._over = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.fetches.append(request.path)
        if request.path.startswith("/missing/"):
            return web.Response(status=404)
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            if self.in_flight > self.bound:
                self._over.set()
            if self.hold:
                try:
                    await asyncio.wait_for(self._over.wait(), self.hold)
                except TimeoutError:
                    pass
            size = int(request.query.get("size", "4000"))
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            if not request.path.startswith("/chunked/"):
                response.content_length = size
            await response.prepare(request)
            try:
                await response.write(PNG)
                for start in range(len(PNG), size, BLOCK):  # a block at a time: no whole image is held here
                    await response.write(bytes(min(BLOCK, size - start)))
            except ConnectionResetError:
                pass  # the gateway stopped reading: the image was refused
            return response
        finally:
            self.in_flight -= 1

    def urls(self, count: int, *, size: int = 4000, path: str = "img") -> list[str]:
        return [f"{self.url}/{path}/{i}.png?size={size}" for i in range(count)]


@pytest.fixture
async def host():
    images = ImageHost()
    app = web.Application()
    app.router.add_get("/{path}/{name}", images.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    images.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield images
    await runner.cleanup()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture(autouse=True)
def bounds(settings):
    settings.USER_CONTENT_MAX_IMAGES = 20
    settings.USER_CONTENT_MAX_BYTES = 20 * 1024 * 1024
    settings.USER_CONTENT_CONCURRENCY = 4
    settings.USER_CONTENT_PROCESS_MAX_BYTES = 128 * 1024 * 1024
    settings.USER_CONTENT_PROCESS_MAX_FETCHES = 32
    settings.USER_CONTENT_QUEUE_TIMEOUT = 10
    yield settings
    assert image_budget.budget.bytes == 0 and image_budget.budget.fetches == 0, "every test gives back what it took"


def chat(urls: list[str], model: str = "m") -> dict:
    content = [{"type": "text", "text": "What are these?"}]
    content += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return {"model": model, "messages": [{"role": "user", "content": content}]}


# Every vendor that needs images inline, as its open() inlines them (Vertex's Gemini models use Gemini's own).
INLINERS = {
    "gemini": gemini_convert.inline_remote_images,
    "ollama": functools.partial(inline_images, limit=ollama.MAX_IMAGE_BYTES),
    "bedrock": bedrock.inline_remote_images,
    "cohere": functools.partial(inline_images, limit=cohere.MAX_IMAGE_BYTES),
    "vertex claude": vertex.inline_claude_images,
}
vendors = pytest.mark.parametrize("inline", INLINERS.values(), ids=INLINERS.keys())


def refusal(caught) -> tuple[int, str]:
    return caught.value.status, caught.value.code


# --- per request -------------------------------------------------------------------------------------


@vendors
async def test_images_within_the_bounds_are_all_inlined(inline, host, session):
    prepared = await inline(chat(host.urls(3)), session)
    urls = [part["image_url"]["url"] for part in prepared["messages"][0]["content"][1:]]
    assert [base64.b64decode(url.split(",", 1)[1]) for url in urls] == [PNG + bytes(4000 - len(PNG))] * 3
    assert all(url.startswith("data:image/png;base64,") for url in urls)


@vendors
async def test_more_images_than_allowed_are_refused_before_any_is_fetched(inline, host, session, settings):
    settings.USER_CONTENT_MAX_IMAGES = 3
    with pytest.raises(UpstreamError) as caught:
        await inline(chat(host.urls(4)), session)
    assert refusal(caught) == (400, "too_many_images")
    assert "4 images" in caught.value.message and "at most 3" in caught.value.message
    assert host.fetches == []
    # The data: URLs a client sends itself count too.
    inline_png = "data:image/png;base64," + base64.b64encode(PNG).decode()
    with pytest.raises(UpstreamError) as caught:
        await inline(chat([inline_png, inline_png, *host.urls(2)]), session)
    assert refusal(caught) == (400, "too_many_images") and host.fetches == []


@vendors
async def test_images_past_the_request_total_are_refused_and_no_more_are_fetched(inline, host, session, settings):
    settings.USER_CONTENT_MAX_BYTES = 10_000
    settings.USER_CONTENT_CONCURRENCY = 1
    with pytest.raises(UpstreamError) as caught:
        await inline(chat(host.urls(5, size=4000)), session)
    assert refusal(caught) == (400, "images_too_large") and "more than 10000 bytes" in caught.value.message
    assert len(host.fetches) == 3, "the third image is refused by its Content-Length, the rest never fetched"
    host.fetches.clear()
    with pytest.raises(UpstreamError) as caught:  # no Content-Length: counted as it arrives
        await inline(chat(host.urls(5, size=4000, path="chunked")), session)
    assert refusal(caught) == (400, "images_too_large") and len(host.fetches) == 3


@vendors
async def test_data_urls_past_the_request_total_are_refused_before_any_fetch(inline, host, session, settings):
    settings.USER_CONTENT_MAX_BYTES = 10_000
    big = "data:image/png;base64," + base64.b64encode(bytes(10_001)).decode()
    with pytest.raises(UpstreamError) as caught:
        await inline(chat([big, *host.urls(1, size=2000)]), session)
    assert refusal(caught) == (400, "images_too_large") and host.fetches == []


@vendors
async def test_a_request_never_fetches_more_than_its_bound_at_once(inline, host, session, settings):
    settings.USER_CONTENT_CONCURRENCY = 2
    host.bound, host.hold = 2, 0.05
    await inline(chat(host.urls(6)), session)
    assert len(host.fetches) == 6
    assert host.most_at_once <= 2


async def test_an_image_sent_twice_is_fetched_once_and_counted_twice(host, session, settings):
    settings.USER_CONTENT_MAX_BYTES = 7_000
    url = host.urls(1, size=4000)[0]
    with pytest.raises(UpstreamError) as caught:
        await INLINERS["gemini"](chat([url, url]), session)
    assert refusal(caught) == (400, "images_too_large")
    settings.USER_CONTENT_MAX_BYTES = 8_000
    prepared = await INLINERS["gemini"](chat([url, url]), session)
    parts = prepared["messages"][0]["content"][1:]
    assert parts[0] == parts[1] and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert len(host.fetches) == 2  # once for each attempt


@vendors
async def test_refusals_are_the_clients_and_never_count_against_the_channel(inline, host, session, settings):
    refusals = []
    # The refusal quotes the client's URL, and "credit" or "balance" in a vendor's 400 means a dead key.
    with pytest.raises(UpstreamError) as caught:
        await inline(chat([f"{host.url}/missing/credit-balance.png"]), session)
    refusals.append(caught.value)
    settings.USER_CONTENT_MAX_IMAGES = 1
    with pytest.raises(UpstreamError) as caught:
        await inline(chat(host.urls(2)), session)
    refusals.append(caught.value)
    settings.USER_CONTENT_PROCESS_MAX_FETCHES, settings.USER_CONTENT_QUEUE_TIMEOUT = 1, 0
    async with image_budget.budget.fetch_slot():
        with pytest.raises(UpstreamError) as caught:
            await inline(chat(host.urls(1)), session)
    refusals.append(caught.value)
    assert [err.code for err in refusals] == ["invalid_image_url", "too_many_images", "image_budget_exhausted"]
    assert "credit-balance" in refusals[0].message
    for err in refusals:
        assert not err.retryable and health.verdict(1, err) is None


# --- per process -------------------------------------------------------------------------------------


async def test_requests_together_never_fetch_more_than_the_process_bound(host, session, settings):
    settings.USER_CONTENT_PROCESS_MAX_FETCHES = 2
    host.bound, host.hold = 2, 0.05
    urls = host.urls(6)
    await asyncio.gather(*(INLINERS[name](chat(urls[i::3]), session) for i, name in enumerate(("gemini", "ollama",
                                                                                                "cohere"))))
    assert len(host.fetches) == 6
    assert host.most_at_once <= 2


async def test_a_spent_process_budget_is_a_503_once_the_wait_is_over(host, session, settings):
    settings.USER_CONTENT_PROCESS_MAX_BYTES = 30 * 1024 * 1024
    settings.USER_CONTENT_QUEUE_TIMEOUT = 0
    await image_budget.budget.acquire(nbytes=30 * 1024 * 1024 - 1000)  # other requests hold nearly all of it
    try:
        with pytest.raises(UpstreamError) as caught:
            await INLINERS["ollama"](chat(host.urls(1, size=4000)), session)
    finally:
        image_budget.budget.release(nbytes=30 * 1024 * 1024 - 1000)
    assert refusal(caught) == (503, "image_budget_exhausted") and not caught.value.retryable
    assert (await INLINERS["ollama"](chat(host.urls(1, size=4000)), session))["messages"]


async def test_a_fetch_waits_for_room_another_call_gives_back(host, session, settings):
    settings.USER_CONTENT_PROCESS_MAX_BYTES = 30 * 1024 * 1024
    await image_budget.budget.acquire(nbytes=30 * 1024 * 1024 - 1000)
    waiting = asyncio.create_task(INLINERS["gemini"](chat(host.urls(1, size=4000)), session))
    while not image_budget.budget.waiting:
        await asyncio.sleep(0)  # until the fetch has the image's headers and waits for room
    image_budget.budget.release(nbytes=30 * 1024 * 1024 - 1000)
    prepared = await waiting
    assert prepared["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


async def test_a_calls_images_are_held_until_the_call_ends(host, session):
    async with image_budget.held_for_call():
        await INLINERS["bedrock"](chat(host.urls(2, size=4000)), session)
        assert image_budget.budget.bytes == 8000  # still in the body the call is sending
    assert image_budget.budget.bytes == 0
    await INLINERS["bedrock"](chat(host.urls(2, size=4000)), session)
    assert image_budget.budget.bytes == 0  # outside a call: held only while inlining


# --- memory ------------------------------------------------------------------------------------------


async def test_an_image_is_encoded_as_it_arrives_not_held_twice(host, session):
    size = 4 * 1024 * 1024
    body = chat(host.urls(1, size=size))
    tracemalloc.start()
    try:
        prepared = await INLINERS["ollama"](body, session)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(prepared["messages"][0]["content"][1]["image_url"]["url"]) > size * 4 // 3
    # The base64 text is 1.33 times the image; reading it whole and then encoding it peaked at 3.7 times.
    assert peak < size * 1.6
    tracemalloc.start()
    try:
        data_url = await fetch_data_url(session, host.urls(1, size=size)[0], media_type=lambda mime, head: mime)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data_url == prepared["messages"][0]["content"][1]["image_url"]["url"] and peak < size * 1.6


# --- through the relay -------------------------------------------------------------------------------

gemini_server = serve(MockGemini)


@pytest.fixture
def gemini(transactional_db, gemini_server):
    return new_world(gemini_server, username="alice", type=24, name="gemini", key="AIzaSy-secret",
                     models="gemini-2.5-flash")


@pytest.mark.django_db(transaction=True)
async def test_a_chat_with_too_many_images_is_a_400_before_anything_is_fetched(relay_client, gemini, host, settings):
    settings.USER_CONTENT_MAX_IMAGES = 2
    response = await relay_client.post("/v1/chat/completions", headers=gemini.auth,
                                       json=chat(host.urls(3), "gemini-2.5-flash"))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "too_many_images", "messages")
    assert "at most 2" in error["message"]
    assert host.fetches == [] and not gemini.upstream.requests
    assert await no_consume_log()


@pytest.mark.django_db(transaction=True)
async def test_a_chat_whose_images_add_up_past_the_total_is_a_400(relay_client, gemini, host, settings):
    settings.USER_CONTENT_MAX_BYTES = 6000
    settings.USER_CONTENT_CONCURRENCY = 1
    response = await relay_client.post("/v1/chat/completions", headers=gemini.auth,
                                       json=chat(host.urls(3, size=4000), "gemini-2.5-flash"))
    assert response.status_code == 400 and response.json()["error"]["code"] == "images_too_large"
    assert len(host.fetches) == 2 and not gemini.upstream.requests


@pytest.mark.django_db(transaction=True)
async def test_a_spent_process_budget_is_a_503_that_costs_nothing(relay_client, gemini, host, settings):
    settings.USER_CONTENT_PROCESS_MAX_FETCHES = 1
    settings.USER_CONTENT_QUEUE_TIMEOUT = 0
    await image_budget.budget.acquire(fetches=1)
    try:
        response = await relay_client.post("/v1/chat/completions", headers=gemini.auth,
                                           json=chat(host.urls(1), "gemini-2.5-flash"))
    finally:
        image_budget.budget.release(fetches=1)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "image_budget_exhausted"
    assert not gemini.upstream.requests and await no_consume_log()


@pytest.mark.django_db(transaction=True)
async def test_the_relay_gives_the_images_back_when_the_call_ends(relay_client, gemini, host):
    response = await relay_client.post("/v1/chat/completions", headers=gemini.auth,
                                       json=chat(host.urls(2, size=4000), "gemini-2.5-flash"))
    assert response.status_code == 200, response.text
    parts = gemini.upstream.requests[-1].body["contents"][0]["parts"]
    assert [part["inlineData"]["mimeType"] for part in parts[1:]] == ["image/png", "image/png"]
    assert (await consume_log()).model_name == "gemini-2.5-flash"
    assert image_budget.budget.bytes == 0


# --- settings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", [{"USER_CONTENT_MAX_IMAGES": "0"}, {"USER_CONTENT_QUEUE_TIMEOUT": "-1"},
                                 {"USER_CONTENT_MAX_BYTES": "2000", "USER_CONTENT_PROCESS_MAX_BYTES": "1000"}])
def test_start_up_stops_on_bounds_that_cannot_work(env, tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **env, "SQLITE_PATH": str(tmp_path / "x.db")})
    assert result.returncode != 0
    assert all(name in result.stderr for name in env)
