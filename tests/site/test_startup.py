"""Start-up: nothing a background thread or the first request imports may be imported by two threads at once.

Issue 8: the change listener's `import redis` raced the first request's import of the Redis cache backend;
one of the two failed ("cannot import name ... from partially initialized module"), which answered a
health check with a 500 or left the instance deaf to other instances' changes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys, threading
from django.conf import settings

seen = {}
real_start = threading.Thread.start

def start(self):
    seen[self.name] = sorted(sys.modules)
    real_start(self)

threading.Thread.start = start
import oneapi_site.asgi  # what Daphne imports

needed = {"redis"}
for conf in settings.CACHES.values():
    needed.add(conf["BACKEND"].rpartition(".")[0])
    if "CLIENT_CLASS" in conf.get("OPTIONS", {}):
        needed.add(conf["OPTIONS"]["CLIENT_CLASS"].rpartition(".")[0])
print(json.dumps({"needed": sorted(needed), "threads": {name: sorted(needed - set(modules))
                                                         for name, modules in seen.items()}}))
"""


def test_redis_and_the_cache_backends_are_imported_before_any_background_thread_starts(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "oneapi_site.settings", "SQL_DSN": "",
           "SQLITE_PATH": str(tmp_path / "db.sqlite3"), "SESSION_SECRET": "startup-test-secret",
           # Nothing listens there: the listener's connection fails, which is fine for this test.
           "REDIS_CONN_STRING": "redis://127.0.0.1:9/0", "CHANNEL_TEST_FREQUENCY": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "oneapi-changes" in report["threads"], report  # the listener is started at import with Redis
    missing = {name: modules for name, modules in report["threads"].items() if modules}
    assert missing == {}, f"threads started before these were imported: {missing}"
