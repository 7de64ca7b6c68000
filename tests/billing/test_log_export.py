"""Logs as streamed CSV: /api/log/export, /api/log/self/export and the console's list (billing/log_export.py)."""

import asyncio
import csv
import io
import tracemalloc
import warnings

import httpx
import pytest
from django.urls import reverse

from accounts.services.users import user_access_token_reset
from billing import log_export
from billing.models import Log
from tests.api_fixtures import envelope
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CONSUME, TOPUP = Log.Type.CONSUME, Log.Type.TOPUP


def rows_of(response) -> list[dict]:
    body = b"".join(response.streaming_content)
    assert body.startswith(log_export.BOM)
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


@pytest.fixture
def logs(alice):
    bob = UserFactory(username="bob")

    def log(user, type, created_at, **fields):
        return Log.objects.create(user_id=user.pk, username=user.username, type=type, created_at=created_at,
                                  **fields)

    return [
        log(alice, CONSUME, 1000, quota=100, model_name="gpt-4o", token_name="k1", channel_id=1),
        log(alice, CONSUME, 2000, quota=200, model_name="gpt-4o-mini", token_name="k1", channel_id=2,
            content="=HYPERLINK(\"http://evil\")"),
        log(alice, TOPUP, 3000, quota=5000, content="Redeemed a code"),
        log(bob, CONSUME, 4000, quota=400, model_name="gpt-4o", token_name="@bk", channel_id=1, content="中文"),
    ]


def test_admin_export_streams_every_matching_log_newest_first(root_api, logs):
    response = root_api.get("/api/log/export", {"type": CONSUME, "model_name": "gpt-4o"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="logs-')
    rows = rows_of(response)
    assert [(r["username"], r["quota"], r["model_name"]) for r in rows] == [("bob", "400", "gpt-4o"),
                                                                           ("alice", "100", "gpt-4o")]
    assert rows[0]["content"] == "中文" and rows[0]["time"] and rows[0]["created_at"] == "4000"


def test_cells_that_would_be_formulas_are_quoted(root_api, logs):
    rows = {r["id"]: r for r in rows_of(root_api.get("/api/log/export"))}
    assert rows[str(logs[1].pk)]["content"] == "'=HYPERLINK(\"http://evil\")"
    assert rows[str(logs[3].pk)]["token_name"] == "'@bk"
    assert [log_export.safe_cell(v) for v in ("+1", "-2", "\tx", "a=b", -5, "")] == ["'+1", "'-2", "'\tx", "a=b",
                                                                                   -5, ""]


def test_a_user_exports_only_their_own_logs_whatever_they_ask(api_as, alice, logs):
    response = api_as(alice).get("/api/log/self/export", {"username": "bob", "channel": 1})
    assert {r["username"] for r in rows_of(response)} == {"alice"}
    assert len(rows_of(api_as(alice).get("/api/log/self/export"))) == 3


def test_export_needs_an_admin_and_bad_filters_are_refused_as_the_list_refuses_them(api_as, alice, root_api, logs):
    assert api_as(alice).get("/api/log/export").status_code in (401, 403)
    body = envelope(root_api.get("/api/log/export", {"start_timestamp": "soon"}), success=False)
    assert body["field"] == "start_timestamp"


def test_the_export_is_read_in_chunks(root_api, logs, monkeypatch):
    monkeypatch.setattr(log_export, "CHUNK", 1)
    assert [r["id"] for r in rows_of(root_api.get("/api/log/export"))] == [str(x.pk) for x in reversed(logs)]


def test_console_export_honours_the_lists_filters(root_client, logs):
    page = root_client.get(reverse("admin:billing_log_changelist"), {"type__exact": CONSUME}).content.decode()
    assert 'data-testid="log-export"' in page
    response = root_client.get(reverse("admin:billing_log_export"), {"type__exact": CONSUME, "q": "bob"})
    assert response.status_code == 200
    assert [r["username"] for r in rows_of(response)] == ["bob"]
    assert root_client.get(reverse("admin:billing_log_export"), {"nonsense__gt": "x"}).status_code == 302


def test_console_export_needs_log_access(common_client, logs):
    assert common_client.get(reverse("admin:billing_log_export")).status_code == 302


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_export_streams_from_an_async_iterator(root, logs, asgi_app):
    """Through the real ASGI app: Django buffers a sync iterator into a list there (and warns), so it must be
    async."""
    token = user_access_token_reset(user=root)

    async def fetch():
        transport = httpx.ASGITransport(app=asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get("/api/log/export", headers={"Authorization": token})

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="StreamingHttpResponse must consume")
        response = asyncio.run(fetch())
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["id"] for r in rows] == [str(x.pk) for x in reversed(logs)]


def export_peak() -> tuple[int, int]:
    """(bytes exported, peak bytes allocated while exporting) of every log."""
    tracemalloc.start()
    try:
        size = 0
        for part in log_export.csv_chunks(Log.objects.all()):
            size += len(part)
        return size, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def add_logs(count: int) -> None:
    Log.objects.bulk_create([Log(user_id=1, username="u", type=CONSUME, created_at=i, model_name="gpt-4o",
                                 content="x" * 100, quota=i) for i in range(count)], batch_size=5000)


def test_memory_stays_bounded_however_many_rows(db, monkeypatch):
    """Four times the rows, about the same peak: one chunk is held at a time, never the file."""
    monkeypatch.setattr(log_export, "CHUNK", 500)
    add_logs(5000)
    small, small_peak = export_peak()
    add_logs(15_000)
    large, large_peak = export_peak()
    assert large > 3.9 * small
    assert large_peak < 1.5 * small_peak, f"peak {small_peak} for {small} bytes, {large_peak} for {large}"
    assert large_peak < large / 2
