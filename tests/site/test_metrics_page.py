"""GET /metrics answers a scraper with the bearer token or from an allowed address, refuses anyone else, and
is not there at all while neither is set."""

import pytest

from oneapi_site.config import parse_trusted_proxies
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
    from oneapi_site.config import ConfigError, parse_trusted_proxies

    with pytest.raises(ConfigError, match="METRICS_ALLOWED_IPS: 'not-an-ip'"):
        parse_trusted_proxies("10.0.0.1, not-an-ip", name="METRICS_ALLOWED_IPS")
