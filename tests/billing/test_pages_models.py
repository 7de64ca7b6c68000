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


def other_prices(response, model: str) -> list[str]:
    html = response.content.decode()
    row = re.search(rf'<tr data-model="{re.escape(model)}".*?</tr>', html, re.DOTALL).group(0)
    cell = re.search(r'<td class="other-prices"[^>]*>(.*?)</td>', row, re.DOTALL)
    return re.findall(r"<div[^>]*>([^<]*)</div>", cell.group(1)) if cell else []


def test_a_per_call_price_is_listed_instead_of_token_prices(vip, alice_client, set_option):
    set_option("DisplayInCurrencyEnabled", True)
    set_option("ModelPrice", {"my-custom-model": 0.04})
    response = alice_client.get(URL)
    assert prices(response)["my-custom-model"] == ("—", "—")
    assert other_prices(response, "my-custom-model") == ["$0.08 per call"]  # 0.04 x the group's 2
    assert "no price set" not in response.content.decode()  # a per-call price is a price


def test_tiers_by_prompt_size_are_listed_the_first_as_the_token_prices(vip, alice_client, set_option):
    set_option("DisplayInCurrencyEnabled", True)
    set_option("ModelTierPricing", {"my-custom-model": {"enabled": True, "tiers": [
        {"min_tokens": 0, "max_tokens": 200000, "input_price": 1.25, "completion_price": 10},
        {"min_tokens": 200000, "input_price": 2.5, "completion_price": 15}]}})
    response = alice_client.get(URL)
    # US$ per 1M x the group's 2 / 1000: 1.25 -> $0.0025 per 1K.
    assert prices(response)["my-custom-model"] == ("$0.0025", "$0.02")
    assert other_prices(response, "my-custom-model") == [
        "Prompts from 200,000 tokens: input $0.005, output $0.03 per 1K tokens"]


def test_audio_and_image_prices_are_listed_where_they_differ_from_text(vip, alice_client, set_option):
    set_option("DisplayInCurrencyEnabled", False)
    set_option("ModelRatio", {"gpt-4o": 1.25})
    set_option("AudioRatio", {"gpt-4o": 16})
    set_option("AudioCompletionRatio", {"gpt-4o": 2})
    set_option("ImageRatio", {"gpt-4o-mini": 2})
    response = alice_client.get(URL)
    # gpt-4o: 1.25 x 2 (group) x 1000 per 1K = 2,500; audio in x16, out x16 x2.
    assert other_prices(response, "gpt-4o") == ["Audio input 40,000 per 1K tokens",
                                                "Audio output 80,000 per 1K tokens"]
    assert other_prices(response, "gpt-4o-mini") == ["Image input 300 per 1K tokens"]  # 0.075 x 2 x 2 x 1000
    assert other_prices(response, "my-custom-model") == []


def test_the_users_price_ratio_is_shown_and_included(vip, alice_client, set_option):
    set_option("DisplayInCurrencyEnabled", True)
    User.objects.filter(pk=vip.pk).update(price_ratio=0.5)
    response = alice_client.get(URL)
    assert prices(response)["gpt-4o"] == ("$0.0025", "$0.01")  # 1.25 x 2 x 0.5 x 0.002
    assert re.search(r'data-testid="models-user-ratio">.*?<div class="value">0.5</div>', response.content.decode(),
                     re.DOTALL)
