"""Prices by prompt size: new-api's ModelTierPricing option, read and checked.

Gemini 2.5 Pro and Claude's long context cost more per token once the prompt passes 200k tokens, for the whole
request. new-api names the option and its shape, so an operator's table carries over as it is:

    {"gemini-2.5-pro": {"enabled": true, "basis": "prompt_tokens", "tiers": [
        {"min_tokens": 0, "max_tokens": 200000, "input_price": 1.25, "completion_price": 10, "cache_read_price": 0.125},
        {"min_tokens": 200000, "input_price": 2.5, "completion_price": 15, "cache_read_price": 0.25}]}}

Prices are US$ per 1M tokens (so a tier's model ratio is input_price / 2). A tier holds the prompts of
min_tokens up to, not including, max_tokens; the tiers start at 0, follow each other without gap or overlap,
and only the last is open-ended (new-api's rules). A tier without cache_read_price prices cache reads at the
model's CacheRatio. A model whose entry is not enabled is priced by its ratios; "enabled" left out means
enabled (new-api always writes it; a table typed by hand means what it says). Keys new-api may add later are
ignored, so its newer tables still load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext

from oneapi_site.lib import json_depth, numbers
from oneapi_site.lib.errors import ServiceError

BASIS = "prompt_tokens"  # new-api's only basis
PRICE_MAX = 20_000  # US$ per 1M tokens: ratio 10,000 (options.RATIO_MAX), the most any ratio may be
TOKENS_MAX = 2**31 - 1  # the log's token columns
NAME_MAX_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Tier:
    """The prices of prompts from min_tokens up to (not including) max_tokens, in US$ per 1M tokens."""

    min_tokens: int
    max_tokens: int | None
    input_price: Decimal
    completion_price: Decimal
    cache_read_price: Decimal | None = None

    def holds(self, prompt_tokens: int) -> bool:
        return self.min_tokens <= prompt_tokens and (self.max_tokens is None or prompt_tokens < self.max_tokens)

    @property
    def label(self) -> str:
        """The prompts it holds, as the log line and the models page say it."""
        if self.max_tokens is None:
            return f"from {self.min_tokens} tokens"
        return f"{self.min_tokens} to {self.max_tokens - 1} tokens"


def select(tiers: tuple[Tier, ...], prompt_tokens: int) -> Tier | None:
    """The tier a prompt of `prompt_tokens` is priced at (None without tiers)."""
    for tier in tiers:
        if tier.holds(max(prompt_tokens, 0)):
            return tier
    return None


def _fail(key: str, message: str, **values: Any) -> ServiceError:
    return ServiceError(message % {"key": key, **values}, field=key)


class TierTable(dict):
    """The option as JSON (what forms show and /api stores), with the enabled models' tiers read from it."""

    tiers: dict[str, tuple[Tier, ...]]


def parse(text: str, *, key: str = "ModelTierPricing") -> TierTable:
    """The option's text, checked, with its tiers; a ServiceError naming the model and tier otherwise."""
    try:
        value = json_depth.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise _fail(key, gettext("%(key)s is not valid JSON: %(error)s at line %(line)d column %(column)d"),
                    error=exc.msg, line=exc.lineno, column=exc.colno) from None
    except ValueError:
        raise _fail(key, gettext("%(key)s must be a JSON object of model names to tier settings")) from None
    if not isinstance(value, dict):
        raise _fail(key, gettext("%(key)s must be a JSON object of model names to tier settings"))
    if json_depth.holds_lone_surrogate(value):
        raise _fail(key, gettext("%(key)s holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text"))
    table = TierTable(value)
    table.tiers = {}
    for model, config in value.items():
        where = f'{key} "{model[:NAME_MAX_LENGTH]}"'
        if len(model) > NAME_MAX_LENGTH:
            raise _fail(key, gettext("%(where)s: a name may have at most %(max)d characters"),
                        where=where, max=NAME_MAX_LENGTH)
        tiers = _model_tiers(config, key=key, where=where)
        if tiers:
            table.tiers[model] = tiers
    return table


def _model_tiers(config: Any, *, key: str, where: str) -> tuple[Tier, ...]:
    if not isinstance(config, dict):
        raise _fail(key, gettext('%(where)s must be an object with "tiers"'), where=where)
    enabled = config.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _fail(key, gettext('%(where)s: "enabled" must be true or false'), where=where)
    basis = config.get("basis") or BASIS
    if basis != BASIS:
        raise _fail(key, gettext('%(where)s: "basis" must be "%(basis)s"'), where=where, basis=BASIS)
    raw = config.get("tiers", [])
    if not isinstance(raw, list):
        raise _fail(key, gettext('%(where)s: "tiers" must be a list'), where=where)
    if not raw:
        if enabled:
            raise _fail(key, gettext("%(where)s: give at least one tier"), where=where)
        return ()
    tiers = sorted((_tier(item, key=key, where=f"{where} tier {n}") for n, item in enumerate(raw, 1)),
                   key=lambda t: t.min_tokens)
    if tiers[0].min_tokens != 0:
        raise _fail(key, gettext("%(where)s: the first tier must start at 0 tokens"), where=where)
    for tier, following in zip(tiers, tiers[1:], strict=False):
        if tier.max_tokens is None:
            raise _fail(key, gettext("%(where)s: only the last tier may leave out max_tokens"), where=where)
        if following.min_tokens != tier.max_tokens:
            raise _fail(key, gettext("%(where)s: each tier must start at the max_tokens of the one before "
                                     "(no gap, no overlap)"), where=where)
    if tiers[-1].max_tokens is not None:
        raise _fail(key, gettext("%(where)s: the last tier must leave out max_tokens"), where=where)
    return tuple(tiers) if enabled else ()


def _tier(item: Any, *, key: str, where: str) -> Tier:
    if not isinstance(item, dict):
        raise _fail(key, gettext("%(where)s must be an object"), where=where)

    def number(name: str, *, whole: bool = False, required: bool = True):
        raw = item.get(name)
        if raw is None:
            if required:
                raise _fail(key, gettext("%(where)s: %(name)s is required"), where=where, name=name)
            return None
        field = f"{where} {name}"
        try:
            if whole:
                return numbers.parse_int(raw, field=field, minimum=0, maximum=TOKENS_MAX)
            if isinstance(raw, str):  # JSON numbers only, as the ratio options
                raise _fail(key, gettext("%(where)s: %(name)s must be a number"), where=where, name=name)
            return numbers.parse_decimal(raw, field=field, minimum=0, maximum=PRICE_MAX)
        except ServiceError as exc:  # the message names the entry; the field stays the option
            raise ServiceError(str(exc), field=key, code=exc.code) from None

    low = number("min_tokens", whole=True, required=False) or 0
    high = number("max_tokens", whole=True, required=False)
    if high is not None and high <= low:
        raise _fail(key, gettext("%(where)s: max_tokens must be more than min_tokens"), where=where)
    return Tier(min_tokens=low, max_tokens=high, input_price=number("input_price"),
                completion_price=number("completion_price"),
                cache_read_price=number("cache_read_price", required=False))
