"""Prompt-cache prices: reads at CacheRatio, writes at CreateCacheRatio (1-hour writes at 1.6 times it), new-api's
option names and current vendor defaults, exact in decimal."""

import json
import logging

import pytest

from billing import pricing
from billing.log_text import describe
from billing.services import option_set
from oneapi_site import options
from oneapi_site.lib.errors import ServiceError


def load_options(**values):
    options.snapshot.load({k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in values.items()})


@pytest.fixture(autouse=True)
def defaults():
    load_options()
    yield
    load_options()


def test_cache_reads_and_writes_are_priced_apart_from_plain_input():
    # 1000 uncached + 20000 read x 0.1 + 3000 written for 5 minutes x 1.25 + 2000 for an hour x 2, then
    # 500 out x 5: (1000 + 2000 + 3750 + 4000 + 2500) x 1.5 = 19875 exactly.
    assert pricing.text_quota(prompt_tokens=26000, completion_tokens=500, model_ratio=1.5, completion_ratio=5,
                              group_ratio=1, cached_tokens=20000, cache_write_tokens=5000, cache_write_1h_tokens=2000,
                              cache_ratio=0.1, create_cache_ratio=1.25) == 19875


def test_without_cache_tokens_the_bill_is_one_apis():
    plain = pricing.text_quota(prompt_tokens=100, completion_tokens=50, model_ratio=0.075, completion_ratio=4,
                               group_ratio=1.5)
    assert plain == 34
    assert pricing.text_quota(prompt_tokens=100, completion_tokens=50, model_ratio=0.075, completion_ratio=4,
                              group_ratio=1.5, cache_ratio=0.1, create_cache_ratio=1.25) == plain


def test_decimal_cache_prices_do_not_round_up_float_noise():
    # 0.1 x 3 is 0.30000000000000004 as floats: three cached tokens at ratio 1 are 0.3 quota, billed 1, and ten
    # at ratio 10 are exactly 10.
    assert pricing.text_quota(prompt_tokens=10, completion_tokens=0, model_ratio=10, completion_ratio=1,
                              group_ratio=1, cached_tokens=10, cache_ratio=0.1) == 10
    assert pricing.text_quota(prompt_tokens=3, completion_tokens=0, model_ratio=1, completion_ratio=1,
                              group_ratio=1, cached_tokens=3, cache_ratio=0.1) == 1


def test_cache_parts_larger_than_the_prompt_are_held_to_it():
    # A vendor that reports more cached tokens than its prompt pays no less than nothing for the rest.
    assert pricing.text_quota(prompt_tokens=100, completion_tokens=0, model_ratio=1, completion_ratio=1,
                              group_ratio=1, cached_tokens=500, cache_write_tokens=50, cache_ratio=0.1,
                              create_cache_ratio=1.25) == 10


@pytest.mark.parametrize("model, read, write", [
    ("claude-sonnet-4-5-20250929", 0.1, 1.25), ("claude-opus-4-6", 0.1, 1.25),
    ("claude-3-opus-20240229", 0.1, 1.25),  # not in the tables: Claude's rule
    ("gpt-4o", 0.5, 1.25), ("gpt-4o-2024-08-06", 0.5, 1.25), ("gpt-4.1-mini", 0.25, 1.25), ("o3", 0.25, 1.25),
    ("o3-mini", 0.5, 1.25), ("o3-mini-2025-01-31", 0.5, 1.25), ("o3-2025-04-16", 0.25, 1.25),
    ("gpt-5", 0.1, 1.25), ("gpt-5-2025-08-07", 0.1, 1.25),
    ("gemini-2.5-flash", 0.1, 1.25), ("gemini-2.0-flash", 0.25, 1.25), ("deepseek-chat", 0.1, 1.25),
    ("qwen-plus", 0.2, 1.25), ("some-model", 1, 1.25),
])
def test_default_cache_ratios_follow_the_vendors_prices(model, read, write):
    quote = pricing.quote(pricing.Order(mode="chat", model=model, group="default"), channel_type=1)
    assert (quote.cache_ratio, quote.create_cache_ratio) == (read, write)


def test_the_options_override_the_defaults_per_model():
    load_options(CacheRatio={"claude-sonnet-4-5-20250929": 0.2, "m": 0.5}, CreateCacheRatio={"m": 1.5})
    assert pricing.quote(pricing.Order(mode="chat", model="claude-sonnet-4-5-20250929", group="default"),
                         channel_type=14).cache_ratio == 0.2
    quote = pricing.quote(pricing.Order(mode="chat", model="m", group="default"), channel_type=1)
    assert (quote.cache_ratio, quote.create_cache_ratio) == (0.5, 1.5)
    # 1-hour writes follow the write price: 1000 x 1.5 x 1.6 = 2400.
    assert pricing.charge(quote, pricing.Tokens(prompt=1000, cache_write=1000, cache_write_1h=1000)) == \
        pricing.text_quota(prompt_tokens=2400, completion_tokens=0, model_ratio=quote.model_ratio,
                           completion_ratio=1, group_ratio=1)


def test_a_bad_stored_cache_ratio_falls_back_to_the_default_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="oneapi"):
        options.snapshot.load({"CacheRatio": '{"claude-opus-4-6": -1}', "CreateCacheRatio": "not json"})
    assert options.get("CacheRatio")["claude-opus-4-6"] == 0.1
    assert options.get("CreateCacheRatio")["claude-opus-4-6"] == 1.25
    assert "CacheRatio" in caplog.text and "CreateCacheRatio" in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize("value", ['{"m": -0.1}', '{"m": 10001}', '{"m": "0.1"}', "[0.1]"])
def test_cache_ratios_out_of_range_are_refused_when_saved(value):
    with pytest.raises(ServiceError):
        option_set(key="CacheRatio", value=value)


@pytest.mark.django_db
def test_cache_ratios_are_saved_like_the_other_ratios():
    option_set(key="CreateCacheRatio", value='{"claude-opus-4-6": 1.5}')
    assert options.get("CreateCacheRatio") == {"claude-opus-4-6": 1.5}


def test_the_log_line_explains_the_cache_prices_only_when_the_prompt_used_the_cache():
    quote = pricing.quote(pricing.Order(mode="chat", model="claude-opus-4-6", group="default"), channel_type=14)
    plain = quote.explain(pricing.Tokens(prompt=10, completion=5))
    assert plain == quote.explanation
    cached = quote.explain(pricing.Tokens(prompt=100, completion=5, cached=50, cache_write=30, cache_write_1h=10))
    assert cached == (f"{quote.explanation}, cache read ratio 0.1, cache write ratio 1.25, "
                      "1-hour cache write ratio 2")
    assert quote.explain(pricing.Tokens(prompt=100, cache_write=30, cache_write_1h=30)).endswith(
        "completion ratio 5, 1-hour cache write ratio 2")


def test_the_log_line_is_shown_in_the_readers_language():
    from django.utils import translation

    line = "model ratio 2.5 x group ratio 1 x completion ratio 5, cache read ratio 0.1, cache write ratio 1.25"
    with translation.override("zh-hans"):
        shown = describe(line)
    assert "cache" not in shown and "0.1" in shown and "1.25" in shown
    with translation.override("en"):
        assert describe(line) == line.replace(" x ", " × ")
