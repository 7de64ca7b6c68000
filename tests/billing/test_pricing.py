import pytest

from billing import pricing


def test_charge_follows_one_apis_formula():
    # ceil((100 + 50 x 4) x 0.075 x 1.5) = ceil(33.75) = 34
    assert pricing.text_quota(prompt_tokens=100, completion_tokens=50, model_ratio=0.075, completion_ratio=4,
                              group_ratio=1.5) == 34


def test_decimal_arithmetic_does_not_round_up_float_noise():
    # As floats 1000 x 0.001 is 1.0000000000000002, whose ceiling would be 2.
    assert pricing.text_quota(prompt_tokens=1000, completion_tokens=0, model_ratio=0.001, completion_ratio=1,
                              group_ratio=1) == 1


@pytest.mark.parametrize("prompt, completion, ratio, expected", [(0, 0, 1, 0), (1, 0, 0.0001, 1), (5, 5, 0, 0)])
def test_small_and_free_requests(prompt, completion, ratio, expected):
    assert pricing.text_quota(prompt_tokens=prompt, completion_tokens=completion, model_ratio=ratio,
                              completion_ratio=1, group_ratio=1) == expected


def test_model_ratio_lookup_prefers_the_channel_specific_key():
    ratios = {"m(3)": 2, "m": 1}
    assert pricing.model_ratio("m", 3, ratios) == 2
    assert pricing.model_ratio("m", 1, ratios) == 1
    assert pricing.model_ratio("unknown-model", 1, {}) == pricing.UNKNOWN_MODEL_RATIO


def test_completion_ratio_rules_for_models_missing_from_the_option():
    assert pricing.completion_ratio("gpt-3.5-turbo", {}) == 3
    assert pricing.completion_ratio("gpt-4-0613", {}) == 2
    assert pricing.completion_ratio("claude-3-opus", {}) == 5
    assert pricing.completion_ratio("some-model", {}) == 1
    assert pricing.completion_ratio("some-model", {"some-model": 2.5}) == 2.5


def test_the_reservations_prompt_is_a_third_of_the_body_size():
    assert [pricing.estimate_prompt_tokens(size) for size in (0, 2, 3, 302, 30_000)] == [0, 0, 1, 100, 10_000]


def test_pre_consume_reserves_base_prompt_and_max_tokens():
    assert pricing.pre_consume_quota(base=500, prompt_tokens=100, max_tokens=400, model_ratio=0.5,
                                     group_ratio=2) == 1000


# --- Quoting an order and charging it (billing/pricing.py decides; the relay passes facts) -------------

def load_options(**values):
    import json

    from oneapi_site import options

    options.snapshot.load({k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in values.items()})


def chat(model="gpt-4o-mini", **facts) -> pricing.Order:
    return pricing.Order(mode="chat", model=model, group="default", **facts)


def test_the_client_model_is_priced_unless_only_the_mapped_name_has_a_price():
    load_options(ModelRatio={"known": 2, "mapped": 3, "keyed(5)": 4}, CompletionRatio={"mapped": 7})
    assert pricing.quote(chat("known"), channel_type=1, mapped_model="mapped").model_ratio == 2
    assert pricing.quote(chat("keyed"), channel_type=5, mapped_model="mapped").model_ratio == 4
    unpriced = pricing.quote(chat("alias"), channel_type=1, mapped_model="mapped")
    assert (unpriced.model_ratio, unpriced.completion_ratio) == (3, 7)
    # A built-in price counts as a price: gpt-4o-mini keeps its own.
    assert pricing.quote(chat("gpt-4o-mini"), channel_type=1, mapped_model="mapped").model_ratio == 0.075
    assert pricing.quote(chat("alias"), channel_type=1).model_ratio == pricing.UNKNOWN_MODEL_RATIO


def test_a_text_order_reserves_the_base_its_prompt_and_max_tokens_at_its_ratios():
    load_options(ModelRatio={"m": 0.5}, GroupRatio={"vip": 2}, PreConsumedQuota=500)
    order = pricing.Order(mode="chat", model="m", group="vip", body_size=300, max_tokens=400)  # prompt ~100
    quote = pricing.quote(order, channel_type=1)
    assert (quote.reserve, quote.fixed, quote.group_ratio) == (1000, None, 2)
    assert quote.explanation == "model ratio 0.5 x group ratio 2 x completion ratio 1"


@pytest.mark.parametrize("model, size, quality, n, per_image", [
    ("dall-e-2", "256x256", None, 3, 8000),      # 8 x 1 x 1000
    ("dall-e-2", "1024x1024", None, 1, 10000),   # 8 x 1.25 x 1000
    ("dall-e-3", "1024x1024", "hd", 1, 40000),   # 20 x 1 x 2 x 1000
    ("dall-e-3", "1792x1024", "hd", 1, 60000),   # 20 x 2 x 1.5 x 1000
    ("wanx-v1", "1024x1024", None, 4, 11429),    # not DALL-E: every size at its ratio
])
def test_images_are_priced_per_image_by_size_and_quality_before_the_call(model, size, quality, n, per_image):
    order = pricing.Order(mode="images", model=model, group="default", images=n, image_size=size,
                          image_quality=quality)
    quote = pricing.quote(order, channel_type=1)
    assert quote.fixed == quote.reserve == per_image * n
    assert pricing.charge(quote, pricing.Tokens()) == per_image * n


def test_fewer_images_than_asked_for_are_paid_per_image_made():
    order = pricing.Order(mode="images", model="dall-e-2", group="default", images=4, image_size="256x256")
    quote = pricing.quote(order, channel_type=1)
    assert pricing.charge(quote, pricing.Tokens(), images_made=3) == 8000 * 3
    assert pricing.charge(quote, pricing.Tokens(), images_made=9) == 8000 * 4
    assert pricing.charge(quote, pricing.Tokens(), images_made=0) == 0


def test_speech_is_priced_per_character():
    order = pricing.Order(mode="speech", model="tts-1", group="default", characters=101)
    assert pricing.quote(order, channel_type=1).fixed == 758   # ceil(101 x 7.5)


def test_text_is_charged_by_the_quoted_ratios():
    load_options(ModelRatio={"m": 0.075}, GroupRatio={"vip": 1.5}, CompletionRatio={"m": 4})
    quote = pricing.quote(pricing.Order(mode="chat", model="m", group="vip"), channel_type=1)
    assert pricing.charge(quote, pricing.Tokens(prompt=100, completion=50)) == 34


def test_the_vendors_token_counts_are_billed_and_local_counts_only_without_them():
    def never() -> int:
        raise AssertionError("counted although the vendor gave its counts")

    told = pricing.Tokens(prompt=10, completion=5, cached=4)
    assert pricing.billed_tokens(mode="chat", reported=told, count_prompt=never, count_answer=never) == told
    counted = pricing.Tokens(prompt=7, completion=3)
    assert pricing.billed_tokens(mode="chat", reported=None, count_prompt=lambda: 7, count_answer=lambda: 3) == counted
    # A cut stream reports nothing in its usage: counted too, with no cache parts.
    assert pricing.billed_tokens(mode="chat", reported=pricing.Tokens(cached=3), count_prompt=lambda: 7,
                                 count_answer=lambda: 3) == counted
    # A transcript's tokens are what the audio is billed by, as prompt tokens.
    assert pricing.billed_tokens(mode="transcriptions", reported=None, count_prompt=never,
                                 count_answer=lambda: 12) == pricing.Tokens(prompt=12)
