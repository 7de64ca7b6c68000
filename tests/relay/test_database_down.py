"""The database goes away: what the relay must read from it becomes a 503 saying so (one log line, no
traceback); what it already holds keeps serving."""

import contextlib
import logging

import pytest
from django.db import OperationalError
from django.db.backends import utils

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@contextlib.contextmanager
def database_down(monkeypatch):
    """Every query, in every thread, fails as a database that went away does."""

    def refuse(self, *args, **kwargs):
        raise OperationalError("(2003, \"Can't connect to MySQL server on '127.0.0.1' (111)\")")

    with monkeypatch.context() as patch:
        patch.setattr(utils.CursorWrapper, "execute", refuse)
        patch.setattr(utils.CursorWrapper, "executemany", refuse)
        yield


def _relay_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("oneapi") and r.levelno >= logging.WARNING]


async def test_a_token_first_used_while_the_database_is_down_is_a_503_with_one_log_line(
        client, world, monkeypatch, caplog):
    with database_down(monkeypatch):
        response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert error["message"].startswith("The gateway cannot check this API key right now")
    records = _relay_records(caplog)
    assert len(records) == 1 and records[0].exc_info is None and "database unavailable" in records[0].getMessage()
    # Nothing about the key was remembered: with the database back, it works at once.
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text


async def test_routes_that_cannot_be_loaded_at_all_are_a_503(client, world, monkeypatch, caplog):
    from relay.cache import cache

    await client.get("/v1/models", headers=world.auth)  # the key and its user are known now
    cache.mark_stale("channels")
    cache.routes = None  # a gateway that has never loaded its channels
    caplog.clear()
    with database_down(monkeypatch):
        response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 503 and response.json()["error"]["code"] == "database_unavailable"
    assert len(_relay_records(caplog)) == 1


async def test_routes_that_cannot_be_reloaded_keep_serving_from_the_last_load(client, world, monkeypatch, caplog):
    from relay.cache import cache

    assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    cache.mark_stale("channels")  # a change elsewhere: the next request reloads
    caplog.clear()
    with database_down(monkeypatch):
        response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
        again = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert (response.status_code, again.status_code) == (200, 200), response.text
    records = _relay_records(caplog)
    assert len(records) == 1 and records[0].exc_info is None  # tried again only after a pause


async def test_a_user_that_cannot_be_looked_up_is_a_503(client, world, monkeypatch, caplog):
    from relay.cache import cache

    assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    cache.users = {}  # the token is known, its user is not
    caplog.clear()
    with database_down(monkeypatch):
        response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 503 and response.json()["error"]["code"] == "database_unavailable"
    assert len(_relay_records(caplog)) == 1


def test_a_channel_that_cannot_be_auto_disabled_says_so_in_one_line(world, monkeypatch, caplog):
    from providers import health

    with database_down(monkeypatch):
        health._disable_quietly(world.channel.pk, "3 failures in a row")
    records = [r for r in caplog.records if r.name == "providers.health"]
    assert len(records) == 1 and records[0].exc_info is None
    assert "database is unavailable" in records[0].getMessage()
