"""Real processes for server-level tests: the gateway as `make serve` starts it, and a Redis of their own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60  # seconds a process may take to come up on a busy machine before the test gives up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    def __init__(self, url: str, port: int, log: Path, proc: subprocess.Popen, env: dict):
        self.url, self.port, self.log, self.proc, self.env = url, port, log, proc, env

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def prepare_database(tmp: Path, **env: str) -> dict:
    """A migrated and seeded SQLite database in `tmp`; returns the environment that names it."""
    env = {**os.environ, "SQL_DSN": "", "SQLITE_PATH": str(tmp / "gateway.db"),
           "SESSION_SECRET": "e2e-" + uuid.uuid4().hex, "DJANGO_SETTINGS_MODULE": "oneapi_site.settings",
           "PYTHONUNBUFFERED": "1", **env}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "manage.py", "seed"], cwd=ROOT, env=env, check=True, capture_output=True)
    return env


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
