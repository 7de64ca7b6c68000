"""Small helpers the relay and vendor tests share."""

from __future__ import annotations

from asgiref.sync import sync_to_async

from billing.ledger import ledger
from billing.models import Log


async def flush() -> None:
    """Write what the ledger holds (the relay writes charges off the request path)."""
    await sync_to_async(ledger.flush_all, thread_sensitive=False)()


async def consume_log() -> Log:
    """The one consume log a test's request wrote."""
    await flush()
    return await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)


def events_of(raw: bytes) -> list[bytes]:
    """The data of each server-sent event in a relayed stream, [DONE] included."""
    return [e[6:] for e in raw.split(b"\n\n") if e.startswith(b"data: ")]



def logged_in(user):
    """A test client with `user` signed in."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client
