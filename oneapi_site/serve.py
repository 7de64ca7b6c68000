"""Run the gateway under Daphne: `python -m oneapi_site.serve [extra daphne options]`.

Daphne builds its event loop when it is imported, so uvloop must become the
event-loop policy before that; measured on this machine it raises the relay's
throughput by about a third. `ACCESS_LOG=true` turns Daphne's per-request
access log on (it costs about a tenth of the relay's CPU).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from oneapi_site.config import ConfigError, env, read_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent


def daphne_args(extra: list[str]) -> list[str]:
    """Daphne's command line; `--application module:attr` swaps the app (the benchmark counts queries)."""
    application = "oneapi_site.asgi:application"
    if "--application" in extra:
        at = extra.index("--application")
        application = extra[at + 1]
        extra = extra[:at] + extra[at + 2:]
    try:
        port = env.int("PORT", 3000, minimum=1)
        access_log = env.bool("ACCESS_LOG", False)
        shutdown_grace_seconds()
    except ConfigError as exc:
        raise SystemExit(f"oneapi: {exc}") from None
    host = env.str("HOST", "0.0.0.0")
    # No --proxy-headers: Daphne would believe any client's X-Forwarded-For. oneapi_site.proxy reads it,
    # from TRUSTED_PROXIES only.
    return ["-b", host, "-p", str(port), "-v", "1" if access_log else "0", *extra, application]


def shutdown_grace_seconds() -> int:
    """SHUTDOWN_GRACE_SECONDS: how long a SIGTERM lets requests in flight run on (oneapi_site/graceful.py)."""
    return env.int("SHUTDOWN_GRACE_SECONDS", 30, minimum=0)


def apply_config_file() -> None:
    """CONFIG_FILE: applied once per start, before anything is served, so GitOps deployments start from the
    file; one that cannot be applied stops the start with the message naming the file, entry and field."""
    try:
        path = env.str("CONFIG_FILE", "").strip()
    except ConfigError as exc:
        raise SystemExit(f"oneapi: {exc}") from None
    if not path:
        return
    import django

    django.setup()
    from django.db import connections

    from oneapi_site.config_file import ConfigFileError
    from oneapi_site.config_file.startup import config_apply_at_start

    try:
        result = config_apply_at_start(path=path, say=lambda text: print(f"oneapi: {text}", flush=True))
    except ConfigFileError as exc:
        raise SystemExit(f"oneapi: CONFIG_FILE: {exc}") from None
    finally:
        connections.close_all()  # Daphne serves from other threads; this one's connection is done
    for line in result.lines:
        print(f"oneapi: CONFIG_FILE: {line}", flush=True)
    print(f"oneapi: CONFIG_FILE {path}: {result.summary()}", flush=True)


def main() -> None:
    try:
        import uvloop  # optional, and here so that a machine without it still serves
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oneapi_site.settings")
    # Before PORT, ACCESS_LOG and HOST are read: `.env` may set them (the settings read it again, to no effect).
    read_dotenv(BASE_DIR / ".env")
    apply_config_file()
    # Only now: importing Daphne installs Twisted's asyncio reactor on a loop of the policy just chosen.
    from daphne.cli import CommandLineInterface

    from oneapi_site.graceful import GracefulServer

    sys.argv = ["daphne", *daphne_args(sys.argv[1:])]  # exits on a bad setting, SHUTDOWN_GRACE_SECONDS included
    GracefulServer.grace_seconds = shutdown_grace_seconds()
    CommandLineInterface.server_class = GracefulServer
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
