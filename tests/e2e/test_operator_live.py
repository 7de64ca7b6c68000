"""The operator's view against a real gateway (Daphne): usage made through the openai SDK shows on the console's
front page for an admin in Chromium, and /api/log/export streams it as CSV over a real connection."""

import csv
import io
import uuid

import httpx
import openai
import pytest

from tests.e2e.conftest import screenshot
from tests.e2e.servers import prepare_database, running_gateway
from tests.e2e.test_browser import PASSWORD, eventually, log_in

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A gateway of this module's own: on the session's, the other modules' usage fills the dashboard's top models
    and this module's model falls into "(other)"."""
    tmp = tmp_path_factory.mktemp("operator")
    tokens = {"INITIAL_ROOT_TOKEN": "ops" + uuid.uuid4().hex,
              "INITIAL_ROOT_ACCESS_TOKEN": "ops-access-" + uuid.uuid4().hex}
    with prepare_database(tmp, **tokens) as env, running_gateway(tmp, env) as server:
        yield server


@pytest.fixture(scope="module")
def usage(gateway, upstream_server):
    upstream_server.reset()
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": gateway.access_token}, timeout=10)
    channel = admin.post("/api/channel/", json={
        "type": 1, "name": "operator-live", "key": "sk-upstream-operator", "base_url": upstream_server.url,
        "models": MODEL, "group": "default"}).json()
    assert channel["success"], channel
    token = admin.post("/api/token/", json={"name": "operator-live", "unlimited_quota": True, "expired_time": -1})
    key = "sk-" + token.json()["data"]["key"]
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    for _ in range(3):
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    operator = "ops" + uuid.uuid4().hex[:8]
    assert admin.post("/api/user/", json={"username": operator, "password": PASSWORD}).json()["success"]
    promoted = admin.post("/api/user/manage", json={"username": operator, "action": "promote"}).json()
    assert promoted["success"], promoted
    yield admin, operator
    admin.delete(f"/api/channel/{channel['data'][0]['id']}")
    admin.close()


def test_an_admin_sees_the_days_usage_on_the_consoles_front_page(new_page, usage):
    _admin, operator = usage
    page = new_page()
    log_in(page, operator)

    def drawn():
        page.goto("/admin/")
        bars = page.locator("[data-testid=operator-chart] rect.bar")
        assert bars.count() >= 1
        return bars

    bars = eventually(drawn)
    assert MODEL in page.locator("[data-testid=operator-legend]").inner_text()
    assert int(page.locator("[data-testid=operator-days] tfoot th.num").first.inner_text()) >= 3
    assert "operator-live" in page.locator("[data-testid=operator-channels-slow]").inner_text()
    assert bars.first.is_visible()
    screenshot(page, "operator_dashboard")


def test_the_csv_export_streams_over_a_real_connection(usage):
    admin, _operator = usage
    with admin.stream("GET", "/api/log/export", params={"type": 2, "token_name": "operator-live"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert "content-length" not in response.headers   # streamed, not buffered and measured
        body = b"".join(response.iter_bytes())
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(rows) == 3 and {r["model_name"] for r in rows} == {MODEL}
