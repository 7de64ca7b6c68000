"""What a request costs: the one place that decides prices, from facts the relay passes.

Prices as one-api expresses them: quota = ceil((prompt + completion x CR) x MR x GR). A model ratio of 1
is US$0.002 per 1K prompt tokens, and QuotaPerUnit (500000) quota is US$1, so at ratio 1 one token costs
one quota. Images are priced per image and speech per character, both known before the call. Arithmetic
is decimal so a charge never drifts by one from float rounding (1000 x 0.001 must be 1, not 2).

The relay tells what was asked (an Order: mode, model, counts) and what came back (the vendor's usage,
or counters for the words when it gave none, the images made); `quote` and `charge` decide the rest:
which name is priced, the operator's ratios (oneapi_site/options.py), the reservation, the bill.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from billing.ratios import DEFAULT_MODEL_RATIO
from oneapi_site import options
from oneapi_site.lib.modes import TRANSCRIPT_MODES  # their transcript's tokens are what the audio is billed by

USD_PER_1M_AT_RATIO_1 = 2  # ratio = US$ per 1M prompt tokens / 2
# The rate behind the ratios of vendors that price in yuan (Moonshot, Zhipu, Qwen, CogView, Wanx), and behind
# balances a vendor gives in yuan only (DeepSeek): the gateway counts in US$.
CNY_PER_USD = 7

# DALL-E's price by size, as a multiple of its base size's (one-api's table); other image models are priced
# the same at every size.
DALLE_SIZES = {
    "dall-e-2": {"256x256": 1, "512x512": 1.125, "1024x1024": 1.25},
    "dall-e-3": {"1024x1024": 1, "1024x1792": 2, "1792x1024": 2},
}
DEFAULT_IMAGE_SIZE = "1024x1024"

UNKNOWN_MODEL_RATIO = 30  # one-api's fallback: expensive on purpose, so a typo is noticed
# The reservation guesses the prompt from the request body's size, so the tokenizer runs only when a vendor
# reports no usage (one-api counts the prompt before every call). A token is about 4 bytes of English; a
# CJK character is 3 bytes of UTF-8 and about one token; the JSON around the text adds bytes but no tokens.
# So a third of the size errs high for most prompts, and what is held beyond the bill is released at
# settlement.
BODY_BYTES_PER_PROMPT_TOKEN = 3


def model_ratio(model: str, channel_type: int, ratios: dict[str, float]) -> float:
    """one-api's lookup: "model(type)" first, then "model", then the fallback."""
    keyed = f"{model}({channel_type})"
    if keyed in ratios:
        return ratios[keyed]
    if model in ratios:
        return ratios[model]
    if model in DEFAULT_MODEL_RATIO:
        return DEFAULT_MODEL_RATIO[model]
    return UNKNOWN_MODEL_RATIO


def completion_ratio(model: str, ratios: dict[str, float]) -> float:
    if model in ratios:
        return ratios[model]
    return _completion_rule(model)


@lru_cache(maxsize=4096)
def _completion_rule(model: str) -> float:
    """one-api's hard-coded fallbacks for models missing from the option."""
    name = model.lower()
    if name.startswith("gpt-3.5"):
        if name == "gpt-3.5-turbo" or name.endswith("0125"):
            return 3
        if name.endswith("1106"):
            return 2
        return 4 / 3
    if name.startswith("gpt-4o") or name.startswith("chatgpt-4o"):
        return 4
    if name.startswith("gpt-4-turbo") or name.endswith("preview"):
        return 3
    if name.startswith("gpt-4"):
        return 2
    if name.startswith(("o1", "o3", "o4")):
        return 4
    if name.startswith("claude-3") or "claude" in name and "4" in name:
        return 5
    if name.startswith("claude"):
        return 3
    if name.startswith(("gemini", "mistral")):
        return 3
    if name.startswith("deepseek"):
        return 2
    if name.startswith("whisper"):
        return 0
    return 1


def group_ratio(group: str, ratios: dict[str, float]) -> float:
    return ratios.get(group, 1)


@lru_cache(maxsize=1024)
def _dec(value: float) -> Decimal:
    return Decimal(str(value))


def text_quota(*, prompt_tokens: int, completion_tokens: int, model_ratio: float,
               completion_ratio: float, group_ratio: float) -> int:
    """The charge for a text request, as one-api's postConsumeQuota computes it."""
    if prompt_tokens <= 0 and completion_tokens <= 0:
        return 0
    ratio = _dec(model_ratio) * _dec(group_ratio)
    if ratio == 0:
        return 0
    exact = (Decimal(prompt_tokens) + Decimal(completion_tokens) * _dec(completion_ratio)) * ratio
    return max(1, math.ceil(exact))


def is_priced(model: str, ratios: dict[str, float]) -> bool:
    """Whether the operator's ratios or the defaults name `model`; any other is charged UNKNOWN_MODEL_RATIO."""
    return model in ratios or model in DEFAULT_MODEL_RATIO


def list_price(*, model_ratio: float, group_ratio: float, completion_ratio: float = 1.0,
               tokens: int = 1000) -> Decimal:
    """Quota for `tokens` tokens at these ratios, exact (text_quota's formula before its rounding up):
    what the models page lists per 1K prompt (completion_ratio 1) or completion tokens."""
    return _dec(model_ratio) * _dec(group_ratio) * _dec(completion_ratio) * tokens


def estimate_prompt_tokens(body_size: int) -> int:
    """The prompt tokens a request body of `body_size` bytes is reserved for (see BODY_BYTES_PER_PROMPT_TOKEN)."""
    return body_size // BODY_BYTES_PER_PROMPT_TOKEN


def pre_consume_quota(*, base: int, prompt_tokens: int, max_tokens: int, model_ratio: float,
                      group_ratio: float) -> int:
    """What to reserve before the call: (PreConsumedQuota + prompt + max_tokens) x MR x GR."""
    exact = Decimal(base + prompt_tokens + max(0, max_tokens)) * _dec(model_ratio) * _dec(group_ratio)
    return math.ceil(exact)


# --- Quoting a request and charging its usage ----------------------------------

@dataclass(frozen=True, slots=True)
class Order:
    """What the client asked for, as far as its price depends on it."""

    mode: str
    model: str  # the name the client asked for
    group: str  # the user's group
    body_size: int = 0  # the request body's bytes: the reservation's prompt is estimated from them
    max_tokens: int = 0
    images: int = 1  # images asked for (`n`)
    image_size: str = DEFAULT_IMAGE_SIZE
    image_quality: str | None = None
    characters: int = 0  # the text to speak


@dataclass(frozen=True, slots=True)
class Quote:
    """An order's prices on one channel: the ratios, the price when it is known before the call, and
    what to hold of the user's quota until the bill is settled."""

    model_ratio: float
    completion_ratio: float
    group_ratio: float
    reserve: int
    fixed: int | None = None  # images and speech: the whole price, known up front
    images: int = 1

    @property
    def explanation(self) -> str:
        """How the bill was reached, for its log line."""
        return (f"model ratio {self.model_ratio:g} x group ratio {self.group_ratio:g} "
                f"x completion ratio {self.completion_ratio:g}")


def priced_model(model: str, mapped: str | None, channel_type: int, ratios: dict[str, float]) -> str:
    """The name a request is priced by: the one the client asked for, unless only the channel's mapped
    name has a price."""
    if mapped and model not in ratios and f"{model}({channel_type})" not in ratios \
            and model not in DEFAULT_MODEL_RATIO:
        return mapped
    return model


def quote(order: Order, *, channel_type: int, mapped_model: str | None = None) -> Quote:
    """The order's prices on a channel of `channel_type` that maps the model to `mapped_model`."""
    model_ratios = options.get("ModelRatio")
    name = priced_model(order.model, mapped_model, channel_type, model_ratios)
    ratio = model_ratio(name, channel_type, model_ratios)
    group = group_ratio(order.group, options.get("GroupRatio"))
    fixed = _fixed_price(order, model_ratio=ratio, group_ratio=group)
    if fixed is not None:
        reserve = fixed
    else:
        reserve = pre_consume_quota(base=options.get("PreConsumedQuota"),
                                    prompt_tokens=estimate_prompt_tokens(order.body_size),
                                    max_tokens=order.max_tokens, model_ratio=ratio, group_ratio=group)
    return Quote(model_ratio=ratio, completion_ratio=completion_ratio(name, options.get("CompletionRatio")),
                 group_ratio=group, reserve=reserve, fixed=fixed, images=order.images)


def _fixed_price(order: Order, *, model_ratio: float, group_ratio: float) -> int | None:
    """The cost known before the call (images by size and quality, speech by characters), else None."""
    if order.mode == "images":
        size_ratio = DALLE_SIZES.get(order.model, {}).get(order.image_size, 1)
        if order.model == "dall-e-3" and order.image_quality == "hd":
            size_ratio *= 2 if order.image_size == DEFAULT_IMAGE_SIZE else 1.5
        # one-api's formula: ratio 1 is US$0.002 an image at the base size.
        per_image = int(_dec(model_ratio) * _dec(group_ratio) * _dec(size_ratio) * 1000)
        return per_image * order.images
    if order.mode == "speech":
        return math.ceil(order.characters * _dec(model_ratio) * _dec(group_ratio))
    return None


def billed_tokens(*, mode: str, reported: tuple[int, int] | None, count_prompt: Callable[[], int],
                  count_answer: Callable[[], int]) -> tuple[int, int]:
    """The (prompt, completion) tokens a request is billed for: the vendor's count; without one (or with
    nothing in it, as from a cut stream), the request and the answer counted locally, as one-api does.
    The counters are called only then: counting is the costly part."""
    if reported is not None and (reported[0] or reported[1]):
        return reported
    if mode in TRANSCRIPT_MODES:
        # The transcript's tokens, priced at the model ratio (one-api forgets the ratio here).
        return count_answer(), 0
    return count_prompt(), count_answer()


def charge(quote: Quote, *, prompt_tokens: int, completion_tokens: int, images_made: int | None = None) -> int:
    """The bill for what was delivered."""
    if quote.fixed is None:
        return text_quota(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          model_ratio=quote.model_ratio, completion_ratio=quote.completion_ratio,
                          group_ratio=quote.group_ratio)
    if images_made is not None:
        # Images are paid per image delivered: a vendor that made fewer than asked for (DashScope's partly
        # failed tasks) is paid for those it made, as it bills its own account.
        return quote.fixed // quote.images * min(images_made, quote.images)
    return quote.fixed
