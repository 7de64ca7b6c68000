"""A lean Redis client for the relay's per-request scripts: one connection per event loop, calls pipelined on it.

redis-py's asyncio client costs about 80 us of CPU per EVALSHA (command objects, a connection pool, a lock,
retries), several times the round trip on loopback; the relay makes two or three such calls per request
(billing/shared_quota.py, relay/limits/cluster.py). This client writes the commands of every call made in
one event loop turn in one send (so a request's limits and quota admissions, or the admissions of concurrent
requests, share a packet and a round trip) and matches the replies to the calls in order.

Errors are redis-py's, so the callers' fallbacks stay as they are: ConnectionError when Redis cannot be
reached or the connection drops (every call on it fails), TimeoutError when a reply takes longer than the
call's timeout, ResponseError (NoScriptError) for an error reply, DataError for an argument Redis cannot
take.

Each call has its own deadline, and a call that times out fails alone: the relay's rate limits (1 s) and
quota settlements (2 s) share the connection, and a settlement failed while Redis ran it would be sent again.
The connection it timed out on is retired: new calls open another, and it is read on, its late replies
dropped, until every call sent on it has its reply (then closed) or the last of their deadlines has passed.
A script goes by EVALSHA, and again by EVAL when Redis lacks it.

URLs redis:// and unix:// (with username, password and database) are served here; rediss:// (TLS) by
redis-py behind the same interface (`client_for`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Coroutine

import redis.asyncio as aredis
from redis import exceptions as rex
from redis.connection import parse_url
from redis.exceptions import NoScriptError, ResponseError

__all__ = ["Client", "Parser", "RedisPyClient", "Script", "client_for", "encode"]

CONNECT_TIMEOUT = 0.5  # seconds, unless a call says otherwise


class Script:
    """A Lua script, sent by its SHA1 once Redis has it."""

    __slots__ = ("text", "sha")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


def _arg(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):  # redis-py refuses booleans; so do we, rather than send "True"
        raise rex.DataError("a boolean is no Redis argument: send 0 or 1")
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, float):
        return repr(float(value)).encode()
    raise rex.DataError(f"a {type(value).__name__} is no Redis argument")


def encode(command) -> bytes:
    """A command (a sequence of arguments) as RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(command)]
    for value in command:
        kind = type(value)  # the common types first, without isinstance's walk
        data = value.encode() if kind is str else b"%d" % value if kind is int else _arg(value)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _error(message: str) -> ResponseError:
    return NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)


class _Incomplete(Exception):
    pass


class Parser:
    """RESP2 replies from a byte stream: simple strings (str), errors (ResponseError instances, returned, not
    raised), integers, bulk strings (bytes; None for a null) and arrays (lists, nested; None for a null)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list:
        """The replies complete with `data`; a partial one waits for the rest."""
        buf = self._buf
        buf += data
        replies = []
        pos = 0
        try:
            while pos < len(buf):
                reply, pos = self._one(buf, pos)
                replies.append(reply)
        except _Incomplete:
            pass
        del buf[:pos]
        return replies

    def _one(self, buf: bytearray, pos: int):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            raise _Incomplete
        kind, line = buf[pos], buf[pos + 1:end]
        pos = end + 2
        if kind == 36:  # $ bulk string
            size = int(line)
            if size < 0:
                return None, pos
            if len(buf) < pos + size + 2:
                raise _Incomplete
            return bytes(buf[pos:pos + size]), pos + size + 2
        if kind == 58:  # : integer
            return int(line), pos
        if kind == 42:  # * array
            size = int(line)
            if size < 0:
                return None, pos
            items = []
            for _ in range(size):
                item, pos = self._one(buf, pos)
                items.append(item)
            return items, pos
        if kind == 43:  # + simple string
            return line.decode(), pos
        if kind == 45:  # - error
            return _error(line.decode(errors="replace")), pos
        raise rex.ConnectionError(f"Redis sent a reply of unknown type {chr(kind)!r}")


class _Protocol(asyncio.Protocol):
    """One connection: writes queued in a turn of the loop go out together; replies resolve the oldest call."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parser = Parser()
        # Every command sent and not yet answered, in order; a done future (its call timed out or left) still
        # takes its reply, which is dropped, so the replies stay matched to their calls.
        self.waiting: deque[asyncio.Future] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed: Exception | None = None
        self.retired = False  # takes no new calls (closed, or a call on it timed out)
        self.deadline = 0.0  # loop time by which every call sent on it has had its reply or failed
        self._out: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, commands: list[bytes], timeout: float) -> list[asyncio.Future]:
        if self.retired:
            raise rex.ConnectionError(str(self.closed or "the connection is retired"))
        if not self._out:
            self.loop.call_soon(self._flush)
        self._out += commands
        self.deadline = max(self.deadline, self.loop.time() + timeout)
        futures = [self.loop.create_future() for _ in commands]
        self.waiting.extend(futures)
        return futures

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self.transport is not None and self.closed is None:
            self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        try:
            replies = self.parser.feed(data)
        except (ValueError, rex.ConnectionError) as exc:  # not Redis speaking, or the stream is out of step
            self.fail(rex.ConnectionError(f"Redis sent a reply that cannot be read: {exc}"))
            return
        waiting = self.waiting
        for reply in replies:
            if not waiting:
                self.fail(rex.ConnectionError("Redis sent a reply no call waits for"))
                return
            future = waiting.popleft()
            if not future.done():
                future.set_result(reply)
        if self.retired and not waiting:
            self.fail(rex.ConnectionError("retired"))  # every call sent on it is answered

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(rex.ConnectionError(f"Connection to Redis lost ({exc or 'closed by the server'})"))

    def expire(self, futures: list[asyncio.Future], exc: Exception) -> None:
        """One call's deadline passed: it fails alone, and the connection is retired (a late reply, read and
        dropped, would otherwise delay every call sent after it)."""
        for future in futures:
            _settle(future, exc)
        self.retire()

    def retire(self) -> None:
        if self.retired:
            return
        self.retired = True
        if not self.waiting:
            self.fail(rex.ConnectionError("retired"))
        else:
            self.loop.call_at(self.deadline, self.fail, rex.TimeoutError("Timeout reading from Redis"))

    def fail(self, exc: Exception) -> None:
        """Every waiting call fails with `exc`, and the connection is closed for good."""
        if self.closed is None:
            self.closed = exc
        self.retired = True
        while self.waiting:
            _settle(self.waiting.popleft(), exc)
        if self.transport is not None:
            self.transport.abort()


def _settle(future: asyncio.Future, exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # a caller that left does not leave "never retrieved" warnings


class Client:
    """Calls to one Redis on one connection of the running event loop, opened on first use and after a drop."""

    def __init__(self, url: str) -> None:
        self.url = url
        options = parse_url(url)
        self._path = options.get("path")
        self._host = options.get("host", "localhost")
        self._port = int(options.get("port", 6379))
        self._hello: list[bytes] = []
        password, username = options.get("password"), options.get("username")
        if password:
            self._hello.append(encode(("AUTH", username, password) if username else ("AUTH", password)))
        if int(options.get("db") or 0):
            self._hello.append(encode(("SELECT", int(options["db"]))))
        self.loop: asyncio.AbstractEventLoop | None = None
        self._proto: _Protocol | None = None
        self._opening: asyncio.Future | None = None
        self._opening_deadline = 0.0  # loop time: the connection attempt's, that of its most patient caller
        self._opening_until: asyncio.Timeout | None = None  # the attempt's timeout, once it runs

    async def _connection(self, connect_timeout: float) -> _Protocol:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + connect_timeout
        if self._opening is None or self._opening.done():
            self._opening_deadline, self._opening_until = deadline, None
            self._opening = asyncio.ensure_future(self._open())
            # Its callers may all have left (their own timeouts) by the time it fails.
            self._opening.add_done_callback(lambda opening: opening.cancelled() or opening.exception())
        elif deadline > self._opening_deadline:
            # Each caller waits its own connect timeout: the attempt lasts as long as its most patient caller.
            self._opening_deadline = deadline
            if self._opening_until is not None:
                self._opening_until.reschedule(deadline)
        try:
            async with asyncio.timeout_at(deadline):
                # Shielded: one caller leaving must not cut the connection the others wait for.
                return await asyncio.shield(self._opening)
        except TimeoutError as exc:
            raise rex.TimeoutError(f"Timeout connecting to Redis at {self._where()}") from exc

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        self.loop = loop
        proto = None
        try:
            async with asyncio.timeout_at(self._opening_deadline) as until:
                self._opening_until = until
                if self._path:
                    _, proto = await loop.create_unix_connection(lambda: _Protocol(loop), self._path)
                else:
                    _, proto = await loop.create_connection(lambda: _Protocol(loop), self._host, self._port)
                if self._hello:
                    for reply in await asyncio.gather(*proto.send(self._hello, until.when() - loop.time())):
                        if isinstance(reply, ResponseError):
                            raise rex.ConnectionError(f"Redis refused the connection's setup: {reply}")
        except BaseException as exc:
            if proto is not None:  # connected, but not set up: closed, not left open per attempt
                proto.fail(rex.ConnectionError("Redis connection setup failed"))
            if isinstance(exc, TimeoutError):
                raise rex.TimeoutError(f"Timeout connecting to Redis at {self._where()}") from exc
            if isinstance(exc, OSError):
                # The address only: the URL's password must never reach a log line.
                raise rex.ConnectionError(
                    f"Error connecting to Redis at {self._where()}: {exc.strerror or exc}") from exc
            raise
        self._proto = proto
        return proto

    def _where(self) -> str:
        return self._path or f"{self._host}:{self._port}"

    async def call(self, commands: list[tuple], *, timeout: float, connect_timeout: float = CONNECT_TIMEOUT) -> list:
        """Send `commands` together and return their replies in order, error replies as ResponseError
        instances (not raised). TimeoutError when the last has not come after `timeout` seconds (or no
        connection could be opened in `connect_timeout`)."""
        if not commands:
            return []
        proto = self._proto
        if proto is None or proto.retired:
            proto = await self._connection(connect_timeout)
        return await _replies(proto, proto.send([encode(command) for command in commands], timeout), timeout)

    async def run(self, calls: list[tuple], *, timeout: float, connect_timeout: float = CONNECT_TIMEOUT) -> list:
        """Scripts as (Script, keys, args) and plain commands as tuples, in one round trip (two when Redis
        lacks a script); their replies in order. The first error reply is raised, as redis-py's pipelines do."""
        replies = await self.call([_command(call) for call in calls], timeout=timeout,
                                  connect_timeout=connect_timeout)
        return await self._checked(calls, replies, timeout, connect_timeout)

    def start(self, calls: list[tuple], *, timeout: float,
              connect_timeout: float = CONNECT_TIMEOUT) -> tuple[bool, Coroutine[None, None, list]]:
        """As `run`, but the commands are queued on the connection at once when it is open (True): Redis runs
        them before any command sent after this returns (one connection answers in order), even if the
        returned coroutine, which waits for the replies, runs later or never. Else (False) they go when it runs."""
        proto = self._proto
        if not calls or proto is None or proto.retired:
            return False, self.run(calls, timeout=timeout, connect_timeout=connect_timeout)
        futures = proto.send([encode(_command(call)) for call in calls], timeout)
        return True, self._started(calls, proto, futures, timeout, connect_timeout)

    async def _started(self, calls, proto, futures, timeout, connect_timeout) -> list:
        return await self._checked(calls, await _replies(proto, futures, timeout), timeout, connect_timeout)

    async def _checked(self, calls: list[tuple], replies: list, timeout: float, connect_timeout: float) -> list:
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)
                   and isinstance(calls[i][0], Script)]
        if missing:
            # Redis restarted or its scripts were flushed: EVAL runs the script and caches it again.
            again = await self.call([_command(calls[i], by_sha=False) for i in missing], timeout=timeout,
                                    connect_timeout=connect_timeout)
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def script(self, script: Script, keys, args, *, timeout: float, connect_timeout: float = CONNECT_TIMEOUT):
        return (await self.run([(script, keys, args)], timeout=timeout, connect_timeout=connect_timeout))[0]

    def close(self) -> None:
        if self._proto is not None:
            self._proto.fail(rex.ConnectionError("closed"))
            self._proto = None


async def _replies(proto: _Protocol, futures: list[asyncio.Future], timeout: float) -> list:
    last = futures[-1]
    timer = proto.loop.call_later(timeout, _expire, proto, futures, timeout)
    try:
        # A caller that leaves cancels `last`; its reply, when it comes, is read and dropped (a future that is
        # done is skipped), so the replies stay matched to their calls.
        await last
    finally:
        timer.cancel()
    return [future.result() for future in futures]


def _expire(proto: _Protocol, futures: list[asyncio.Future], timeout: float) -> None:
    if not futures[-1].done():
        proto.expire(futures, rex.TimeoutError(f"Timeout reading from Redis ({timeout:g} s)"))


def _command(call: tuple, *, by_sha: bool = True) -> tuple:
    if not isinstance(call[0], Script):
        return call
    script, keys, args = call
    return ("EVALSHA" if by_sha else "EVAL", script.sha if by_sha else script.text, len(keys), *keys, *args)


class RedisPyClient:
    """The same interface over redis-py, for what this module does not speak (TLS)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.get_running_loop()
        self._client = aredis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT)
        self._scripts: dict[str, object] = {}

    async def run(self, calls: list[tuple], *, timeout: float, connect_timeout: float = CONNECT_TIMEOUT) -> list:
        try:
            async with asyncio.timeout(timeout + connect_timeout), self._client.pipeline(transaction=False) as pipe:
                for call in calls:
                    if isinstance(call[0], Script):
                        script, keys, args = call
                        if script.sha not in self._scripts:
                            self._scripts[script.sha] = self._client.register_script(script.text)
                        await self._scripts[script.sha](keys=keys, args=args, client=pipe)
                    else:
                        pipe.execute_command(*call)
                return await pipe.execute()
        except TimeoutError as exc:  # asyncio's (redis-py's is no OSError)
            raise rex.TimeoutError(f"Timeout reading from Redis ({timeout:g} s)") from exc

    def start(self, calls: list[tuple], *, timeout: float,
              connect_timeout: float = CONNECT_TIMEOUT) -> tuple[bool, Coroutine[None, None, list]]:
        return False, self.run(calls, timeout=timeout, connect_timeout=connect_timeout)

    async def script(self, script: Script, keys, args, *, timeout: float, connect_timeout: float = CONNECT_TIMEOUT):
        return (await self.run([(script, keys, args)], timeout=timeout, connect_timeout=connect_timeout))[0]

    def close(self) -> None:
        pass


_clients: dict[str, Client | RedisPyClient] = {}


def client_for(url: str) -> Client | RedisPyClient:
    """The client for `url` on the running event loop, shared by its callers so their calls share sends (a
    loop's connection cannot serve another loop: tests run one each)."""
    client = _clients.get(url)
    loop = asyncio.get_running_loop()
    if client is None or (client.loop is not None and client.loop is not loop):
        if url.startswith("rediss://"):
            client = RedisPyClient(url)
        else:
            client = Client(url)
        _clients[url] = client
    return client
