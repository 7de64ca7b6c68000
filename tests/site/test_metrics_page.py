"""GET /metrics answers a scraper with the bearer token or from an allowed address, refuses anyone else, and
is not there at all while neither is set."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from oneapi_site.config import ConfigError, parse_trusted_proxies
from tests.metrics_scrape import TOKEN, Scrape

pytestmark = pytest.mark.django_db(transaction=True)


async def test_metrics_are_not_there_without_a_token_or_an_address_list(relay_client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", ()
    response = await relay_client.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404


async def test_the_bearer_token_opens_metrics_and_nothing_else_does(relay_client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, ()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}):
        refused = await relay_client.get("/metrics", headers=headers)
        assert refused.status_code == 403, headers
        assert TOKEN not in refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")
    response = await relay_client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200
    assert Scrape(response.text).labels("oneapi_ledger_queue_depth") == [{}]


async def test_an_allowed_address_needs_no_token(relay_client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = parse_trusted_proxies("10.0.0.0/8")
    assert (await relay_client.get("/metrics")).status_code == 403  # the test client is 127.0.0.1
    settings.METRICS_ALLOWED_IPS = parse_trusted_proxies(
        "10.0.0.0/8, 127.0.0.1")
    response = await relay_client.get("/metrics")
    assert response.status_code == 200 and "oneapi_ledger_queue_depth" in response.text


def test_a_bad_address_list_stops_the_start_with_its_name():
    with pytest.raises(ConfigError, match="METRICS_ALLOWED_IPS: 'not-an-ip'"):
        parse_trusted_proxies("10.0.0.1, not-an-ip", name="METRICS_ALLOWED_IPS")


def test_several_processes_add_up_in_multiprocess_mode(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR each serving process writes its series there and a scrape sums them."""
    script = ("import django; django.setup(); from oneapi_site import metrics; "
              "metrics._child(metrics.REQUESTS, 'gpt-4o-mini', '1', 'default', 'openai', '2xx').inc(); "
              "metrics._child(metrics.UPSTREAM_LATENCY, 'gpt-4o-mini', '1').observe(0.2)")
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
                   "DJANGO_SETTINGS_MODULE": "oneapi_site.settings"}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], env=environment,
                       check=True, timeout=120)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    found = Scrape(generate_latest(registry).decode())
    assert found.value("oneapi_requests_total", model="gpt-4o-mini", status="2xx") == 2
    assert found.value("oneapi_upstream_latency_seconds_count", channel="1") == 2


async def test_a_scrape_while_the_database_is_down_still_answers_with_the_relays_series(relay_client, settings,
                                                                                       monkeypatch):
    from django.db import OperationalError

    from providers.models import Channel

    def down(*args, **kwargs):
        raise OperationalError("the database went away")

    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, ()
    monkeypatch.setattr(Channel.objects, "values", down)
    response = await relay_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    found = Scrape(response.text)
    assert found.labels("oneapi_ledger_queue_depth") == [{}] and found.labels("oneapi_channel_enabled") == []
