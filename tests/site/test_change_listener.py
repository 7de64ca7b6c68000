"""The change listener (oneapi_site/lib/changes.py) cannot be lost: whatever fails, it logs and listens again."""

from __future__ import annotations

import builtins
import threading

import pytest
import redis

from oneapi_site.lib import changes

WAIT = 10  # seconds a delivery may take before the test gives up; a bound on failure, not a timing check


class FakePubSub:
    """Delivers the queued messages, then nothing; `fail_subscribe` raises on the first subscribes."""

    def __init__(self, feed: FakeRedis):
        self.feed = feed

    def subscribe(self, channel):
        assert channel == changes.channel_name()
        if self.feed.fail_subscribe:
            raise self.feed.fail_subscribe.pop(0)

    def get_message(self, timeout=0.0):
        if self.feed.messages:
            return {"type": "message", "data": self.feed.messages.pop(0)}
        threading.Event().wait(0.01)
        return None

    def close(self):
        pass


class FakeRedis:
    def __init__(self):
        self.messages: list[bytes] = []
        self.fail_subscribe: list[Exception] = []
        self.connections = 0

    def from_url(self, url, **kwargs):
        self.connections += 1
        return self

    def pubsub(self, **kwargs):
        return FakePubSub(self)


@pytest.fixture
def feed(monkeypatch):
    fake = FakeRedis()
    monkeypatch.setattr(redis.Redis, "from_url", fake.from_url)
    monkeypatch.setattr(changes, "RETRY_SECONDS", 0.01, raising=False)
    return fake


@pytest.fixture
def heard():
    kinds: list[str] = []
    arrived = threading.Event()

    def listener(kind):
        kinds.append(kind)
        arrived.set()

    changes.subscribe(listener)
    yield kinds, arrived
    changes._listeners.remove(listener)


def run_listener():
    stop = threading.Event()
    thread = threading.Thread(target=changes.listen_forever, args=(stop,), daemon=True, name="oneapi-changes")
    thread.start()
    return stop, thread


def test_a_failed_import_of_redis_in_the_listener_thread_cannot_kill_it(feed, heard, monkeypatch):
    """Issue 8: `import redis` in the thread raced the first request's import and killed the listener."""
    real_import = builtins.__import__
    raised = []

    def racing_import(name, *args, **kwargs):
        if name == "redis" and threading.current_thread().name == "oneapi-changes" and not raised:
            raised.append(name)
            raise ImportError("cannot import name 'EMPTY_RESPONSE' from partially initialized module 'redis.client'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", racing_import)
    kinds, arrived = heard
    feed.messages.append(b"another-instance:channels")
    stop, thread = run_listener()
    try:
        assert arrived.wait(WAIT), "the listener died"
        assert kinds == ["channels"]
    finally:
        stop.set()
        thread.join(WAIT)


def test_an_unexpected_error_is_logged_and_the_listener_subscribes_again(feed, heard, caplog):
    kinds, arrived = heard
    feed.fail_subscribe.append(ValueError("a bug while subscribing"))
    feed.messages.append(b"another-instance:channels")
    stop, thread = run_listener()
    try:
        assert arrived.wait(WAIT), "the listener died"
        assert feed.connections == 2
        assert "Redis change feed failed" in caplog.text and "a bug while subscribing" in caplog.text
    finally:
        stop.set()
        thread.join(WAIT)
    assert not thread.is_alive()


def test_after_a_lost_feed_everything_cached_is_reloaded(feed, heard, caplog):
    """Changes published while the feed was down were missed: every kind is marked stale once it is back."""
    kinds, arrived = heard
    feed.fail_subscribe.extend([redis.ConnectionError("Connection refused")] * 3)
    stop, thread = run_listener()
    try:
        assert arrived.wait(WAIT), "the listener did not come back"
        for _ in range(WAIT * 100):
            if len(kinds) >= len(changes.KINDS):
                break
            threading.Event().wait(0.01)
        assert sorted(kinds) == sorted(changes.KINDS)
    finally:
        stop.set()
        thread.join(WAIT)
    # One line for the outage, not one per retry.
    assert caplog.text.count("Redis change feed lost") == 1


def test_its_own_messages_and_unknown_kinds_are_ignored(feed, heard):
    kinds, arrived = heard
    feed.messages.extend([f"{changes.INSTANCE}:tokens".encode(), b"another-instance:nonsense",
                          b"another-instance:users"])
    stop, thread = run_listener()
    try:
        assert arrived.wait(WAIT)
        assert kinds == ["users"]
    finally:
        stop.set()
        thread.join(WAIT)
