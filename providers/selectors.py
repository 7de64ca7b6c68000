"""Reads of channels and the models they serve, for the management API."""

from __future__ import annotations

from django.db.models import Q

from billing.ratios import DEFAULT_MODEL_RATIO
from oneapi_site.lib import numbers
from oneapi_site.lib.search import prefix
from providers.adapters import ADAPTERS
from providers.models import Ability, Channel


def channel_list(*, offset: int, limit: int, tag: str | None = None) -> list[Channel]:
    channels = Channel.objects.order_by("-id")
    if tag is not None:
        channels = channels.filter(tag=tag)
    return list(channels[offset:offset + limit])


def channel_search(*, keyword: str, limit: int) -> list[Channel]:
    """one-api matches the id, the name by prefix, or the whole key (the key is never shown)."""
    keyword = keyword.strip()
    match = prefix("name", keyword)
    channel_id = numbers.int_or_none(keyword, minimum=0)
    if channel_id is not None:
        match |= Q(pk=channel_id)
    if keyword:
        match |= Q(key=keyword)
    return list(Channel.objects.filter(match).order_by("-id")[:limit])


def group_models(*, group: str) -> list[str]:
    """Models any enabled channel of the group serves (one-api's GetGroupModels)."""
    models = Ability.objects.filter(group=group, enabled=True).values_list("model", flat=True)
    return sorted(set(models))


# Who makes a model, guessed from its name, for the owned_by field of model lists.
_OWNERS = (
    (("gpt-", "o1", "o3", "o4", "text-embedding-ada", "text-embedding-3", "text-moderation", "omni-moderation",
      "whisper", "tts-", "dall-e"), "openai"),
    (("claude",), "anthropic"),
    (("gemini", "text-embedding-004"), "google"),
    (("deepseek",), "deepseek"),
    (("mistral", "open-mistral"), "mistralai"),
    (("grok",), "xai"),
    (("llama",), "meta"),
    (("moonshot",), "moonshot"),
    (("glm", "embedding-3"), "zhipu"),
    (("qwen",), "alibaba"),
)


def model_owner(model: str) -> str:
    for prefixes, owner in _OWNERS:
        if model.startswith(prefixes):
            return owner
    return "custom"


def known_models() -> list[str]:
    """The built-in catalogue: every model with a default price."""
    return sorted(DEFAULT_MODEL_RATIO)


def models_by_channel_type() -> dict[int, list[str]]:
    """one-api's GET /api/models: {channel type: models}. All adapters speak OpenAI's protocol for now,
    so each type lists the OpenAI models; an adapter may name its own with a `default_models` tuple."""
    openai_models = [m for m in known_models() if model_owner(m) == "openai"]
    return {
        type_id: list(getattr(cls, "default_models", ()) or openai_models)
        for type_id, cls in sorted(ADAPTERS.items())
    }
