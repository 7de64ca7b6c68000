"""The adapter registry, keyed by one-api's channel type ids."""

from __future__ import annotations

from providers.adapters.base import Adapter
from providers.adapters.openai import (
    AzureAdapter,
    CustomAdapter,
    DeepSeekAdapter,
    DoubaoAdapter,
    GroqAdapter,
    MistralAdapter,
    MoonshotAdapter,
    NovitaAdapter,
    OpenAIAdapter,
    OpenAICompatibleAdapter,
    OpenRouterAdapter,
    SiliconFlowAdapter,
    StepFunAdapter,
    TogetherAdapter,
    XAIAdapter,
)

ADAPTERS: dict[int, type[Adapter]] = {
    1: OpenAIAdapter,
    3: AzureAdapter,
    8: CustomAdapter,
    20: OpenRouterAdapter,
    25: MoonshotAdapter,
    28: MistralAdapter,
    29: GroqAdapter,
    32: StepFunAdapter,
    36: DeepSeekAdapter,
    39: TogetherAdapter,
    40: DoubaoAdapter,
    41: NovitaAdapter,
    44: SiliconFlowAdapter,
    45: XAIAdapter,
    50: OpenAICompatibleAdapter,
}

_instances: dict[int, Adapter] = {}


def adapter_for(channel_type: int) -> Adapter:
    adapter = _instances.get(channel_type)
    if adapter is None:
        adapter = _instances[channel_type] = ADAPTERS[channel_type]()
    return adapter


def type_choices() -> list[tuple[int, str]]:
    return [(type_id, f"{cls.label} ({type_id})") for type_id, cls in sorted(ADAPTERS.items())]
