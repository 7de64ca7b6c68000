"""Whether this tree serves an agent's route yet, asked of the relay application itself when a test module is
imported, so the agents' tests whose ingress has not landed are skipped and start running once it does."""

from __future__ import annotations

import asyncio
from functools import cache

from relay.asgi import RelayApp


@cache
def not_served(path: str) -> bool:
    """Whether the relay answers a POST to `path` with 404 Not Found or, as one-api does for the OpenAI routes
    it lacks, 501 Not Implemented. The probe sends no key: a route the relay serves refuses it with 401 before
    reading the body or asking the database."""
    app = RelayApp()
    app._started = True  # a probe must not start this process's ledger writer and change listener
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 1)}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"] in (404, 501)
