"""A real gateway process (Daphne) on a free port, with its own database."""

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOT_TOKEN = "e2e" + uuid.uuid4().hex
ACCESS_TOKEN = "e2e-access-" + uuid.uuid4().hex


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_env(tmp: Path) -> tuple[dict, callable]:
    """SQLite in a temp dir, or a scratch database beside the one SQL_DSN names."""
    dsn = os.environ.get("SQL_DSN", "")
    if not dsn or dsn.startswith("postgres"):
        return {"SQL_DSN": "", "SQLITE_PATH": str(tmp / "gateway.db")}, lambda: None
    from oneapi_site.config import parse_sql_dsn

    import MySQLdb

    db = parse_sql_dsn(dsn, sqlite_path="")
    name = f"oneapi_e2e_{os.getpid()}"
    conn = MySQLdb.connect(host=db.host, port=int(db.port or 3306), user=db.user, passwd=db.password)
    conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4")

    def drop():
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()

    auth = f"{db.user}:{db.password}" if db.password else db.user
    return {"SQL_DSN": f"mysql://{auth}@{db.host}:{db.port or 3306}/{name}"}, drop


@pytest.fixture(scope="session")
def gateway(tmp_path_factory, upstream_server):
    tmp = tmp_path_factory.mktemp("gateway")
    db_env, drop = _database_env(tmp)
    port = _free_port()
    env = {**os.environ, **db_env, "PORT": str(port), "INITIAL_ROOT_TOKEN": ROOT_TOKEN,
           "INITIAL_ROOT_ACCESS_TOKEN": ACCESS_TOKEN, "SESSION_SECRET": "e2e-" + uuid.uuid4().hex,
           "DJANGO_SETTINGS_MODULE": "oneapi_site.settings", "PYTHONUNBUFFERED": "1"}
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([python, "manage.py", "seed"], cwd=ROOT, env=env, check=True, capture_output=True)
    log = open(tmp / "daphne.log", "wb")
    proc = subprocess.Popen([str(Path(python).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                             "oneapi_site.asgi:application"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/status", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("the gateway did not start:\n" + (tmp / "daphne.log").read_text())
    yield type("Gateway", (), {"url": base, "root_token": ROOT_TOKEN, "access_token": ACCESS_TOKEN,
                                "log": tmp / "daphne.log"})
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    drop()


CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
# Without the background-networking flags Chromium keeps dialling Google, which this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


# Module scope: Playwright's sync API keeps its own event loop running while it is open, which the
# asyncio tests that follow would trip over.
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make install-browser` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, gateway):
    """A fresh browser profile per call (own cookies), speaking the given language; clipboard allowed."""
    contexts = []

    def make(locale: str = "en-US"):
        context = browser.new_context(base_url=gateway.url, locale=locale,
                                      extra_http_headers={"Accept-Language": locale})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gateway.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
