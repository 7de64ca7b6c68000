import time
from datetime import datetime

from django.utils import timezone


def now_ts() -> int:
    """Unix seconds: one-api stores every timestamp this way, so imports stay lossless."""
    return int(time.time())


def ts_text(ts: int) -> str:
    """Unix seconds as people read them: date and time in the current time zone (TZ)."""
    return datetime.fromtimestamp(ts, tz=timezone.get_current_timezone()).strftime("%Y-%m-%d %H:%M:%S")
