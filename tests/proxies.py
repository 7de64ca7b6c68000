"""Small outbound proxies for tests, on the test's event loop: an HTTP proxy (absolute-form requests and
CONNECT tunnels) and a SOCKS5 proxy (no auth, or username/password). Each counts the connections it takes
and records what it was asked, so a test can tell that a call went through it and how."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class ProxyLog:
    connections: int = 0
    targets: list[str] = field(default_factory=list)  # host:port asked for, as the client named it
    credentials: list[str | None] = field(default_factory=list)  # user:password the client gave, if any
    address_types: list[str] = field(default_factory=list)  # SOCKS5: "ipv4", "domain" or "ipv6"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _splice(client_reader, client_writer, target_reader, target_writer) -> None:
    await asyncio.gather(_pipe(client_reader, target_writer), _pipe(target_reader, client_writer))


class _Server:
    def __init__(self) -> None:
        self.log = ProxyLog()
        self.server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Task] = set()

    async def start(self):
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader, writer) -> None:
        self.log.connections += 1
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def handle(self, reader, writer) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()


class HttpProxy(_Server):
    """A forward HTTP proxy: `GET http://host/path` is sent on to host; CONNECT host:port becomes a tunnel."""

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    async def handle(self, reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [line for line in lines[1:] if line]
        auth = next((h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("proxy-authorization:")),
                    None)
        self.log.credentials.append(base64.b64decode(auth.split(" ", 1)[1]).decode() if auth else None)
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            self.log.targets.append(target)
            target_reader, target_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _splice(reader, writer, target_reader, target_writer)
            return
        parts = urlsplit(target)
        self.log.targets.append(f"{parts.hostname}:{parts.port or 80}")
        target_reader, target_writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kept = [h for h in headers if not h.lower().startswith(("proxy-authorization:", "proxy-connection:"))]
        target_writer.write(f"{method} {path} {version}\r\n".encode("latin-1")
                            + "".join(f"{h}\r\n" for h in kept).encode("latin-1") + b"\r\n")
        await _splice(reader, writer, target_reader, target_writer)


class Socks5Proxy(_Server):
    """RFC 1928 CONNECT, with RFC 1929 username/password when `credentials` is set."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.credentials = credentials

    def url(self, scheme: str = "socks5", userinfo: str = "") -> str:
        return f"{scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    async def handle(self, reader, writer) -> None:
        version, count = await reader.readexactly(2)
        if version != 5:
            return
        methods = await reader.readexactly(count)
        wanted = 2 if self.credentials else 0
        if wanted not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(bytes([5, wanted]))
        given = None
        if wanted == 2:
            _, length = await reader.readexactly(2)
            user = (await reader.readexactly(length)).decode()
            (length,) = await reader.readexactly(1)
            password = (await reader.readexactly(length)).decode()
            given = f"{user}:{password}"
            if (user, password) != self.credentials:
                writer.write(b"\x01\x01")
                return
            writer.write(b"\x01\x00")
        self.log.credentials.append(given)
        _, command, _, address_type = await reader.readexactly(4)
        if address_type == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
            self.log.address_types.append("ipv4")
        elif address_type == 3:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode()
            self.log.address_types.append("domain")
        else:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
            self.log.address_types.append("ipv6")
        port = int.from_bytes(await reader.readexactly(2), "big")
        self.log.targets.append(f"{host}:{port}")
        if command != 1:
            writer.write(b"\x05\x07\x00\x01" + bytes(6))
            return
        target_reader, target_writer = await asyncio.open_connection(host, port)
        writer.write(b"\x05\x00\x00\x01" + bytes(4) + (0).to_bytes(2, "big"))
        await writer.drain()
        await _splice(reader, writer, target_reader, target_writer)
