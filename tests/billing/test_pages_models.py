"""The models page: the group's models at the price per 1K tokens the ratios imply."""

import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from billing import pricing
from billing.pages.models import model_price
from oneapi_site import options
from tests.factories import ChannelFactory

URL = "/models/"


@pytest.fixture
def vip(alice, set_option):
    """alice in group vip at ratio 2, which reaches three models; another group reaches a fourth."""
    User.objects.filter(pk=alice.pk).update(group="vip")
    set_option("GroupRatio", {"default": 1, "vip": 2})
    ChannelFactory(name="vip-openai", group="vip", models="gpt-4o,gpt-4o-mini,my-custom-model")
    ChannelFactory(name="default-only", group="default", models="claude-opus-4-20250514")
    return alice


def prices(response) -> dict[str, tuple[str, str]]:
    html = response.content.decode()
    rows = re.findall(r'<tr data-model="([^"]+)".*?class="num input-price"[^>]*>([^<]*)</td>\s*'
                      r'<td class="num output-price"[^>]*>([^<]*)</td>', html, re.DOTALL)
    return {model: (i, o) for model, i, o in rows}


def test_url_is_named_models():
    assert reverse("models") == URL


def test_anonymous_visitor_is_sent_to_login(db):
    response = Client().get(URL)
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_us_dollar_prices_include_the_group_ratio(vip, alice_client, set_option):
    set_option("DisplayInCurrencyEnabled", True)
    response = alice_client.get(URL)
    assert response.status_code == 200
    # one-api: ratio 1 = US$0.002 per 1K tokens; gpt-4o 1.25 x 2 x 0.002 = 0.005, output x4.
    assert prices(response) == {
        "gpt-4o": ("$0.005", "$0.02"),
        "gpt-4o-mini": ("$0.0003", "$0.0012"),
        "my-custom-model": ("$0.12", "$0.12"),
    }
    html = response.content.decode()
    assert re.search(r'data-testid="models-group">.*?>vip<', html, re.DOTALL)
    assert re.search(r'data-testid="models-group-ratio">.*?<div class="value">2</div>', html, re.DOTALL)
    assert "claude-opus" not in html          # another group's model


def test_quota_prices_are_ratio_times_group_times_1000(vip, alice_client, set_option):
    set_option("DisplayInCurrencyEnabled", False)
    assert prices(alice_client.get(URL)) == {
        "gpt-4o": ("2,500", "10,000"),
        "gpt-4o-mini": ("150", "600"),
        "my-custom-model": ("60,000", "60,000"),
    }


def test_a_model_without_a_ratio_is_marked_and_priced_as_the_relay_charges_it(vip, alice_client):
    html = alice_client.get(URL).content.decode()
    row = re.search(r'<tr data-model="my-custom-model" class="unpriced">.*?</tr>', html, re.DOTALL).group(0)
    assert "no price set" in row
    assert 'id="unpriced-note"' in html
    assert not re.search(r'<tr data-model="gpt-4o" class="unpriced">', html)
    # The relay's lookup for an unknown model is the fallback ratio: the page shows that price.
    assert pricing.model_ratio("my-custom-model", 1, options.get("ModelRatio")) == pricing.UNKNOWN_MODEL_RATIO


def test_operator_ratios_override_the_defaults(vip, alice_client, set_option):
    set_option("DisplayInCurrencyEnabled", True)
    set_option("ModelRatio", {"my-custom-model": 0.5, "gpt-4o": 2})
    set_option("CompletionRatio", {"my-custom-model": 3})
    got = prices(alice_client.get(URL))
    assert got["my-custom-model"] == ("$0.002", "$0.006")
    assert got["gpt-4o"] == ("$0.008", "$0.032")
    assert "no price set" not in alice_client.get(URL).content.decode()


def test_group_without_channels_says_so(alice_client):
    response = alice_client.get(URL)
    assert response.status_code == 200
    assert 'id="models-empty"' in response.content.decode()


def test_model_price_reuses_the_relay_lookups():
    p = model_price("gpt-3.5-turbo-1106", group_ratio=1.5, model_ratios={}, completion_ratios={})
    assert p.priced is False      # not in the built-in list under that exact name
    assert p.model_ratio == pricing.UNKNOWN_MODEL_RATIO
    assert p.completion_ratio == 2    # one-api's hard-coded rule for *-1106
    assert p.input_quota == Decimal(45000) and p.output_quota == Decimal(90000)

    p = model_price("gpt-4o-mini", group_ratio=1, model_ratios={"gpt-4o-mini": 0.075}, completion_ratios={})
    assert p.priced and p.input_quota == Decimal(75) and p.output_quota == Decimal(300)


def test_the_cached_input_price_follows_the_cache_ratio():
    p = model_price("gpt-4o-mini", group_ratio=2, model_ratios={"gpt-4o-mini": 0.075}, completion_ratios={})
    assert p.cached_quota == Decimal(75)  # 0.075 x 2 x 0.5 (OpenAI's default) x 1000
    p = model_price("gpt-4o-mini", group_ratio=2, model_ratios={"gpt-4o-mini": 0.075}, completion_ratios={},
                    cache_ratios={"gpt-4o-mini": 0.1})
    assert p.cached_quota == Decimal(15)
