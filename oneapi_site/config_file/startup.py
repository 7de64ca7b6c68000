"""CONFIG_FILE at start: instances started together apply the file one after another.

Each would otherwise see the same new channels missing and add them, leaving twins that no later import can
tell apart. The turn is a lock in the shared cache, so it spans instances with Redis (without Redis, instances
share no cache, and one instance is the usual setup). A holder that dies leaves it to expire.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from django.core.cache import cache

from oneapi_site.config_file.apply import ImportResult, config_import
from oneapi_site.lib.changes import INSTANCE

LOCK = "oneapi:config-file-lock"
LOCK_SECONDS = 300  # far more than a file of thousands of channels takes; after it, a dead holder's lock is gone
WAIT_STEP = 0.5


def config_apply_at_start(*, path: str | Path, say: Callable[[str], None] = print,
                          sleep: Callable[[float], None] = time.sleep) -> ImportResult:
    waited = False
    while not cache.add(LOCK, INSTANCE, timeout=LOCK_SECONDS):
        if not waited:
            say("another instance is applying CONFIG_FILE; waiting for it")
            waited = True
        sleep(WAIT_STEP)
    try:
        return config_import(path=path)
    finally:
        cache.delete(LOCK)
