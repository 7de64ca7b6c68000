"""Models: what the user's group can reach, at the prices the relay charges the user for them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.translation import gettext

from billing import money, pricing
from billing.price_tiers import Tier
from oneapi_site import options
from providers.selectors import group_models

# One token at ratio 1 costs one quota (pricing.py): a ratio of r is r x 1000 quota per 1K tokens.
PER_1K = 1000


@dataclass(frozen=True)
class TierPrice:
    """A tier of prices by prompt size (ModelTierPricing), per 1K tokens, ratios included."""

    tier: Tier
    input_quota: Decimal
    output_quota: Decimal

    @property
    def label(self) -> str:
        if self.tier.max_tokens is None:
            return gettext("Prompts from %(low)s tokens") % {"low": f"{self.tier.min_tokens:,}"}
        return gettext("Prompts of %(low)s to %(high)s tokens") % {
            "low": f"{self.tier.min_tokens:,}", "high": f"{self.tier.max_tokens - 1:,}"}

    @property
    def text(self) -> str:
        return gettext("%(prompts)s: input %(input)s, output %(output)s per 1K tokens") % {
            "prompts": self.label, "input": money.price(self.input_quota), "output": money.price(self.output_quota)}


@dataclass(frozen=True)
class ModelPrice:
    model: str
    priced: bool            # False: no ratio configured, the relay charges the fallback ratio
    model_ratio: float
    completion_ratio: float
    input_quota: Decimal    # quota per 1K prompt tokens, group ratio included
    output_quota: Decimal   # quota per 1K completion tokens
    cached_quota: Decimal   # quota per 1K prompt tokens read from the vendor's cache (CacheRatio)
    per_call_quota: Decimal | None = None  # ModelPrice: quota a call, whatever its tokens
    tiers: tuple[TierPrice, ...] = ()  # the prompt sizes past the first tier, when prices change with it
    parts: tuple[tuple[str, Decimal], ...] = ()  # (what, quota per 1K tokens): audio and image tokens

    @property
    def model_ratio_text(self) -> str:
        return money.number(self.model_ratio)

    @property
    def completion_ratio_text(self) -> str:
        return money.number(self.completion_ratio)

    @property
    def input_price(self) -> str:
        # Through QuotaPerUnit, as the balance is shown: at one-api's default 500000 this is
        # ratio x US$0.002 per 1K tokens.
        return money.price(self.input_quota)

    @property
    def output_price(self) -> str:
        return money.price(self.output_quota)

    @property
    def cached_price(self) -> str:
        return money.price(self.cached_quota)

    @property
    def per_call_price(self) -> str:
        return money.price(self.per_call_quota) if self.per_call_quota is not None else ""

    @property
    def other_prices(self) -> list[str]:
        """The prices beyond input, output and cache reads, one line each."""
        lines = [tier.text for tier in self.tiers]
        lines += [gettext("%(what)s %(price)s per 1K tokens") % {"what": what, "price": money.price(quota)}
                  for what, quota in self.parts]
        return lines


def model_price(model: str, *, group_ratio: float | Decimal, model_ratios: dict, completion_ratios: dict,
                cache_ratios: dict | None = None) -> ModelPrice:
    """The relay's own lookups (pricing.model_ratio / completion_ratio), so the page shows what is charged.

    A model without a ratio is charged the fallback UNKNOWN_MODEL_RATIO by the relay; it is
    listed at that price and marked, rather than hidden or shown as free. Per-channel-type
    ratios ("model(type)") are not shown: the page does not know which channel will serve.
    """
    ratio = pricing.model_ratio(model, 0, model_ratios)
    completion = pricing.completion_ratio(model, completion_ratios)
    return ModelPrice(model=model, priced=pricing.is_priced(model, model_ratios), model_ratio=ratio,
                      completion_ratio=completion,
                      input_quota=pricing.list_price(model_ratio=ratio, group_ratio=group_ratio),
                      output_quota=pricing.list_price(model_ratio=ratio, group_ratio=group_ratio,
                                                      completion_ratio=completion),
                      cached_quota=pricing.list_price(model_ratio=ratio, group_ratio=group_ratio,
                                                      completion_ratio=pricing.cache_ratio(model, cache_ratios or {})))


def quoted_price(model: str, *, group: str, user_ratio: float) -> ModelPrice:
    """A model's prices as pricing.quote gives them to this user (group and user ratios included): per call,
    or per token at the first tier's prices with the other tiers and the audio and image parts beside them."""
    quote = pricing.quote(pricing.Order(mode="chat", model=model, group=group, user_ratio=user_ratio),
                          channel_type=0)
    priced = pricing.is_priced(model, options.get("ModelRatio"), options.get("ModelPrice"),
                               options.get("ModelTierPricing").tiers)
    if quote.per_call is not None:
        return ModelPrice(model=model, priced=priced, model_ratio=0, completion_ratio=0, input_quota=Decimal(0),
                          output_quota=Decimal(0), cached_quota=Decimal(0),
                          per_call_quota=quote.per_call * options.quota_per_unit() * quote.multiplier)
    first = quote.at_prompt(0)
    rates, multiplier = first.rates, quote.multiplier

    def per_1k(rate: Decimal) -> Decimal:
        return rate * multiplier * PER_1K

    tiers = tuple(TierPrice(tier=q.tier, input_quota=per_1k(q.rates.input), output_quota=per_1k(q.rates.output))
                  for q in (quote.at_prompt(tier.min_tokens) for tier in quote.tiers[1:]))
    parts = []
    if first.image_ratio != 1:
        parts.append((gettext("Image input"), per_1k(rates.image_input)))
    if first.audio_ratio != 1 or first.audio_completion_ratio is not None:
        parts += [(gettext("Audio input"), per_1k(rates.audio_input)),
                  (gettext("Audio output"), per_1k(rates.audio_output))]
    return ModelPrice(model=model, priced=priced, model_ratio=first.model_ratio,
                      completion_ratio=first.completion_ratio, input_quota=per_1k(rates.input),
                      output_quota=per_1k(rates.output), cached_quota=per_1k(rates.cache_read), tiers=tiers,
                      parts=tuple(parts))


@login_required
def models_view(request):
    group = request.user.group
    ratio = pricing.group_ratio(group, options.get("GroupRatio"))
    user_ratio = pricing.user_ratio_of(request.user.price_ratio)
    prices = [quoted_price(m, group=group, user_ratio=user_ratio) for m in group_models(group=group)]
    return render(request, "billing/models.html", {
        "group": group,
        "group_ratio": money.number(ratio),
        "user_ratio": money.number(user_ratio) if user_ratio != 1 else None,
        "prices": prices,
        "unit_name": money.unit_name(),
        "fallback_ratio": pricing.UNKNOWN_MODEL_RATIO,
        "any_unpriced": any(not p.priced for p in prices),
        "any_other": any(p.per_call_quota is not None or p.other_prices for p in prices),
    })
