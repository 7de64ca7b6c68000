"""Models: what the user's group can reach, at the price per 1K tokens its ratios imply."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from billing import money, pricing
from oneapi_site import options
from providers.selectors import group_models

# One token at ratio 1 costs one quota (pricing.py): a ratio of r is r x 1000 quota per 1K tokens.


@dataclass(frozen=True)
class ModelPrice:
    model: str
    priced: bool            # False: no ratio configured, the relay charges the fallback ratio
    model_ratio: float
    completion_ratio: float
    input_quota: Decimal    # quota per 1K prompt tokens, group ratio included
    output_quota: Decimal   # quota per 1K completion tokens
    cached_quota: Decimal   # quota per 1K prompt tokens read from the vendor's cache (CacheRatio)

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


def model_price(model: str, *, group_ratio: float, model_ratios: dict, completion_ratios: dict,
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


@login_required
def models_view(request):
    group = request.user.group
    ratio = pricing.group_ratio(group, options.get("GroupRatio"))
    model_ratios, completion_ratios = options.get("ModelRatio"), options.get("CompletionRatio")
    cache_ratios = options.get("CacheRatio")
    prices = [model_price(m, group_ratio=ratio, model_ratios=model_ratios, completion_ratios=completion_ratios,
                          cache_ratios=cache_ratios) for m in group_models(group=group)]
    return render(request, "billing/models.html", {
        "group": group,
        "group_ratio": money.number(ratio),
        "prices": prices,
        "unit_name": money.unit_name(),
        "fallback_ratio": pricing.UNKNOWN_MODEL_RATIO,
        "any_unpriced": any(not p.priced for p in prices),
    })
