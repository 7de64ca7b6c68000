"""The relay's lean Redis client (oneapi_site/lib/resp.py): replies read in every shape, calls answered in order,
and failures raised as redis-py's exceptions, against a scripted server and, with REDIS_CONN_STRING, a real one."""

from __future__ import annotations

import asyncio
import enum
import os

import pytest
import redis
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

from oneapi_site.lib import resp

REDIS = os.environ.get("REDIS_CONN_STRING", "")


class Kind(enum.IntEnum):
    ADMIT = 1
    SETTLE = 2


# --- replies -------------------------------------------------------------------


def test_every_reply_type_is_read():
    parser = resp.Parser()
    replies = parser.feed(b"+OK\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n")
    assert replies == ["OK", 42, -7, b"hello", b"", None, None, []]


def test_nested_arrays_and_errors_inside_them_are_read():
    [reply] = resp.Parser().feed(b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n*1\r\n-ERR inner\r\n$-1\r\n")
    assert reply[0] == 1 and reply[2] is None
    assert reply[1][0] == b"a"
    [error] = reply[1][1]
    assert isinstance(error, ResponseError) and str(error) == "ERR inner"


def test_error_replies_are_returned_as_redis_exceptions_and_noscript_as_its_own():
    error, missing = resp.Parser().feed(b"-WRONGTYPE Operation against a key\r\n-NOSCRIPT No matching script\r\n")
    assert type(error) is ResponseError and str(error).startswith("WRONGTYPE")
    assert isinstance(missing, NoScriptError)


def test_a_reply_split_anywhere_is_read_once_complete():
    stream = b"*2\r\n$12\r\nhello\r\nworld\r\n:5\r\n+OK\r\n"
    for cut in range(1, len(stream)):
        parser = resp.Parser()
        first = parser.feed(stream[:cut])
        rest = parser.feed(stream[cut:])
        assert first + rest == [[b"hello\r\nworld", 5], "OK"], cut


def test_commands_are_sent_as_arrays_of_bulk_strings():
    assert resp.encode(("EVALSHA", "ab", 1, b"k\r\n", -3, 1.5)) == (
        b"*6\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$3\r\nk\r\n\r\n$2\r\n-3\r\n$3\r\n1.5\r\n")
    assert resp.encode((Kind.SETTLE, "é")) == b"*2\r\n$1\r\n2\r\n$2\r\n\xc3\xa9\r\n"  # an int's value, not its name
    with pytest.raises(redis.exceptions.DataError):
        resp.encode(("SET", "k", True))
    with pytest.raises(redis.exceptions.DataError):
        resp.encode(("SET", "k", None))


# --- a scripted server ---------------------------------------------------------------


class Server:
    """Reads commands and answers each by `self.answer(command) -> bytes | None` (None: never answers)."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.commands: list[list[bytes]] = []
        self.reads = 0  # how many reads brought commands: calls made together arrive in one
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        parser = _CommandParser()
        try:
            while data := await reader.read(65536):
                self.reads += 1
                for command in parser.feed(data):
                    self.commands.append(command)
                    answer = self.answer(command)
                    if answer == b"CLOSE":
                        writer.close()
                        return
                    if answer is not None:
                        writer.write(answer)
                await writer.drain()
        except ConnectionResetError:
            pass

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        self.server.close()
        await self.server.wait_closed()


class _CommandParser(resp.Parser):
    """Commands are RESP arrays too."""


def echo_numbers(command: list[bytes]) -> bytes:
    return b":%s\r\n" % command[1] if command[0] == b"ECHO" else b"+OK\r\n"


async def test_calls_made_together_go_in_one_send_and_are_answered_in_order():
    server = Server(echo_numbers)
    url = await server.start()
    client = resp.Client(url)
    try:
        replies = await asyncio.gather(*(client.call([("ECHO", i), ("ECHO", -i)], timeout=5) for i in range(50)))
        assert replies == [[i, -i] for i in range(50)]
        assert server.reads == 1 and server.connections == 1
    finally:
        client.close()
        await server.stop()


async def test_commands_started_on_an_open_connection_go_before_any_sent_after_them():
    server = Server(echo_numbers)
    url = await server.start()
    client = resp.Client(url)
    try:
        queued, cold = client.start([("ECHO", 0)], timeout=5)
        assert not queued  # no connection yet: sent when awaited
        assert await cold == [0]
        queued, started = client.start([("ECHO", 1)], timeout=5)
        assert queued
        assert await client.call([("ECHO", 2)], timeout=5) == [2]
        assert await started == [1]
        assert [command[1] for command in server.commands] == [b"0", b"1", b"2"]
    finally:
        client.close()
        await server.stop()


async def test_auth_and_select_come_from_the_url_before_any_call():
    server = Server(lambda command: b"+OK\r\n" if command[0] != b"ECHO" else b":1\r\n")
    url = await server.start()
    client = resp.Client(url.replace("redis://", "redis://app:s%40cret@") + "/3")
    try:
        assert await client.call([("ECHO", 1)], timeout=5) == [1]
        assert server.commands == [[b"AUTH", b"app", b"s@cret"], [b"SELECT", b"3"], [b"ECHO", b"1"]]
    finally:
        client.close()
        await server.stop()


async def test_a_refused_password_is_a_connection_error_that_does_not_name_it():
    server = Server(lambda command: b"-WRONGPASS invalid username-password pair\r\n")
    url = await server.start()
    client = resp.Client(url.replace("redis://", "redis://:hunter2@"))
    try:
        with pytest.raises(ConnectionError) as raised:
            await client.call([("PING",)], timeout=5)
        assert "hunter2" not in str(raised.value)
    finally:
        client.close()
        await server.stop()


async def test_a_missing_script_is_sent_again_by_eval():
    script = resp.Script("return 7")

    def answer(command):
        if command[0] == b"EVALSHA":
            return b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
        if command[0] == b"EVAL":
            return b":7\r\n"
        return b"+OK\r\n"

    server = Server(answer)
    url = await server.start()
    client = resp.Client(url)
    try:
        assert await client.run([(script, ["k"], [1]), ("HSET", "h", "f", b"v")], timeout=5) == [7, "OK"]
        assert server.commands == [[b"EVALSHA", script.sha.encode(), b"1", b"k", b"1"], [b"HSET", b"h", b"f", b"v"],
                                   [b"EVAL", b"return 7", b"1", b"k", b"1"]]
    finally:
        client.close()
        await server.stop()


async def test_an_error_reply_is_raised_by_run_and_returned_by_call():
    server = Server(lambda command: b"-ERR wrong number of arguments\r\n" if command[0] == b"BAD" else b":1\r\n")
    url = await server.start()
    client = resp.Client(url)
    try:
        with pytest.raises(ResponseError, match="wrong number"):
            await client.run([("ECHO", 1), ("BAD",)], timeout=5)
        one, bad = await client.call([("ECHO", 1), ("BAD",)], timeout=5)
        assert one == 1 and isinstance(bad, ResponseError)
        assert await client.call([("ECHO", 1)], timeout=5) == [1]  # the connection is still in step
        assert server.connections == 1
    finally:
        client.close()
        await server.stop()


async def test_a_connection_dropped_mid_call_fails_the_calls_on_it_and_the_next_call_reconnects():
    drop = [True]

    def answer(command):
        if command[0] == b"ECHO" and drop[0]:
            drop[0] = False
            return b"CLOSE"
        return b":1\r\n"

    server = Server(answer)
    url = await server.start()
    client = resp.Client(url)
    try:
        with pytest.raises(ConnectionError):
            await client.call([("ECHO", 1)], timeout=5)
        assert await client.call([("ECHO", 1)], timeout=5) == [1]
        assert server.connections == 2
    finally:
        client.close()
        await server.stop()


async def test_a_reply_that_does_not_come_is_a_timeout_and_a_late_one_answers_no_other_call():
    # Only the third call, on a connection of its own, is answered by the server; the first two by hand below.
    server = Server(lambda command: b":3\r\n" if command[1] == b"3" else None)
    url = await server.start()
    client = resp.Client(url)
    try:
        first = asyncio.ensure_future(client.call([("ECHO", 1)], timeout=0.05))
        second = asyncio.ensure_future(client.call([("ECHO", 2)], timeout=5))  # the same connection
        with pytest.raises(TimeoutError):
            await first
        assert not second.done()  # one call's timeout fails that call alone
        assert await client.call([("ECHO", 3)], timeout=5) == [3]
        assert server.connections == 2  # the timed-out connection takes no new calls
        server.writers[0].write(b":1\r\n")  # the first call's late reply: read and dropped
        await asyncio.sleep(0.05)
        assert not second.done()
        server.writers[0].write(b":2\r\n")
        assert await second == [2]
    finally:
        client.close()
        await server.stop()


async def test_a_connection_whose_setup_times_out_is_closed():
    # A Redis that accepts but does not answer AUTH/SELECT (stopped, overloaded): each attempt (every
    # RETRY_SECONDS, limits and quota each) must not leave its socket open.
    server = Server(lambda command: None)
    url = await server.start()
    client = resp.Client(url + "/15")
    try:
        with pytest.raises(TimeoutError):
            await client.call([("PING",)], timeout=1, connect_timeout=0.1)
        await asyncio.sleep(0.2)
        # The server's side reads EOF once the client closes, and its _serve ends.
        still_open = [task for task in asyncio.all_tasks() if "_serve" in repr(task.get_coro())]
        assert server.connections == 1 and not still_open, "the timed-out connection is still open"
    finally:
        client.close()
        await server.stop()


async def test_one_calls_timeout_does_not_fail_another_call_answered_within_its_own():
    # The limits' calls wait 1 s (relay/limits/cluster.py READ_TIMEOUT), the quota's 2 s (billing/shared_quota.py
    # TIMEOUT), on the one shared connection. Redis runs both and answers 0.3 s later (a fork for BGSAVE between
    # running commands and writing replies): the call that allowed 1 s must get its reply, not the other's
    # TimeoutError (a settlement failed so is kept and sent again, and Redis takes its charge twice).
    loop = asyncio.get_running_loop()
    server = Server(lambda command: None)  # replies are written late, below
    url = await server.start()
    client = resp.Client(url)
    try:
        short = asyncio.ensure_future(client.call([("ECHO", 1)], timeout=0.1))
        long = asyncio.ensure_future(client.call([("ECHO", 2)], timeout=2))
        await asyncio.sleep(0.05)
        loop.call_later(0.25, lambda: server.writers[0].write(b":1\r\n:2\r\n"))
        with pytest.raises(TimeoutError):
            await short
        assert [c[1] for c in server.commands] == [b"1", b"2"]  # both reached (and ran in) Redis
        assert await long == [2]
    finally:
        client.close()
        await server.stop()


async def test_no_server_is_a_connection_error():
    server = Server(echo_numbers)
    url = await server.start()
    await server.stop()
    client = resp.Client(url)
    with pytest.raises(ConnectionError):
        await client.call([("PING",)], timeout=5)


async def test_a_caller_that_leaves_does_not_put_the_replies_out_of_step():
    server = Server(echo_numbers)
    url = await server.start()
    client = resp.Client(url)
    try:
        await client.call([("ECHO", 0)], timeout=5)
        slow = asyncio.ensure_future(client.call([("ECHO", 1)], timeout=5))
        await asyncio.sleep(0)
        slow.cancel()
        assert await client.call([("ECHO", 2)], timeout=5) == [2]
        with pytest.raises(asyncio.CancelledError):
            await slow
    finally:
        client.close()
        await server.stop()


# --- a real Redis ------------------------------------------------------------------


@pytest.mark.skipif(not REDIS, reason="needs REDIS_CONN_STRING")
async def test_scripts_run_on_a_real_redis_after_a_script_flush():
    script = resp.Script("redis.call('SET', KEYS[1], ARGV[1]) return {1, {ARGV[1], 'x'}, redis.call('GET', KEYS[1])}")
    client = resp.Client(REDIS)
    sync = redis.Redis.from_url(REDIS)
    try:
        sync.script_flush()
        assert await client.script(script, ["oneapi:test:resp"], [5], timeout=5) == [1, [b"5", b"x"], b"5"]
        assert await client.script(script, ["oneapi:test:resp"], [6], timeout=5) == [1, [b"6", b"x"], b"6"]
        assert sync.get("oneapi:test:resp") == b"6"  # in the URL's database
    finally:
        sync.delete("oneapi:test:resp")
        sync.close()
        client.close()


async def test_the_client_for_a_url_is_shared_within_a_loop():
    first = resp.client_for("redis://127.0.0.1:1/0")
    assert resp.client_for("redis://127.0.0.1:1/0") is first
    assert isinstance(resp.client_for("rediss://127.0.0.1:1/0"), resp.RedisPyClient)
