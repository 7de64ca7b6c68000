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


def test_pre_consume_reserves_base_prompt_and_max_tokens():
    assert pricing.pre_consume_quota(base=500, prompt_tokens=100, max_tokens=400, model_ratio=0.5,
                                     group_ratio=2) == 1000
