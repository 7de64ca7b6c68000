"""What a request costs: the one place that decides prices, from facts the relay passes.

Prices as one-api expresses them: quota = ceil((prompt + completion x CR) x MR x GR x UR), UR being the user's
negotiated ratio (User.price_ratio), where parts of the prompt and completion cost their own multiples of an
input token (new-api's options): tokens read from the vendor's cache CacheRatio, those written to it
CreateCacheRatio, image input tokens ImageRatio, audio input tokens AudioRatio, audio output tokens AudioRatio x
AudioCompletionRatio (text output tokens CR):
ceil((plain + read x CacheRatio + written x CreateCacheRatio + image x ImageRatio + audio x AudioRatio
+ text out x CR + audio out x AudioRatio x AudioCompletionRatio) x MR x GR x UR). Reasoning tokens are completion
tokens. A model ratio of 1 is US$0.002 per 1K prompt tokens, and QuotaPerUnit (500000) quota is US$1, so at
ratio 1 one token costs one quota. Images are priced per image and speech per character, both known before the
call. Arithmetic is decimal so a charge never drifts by one from float rounding (1000 x 0.001 must be 1, not 2).

Two of new-api's forms replace the ratios: ModelPrice, a US$ price per call (per image for images),
ceil(price x QuotaPerUnit x GR x UR), reserved whole before the call; and ModelTierPricing (billing/price_tiers.py),
US$ input and output prices per 1M tokens by the size of the prompt, the tier chosen by the prompt the vendor
counted (the reservation by the estimate). A model in both is priced per call, as new-api does.

The relay tells what was asked (an Order: mode, model, counts) and what came back (the vendor's usage,
or counters for the words when it gave none, the images made); `quote` and `charge` decide the rest:
which name is priced, the operator's ratios (oneapi_site/options.py), the reservation, the bill.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache

from billing import money, price_tiers
from billing.price_tiers import Tier
from billing.ratios import (
    DEFAULT_AUDIO_COMPLETION_RATIO,
    DEFAULT_AUDIO_RATIO,
    DEFAULT_CACHE_RATIO,
    DEFAULT_CREATE_CACHE_RATIO,
    DEFAULT_IMAGE_RATIO,
    DEFAULT_MODEL_RATIO,
)
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


@dataclass(frozen=True, slots=True)
class Rates:
    """Quota per token of each kind, at ratio 1 of the group and the user: the prompt's plain input, its cache reads
    and 5-minute writes (1-hour writes are ONE_HOUR_WRITE_FACTOR times those), its image and audio parts; the
    completion's text and audio."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    image_input: Decimal
    audio_input: Decimal
    audio_output: Decimal

    @property
    def free(self) -> bool:
        return not any((self.input, self.output, self.cache_read, self.cache_write, self.image_input,
                        self.audio_input, self.audio_output))


def token_quota(tokens: Tokens, rates: Rates, *, multiplier: Decimal) -> int:
    """The charge for `tokens` at `rates` times `multiplier` (the group ratio x the user's ratio), rounded up, at
    least 1 for a priced model (one-api's postConsumeQuota); 0 for nothing, a free model or a free group."""
    prompt_tokens, completion_tokens = max(tokens.prompt, 0), max(tokens.completion, 0)
    if prompt_tokens <= 0 and completion_tokens <= 0:
        return 0
    if multiplier == 0 or rates.free:
        return 0
    # A vendor's parts never add up to more than its count: what is not read, written, image or audio is plain.
    read = min(max(tokens.cached, 0), prompt_tokens)
    written = min(max(tokens.cache_write, 0), prompt_tokens - read)
    hour = min(max(tokens.cache_write_1h, 0), written)
    image = min(max(tokens.image_in, 0), prompt_tokens - read - written)
    audio = min(max(tokens.audio_in, 0), prompt_tokens - read - written - image)
    audio_out = min(max(tokens.audio_out, 0), completion_tokens)
    exact = Decimal(prompt_tokens - read - written - image - audio) * rates.input
    if read:
        exact += read * rates.cache_read
    if written:
        exact += (written - hour) * rates.cache_write + hour * rates.cache_write * ONE_HOUR_WRITE_FACTOR
    if image:
        exact += image * rates.image_input
    if audio:
        exact += audio * rates.audio_input
    exact += (completion_tokens - audio_out) * rates.output
    if audio_out:
        exact += audio_out * rates.audio_output
    return max(1, math.ceil(exact * multiplier))


@lru_cache(maxsize=4096)  # a few models and groups: the same rates for request after request
def ratio_rates(*, model_ratio: float, completion_ratio: float, cache_ratio: float = 1, create_cache_ratio: float = 1,
                image_ratio: float = 1, audio_ratio: float = 1, audio_completion_ratio: float | None = None) -> Rates:
    """The rates the ratios give. Audio output tokens cost AudioRatio x AudioCompletionRatio input tokens (new-api's
    formula); a model AudioCompletionRatio does not name has its audio output at AudioRatio x its completion ratio,
    so a model with no audio prices is billed as before they existed (audio tokens as text)."""
    model = _dec(model_ratio)
    audio = model * _dec(audio_ratio)
    return Rates(input=model, output=model * _dec(completion_ratio), cache_read=model * _dec(cache_ratio),
                 cache_write=model * _dec(create_cache_ratio), image_input=model * _dec(image_ratio),
                 audio_input=audio, audio_output=audio * _dec(
                     completion_ratio if audio_completion_ratio is None else audio_completion_ratio))


def text_quota(*, prompt_tokens: int, completion_tokens: int, model_ratio: float,
               completion_ratio: float, group_ratio: float, cached_tokens: int = 0, cache_write_tokens: int = 0,
               cache_write_1h_tokens: int = 0, cache_ratio: float = 1, create_cache_ratio: float = 1,
               user_ratio: float = 1) -> int:
    """The charge for a text request: one-api's postConsumeQuota, with the prompt's cache reads and writes
    (parts of prompt_tokens, the 1-hour writes a part of the writes) at their own prices."""
    tokens = Tokens(prompt=prompt_tokens, completion=completion_tokens, cached=cached_tokens,
                    cache_write=cache_write_tokens, cache_write_1h=cache_write_1h_tokens)
    rates = ratio_rates(model_ratio=model_ratio, completion_ratio=completion_ratio, cache_ratio=cache_ratio,
                        create_cache_ratio=create_cache_ratio)
    return token_quota(tokens, rates, multiplier=_dec(group_ratio) * _dec(user_ratio))


def is_priced(model: str, ratios: dict[str, float], *others: Container[str]) -> bool:
    """Whether the operator's ratios or the defaults name `model`, or `others` do (per-call prices, tiers); any
    other is charged UNKNOWN_MODEL_RATIO."""
    return model in ratios or model in DEFAULT_MODEL_RATIO or any(model in names for names in others)


def list_price(*, model_ratio: float, group_ratio: float, completion_ratio: float = 1.0,
               tokens: int = 1000) -> Decimal:
    """Quota for `tokens` tokens at these ratios, exact (text_quota's formula before its rounding up):
    what the models page lists per 1K prompt (completion_ratio 1) or completion tokens."""
    return _dec(model_ratio) * _dec(group_ratio) * _dec(completion_ratio) * tokens


def estimate_prompt_tokens(body_size: int) -> int:
    """The prompt tokens a request body of `body_size` bytes is reserved for (see BODY_BYTES_PER_PROMPT_TOKEN)."""
    return body_size // BODY_BYTES_PER_PROMPT_TOKEN


def pre_consume_quota(*, base: int, prompt_tokens: int, max_tokens: int, model_ratio: float | Decimal,
                      group_ratio: float, user_ratio: float = 1, output_ratio: float | Decimal | None = None) -> int:
    """What to reserve before the call: ((PreConsumedQuota + prompt) x MR + max_tokens x the answer's ratio)
    x GR x the user's ratio. The answer's ratio (MR x CR, `output_ratio`) and not MR: held at the prompt's
    price, a request that uses its max_tokens would cost several times what it held, and requests in flight
    together would spend past the balance (one-api holds max_tokens at MR)."""
    output = model_ratio if output_ratio is None else output_ratio
    exact = (Decimal(base + prompt_tokens) * _dec(model_ratio) + Decimal(max(0, max_tokens)) * _dec(output)) \
        * _dec(group_ratio) * _dec(user_ratio)
    return math.ceil(exact)


def user_ratio_of(value: float) -> float:
    """A user's price ratio as charged: a stored value that is not a non-negative number (typed into the table)
    is the list price, never a refund or a crash."""
    return value if isinstance(value, int | float) and math.isfinite(value) and value >= 0 else 1


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
    user_ratio: float = 1  # the user's negotiated price (User.price_ratio): multiplies the group ratio


@dataclass(frozen=True, slots=True)
class Quote:
    """An order's prices on one channel: the ratios, the price when it is known before the call, and
    what to hold of the user's quota until the bill is settled."""

    model_ratio: float
    completion_ratio: float
    group_ratio: float
    reserve: int
    fixed: int | None = None  # images, speech and per-call prices: the whole price, known up front
    images: int = 1
    cache_ratio: float = 1
    create_cache_ratio: float = DEFAULT_CREATE_CACHE
    user_ratio: float = 1
    image_ratio: float = 1
    audio_ratio: float = 1
    audio_completion_ratio: float | None = None  # None: not named, audio output at the completion ratio
    per_call: Decimal | None = None  # ModelPrice: US$ a call (an image, for images)
    per: str = "call"  # what per_call is the price of: "call", or "image"
    tiers: tuple[Tier, ...] = ()  # ModelTierPricing: prices by the prompt's size
    tier: Tier | None = None  # the tier these prices are of (set by at_prompt only)

    def at_prompt(self, prompt_tokens: int) -> Quote:
        """These prices for a prompt of `prompt_tokens`: the tier that holds it, when the model has tiers."""
        tier = price_tiers.select(self.tiers, prompt_tokens)
        if tier is None:
            return self
        input_price = tier.input_price
        return replace(self, tier=tier, model_ratio=float(input_price / USD_PER_1M_AT_RATIO_1),
                       completion_ratio=float(tier.completion_price / input_price) if input_price else 0,
                       cache_ratio=float(tier.cache_read_price / input_price)
                       if tier.cache_read_price is not None and input_price else self.cache_ratio)

    @property
    def rates(self) -> Rates:
        """Quota per token of each kind. A tier's come from its US$ prices, exact (its completion ratio, a
        quotient, would not be)."""
        tier = self.tier
        if tier is None:
            return ratio_rates(model_ratio=self.model_ratio, completion_ratio=self.completion_ratio,
                               cache_ratio=self.cache_ratio, create_cache_ratio=self.create_cache_ratio,
                               image_ratio=self.image_ratio, audio_ratio=self.audio_ratio,
                               audio_completion_ratio=self.audio_completion_ratio)
        half = Decimal(USD_PER_1M_AT_RATIO_1)
        model, output = tier.input_price / half, tier.completion_price / half
        audio = model * _dec(self.audio_ratio)
        return Rates(input=model, output=output,
                     cache_read=model * _dec(self.cache_ratio) if tier.cache_read_price is None
                     else tier.cache_read_price / half,
                     cache_write=model * _dec(self.create_cache_ratio), image_input=model * _dec(self.image_ratio),
                     audio_input=audio, audio_output=output * _dec(self.audio_ratio)
                     if self.audio_completion_ratio is None else audio * _dec(self.audio_completion_ratio))

    @property
    def multiplier(self) -> Decimal:
        """What every price is multiplied by: the group's ratio and the user's."""
        return _dec(self.group_ratio) * _dec(self.user_ratio)

    @property
    def explanation(self) -> str:
        """How the bill was reached, for its log line."""
        if self.per_call is not None:
            return f"price per {self.per} {money.money(self.per_call)} x group ratio {self.group_ratio:g}"
        return (f"model ratio {self.model_ratio:g} x group ratio {self.group_ratio:g} "
                f"x completion ratio {self.completion_ratio:g}")

    def explain(self, tokens: Tokens) -> str:
        """The log line of a bill for `tokens`: the ratios, the user's, the tier, and the prices of the parts the
        prompt and answer had (cache, image, audio)."""
        quote = self if self.per_call is not None else self.at_prompt(tokens.prompt)
        text = quote.explanation
        if quote.user_ratio != 1:
            text += f", user ratio {quote.user_ratio:g}"
        if quote.per_call is not None:
            return text
        if quote.tier is not None:
            text += f", prompt tier {quote.tier.label}"
        if tokens.cached:
            text += f", cache read ratio {quote.cache_ratio:g}"
        if tokens.cache_write > tokens.cache_write_1h:
            text += f", cache write ratio {quote.create_cache_ratio:g}"
        if tokens.cache_write_1h:
            hour = _dec(quote.create_cache_ratio) * ONE_HOUR_WRITE_FACTOR
            text += f", 1-hour cache write ratio {hour.normalize():f}"
        if tokens.image_in:
            text += f", image input ratio {quote.image_ratio:g} ({tokens.image_in} tokens)"
        if tokens.audio_in:
            text += f", audio input ratio {quote.audio_ratio:g} ({tokens.audio_in} tokens)"
        if tokens.audio_out:
            # As a multiple of the input price, as the other ratios in the line are.
            out = quote.rates.audio_output / quote.rates.input if quote.rates.input else Decimal(0)
            text += f", audio output ratio {_number(out)} ({tokens.audio_out} tokens)"
        return text


def _number(value: Decimal) -> str:
    """A ratio for a log line: up to 6 decimals, no trailing zeros."""
    return f"{value.quantize(Decimal('0.000001')).normalize():f}"


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a text request is billed for: the prompt (every input token, cached or not) and completion
    (reasoning included), and the parts of the prompt read from and written to the vendor's cache, and the
    image and audio parts of each."""

    prompt: int = 0
    completion: int = 0
    cached: int = 0  # read from the cache
    cache_write: int = 0  # written to it, for 5 minutes or an hour
    cache_write_1h: int = 0  # of cache_write: for an hour
    reasoning: int = 0  # of the completion: not priced apart, but logged
    image_in: int = 0  # of the prompt: images (ImageRatio)
    audio_in: int = 0  # of the prompt: audio (AudioRatio)
    audio_out: int = 0  # of the completion: audio (AudioRatio x AudioCompletionRatio)

    @property
    def counted(self) -> bool:
        return bool(self.prompt or self.completion)


def priced_model(model: str, mapped: str | None, channel_type: int, ratios: dict[str, float],
                 *others: Container[str]) -> str:
    """The name a request is priced by: the one the client asked for, unless only the channel's mapped
    name has a price (a ratio, or in `others`: a per-call price, tiers)."""
    if mapped and model not in ratios and f"{model}({channel_type})" not in ratios \
            and model not in DEFAULT_MODEL_RATIO and not any(model in names for names in others):
        return mapped
    return model


def named_ratio(model: str, ratios: dict[str, float], defaults: dict[str, float], fallback: float) -> float:
    """A per-model ratio: the operator's option, else the default table, else `fallback`."""
    if model in ratios:
        return ratios[model]
    return defaults.get(model, fallback)


def quote(order: Order, *, channel_type: int, mapped_model: str | None = None) -> Quote:
    """The order's prices on a channel of `channel_type` that maps the model to `mapped_model`."""
    model_ratios = options.get("ModelRatio")
    per_call_prices = options.get("ModelPrice")
    tier_table = options.get("ModelTierPricing").tiers
    name = priced_model(order.model, mapped_model, channel_type, model_ratios, per_call_prices, tier_table)
    group = group_ratio(order.group, options.get("GroupRatio"))
    user = user_ratio_of(order.user_ratio)
    multiplier = _dec(group) * _dec(user)
    audio_completion = options.get("AudioCompletionRatio")
    ratio = model_ratio(name, channel_type, model_ratios)
    prices = {"model_ratio": ratio, "completion_ratio": completion_ratio(name, options.get("CompletionRatio")),
              "group_ratio": group, "user_ratio": user,
              "cache_ratio": cache_ratio(name, options.get("CacheRatio")),
              "create_cache_ratio": create_cache_ratio(name, options.get("CreateCacheRatio")),
              "image_ratio": named_ratio(name, options.get("ImageRatio"), DEFAULT_IMAGE_RATIO, 1),
              "audio_ratio": named_ratio(name, options.get("AudioRatio"), DEFAULT_AUDIO_RATIO, 1),
              "audio_completion_ratio": audio_completion[name] if name in audio_completion
              else DEFAULT_AUDIO_COMPLETION_RATIO.get(name)}
    if name in per_call_prices:
        # new-api's ModelPrice: the price overrides every ratio but the group's (and here the user's); an images
        # request pays it per image, and is paid per image delivered as the ratio-priced ones are.
        price = _dec(per_call_prices[name])
        each = math.ceil(price * options.quota_per_unit() * multiplier)
        count = order.images if order.mode == "images" else 1
        return Quote(**prices, per_call=price, per="image" if order.mode == "images" else "call",
                     fixed=each * count, reserve=each * count, images=count)
    fixed = _fixed_price(order, model_ratio=ratio, group_ratio=multiplier)
    if fixed is not None:
        return Quote(**prices, fixed=fixed, reserve=fixed, images=order.images)
    # Held at the tier the estimated prompt falls in; the bill is at the tier of the prompt the vendor counted.
    # The quote keeps the model's own prices: a tier's replace them only for the bill (Quote.at_prompt), so a
    # tier without a cache price falls back on the model's CacheRatio, not on another tier's.
    tiers = tier_table.get(name, ())
    estimate = estimate_prompt_tokens(order.body_size)
    tier = price_tiers.select(tiers, estimate)
    reserve = pre_consume_quota(base=options.get("PreConsumedQuota"), prompt_tokens=estimate,
                                max_tokens=order.max_tokens, group_ratio=group, user_ratio=user,
                                model_ratio=ratio if tier is None else tier.input_price / USD_PER_1M_AT_RATIO_1,
                                output_ratio=_dec(ratio) * _dec(prices["completion_ratio"]) if tier is None
                                else tier.completion_price / USD_PER_1M_AT_RATIO_1)
    return Quote(**prices, reserve=reserve, images=order.images, tiers=tiers)


def _fixed_price(order: Order, *, model_ratio: float, group_ratio: float | Decimal) -> int | None:
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
    """The bill for what was delivered: at the tier the billed prompt falls in, for a model with tiers."""
    if quote.fixed is None:
        priced = quote.at_prompt(tokens.prompt)
        return token_quota(tokens, priced.rates, multiplier=priced.multiplier)
    if images_made is not None:
        # Images are paid per image delivered: a vendor that made fewer than asked for (DashScope's partly
        # failed tasks) is paid for those it made, as it bills its own account.
        return quote.fixed // quote.images * min(images_made, quote.images)
    return quote.fixed
