"""Logs as a CSV download, streamed: the console's log list and /api/log/export (/api/log/self/export).

Rows are read in keyset chunks (id below the last one seen, newest first) as plain tuples, and each chunk is
written and sent before the next is read, so memory stays bounded however many rows match. Under ASGI the
chunks are read in a worker thread from an async generator: Django would otherwise consume a synchronous
iterator into a list before sending anything.

Columns are the stored values as /api/log gives them (type as one-api's number, content as written), plus
the time as people read it. Cells that begin with = + - @ (or a tab or carriage return) are prefixed with '
so a spreadsheet shows them as text instead of running them as formulas (OWASP's CSV injection advice);
numbers are written as numbers.
The file starts with a UTF-8 byte order mark: without it Excel reads UTF-8 as the local code page and garbles
Chinese names and contents; other readers skip it (Python's utf-8-sig, pandas, LibreOffice).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from billing.models import Log

CHUNK = 2000
BOM = "\ufeff".encode()
COLUMNS = ("id", "created_at", "time", "type", "user_id", "username", "token_id", "token_name", "model_name",
           "channel_id", "quota", "prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens",
           "reasoning_tokens", "elapsed_time", "is_stream", "client_protocol", "request_id", "content")
_FIELDS = tuple(c for c in COLUMNS if c != "time")
_TEXT_COLUMNS = ("username", "token_name", "model_name", "client_protocol", "request_id", "content")
_UNSAFE_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """A value as a spreadsheet may read it: text that would start a formula is quoted."""
    if isinstance(value, str) and value.startswith(_UNSAFE_START):
        return "'" + value
    return value


def _chunk(logs: QuerySet[Log], below: int | None) -> list[tuple]:
    page = logs if below is None else logs.filter(id__lt=below)
    return list(page.order_by("-id").values_list(*_FIELDS)[:CHUNK])


def _encoded(rows: list[tuple]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    zone = timezone.get_current_timezone()  # once a chunk: looking it up cost a third of the export's time
    for row in rows:
        values = dict(zip(_FIELDS, row, strict=True))
        values["time"] = dt.datetime.fromtimestamp(values["created_at"], tz=zone).strftime("%Y-%m-%d %H:%M:%S")
        values["is_stream"] = int(values["is_stream"])
        for column in _TEXT_COLUMNS:
            values[column] = safe_cell(values[column])
        writer.writerow([values[c] for c in COLUMNS])
    return out.getvalue().encode()


def _header() -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow(COLUMNS)
    return BOM + out.getvalue().encode()


def csv_chunks(logs: QuerySet[Log]) -> Iterator[bytes]:
    yield _header()
    below = None
    while rows := _chunk(logs, below):
        below = rows[-1][0]
        yield _encoded(rows)


async def acsv_chunks(logs: QuerySet[Log]) -> AsyncIterator[bytes]:
    yield _header()
    below = None
    while rows := await sync_to_async(_chunk)(logs, below):
        below = rows[-1][0]
        yield await sync_to_async(_encoded, thread_sensitive=False)(rows)


def csv_response(request, logs: QuerySet[Log], *, name: str = "logs") -> StreamingHttpResponse:
    """The streamed download of `logs` (already filtered), in the form the server serving `request` streams."""
    raw = getattr(request, "_request", request)  # a DRF request wraps Django's
    body = acsv_chunks(logs) if isinstance(raw, ASGIRequest) else csv_chunks(logs)
    response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    response["Cache-Control"] = "no-store"
    return response
