"""Request ids: what ties a client's error message, the relay's log lines and the usage log together."""

from __future__ import annotations

import itertools
import os
import time

_ids = itertools.count()
_PROCESS = os.urandom(3).hex()


def new_request_id() -> str:
    """Sortable by time and unique across instances, without a syscall per request."""
    return f"{int(time.time() * 1000)}{_PROCESS}{next(_ids) & 0xFFFFFF:06x}"
