"""A visitor's whole journey in headless Chromium against a real gateway: sign up, top up, create and copy a token,
call the API with it through the openai SDK, and watch the logs and the dashboard move; root's forced password
change; the Chinese pages with no English left in them. Screenshots land in tests/e2e/screenshots/."""

import gettext
import itertools
import re
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.conftest import screenshot

PASSWORD = "Browser-Pass-2026"
CATALOGUE = Path(__file__).resolve().parents[2] / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.mo"
MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def admin(gateway, upstream_server):
    upstream_server.reset()
    client = httpx.Client(base_url=gateway.url, headers={"Authorization": gateway.access_token}, timeout=10)
    created = client.post("/api/channel/", json={
        "type": 1, "name": "browser-openai", "key": "sk-upstream-browser", "base_url": upstream_server.url,
        "models": MODEL, "group": "default"}).json()
    assert created["success"], created
    yield client
    client.close()


def redemption_code(admin, quota: int) -> str:
    created = admin.post("/api/redemption/", json={"name": "browser", "quota": quota, "count": 1}).json()
    assert created["success"], created
    return created["data"][0]


def sign_up(page, username: str) -> None:
    page.goto("/register/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("#register-submit")
    page.wait_for_url("**/dashboard/")


def log_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-submit")
    page.wait_for_load_state()


def eventually(check, seconds: float = 10):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_a_visitor_signs_up_tops_up_creates_a_token_and_uses_it(new_page, gateway, admin):
    page = new_page()
    page.goto("/")
    screenshot(page, "home")
    username = "u" + uuid.uuid4().hex[:8]
    sign_up(page, username)
    assert page.get_by_test_id("usage-chart-empty").is_visible()

    # Top up with a prepaid code: the balance on the page moves by its value.
    page.goto("/topup/")
    code = redemption_code(admin, 500_000)
    page.fill("#id_key", code)
    page.click("#redeem-submit")
    page.wait_for_load_state()
    assert "$1" in page.locator(".msg-success").inner_text()
    screenshot(page, "topup")
    page.fill("#id_key", code)  # the same code twice credits once
    page.click("#redeem-submit")
    assert page.locator("#redeem-errors").is_visible()

    # A token, copied with the button, works with the official SDK.
    page.goto("/token/")
    page.get_by_test_id("token-new").click()
    page.fill("#id_name", "browser")
    page.check("#id_unlimited_quota")
    screenshot(page, "token_form")
    page.get_by_test_id("token-submit").click()
    page.wait_for_url("**/token/**")
    row = page.locator("[data-testid^=token-row-]").first
    token_id = row.get_attribute("data-testid").rsplit("-", 1)[1]
    page.get_by_test_id(f"copy-key-{token_id}").click()
    key = page.evaluate("navigator.clipboard.readText()")
    assert key.startswith("sk-") and len(key) > 20
    screenshot(page, "tokens")

    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    answer = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content == "Hello from the mock upstream."

    # The consume log and the dashboard chart show the call.
    def logged():
        page.goto("/log/?type=2")
        rows = page.locator("[data-log-id]")
        assert rows.count() == 1
        assert MODEL in rows.first.inner_text() and "browser" in rows.first.inner_text()
    eventually(logged)
    screenshot(page, "logs")
    page.goto("/dashboard/")
    bars = page.locator(f"[data-testid=usage-chart] [data-model='{MODEL}']")
    assert bars.count() >= 1
    assert float(bars.first.get_attribute("data-quota")) > 0
    screenshot(page, "dashboard")
    page.goto("/models/")
    assert page.locator(f"#model-prices [data-model='{MODEL}']").count() == 1
    screenshot(page, "models")
    page.goto("/setting/")
    screenshot(page, "settings")


def test_root_must_replace_the_default_password_first(new_page):
    page = new_page()
    log_in(page, "root", "123456")
    assert "/password/change/" in page.url
    page.goto("/dashboard/")
    assert "/password/change/" in page.url
    page.goto("/admin/")
    assert "/password/change/" in page.url
    screenshot(page, "password_change")
    page.fill("#id_old_password", "123456")
    page.fill("#id_new_password1", "Root-Browser-2026")
    page.fill("#id_new_password2", "Root-Browser-2026")
    page.click("#password-change-submit")
    page.wait_for_load_state()
    page.goto("/admin/")
    assert "/admin/" in page.url and "/password/change/" not in page.url
    assert page.locator("#site-name").is_visible()


def english_msgids() -> set[str]:
    with CATALOGUE.open("rb") as fh:
        catalogue = gettext.GNUTranslations(fh)._catalog
    return {msgid for msgid, msgstr in catalogue.items()
            if isinstance(msgid, str) and msgid and msgid != msgstr and any(c.isalpha() for c in msgid)}


VISIBLE_TEXT = """() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, parent = node.parentElement;
    if (!parent || ['SCRIPT', 'STYLE', 'NOSCRIPT'].includes(parent.tagName)) continue;
    const text = node.textContent.trim();
    if (text) out.push(text);
  }
  for (const el of document.querySelectorAll('input[placeholder], textarea[placeholder]')) out.push(el.placeholder);
  return out;
}"""


# Words that stay English in the Chinese pages: names of things, not sentences of ours.
KEEP_ENGLISH = {"One API", "English"}


def english_left(texts: list[str], english: set[str]) -> list[str]:
    """Catalogue strings left in English, and any text of two or more English words (a string never marked)."""
    def sentence_left(text: str) -> bool:
        for name in KEEP_ENGLISH:
            text = text.replace(name, "")
        return re.search(r"[A-Za-z]{3,}\s+[A-Za-z]{3,}", text) is not None

    return sorted({text for text in texts if text in english or sentence_left(text)})


def test_the_chinese_pages_have_no_untranslated_strings(new_page, admin):
    english = english_msgids()
    page = new_page("zh-CN")
    username = "z" + uuid.uuid4().hex[:8]
    page.goto("/")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    sign_up(page, username)
    page.goto("/topup/")
    page.fill("#id_key", redemption_code(admin, 1000))
    page.click("#redeem-submit")
    page.goto("/token/new/")
    page.fill("#id_name", "zh")
    page.check("#id_unlimited_quota")
    page.get_by_test_id("token-submit").click()
    page.wait_for_load_state()
    untranslated = {}
    for path in ("/", "/dashboard/", "/token/", "/token/new/", "/topup/", "/log/", "/models/", "/setting/"):
        page.goto(path)
        left = english_left(page.evaluate(VISIBLE_TEXT), english)
        if left:
            untranslated[path] = left
        assert "令牌" in page.locator("header").inner_text()
        screenshot(page, "zh" + (path.strip("/").replace("/", "_") or "_home"))
    anonymous = new_page("zh-CN")
    for path in ("/login/", "/register/", "/reset/"):
        anonymous.goto(path)
        left = english_left(anonymous.evaluate(VISIBLE_TEXT), english)
        if left:
            untranslated[path] = left
        screenshot(anonymous, "zh" + path.strip("/").replace("/", "_"))
    assert untranslated == {}


def test_the_language_switcher_changes_the_language_and_keeps_the_page(new_page):
    page = new_page("en-US")
    page.goto("/login/")
    assert "Log in" in page.locator("header").inner_text()
    with page.expect_navigation():
        page.select_option("select[name=language]", "zh-hans")
    assert page.url.endswith("/login/")
    assert "登录" in page.locator("header").inner_text()
    page.goto("/register/")  # the choice sticks across pages, whatever the browser asks for
    assert page.locator("html").get_attribute("lang") == "zh-hans"


# --- Layout: nothing scrolls sideways on a phone or in the console ---------------------------------------

LONG_MODELS = ["meta-llama/Llama-3.3-70B-Instruct-Turbo-Free-with-a-long-name", "gemini-2.0-flash-thinking-exp-01-21",
               "claude-3-5-sonnet-20241022-extended-context"]
PHONE, TABLET, LAPTOP, DESKTOP = 390, 800, 1280, 1440

# The page's width against the window's, and how far any table sticks out of its own scrolling box.
OVERFLOW = """() => ({page: document.documentElement.scrollWidth, window: window.innerWidth,
  hidden: Math.max(0, ...[...document.querySelectorAll('.table-scroll')].map(b => b.scrollWidth - b.clientWidth))})"""
# The console's list scrolls inside its own box: columns hidden to the right of it are off screen all the same.
CONSOLE_OVERFLOW = """() => {
  const box = document.querySelector('#changelist .results');
  return {page: document.documentElement.scrollWidth, window: window.innerWidth,
          table: box.scrollWidth, box: box.clientWidth};
}"""
# Whether the element is on screen and not hidden under something else or clipped by a scrolling box.
REACHABLE = """(el) => {
  window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - window.innerHeight / 2);  // no sideways scroll
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.left < 0 || r.right > window.innerWidth) return false;
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return hit === el || el.contains(hit);
}"""


@pytest.fixture(scope="module")
def busy_user(admin, browser, gateway, upstream_server):
    """A user with tokens (one allowed long-named models), top-ups and usage of long-named models."""
    created = admin.post("/api/channel/", json={
        "type": 1, "name": "long-names", "key": "sk-upstream-long", "base_url": upstream_server.url,
        "models": ",".join(LONG_MODELS), "group": "default"}).json()
    assert created["success"], created
    username = "l" + uuid.uuid4().hex[:8]
    assert admin.post("/api/user/", json={"username": username, "password": PASSWORD}).json()["success"]
    context = browser.new_context(base_url=gateway.url, viewport={"width": LAPTOP, "height": 900})
    page = context.new_page()
    log_in(page, username)
    page.goto("/topup/")
    page.fill("#id_key", redemption_code(admin, 5_000_000))
    page.click("#redeem-submit")
    for name, models, expires in (("a token with a rather long name for a phone screen", LONG_MODELS, ""),
                                  ("second", [], "2030-01-31T23:59")):
        page.goto("/token/new/")
        page.fill("#id_name", name)
        page.check("#id_unlimited_quota")
        for model in models:
            page.check(f"input[name=models][value='{model}']")
        if expires:
            page.uncheck("#id_never_expires")
            page.fill("#id_expires_at", expires)
        page.get_by_test_id("token-submit").click()
        page.wait_for_load_state()
    key = page.locator("input.key-full").first.input_value()
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    for model in LONG_MODELS:
        sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
    context.close()
    yield username
    # The gateway serves the whole session: later tests list its models.
    assert admin.delete(f"/api/channel/{created['data'][0]['id']}").json()["success"]


def test_the_pages_fit_a_phone_and_a_laptop(new_page, busy_user):
    page = new_page()
    log_in(page, busy_user)
    overflowing = {}
    for width in (PHONE, TABLET, LAPTOP):
        page.set_viewport_size({"width": width, "height": 800})
        for path in ("/dashboard/", "/token/", "/log/", "/models/", "/topup/", "/setting/", "/token/new/", "/"):
            page.goto(path)
            size = page.evaluate(OVERFLOW)
            if size["page"] > size["window"] or size["hidden"]:
                overflowing[f"{path} at {width}px"] = size
            screenshot(page, f"layout_{width}{path.strip('/').replace('/', '_') or '_home'}")
    assert overflowing == {}


@pytest.mark.parametrize("width", [PHONE, TABLET, 1024, LAPTOP])
def test_the_token_actions_are_within_reach(new_page, busy_user, width):
    page = new_page()
    log_in(page, busy_user)
    page.set_viewport_size({"width": width, "height": 800})
    page.goto("/token/")
    rows = page.locator("[data-testid^=token-row-]")
    assert rows.count() >= 2
    for row in rows.all():
        token_id = row.get_attribute("data-testid").rsplit("-", 1)[1]
        for action in ("edit-token", "toggle-token", "delete-token", "copy-key"):
            button = page.get_by_test_id(f"{action}-{token_id}")
            assert button.is_visible() and button.evaluate(REACHABLE), f"{action} of token {token_id} at {width}px"


def test_the_usage_chart_is_legible_on_a_phone(new_page, busy_user):
    page = new_page()
    log_in(page, busy_user)
    page.set_viewport_size({"width": PHONE, "height": 800})
    page.goto("/dashboard/")
    svg = page.locator("svg[role=img]:visible")
    assert svg.count() == 1
    frame = svg.bounding_box()
    assert frame["x"] >= 0 and frame["x"] + frame["width"] <= PHONE

    def inside(box):
        return (frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"]
                and frame["y"] <= box["y"] and box["y"] + box["height"] <= frame["y"] + frame["height"])

    labels = svg.locator(".day")
    assert labels.count() == 7
    boxes = [label.bounding_box() for label in labels.all()]
    assert all(box["height"] >= 10 and inside(box) for box in boxes), (frame, boxes)  # ~12 px text, not 6 px
    assert all(a["x"] + a["width"] <= b["x"] for a, b in itertools.pairwise(boxes)), boxes   # side by side
    ticks = [tick.bounding_box() for tick in svg.locator(".tick").all()]
    assert ticks and all(box["height"] >= 10 and inside(box) for box in ticks), (frame, ticks)
    bars = [bar.bounding_box() for bar in svg.locator(".bar").all()]
    assert bars and all(inside(box) for box in bars), (frame, bars)


@pytest.fixture(scope="module")
def console_admin(admin):
    username = "op" + uuid.uuid4().hex[:6]
    created = admin.post("/api/user/", json={"username": username, "password": PASSWORD, "role": 10}).json()
    assert created["success"], created
    return username


def test_the_console_lists_fit_the_window(new_page, console_admin, busy_user):
    page = new_page()
    log_in(page, console_admin)
    overflowing = {}
    for width in (LAPTOP, DESKTOP):
        page.set_viewport_size({"width": width, "height": 900})
        for path in ("/admin/billing/log/", "/admin/providers/channel/", "/admin/accounts/user/",
                     "/admin/accounts/token/", "/admin/billing/redemptioncode/"):
            page.goto(path)
            size = page.evaluate(CONSOLE_OVERFLOW)
            if size["page"] > size["window"] or size["table"] > size["box"]:
                overflowing[f"{path} at {width}px"] = size
            screenshot(page, f"console_{width}_{path.strip('/').replace('/', '_')}")
    assert overflowing == {}


def test_no_page_asks_for_something_missing(new_page, console_admin):
    """The favicon included: browsers ask for /favicon.ico, and a 404 shows in every console."""
    page = new_page()
    missing = []
    page.on("response", lambda r: missing.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto("/login/")
    page.wait_for_load_state("networkidle")
    icon = page.evaluate("document.querySelector('link[rel=icon]').href")
    assert page.request.get(icon).status == 200 and page.request.get("/favicon.ico").status == 200
    log_in(page, console_admin)
    for path in ("/dashboard/", "/admin/"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    assert missing == []
