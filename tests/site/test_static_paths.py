"""`/static/` never leaves the static folders: a climbing path is a 404, not a 500 with a logged traceback."""

from __future__ import annotations

import logging
from urllib.parse import unquote

import pytest
from asgiref.testing import ApplicationCommunicator
from django.conf import settings

pytestmark = pytest.mark.django_db(transaction=True)

CLIMBING = ["/static/../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2fetc/passwd",
            "/static/admin/../../../etc/passwd", "/static/admin/css/../../../oneapi_site/settings.py",
            "/static/%2E%2E/%2E%2E/%2E%2E/etc/hostname"]


async def get(path: str) -> tuple[int, bytes]:
    """A GET exactly as Daphne hands it over: the raw target, and the path percent-decoded."""
    from oneapi_site.asgi import application

    scope = {"type": "http", "http_version": "1.1", "method": "GET", "scheme": "http", "root_path": "",
             "path": unquote(path), "raw_path": path.encode(), "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 3000)}
    app = ApplicationCommunicator(application, scope)
    await app.send_input({"type": "http.request", "body": b""})
    start = await app.receive_output(10)
    body = b""
    while True:
        message = await app.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return start["status"], body


@pytest.mark.parametrize("path", CLIMBING)
async def test_a_path_climbing_out_of_static_is_a_404_and_logs_no_traceback(path, caplog):
    caplog.set_level(logging.WARNING)
    status, body = await get(path)
    assert status == 404
    assert b"root:" not in body and b"SESSION_SECRET" not in body
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert str(settings.BASE_DIR) not in caplog.text and "Suspicious" not in caplog.text


async def test_static_files_are_still_served():
    status, body = await get("/static/admin/css/base.css")
    assert status == 200 and body
