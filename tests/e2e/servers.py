"""Real processes for server-level tests: the gateway as `make serve` starts it, on a database of its own of the
kind the suite runs on (SQL_DSN: SQLite, MariaDB/MySQL or PostgreSQL), and a Redis of their own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx

from oneapi_site.config import Database, parse_sql_dsn

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60  # seconds a process may take to come up on a busy machine before the test gives up


def free_port() -> int:
    """A port nothing listens on: just bound and let go (for a server to take, or to be unreachable)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url(scheme: str, path: str = "") -> str:
    """An address on this machine where nothing answers, for tests of a service being unreachable."""
    return f"{scheme}://127.0.0.1:{free_port()}{path}"


class Gateway:
    def __init__(self, url: str, port: int, log: Path, proc: subprocess.Popen, env: dict):
        self.url, self.port, self.log, self.proc, self.env = url, port, log, proc, env

    @property
    def root_token(self) -> str:
        """Root's API key as the seed made it from INITIAL_ROOT_TOKEN (clients send `sk-` and this)."""
        return self.env.get("INITIAL_ROOT_TOKEN", "")

    @property
    def access_token(self) -> str:
        """Root's management access token, from INITIAL_ROOT_ACCESS_TOKEN."""
        return self.env.get("INITIAL_ROOT_ACCESS_TOKEN", "")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def manage(env: dict, *args: str) -> str:
    """`manage.py args` against the database `env` names, as another instance of the gateway; its output."""
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True,
                          text=True)
    return done.stdout


def _mysql_scratch(db: Database, name: str):
    import MySQLdb

    conn = MySQLdb.connect(host=db.host, port=int(db.port or 3306), user=db.user, passwd=db.password)
    conn.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    auth = quote(db.user, safe="") + (f":{quote(db.password, safe='')}" if db.password else "")

    def drop():
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()

    return f"mysql://{auth}@{db.host}:{db.port or 3306}/{name}", drop


def _postgres_scratch(db: Database, name: str):
    import psycopg

    facts = {"host": db.host or None, "port": db.port or None, "user": db.user or None,
             "password": db.password or None}
    conn = psycopg.connect(dbname="postgres", autocommit=True, **facts)
    conn.execute(f"CREATE DATABASE {name}")
    auth = quote(db.user, safe="") + (f":{quote(db.password, safe='')}" if db.password else "")
    host = f"{db.host}:{db.port}" if db.port else db.host

    def drop():
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()

    return f"postgres://{auth}@{host}/{name}", drop


@contextmanager
def prepare_database(tmp: Path, **env: str) -> Iterator[dict]:
    """A migrated and seeded database for one gateway, of the kind the suite runs on: SQLite in `tmp` when
    SQL_DSN is empty, else a scratch database beside the one SQL_DSN names (dropped afterwards). Gives the
    environment that names it, with `env` on top."""
    dsn = os.environ.get("SQL_DSN", "").strip()
    db = parse_sql_dsn(dsn, sqlite_path=str(tmp / "gateway.db"))
    name = f"oneapi_e2e_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    if db.engine == "mysql":
        database, drop = _mysql_scratch(db, name)
    elif db.engine == "postgresql":
        database, drop = _postgres_scratch(db, name)
    else:
        database, drop = "", (lambda: None)
    env = {**os.environ, "SQL_DSN": database, "SQLITE_PATH": str(tmp / "gateway.db"),
           "SESSION_SECRET": "e2e-" + uuid.uuid4().hex, "DJANGO_SETTINGS_MODULE": "oneapi_site.settings",
           "PYTHONUNBUFFERED": "1", **env}
    try:
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "seed")
        yield env
    finally:
        drop()


@contextmanager
def running_gateway(tmp: Path, env: dict, *, wait: bool = True, name: str = "gateway"):
    """`python -m oneapi_site.serve` on a free port; `wait` until /api/status answers."""
    port = free_port()
    env = {**env, "PORT": str(port), "HOST": "127.0.0.1"}
    log_path = tmp / f"{name}-{port}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "oneapi_site.serve"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    gateway = Gateway(f"http://127.0.0.1:{port}", port, log_path, proc, env)
    try:
        if wait:
            wait_until_up(gateway)
        yield gateway
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_until_up(gateway: Gateway) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if gateway.proc.poll() is not None:
            break
        try:
            httpx.get(f"{gateway.url}/api/status", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the gateway did not start:\n" + gateway.log_text())


class RedisServer:
    """A redis-server of the test's own, so stopping it touches nobody else's."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.tmp)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
