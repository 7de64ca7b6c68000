"""A real gateway process (Daphne, as `make serve` starts it) on a free port, with its own database
(tests/e2e/servers.py), and a browser to drive it."""

import uuid
from pathlib import Path

import pytest

from tests.e2e.servers import prepare_database, running_gateway

ROOT_TOKEN = "e2e" + uuid.uuid4().hex
ACCESS_TOKEN = "e2e-access-" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def gateway(tmp_path_factory, upstream_server):
    """One gateway for the session; `url`, `root_token`, `access_token`, `log`."""
    tmp = tmp_path_factory.mktemp("gateway")
    with prepare_database(tmp, INITIAL_ROOT_TOKEN=ROOT_TOKEN, INITIAL_ROOT_ACCESS_TOKEN=ACCESS_TOKEN) as env, \
            running_gateway(tmp, env) as server:
        yield server


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
