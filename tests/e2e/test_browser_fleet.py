"""In headless Chromium against a real gateway, as an admin: edit every channel of a tag at once, set a new
channel's form by its type (key format, config fields, known models), and apply the models an upstream lists."""

import uuid

import httpx
import pytest

from tests.e2e.conftest import screenshot
from tests.e2e.servers import prepare_database, running_gateway
from tests.providers.mock_model_lists import KEY, MockModelLists

PASSWORD = "Fleet-Pass-2026"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A gateway of this module's own: its channels (at addresses nothing answers, serving gpt-4o-mini and gpt-4o)
    would otherwise take requests of the modules that share the session's gateway after it."""
    tmp = tmp_path_factory.mktemp("fleet")
    tokens = {"INITIAL_ROOT_TOKEN": "fleet" + uuid.uuid4().hex,
              "INITIAL_ROOT_ACCESS_TOKEN": "fleet-access-" + uuid.uuid4().hex}
    with prepare_database(tmp, **tokens) as env, running_gateway(tmp, env) as server:
        yield server


@pytest.fixture(scope="module")
def models_server():
    server = MockModelLists().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(gateway):
    with httpx.Client(base_url=gateway.url, headers={"Authorization": gateway.access_token}, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def console_admin(api):
    username = "fl" + uuid.uuid4().hex[:6]
    assert api.post("/api/user/", json={"username": username, "password": PASSWORD, "role": 10}).json()["success"]
    return username


def make_channel(api, **fields) -> dict:
    created = api.post("/api/channel/", json={"type": 1, "key": "sk-fleet-e2e-0123456789", "models": "gpt-4o-mini",
                                              "base_url": "http://127.0.0.1:9", **fields}).json()
    assert created["success"], created
    return created["data"][0]


def channel(api, channel_id: int) -> dict:
    return api.get(f"/api/channel/{channel_id}").json()["data"]


@pytest.fixture
def page(new_page, console_admin):
    page = new_page()
    page.goto("/login/")
    page.fill("#id_username", console_admin)
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_load_state()
    return page


def test_select_all_of_a_tag_sets_the_priority_of_every_channel_of_it(page, api):
    tag = "t" + uuid.uuid4().hex[:6]
    tagged = [make_channel(api, name=f"{tag}-{n}", tag=tag) for n in range(3)]
    other = make_channel(api, name=f"{tag}-other")
    page.goto(f"/admin/providers/channel/?tag={tag}")
    assert page.locator("#result_list tbody tr").count() == 3
    page.check("#action-toggle")
    page.select_option("select[name=action]", "set_priority")
    page.click("button[name=index]")
    page.wait_for_load_state()
    page.fill("#id_value", "7")
    screenshot(page, "fleet_batch_priority")
    page.click("input[type=submit]")
    page.wait_for_load_state()
    assert "channels changed" in page.locator(".messagelist").inner_text()
    assert [channel(api, c["id"])["priority"] for c in tagged] == [7, 7, 7]
    assert channel(api, other["id"])["priority"] == 0


def test_the_channel_form_follows_its_type(page):
    page.goto("/admin/providers/channel/add/")
    page.select_option("#id_type", "33")
    assert page.locator("#channel-key-format").inner_text().startswith("AK|SK|REGION")
    assert page.locator(".field-config_region").is_visible()
    assert not page.locator(".field-config_api_version").is_visible()
    assert page.locator(".field-config_proxy").is_visible()  # every type takes a proxy
    page.select_option("#id_type", "14")
    assert page.locator(".field-config_api_version").is_visible()
    assert not page.locator(".field-config_region").is_visible()
    page.select_option("#id_model_picker", ["claude-sonnet-4-6"])
    page.click("#channel-models-fill")
    assert page.input_value("#id_models") == "claude-sonnet-4-6"
    screenshot(page, "fleet_channel_form_anthropic")


def test_fetch_models_shows_the_difference_and_applies_the_ticked(page, api, models_server):
    created = make_channel(api, name="listing", key=KEY, base_url=models_server.url, models="gpt-4o,retired")
    page.goto(f"/admin/providers/channel/{created['id']}/change/")
    page.click("#fetch-models")
    page.wait_for_load_state()
    screenshot(page, "fleet_fetch_models")
    assert page.locator("#models-added input[name=add]").count() == 2  # gpt-4o-mini and o3
    page.uncheck("#models-added input[value=o3]")
    page.check("#models-missing input[value=retired]")
    page.click("input[type=submit]")
    page.wait_for_load_state()
    assert channel(api, created["id"])["models"] == "gpt-4o,gpt-4o-mini"
