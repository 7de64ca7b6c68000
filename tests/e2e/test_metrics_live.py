"""A real gateway (Daphne, as `make serve` starts it) with METRICS_TOKEN: the official openai SDK's calls show
in a Prometheus scrape of /metrics, and a stranger is refused."""

import uuid

import httpx
import openai
import pytest

from tests.e2e.servers import prepare_database, running_gateway
from tests.metrics_scrape import Scrape

METRICS_TOKEN = "scrape-" + uuid.uuid4().hex
ROOT_TOKEN = "e2emetrics" + uuid.uuid4().hex
ACCESS_TOKEN = "e2e-metrics-access-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream_server):
    tmp = tmp_path_factory.mktemp("metrics")
    with prepare_database(tmp, INITIAL_ROOT_TOKEN=ROOT_TOKEN, INITIAL_ROOT_ACCESS_TOKEN=ACCESS_TOKEN,
                          METRICS_TOKEN=METRICS_TOKEN) as env, running_gateway(tmp, env) as server:
        yield server


def _scrape(gateway) -> Scrape:
    response = httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                         timeout=10)
    assert response.status_code == 200, response.text
    return Scrape(response.text)


def test_sdk_calls_show_in_a_scrape_of_the_live_server(gateway, upstream_server):
    upstream_server.reset()
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": gateway.access_token}, timeout=10)
    created = admin.post("/api/channel/", json={
        "type": 1, "name": "mock-openai", "key": "sk-upstream-e2e", "base_url": upstream_server.url,
        "models": "gpt-4o-mini", "group": "default"}).json()
    assert created["success"], created
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-" + gateway.root_token, max_retries=0)
    assert httpx.get(gateway.url + "/metrics", timeout=10).status_code == 403

    before = _scrape(gateway)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    for _ in sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}],
                                         stream=True):
        pass
    after = _scrape(gateway)

    def moved(series, **labels):
        return after.value(series, **labels) - before.value(series, **labels)

    assert moved("oneapi_requests_total", model="gpt-4o-mini", status="2xx", protocol="openai") == 2
    assert moved("oneapi_tokens_total", model="gpt-4o-mini", kind="completion") == 14
    assert moved("oneapi_upstream_latency_seconds_count", model="gpt-4o-mini") == 2
    assert moved("oneapi_time_to_first_token_seconds_count", model="gpt-4o-mini") == 1
    assert moved("oneapi_gateway_overhead_seconds_count") == 2
    assert after.value("oneapi_channel_enabled", name="mock-openai") == 1
    assert METRICS_TOKEN not in gateway.log_text()
