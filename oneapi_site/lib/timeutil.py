import time


def now_ts() -> int:
    """Unix seconds: one-api stores every timestamp this way, so imports stay lossless."""
    return int(time.time())
