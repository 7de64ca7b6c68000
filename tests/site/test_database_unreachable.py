"""A database that cannot be reached answers 503 on /api (one-api's envelope) and on the pages (plain text), with
no credentials and no traceback; a bug, database errors included, stays a 500."""

import threading

import pytest
from django.db import InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client
from django.urls import reverse

from accounts.api import me
from billing.pages import dashboard as dashboard_page
from oneapi_site import options
from oneapi_site.lib.database_down import database_unreachable

pytestmark = pytest.mark.django_db

REFUSAL = (2003, "Can't connect to MySQL server on 'db-secret-host:3306' (111)")


@pytest.fixture
def database_refuses(monkeypatch):
    """Every new connection fails in the backend's connect, as a stopped server or a closed port makes it fail.

    The request runs in a thread of its own (`in_new_thread`), so Django opens a connection for it through
    ensure_connection; the test's own, already open connection keeps its transaction."""
    def get_new_connection(self, conn_params):
        raise self.Database.OperationalError(*REFUSAL)

    monkeypatch.setattr(type(connections["default"]), "get_new_connection", get_new_connection)


def in_new_thread(call):
    """The answer as a browser gets it (the test client would re-raise the error the handler answered)."""
    answer = []
    thread = threading.Thread(target=lambda: answer.append(call()))
    thread.start()
    thread.join(30)
    return answer[0]


@pytest.fixture
def options_fresh(settings):
    """The options snapshot needs no reload, so the first query is the view's (the session's, the user's)."""
    settings.SYNC_FREQUENCY = 3600
    options.reload_from_db()


def assert_unavailable_envelope(response, message="The database cannot be reached. Try again in a moment."):
    assert response.status_code == 503, response.content
    assert response.json() == {"success": False, "message": message}
    assert response.headers["Retry-After"] == "30"
    assert "secret" not in response.content.decode() and "Traceback" not in response.content.decode()


def test_the_api_answers_503_in_its_envelope_when_the_database_refuses(alice_api, options_fresh, database_refuses):
    # Token authentication reads the users table first: inside DRF, through its exception handler.
    assert_unavailable_envelope(in_new_thread(lambda: alice_api.get("/api/user/self")))


def test_the_message_is_translated(alice_api, options_fresh, database_refuses):
    response = in_new_thread(lambda: alice_api.get("/api/user/self", HTTP_ACCEPT_LANGUAGE="zh-hans"))
    assert_unavailable_envelope(response, "数据库暂时无法连接，请稍后再试。")


def test_a_refusal_before_the_view_answers_503_too(alice_client, database_refuses):
    """Options to reload and a session to read: the middleware meets the refusal, outside DRF."""
    options.snapshot.mark_stale("options")
    alice_client.raise_request_exception = False
    assert_unavailable_envelope(in_new_thread(lambda: alice_client.get("/api/user/self")))


def test_a_page_answers_a_plain_503_when_the_database_refuses(alice_client, options_fresh, database_refuses):
    alice_client.raise_request_exception = False
    response = in_new_thread(lambda: alice_client.get(reverse("dashboard")))
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == "The database cannot be reached. Try again in a moment."


def test_a_connection_lost_mid_request_answers_503(alice, monkeypatch):
    client = Client(raise_request_exception=False)
    client.force_login(alice)

    def gone(**kwargs):
        raise OperationalError(2006, "Server has gone away")

    monkeypatch.setattr(dashboard_page.selectors, "user_dashboard", gone)
    assert client.get(reverse("dashboard")).status_code == 503


@pytest.mark.parametrize("error", [ValueError("a bug"), OperationalError("no such table: user_dashboard"),
                                   OperationalError(1213, "Deadlock found when trying to get lock")])
def test_a_bug_stays_a_500_on_the_api_and_the_pages(alice, api_as, monkeypatch, error):
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(me, "user_json", broken)
    monkeypatch.setattr(dashboard_page.selectors, "user_dashboard", broken)
    api = api_as(alice)
    api.raise_request_exception = False
    response = api.get("/api/user/self")
    assert response.status_code == 500
    assert response.json() == {"success": False, "message": "Internal server error."}
    page = Client(raise_request_exception=False)
    page.force_login(alice)
    assert page.get(reverse("dashboard")).status_code == 500


def _raised(error):
    try:
        raise error
    except Exception as exc:
        return exc


def _wrapped(driver_error, django_error):
    """As Django's DatabaseErrorWrapper raises a driver's error: its args, the driver's as the cause."""
    exc = django_error(*driver_error.args)
    exc.__cause__ = driver_error
    return exc


def test_what_counts_as_unreachable():
    import sqlite3

    assert database_unreachable(_raised(OperationalError(2002, "Can't connect to local server through socket")))
    assert database_unreachable(_raised(OperationalError(2013, "Lost connection to server during query")))
    assert database_unreachable(_wrapped(RuntimeError("connection already closed"), InterfaceError))
    assert not database_unreachable(_wrapped(sqlite3.InterfaceError("Error binding parameter 1"), InterfaceError))
    assert not database_unreachable(_raised(OperationalError(1205, "Lock wait timeout exceeded")))
    assert not database_unreachable(_raised(OperationalError("database is locked")))
    assert not database_unreachable(_raised(RuntimeError("not a database error")))
    assert not database_unreachable(None)


async def test_through_the_asgi_application_too(relay_client, monkeypatch):
    """Django's async handler builds the error answer in a worker thread: the exception still tells."""
    def cursor(self, *args, **kwargs):
        raise OperationalError(2002, "Can't connect to server on 'db-secret-host' (115)")

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", cursor)
    options.snapshot.mark_stale("options")  # the first middleware to read the database meets the refusal
    assert_unavailable_envelope(await relay_client.get("/api/user/self"))
    page = await relay_client.get("/login/")
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/plain")
    assert "db-secret-host" not in page.text
