"""A real gateway's /readyz while its database server goes away and comes back (issue 13).

The gateway reaches the suite's database server through a TCP relay of the test's own; cutting the relay is the
database going down for this gateway only. Needs a database server (SQL_DSN), as SQLite cannot be unreachable.
"""

from __future__ import annotations

import asyncio
import os
import threading
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from oneapi_site.config import parse_sql_dsn
from tests.e2e.servers import free_port, prepare_database, running_gateway

DSN = os.environ.get("SQL_DSN", "").strip()
pytestmark = pytest.mark.skipif(parse_sql_dsn(DSN, sqlite_path="x").engine == "sqlite",
                                reason="needs a database server (SQL_DSN)")


class TcpRelay:
    """Forwards a local port to the database server; `cut` closes the port and every connection through it."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _client(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _open(self):
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self):
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    def open(self) -> TcpRelay:
        self._run(self._open())
        return self

    def cut(self) -> None:
        self._run(self._cut())


def through(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{port}"))


def test_readyz_turns_unready_while_the_database_is_down_and_ready_when_it_is_back(tmp_path):
    with prepare_database(tmp_path) as env:
        target = urlsplit(env["SQL_DSN"])
        relay = TcpRelay(target.hostname, target.port).open()
        with running_gateway(tmp_path, {**env, "SQL_DSN": through(env["SQL_DSN"], relay.port)}) as gateway:
            assert httpx.get(f"{gateway.url}/readyz", timeout=30).status_code == 200
            relay.cut()
            down = httpx.get(f"{gateway.url}/readyz", timeout=30)
            alive = httpx.get(f"{gateway.url}/healthz", timeout=30)
            relay.open()
            back = httpx.get(f"{gateway.url}/readyz", timeout=30)
            log = gateway.log_text()
    assert down.status_code == 503, down.text
    assert down.json()["checks"]["database"].startswith("unreachable"), down.text
    assert down.json()["checks"]["channels"] == "ok"  # loaded before: the relay serves from them meanwhile
    assert target.hostname not in down.text and str(relay.port) not in down.text
    assert alive.status_code == 200
    assert back.status_code == 200, back.text
    assert "Traceback" not in log
