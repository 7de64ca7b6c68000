"""Export N logs (default 1 000 000) as CSV the way /api/log/export streams them; print time and peak memory.

    SQLITE_PATH=/tmp/export.db python bench/log_export.py [rows]

Creates the schema (migrate) and fills the logs table when it holds fewer rows than asked, then reads the
whole export through billing.log_export.csv_chunks, dropping each chunk as a server would after sending it.
It exports twice: once timed, once under tracemalloc for the peak of Python's allocations.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oneapi_site.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from billing import log_export  # noqa: E402
from billing.models import Log  # noqa: E402


def fill(rows: int) -> None:
    have = Log.objects.count()
    batch = 10_000
    for start in range(have, rows, batch):
        Log.objects.bulk_create([
            Log(user_id=i % 100 + 1, username=f"user{i % 100}", type=Log.Type.CONSUME, created_at=1_700_000_000 + i,
                token_name="key", model_name="gpt-4o-mini", quota=i % 5000, prompt_tokens=120, completion_tokens=40,
                channel_id=i % 7 + 1, request_id=f"req-{i}", elapsed_time=800, content="model price 0.075")
            for i in range(start, min(start + batch, rows))])


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    call_command("migrate", verbosity=0)
    fill(rows)
    started = time.perf_counter()
    size = lines = 0
    for part in log_export.csv_chunks(Log.objects.all()):
        size += len(part)
        lines += part.count(b"\n")
    elapsed = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"exported {lines - 1} rows, {size / 1e6:.1f} MB in {elapsed:.1f} s ({(lines - 1) / elapsed:,.0f} rows/s), "
          f"max RSS {rss:.0f} MB")
    # Again under tracemalloc, which slows Python several times over: memory only, not time.
    tracemalloc.start()
    for _part in log_export.csv_chunks(Log.objects.all()):
        pass
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak Python memory while exporting {peak / 1e6:.1f} MB (tracemalloc)")


if __name__ == "__main__":
    main()
