"""The gateway's ASGI application with a database-query counter, for the benchmark only.

Every Django connection gets an execute wrapper that counts statements by kind
and by thread (request path vs the ledger's background writer). The counts are
served at `GET /__bench/queries`. The wrapper runs only when a query does, so a
warm relay request that makes none pays nothing for it.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

from django.db.backends.signals import connection_created

counts: Counter[str] = Counter()
_lock = threading.Lock()


def _counter(execute, sql, params, many, context):
    verb = (sql.lstrip().split(None, 1) or ["?"])[0].upper()
    where = "ledger" if threading.current_thread().name == "oneapi-ledger" else "request"
    with _lock:
        counts[f"{where}:{'read' if verb in ('SELECT', 'PRAGMA') else 'write'}"] += 1
    return execute(sql, params, many, context)


def _on_connection(sender, connection, **kwargs):
    if _counter not in connection.execute_wrappers:
        connection.execute_wrappers.append(_counter)


connection_created.connect(_on_connection)

# After connecting the counter: importing the gateway starts threads (scheduler, cache listener) that connect.
from oneapi_site.asgi import application as gateway  # noqa: E402


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/__bench/queries":
        with _lock:
            body = json.dumps(dict(counts)).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    await gateway(scope, receive, send)
