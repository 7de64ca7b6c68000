"""Small helpers the relay and vendor tests share."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie

import httpx
from asgiref.sync import sync_to_async

from billing.ledger import ledger
from billing.models import Log
from providers.models import Channel
from relay import admission


async def flush() -> None:
    """Write what the ledger holds (the relay writes charges off the request path)."""
    await admission.drain()
    await sync_to_async(ledger.flush_all, thread_sensitive=False)()


async def consume_log() -> Log:
    """The one consume log a test's request wrote."""
    await flush()
    return await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)


async def consume_logs() -> list[Log]:
    """Every consume log written so far, oldest first."""
    await flush()
    return await sync_to_async(lambda: list(Log.objects.filter(type=Log.Type.CONSUME).order_by("id")))()


def events_of(raw: bytes) -> list[bytes]:
    """The data of each server-sent event in a relayed stream, [DONE] included."""
    return [e[6:] for e in raw.split(b"\n\n") if e.startswith(b"data: ")]



def logged_in(user):
    """A test client with `user` signed in."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


@asynccontextmanager
async def asgi_client(*, peer: str, base_url: str = "http://testserver"):
    """An HTTP client of the whole ASGI application (oneapi_site.asgi, the trusted-proxy middleware included),
    connecting from `peer` as a real client or proxy would. Async tests with django_db(transaction=True)."""
    from oneapi_site.asgi import application

    transport = httpx.ASGITransport(app=application, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=30) as client:
        yield client


def set_cookies(response: httpx.Response) -> SimpleCookie:
    """The cookies a response sets, with their attributes (secure, httponly), as Django's test client shows them."""
    cookies = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        cookies.load(header)
    return cookies


async def browser_post(client: httpx.AsyncClient, path: str, data: dict, *, origin: str,
                       headers: dict | None = None) -> tuple[httpx.Response, httpx.Response]:
    """A page's form as a browser at `origin` sends it: GET for the CSRF cookie, then POST; both responses.

    The cookie goes back by hand: the client would keep a Secure one from a plain-http test URL."""
    headers = dict(headers or {})
    page = await client.get(path, headers=headers)
    csrf = set_cookies(page)["csrftoken"].value
    response = await client.post(path, data={**data, "csrfmiddlewaretoken": csrf},
                                 headers={**headers, "Origin": origin, "Cookie": f"csrftoken={csrf}"})
    return page, response


async def channel_status(channel_id: int, expect: int, timeout: float = 3.0) -> int:
    """The channel's status once it is `expect`, or whatever it is after `timeout` (auto-disables and
    auto-enables are written off the request path)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await sync_to_async(Channel.objects.values_list("status", flat=True).get)(pk=channel_id)
        if status == expect or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.05)
