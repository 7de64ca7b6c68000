"""The price forms operators can express beyond one-api's ratios, exact in decimal: new-api's ModelPrice (US$ per
call), ModelTierPricing (prices by prompt size), AudioRatio / AudioCompletionRatio / ImageRatio, and the user's
own ratio. Each expected quota is written out as the arithmetic that gives it."""

import json
import math
from decimal import Decimal as D

import pytest

from billing import price_tiers, pricing
from billing.log_text import describe
from billing.services import option_set
from oneapi_site import options
from oneapi_site.lib.errors import ServiceError

# new-api's own example (its tier_pricing_test.go), Gemini's long-context prices: US$ per 1M tokens.
GEMINI_TIERS = {"long-model": {"enabled": True, "basis": "prompt_tokens", "tiers": [
    {"min_tokens": 0, "max_tokens": 200000, "input_price": 2, "completion_price": 12, "cache_read_price": 0.2},
    {"min_tokens": 200000, "input_price": 4, "completion_price": 18, "cache_read_price": 0.4}]}}


def load_options(**values):
    options.snapshot.load({k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in values.items()})


@pytest.fixture(autouse=True)
def defaults():
    load_options()
    yield
    load_options()


def chat(model="m", *, group="default", user_ratio=1, body_size=0, max_tokens=0, mode="chat", **extra):
    return pricing.Order(mode=mode, model=model, group=group, user_ratio=user_ratio, body_size=body_size,
                         max_tokens=max_tokens, **extra)


# --- ModelPrice: US$ per call ---------------------------------------------------------------------------------

def test_a_per_call_price_is_price_times_quota_per_unit_times_group_and_user_ratios():
    load_options(ModelPrice={"m": 0.07}, GroupRatio={"vip": 1.1}, ModelRatio={"m": 5})
    quote = pricing.quote(chat(group="vip", user_ratio=0.9), channel_type=1)
    expected = math.ceil(D("0.07") * 500000 * D("1.1") * D("0.9"))  # 34650 exactly; floats give 34650.000000000004
    assert quote.reserve == expected
    # Whatever the tokens, the bill is the price: the ratios are not consulted.
    assert pricing.charge(quote, pricing.Tokens(prompt=100000, completion=5000)) == expected
    assert pricing.charge(quote, pricing.Tokens()) == expected


def test_a_per_call_price_follows_quota_per_unit():
    load_options(ModelPrice={"m": 0.04}, QuotaPerUnit="1000000")
    assert pricing.quote(chat(), channel_type=1).reserve == 40000  # 0.04 x 1,000,000


def test_an_images_request_pays_the_price_per_image_and_only_for_those_made():
    load_options(ModelPrice={"img": 0.04})
    quote = pricing.quote(pricing.Order(mode="images", model="img", group="default", images=3), channel_type=1)
    each = 0.04 * 500000  # 20000
    assert quote.reserve == 3 * each
    assert pricing.charge(quote, pricing.Tokens(), images_made=2) == 2 * each
    assert quote.explain(pricing.Tokens()) == "price per image $0.04 x group ratio 1"


def test_a_per_call_price_overrides_tiers_and_the_size_table():
    load_options(ModelPrice={"long-model": 1, "dall-e-3": 0.5}, ModelTierPricing=GEMINI_TIERS)
    quote = pricing.quote(chat("long-model"), channel_type=1)
    assert pricing.charge(quote, pricing.Tokens(prompt=300000, completion=10)) == 500000
    hd = pricing.Order(mode="images", model="dall-e-3", group="default", image_size="1792x1024",
                       image_quality="hd")
    assert pricing.quote(hd, channel_type=1).reserve == 0.5 * 500000


def test_a_free_call_costs_nothing():
    load_options(ModelPrice={"m": 0})
    quote = pricing.quote(chat(), channel_type=1)
    assert quote.reserve == 0 and pricing.charge(quote, pricing.Tokens(prompt=10, completion=10)) == 0


def test_a_mapped_model_is_priced_per_call_when_only_its_mapped_name_has_the_price():
    load_options(ModelPrice={"upstream-name": 0.01})
    quote = pricing.quote(chat("alias-without-price"), channel_type=1, mapped_model="upstream-name")
    assert quote.per_call == D("0.01") and quote.reserve == 0.01 * 500000


def test_the_per_call_log_line_names_the_price_and_the_users_ratio():
    load_options(ModelPrice={"m": 0.04}, GroupRatio={"vip": 1.5})
    quote = pricing.quote(chat(group="vip", user_ratio=0.8), channel_type=1)
    line = quote.explain(pricing.Tokens(prompt=10, completion=5))
    assert line == "price per call $0.04 x group ratio 1.5, user ratio 0.8"
    from django.utils import translation

    with translation.override("zh-hans"):
        shown = describe(line)
    assert "price" not in shown and "$0.04" in shown and "0.8" in shown


# --- ModelTierPricing: prices by the prompt's size --------------------------------------------------------------

def test_the_tier_is_chosen_by_the_prompt_new_apis_bounds():
    tiers = price_tiers.parse(json.dumps(GEMINI_TIERS)).tiers["long-model"]
    assert price_tiers.select(tiers, 199999) is tiers[0]
    assert price_tiers.select(tiers, 200000) is tiers[1]
    assert price_tiers.select(tiers, 0) is tiers[0]


def test_a_long_prompt_is_billed_at_the_higher_tier_for_every_token():
    load_options(ModelTierPricing=GEMINI_TIERS, GroupRatio={"vip": 1.5})
    quote = pricing.quote(chat("long-model", group="vip"), channel_type=1)
    tokens = pricing.Tokens(prompt=250000, completion=1000, cached=50000)
    # Tier 2: US$4 in, 18 out, 0.4 cache reads per 1M; ratio = US$ per 1M / 2.
    expected = (200000 * D(4) / 2 + 50000 * D("0.4") / 2 + 1000 * D(18) / 2) * D("1.5")
    assert pricing.charge(quote, tokens) == math.ceil(expected)
    short = pricing.Tokens(prompt=199999, completion=1000)
    assert pricing.charge(quote, short) == math.ceil((199999 * D(2) / 2 + 1000 * D(12) / 2) * D("1.5"))


def test_a_tier_is_exact_where_its_completion_ratio_is_not():
    # US$3 in and 10 out: the completion ratio 3.333... is no decimal; the bill, at US$10 per 1M, is exact.
    load_options(ModelTierPricing={"m": {"tiers": [{"min_tokens": 0, "input_price": 3, "completion_price": 10}]}})
    quote = pricing.quote(chat(), channel_type=1)
    assert pricing.charge(quote, pricing.Tokens(prompt=0, completion=3)) == 15  # 3 x 10 / 2
    assert pricing.charge(quote, pricing.Tokens(prompt=2, completion=0)) == 3  # 2 x 3 / 2


def test_a_tier_with_free_input_still_charges_its_output():
    load_options(ModelTierPricing={"m": {"tiers": [{"min_tokens": 0, "input_price": 0, "completion_price": 10}]}})
    quote = pricing.quote(chat(), channel_type=1)
    assert pricing.charge(quote, pricing.Tokens(prompt=1000, completion=20)) == 20 * 10 / 2
    load_options(ModelTierPricing={"m": {"tiers": [{"min_tokens": 0, "input_price": 0, "completion_price": 0}]}})
    assert pricing.charge(pricing.quote(chat(), channel_type=1), pricing.Tokens(prompt=1000, completion=20)) == 0


def test_the_reservation_uses_the_tier_of_the_estimated_prompt():
    load_options(ModelTierPricing=GEMINI_TIERS, PreConsumedQuota="500")
    body = 3 * 250000  # BODY_BYTES_PER_PROMPT_TOKEN bytes a token: an estimate of 250000 prompt tokens
    quote = pricing.quote(chat("long-model", body_size=body, max_tokens=100), channel_type=1)
    assert quote.reserve == (500 + 250000) * 4 / 2 + 100 * 18 / 2  # max_tokens at the tier's completion price
    small = pricing.quote(chat("long-model", body_size=300, max_tokens=100), channel_type=1)
    assert small.reserve == (500 + 100) * 2 / 2 + 100 * 12 / 2


def test_a_tier_without_a_cache_price_reads_the_cache_at_the_models_cache_ratio():
    table = {"long-model": {"tiers": [
        {"min_tokens": 0, "max_tokens": 200000, "input_price": 2, "completion_price": 12, "cache_read_price": 0.2},
        {"min_tokens": 200000, "input_price": 4, "completion_price": 18}]}}
    load_options(ModelTierPricing=table, CacheRatio={"long-model": 0.25})
    quote = pricing.quote(chat("long-model", body_size=300), channel_type=1)  # reserved at the first tier
    # 200000 plain + 100000 read at 0.25 of tier 2's input (not at tier 1's 0.1), at US$4 / 2.
    expected = (200000 + 100000 * D("0.25")) * 4 / 2
    assert pricing.charge(quote, pricing.Tokens(prompt=300000, cached=100000)) == expected


def test_the_log_line_names_the_tier_and_its_ratios():
    load_options(ModelTierPricing=GEMINI_TIERS)
    quote = pricing.quote(chat("long-model"), channel_type=1)
    assert quote.explain(pricing.Tokens(prompt=250000, completion=10)) == (
        "model ratio 2 x group ratio 1 x completion ratio 4.5, prompt tier from 200000 tokens")
    assert quote.explain(pricing.Tokens(prompt=1000, completion=10)) == (
        "model ratio 1 x group ratio 1 x completion ratio 6, prompt tier 0 to 199999 tokens")


def test_a_disabled_entry_leaves_the_model_to_its_ratios():
    table = {"long-model": {**GEMINI_TIERS["long-model"], "enabled": False}}
    load_options(ModelTierPricing=table, ModelRatio={"long-model": 3})
    quote = pricing.quote(chat("long-model"), channel_type=1)
    assert pricing.charge(quote, pricing.Tokens(prompt=300000)) == 300000 * 3


# --- Audio and image tokens -------------------------------------------------------------------------------------

def test_audio_tokens_cost_audio_ratio_in_and_audio_ratio_times_audio_completion_ratio_out():
    # gpt-4o-audio-preview's defaults: ratio 1.25 (US$2.50), completion 4, audio in 16 (US$40), audio out 2 x that.
    quote = pricing.quote(chat("gpt-4o-audio-preview"), channel_type=1)
    tokens = pricing.Tokens(prompt=1000, completion=500, audio_in=600, audio_out=300)
    expected = (400 + 600 * 16 + 200 * 4 + 300 * 16 * 2) * D("1.25")
    assert pricing.charge(quote, tokens) == expected
    assert quote.explain(tokens) == ("model ratio 1.25 x group ratio 1 x completion ratio 4, "
                                     "audio input ratio 16 (600 tokens), audio output ratio 32 (300 tokens)")


def test_audio_output_of_a_model_audio_completion_ratio_does_not_name_costs_audio_ratio_times_completion_ratio():
    load_options(ModelRatio={"m": 1}, CompletionRatio={"m": 4}, AudioRatio={"m": 8}, AudioCompletionRatio={})
    quote = pricing.quote(chat(), channel_type=1)
    assert pricing.charge(quote, pricing.Tokens(prompt=10, completion=100, audio_out=100)) == 10 + 100 * 8 * 4


def test_without_audio_prices_audio_tokens_cost_what_text_does():
    load_options(ModelRatio={"m": 2}, CompletionRatio={"m": 3}, AudioRatio={}, AudioCompletionRatio={})
    quote = pricing.quote(chat(), channel_type=1)
    with_audio = pricing.Tokens(prompt=100, completion=50, audio_in=60, audio_out=20)
    assert pricing.charge(quote, with_audio) == pricing.charge(quote, pricing.Tokens(prompt=100, completion=50)) \
        == (100 + 50 * 3) * 2


def test_image_input_tokens_cost_the_image_ratio():
    # gpt-image-1's defaults: ratio 2.5 (US$5 text in), image input 2 x that (US$10), output 8 x (US$40).
    quote = pricing.quote(chat("gpt-image-1"), channel_type=1)
    tokens = pricing.Tokens(prompt=1300, completion=4160, image_in=1000)
    assert pricing.charge(quote, tokens) == (300 + 1000 * 2 + 4160 * 8) * D("2.5")
    assert "image input ratio 2 (1000 tokens)" in quote.explain(tokens)


def test_parts_beyond_the_prompt_are_held_to_it():
    load_options(ModelRatio={"m": 1}, ImageRatio={"m": 2}, AudioRatio={"m": 10}, AudioCompletionRatio={"m": 1})
    quote = pricing.quote(chat(), channel_type=1)
    # 100 prompt tokens, 80 cached: 20 left, all image (2 each); audio finds none left. 5 out, audio 5 at 10.
    tokens = pricing.Tokens(prompt=100, completion=5, cached=80, image_in=500, audio_in=500, audio_out=50)
    cache = pricing.cache_ratio("m", {})
    assert pricing.charge(quote, tokens) == math.ceil(80 * D(str(cache)) + 20 * 2 + 5 * 10)


# --- The user's ratio -------------------------------------------------------------------------------------------

def test_the_users_ratio_multiplies_the_group_ratio_in_the_reservation_and_the_bill():
    load_options(ModelRatio={"m": 0.3}, CompletionRatio={"m": 3}, GroupRatio={"vip": 1.1},
                 PreConsumedQuota="500")
    quote = pricing.quote(chat(group="vip", user_ratio=0.7, body_size=3000, max_tokens=200), channel_type=1)
    assert quote.reserve == math.ceil(((500 + 1000) * D("0.3") + 200 * D("0.3") * 3) * D("1.1") * D("0.7"))
    tokens = pricing.Tokens(prompt=1000, completion=300)
    assert pricing.charge(quote, tokens) == math.ceil((1000 + 300 * 3) * D("0.3") * D("1.1") * D("0.7"))
    assert quote.explain(tokens).endswith("completion ratio 3, user ratio 0.7")


def test_the_users_ratio_applies_to_images_and_speech():
    load_options(ModelRatio={"dall-e-3": 20, "tts-1": 7.5})
    images = pricing.quote(pricing.Order(mode="images", model="dall-e-3", group="default", images=2,
                                         user_ratio=0.5), channel_type=1)
    assert images.reserve == 2 * int(20 * D("0.5") * 1000)
    speech = pricing.quote(pricing.Order(mode="speech", model="tts-1", group="default", characters=101,
                                         user_ratio=0.5), channel_type=1)
    assert speech.reserve == math.ceil(101 * D("7.5") * D("0.5"))


@pytest.mark.parametrize("stored", [float("nan"), float("inf"), -1.0])
def test_a_user_ratio_that_is_no_price_is_the_list_price(stored):
    load_options(ModelRatio={"m": 1})
    quote = pricing.quote(chat(user_ratio=stored), channel_type=1)
    assert quote.user_ratio == 1
    assert pricing.charge(quote, pricing.Tokens(prompt=100)) == 100


def test_charges_are_the_same_computed_at_once_on_many_threads():
    """Quotes are frozen and the arithmetic decimal in each thread's own context: nothing shared to race on."""
    from concurrent.futures import ThreadPoolExecutor

    load_options(ModelPrice={"per-call": 0.07}, ModelTierPricing=GEMINI_TIERS, GroupRatio={"vip": 1.1},
                 AudioRatio={"gpt-4o-audio-preview": 16})
    cases = [(pricing.quote(chat(model, group="vip", user_ratio=ratio), channel_type=1),
              pricing.Tokens(prompt=prompt, completion=prompt // 7, cached=prompt // 3, audio_in=prompt // 5,
                             audio_out=prompt // 70))
             for model in ("per-call", "long-model", "gpt-4o-audio-preview", "gpt-4o-mini")
             for ratio in (1, 0.9, 0.33) for prompt in (1, 999, 199999, 200000, 777777)]
    alone = [pricing.charge(q, t) for q, t in cases]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(20):
            assert list(pool.map(lambda case: pricing.charge(*case), cases)) == alone


# --- The options, checked when saved ------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("key, value, says", [
    ("ModelPrice", '{"m": -0.01}', 'ModelPrice "m" must be at least 0'),
    ("ModelPrice", '{"m": 0.04', "ModelPrice is not valid JSON"),
    ("ModelPrice", '{"m": "0.04"}', "ModelPrice must be a JSON object of names to non-negative numbers"),
    ("AudioRatio", '{"m": -2}', 'AudioRatio "m" must be at least 0'),
    ("AudioCompletionRatio", "[2]", "AudioCompletionRatio must be a JSON object"),
    ("ImageRatio", '{"m": 1e400}', "ImageRatio"),
    ("ModelTierPricing", "{", "ModelTierPricing is not valid JSON"),
    ("ModelTierPricing", '{"m": []}', 'ModelTierPricing "m" must be an object with "tiers"'),
    ("ModelTierPricing", '{"m": {"tiers": []}}', 'ModelTierPricing "m": give at least one tier'),
    ("ModelTierPricing", '{"m": {"basis": "completion_tokens", "tiers": [{"input_price": 1, "completion_price": 1}]}}',
     '"basis" must be "prompt_tokens"'),
    ("ModelTierPricing", '{"m": {"enabled": "yes", "tiers": []}}', '"enabled" must be true or false'),
    ("ModelTierPricing", '{"m": {"tiers": [{"min_tokens": 1, "input_price": 1, "completion_price": 1}]}}',
     "the first tier must start at 0 tokens"),
    ("ModelTierPricing", '{"m": {"tiers": [{"max_tokens": 100, "input_price": 1, "completion_price": 1}, '
     '{"min_tokens": 101, "input_price": 2, "completion_price": 2}]}}', "no gap, no overlap"),
    ("ModelTierPricing", '{"m": {"tiers": [{"max_tokens": 100, "input_price": 1, "completion_price": 1}]}}',
     "the last tier must leave out max_tokens"),
    ("ModelTierPricing", '{"m": {"tiers": [{"input_price": -1, "completion_price": 1}]}}',
     'ModelTierPricing "m" tier 1 input_price must be at least 0'),
    ("ModelTierPricing", '{"m": {"tiers": [{"input_price": 1}]}}', "tier 1: completion_price is required"),
    ("ModelTierPricing", '{"m": {"tiers": [{"max_tokens": 5, "min_tokens": 5, "input_price": 1, '
     '"completion_price": 1}]}}', "max_tokens must be more than min_tokens"),
])
def test_bad_prices_are_refused_when_saved_with_a_message_naming_them(key, value, says):
    with pytest.raises(ServiceError) as caught:
        option_set(key=key, value=value)
    assert says in str(caught.value) and caught.value.field == key
    assert not options.get(key) or key not in ("ModelPrice", "ModelTierPricing") or options.get(key) == {}


@pytest.mark.django_db
def test_good_prices_are_saved_and_priced_at_once():
    option_set(key="ModelPrice", value='{"m": 0.04}')
    option_set(key="ModelTierPricing", value=json.dumps({**GEMINI_TIERS, "later": {
        "enabled": True, "tiers": [{"min_tokens": 0, "input_price": 1, "completion_price": 2, "new_field": 1}]}}))
    assert options.get("ModelPrice") == {"m": 0.04}
    assert set(options.get("ModelTierPricing").tiers) == {"long-model", "later"}  # a key new-api may add is ignored
    assert pricing.quote(chat("m"), channel_type=1).reserve == 20000


def test_a_bad_stored_tier_table_falls_back_to_none_with_a_warning(caplog):
    options.snapshot.load({"ModelTierPricing": '{"m": {"tiers": [{"min_tokens": 7}]}}'})
    assert options.get("ModelTierPricing").tiers == {}
    assert "ModelTierPricing" in caplog.text


def test_the_new_options_are_operation_settings():
    assert {"ModelPrice", "ModelTierPricing", "AudioRatio", "AudioCompletionRatio", "ImageRatio"} <= set(
        options.GROUPS["operation"])
