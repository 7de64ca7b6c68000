"""What a request costs: the one place that decides prices, from facts the relay passes.

Prices as one-api expresses them: quota = ceil((prompt + completion x CR) x MR x GR), where the prompt's
tokens read from the vendor's cache cost CacheRatio and those written to it CreateCacheRatio of an input
token (new-api's options): ceil((uncached + read x CacheRatio + written x CreateCacheRatio + completion x CR)
x MR x GR). Reasoning tokens are completion tokens. A model ratio of 1 is US$0.002 per 1K prompt tokens,
and QuotaPerUnit (500000) quota is US$1, so at ratio 1 one token costs one quota. Images are priced per
image and speech per character, both known before the call. Arithmetic is decimal so a charge never drifts
by one from float rounding (1000 x 0.001 must be 1, not 2).

The relay tells what was asked (an Order: mode, model, counts) and what came back (the vendor's usage,
or counters for the words when it gave none, the images made); `quote` and `charge` decide the rest:
which name is priced, the operator's ratios (oneapi_site/options.py), the reservation, the bill.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache

from billing.ratios import DEFAULT_CACHE_RATIO, DEFAULT_CREATE_CACHE_RATIO, DEFAULT_MODEL_RATIO
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


# Anthropic prices a 1-hour cache write at twice the input price and a 5-minute one at 1.25 times, for every
# model: a 1-hour write is priced at CreateCacheRatio x 1.6, so one option (new-api's, whose tables carry over)
# prices both and an operator's discount on writes applies to both lifetimes alike.
ONE_HOUR_WRITE_FACTOR = Decimal("1.6")
# new-api's price for a write the option does not name: Anthropic's 5-minute write.
DEFAULT_CREATE_CACHE = 1.25


def cache_ratio(model: str, ratios: dict[str, float]) -> float:
    """The price of a prompt token read from the vendor's cache, as a fraction of an input token's: the
    CacheRatio option, else the default table, else the rule for the model's family."""
    if model in ratios:
        return ratios[model]
    if model in DEFAULT_CACHE_RATIO:
        return DEFAULT_CACHE_RATIO[model]
    return _cache_rule(model)


@lru_cache(maxsize=4096)
def _cache_rule(model: str) -> float:
    """Cache reads by family for models the tables miss (dated snapshots, new releases): the vendor's
    discount where it is the same across the family, else full price, as new-api charges."""
    name = model.lower()
    if "claude" in name or name.startswith(("gpt-5", "gemini-2.5", "gemini-3", "deepseek")):
        return 0.1
    if name.startswith(("gpt-4o", "chatgpt-4o", "o1", "o3-mini")):
        return 0.5
    if name.startswith(("gpt-4.1", "o3", "o4", "grok", "gemini")):
        return 0.25
    if name.startswith("qwen"):
        return 0.2
    return 1


def create_cache_ratio(model: str, ratios: dict[str, float]) -> float:
    """The price of a prompt token written to the vendor's cache (5-minute writes), as a fraction of an
    input token's: the CreateCacheRatio option, else the default table, else new-api's 1.25."""
    if model in ratios:
        return ratios[model]
    return DEFAULT_CREATE_CACHE_RATIO.get(model, DEFAULT_CREATE_CACHE)


def group_ratio(group: str, ratios: dict[str, float]) -> float:
    return ratios.get(group, 1)


@lru_cache(maxsize=1024)
def _dec(value: float) -> Decimal:
    return Decimal(str(value))


def text_quota(*, prompt_tokens: int, completion_tokens: int, model_ratio: float,
               completion_ratio: float, group_ratio: float, cached_tokens: int = 0, cache_write_tokens: int = 0,
               cache_write_1h_tokens: int = 0, cache_ratio: float = 1, create_cache_ratio: float = 1) -> int:
    """The charge for a text request: one-api's postConsumeQuota, with the prompt's cache reads and writes
    (parts of prompt_tokens, the 1-hour writes a part of the writes) at their own prices."""
    if prompt_tokens <= 0 and completion_tokens <= 0:
        return 0
    ratio = _dec(model_ratio) * _dec(group_ratio)
    if ratio == 0:
        return 0
    # A vendor's parts never add up to more than its prompt: what is not read or written is plain input.
    read = min(max(cached_tokens, 0), max(prompt_tokens, 0))
    written = min(max(cache_write_tokens, 0), max(prompt_tokens, 0) - read)
    hour = min(max(cache_write_1h_tokens, 0), written)
    prompt = Decimal(max(prompt_tokens, 0) - read - written)
    if read:
        prompt += read * _dec(cache_ratio)
    if written:
        write = _dec(create_cache_ratio)
        prompt += (written - hour) * write + hour * write * ONE_HOUR_WRITE_FACTOR
    exact = (prompt + Decimal(completion_tokens) * _dec(completion_ratio)) * ratio
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
    cache_ratio: float = 1
    create_cache_ratio: float = DEFAULT_CREATE_CACHE

    @property
    def explanation(self) -> str:
        """How the bill was reached, for its log line."""
        return (f"model ratio {self.model_ratio:g} x group ratio {self.group_ratio:g} "
                f"x completion ratio {self.completion_ratio:g}")

    def explain(self, tokens: Tokens) -> str:
        """The log line of a bill for `tokens`: the ratios, and the cache's prices when the prompt used it."""
        text = self.explanation
        if tokens.cached:
            text += f", cache read ratio {self.cache_ratio:g}"
        if tokens.cache_write > tokens.cache_write_1h:
            text += f", cache write ratio {self.create_cache_ratio:g}"
        if tokens.cache_write_1h:
            hour = _dec(self.create_cache_ratio) * ONE_HOUR_WRITE_FACTOR
            text += f", 1-hour cache write ratio {hour.normalize():f}"
        return text


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a text request is billed for: the prompt (every input token, cached or not) and completion
    (reasoning included), and the parts of the prompt read from and written to the vendor's cache."""

    prompt: int = 0
    completion: int = 0
    cached: int = 0  # read from the cache
    cache_write: int = 0  # written to it, for 5 minutes or an hour
    cache_write_1h: int = 0  # of cache_write: for an hour
    reasoning: int = 0  # of the completion: not priced apart, but logged

    @property
    def counted(self) -> bool:
        return bool(self.prompt or self.completion)


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
                 group_ratio=group, reserve=reserve, fixed=fixed, images=order.images,
                 cache_ratio=cache_ratio(name, options.get("CacheRatio")),
                 create_cache_ratio=create_cache_ratio(name, options.get("CreateCacheRatio")))


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


def billed_tokens(*, mode: str, reported: Tokens | None, count_prompt: Callable[[], int],
                  count_answer: Callable[[], int], reported_prompt: Tokens | None = None) -> Tokens:
    """The tokens a request is billed for: the vendor's count; without one (or with nothing in it, as from a
    cut stream), the request and the answer counted locally, as one-api does, with no cache parts (nothing
    says the vendor's cache was used). The counters are called only then: counting is the costly part.

    `reported_prompt` is the vendor's count of the prompt alone, when it said one before its answer broke
    off (Anthropic's message_start): the prompt and its cache parts are billed from it, the answer counted."""
    if reported is not None and reported.counted:
        return reported
    if reported_prompt is not None and reported_prompt.prompt and mode not in TRANSCRIPT_MODES:
        return replace(reported_prompt, completion=count_answer())
    if mode in TRANSCRIPT_MODES:
        # The transcript's tokens, priced at the model ratio (one-api forgets the ratio here).
        return Tokens(prompt=count_answer())
    return Tokens(prompt=count_prompt(), completion=count_answer())


def charge(quote: Quote, tokens: Tokens, *, images_made: int | None = None) -> int:
    """The bill for what was delivered."""
    if quote.fixed is None:
        return text_quota(prompt_tokens=tokens.prompt, completion_tokens=tokens.completion,
                          model_ratio=quote.model_ratio, completion_ratio=quote.completion_ratio,
                          group_ratio=quote.group_ratio, cached_tokens=tokens.cached,
                          cache_write_tokens=tokens.cache_write, cache_write_1h_tokens=tokens.cache_write_1h,
                          cache_ratio=quote.cache_ratio, create_cache_ratio=quote.create_cache_ratio)
    if images_made is not None:
        # Images are paid per image delivered: a vendor that made fewer than asked for (DashScope's partly
        # failed tasks) is paid for those it made, as it bills its own account.
        return quote.fixed // quote.images * min(images_made, quote.images)
    return quote.fixed
