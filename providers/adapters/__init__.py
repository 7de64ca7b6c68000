"""The adapter registry, keyed by one-api's channel type ids: written out, so a type is found by grep.

A vendor is one module (openai.py, anthropic.py...) or, when it speaks several APIs, a package whose
adapter.py holds its adapters (ali/, gemini/, bedrock/; xunfei/ has one module per API). base.py is the
contract, openai_shapes.py the OpenAI answers they all write.
"""

from __future__ import annotations

from providers.adapters.aiproxy_library import AIProxyLibraryAdapter
from providers.adapters.ali.adapter import AliAdapter, BailianAdapter
from providers.adapters.anthropic import AnthropicAdapter
from providers.adapters.baidu import BaiduAdapter, QianfanAdapter
from providers.adapters.base import Adapter
from providers.adapters.bedrock.adapter import BedrockAdapter
from providers.adapters.cloudflare import CloudflareAdapter
from providers.adapters.cohere import CohereAdapter
from providers.adapters.coze import CozeAdapter
from providers.adapters.deepl import DeepLAdapter
from providers.adapters.gemini.adapter import GeminiAdapter, GeminiOpenAIAdapter, PaLMAdapter
from providers.adapters.ollama import OllamaAdapter
from providers.adapters.openai import (
    AIGC2DAdapter,
    AIProxyAdapter,
    API2GPTAdapter,
    AzureAdapter,
    CloseAIAdapter,
    CustomAdapter,
    DeepSeekAdapter,
    DoubaoAdapter,
    GroqAdapter,
    MistralAdapter,
    MoonshotAdapter,
    NovitaAdapter,
    OpenAIAdapter,
    OpenAICompatibleAdapter,
    OpenAISBAdapter,
    OpenRouterAdapter,
    SiliconFlowAdapter,
    StepFunAdapter,
    TogetherAdapter,
    XAIAdapter,
)
from providers.adapters.openai_vendors import (
    AI360Adapter,
    AILSAdapter,
    API2DAdapter,
    BaichuanAdapter,
    FastGPTAdapter,
    LingYiWanWuAdapter,
    MiniMaxAdapter,
    OhMyGPTAdapter,
    OpenAIMaxAdapter,
)
from providers.adapters.proxy import ProxyAdapter
from providers.adapters.replicate import ReplicateAdapter
from providers.adapters.tencent import TencentAdapter
from providers.adapters.vertex import VertexAdapter
from providers.adapters.xunfei.spark_http import XunfeiAdapter
from providers.adapters.xunfei.spark_ws import XunfeiSparkAdapter
from providers.adapters.zhipu import ZhipuAdapter

ADAPTERS: dict[int, type[Adapter]] = {
    1: OpenAIAdapter,
    2: API2DAdapter,
    3: AzureAdapter,
    4: CloseAIAdapter,
    5: OpenAISBAdapter,
    6: OpenAIMaxAdapter,
    7: OhMyGPTAdapter,
    8: CustomAdapter,
    9: AILSAdapter,
    10: AIProxyAdapter,
    11: PaLMAdapter,
    12: API2GPTAdapter,
    13: AIGC2DAdapter,
    14: AnthropicAdapter,
    15: BaiduAdapter,
    16: ZhipuAdapter,
    17: AliAdapter,
    18: XunfeiSparkAdapter,
    19: AI360Adapter,
    20: OpenRouterAdapter,
    21: AIProxyLibraryAdapter,
    22: FastGPTAdapter,
    23: TencentAdapter,
    24: GeminiAdapter,
    25: MoonshotAdapter,
    26: BaichuanAdapter,
    27: MiniMaxAdapter,
    28: MistralAdapter,
    29: GroqAdapter,
    30: OllamaAdapter,
    31: LingYiWanWuAdapter,
    32: StepFunAdapter,
    33: BedrockAdapter,
    34: CozeAdapter,
    35: CohereAdapter,
    36: DeepSeekAdapter,
    37: CloudflareAdapter,
    38: DeepLAdapter,
    39: TogetherAdapter,
    40: DoubaoAdapter,
    41: NovitaAdapter,
    42: VertexAdapter,
    43: ProxyAdapter,
    44: SiliconFlowAdapter,
    45: XAIAdapter,
    46: ReplicateAdapter,
    47: QianfanAdapter,
    48: XunfeiAdapter,
    49: BailianAdapter,
    50: OpenAICompatibleAdapter,
    51: GeminiOpenAIAdapter,
}

_instances: dict[int, Adapter] = {}


def adapter_for(channel_type: int) -> Adapter:
    adapter = _instances.get(channel_type)
    if adapter is None:
        adapter = _instances[channel_type] = ADAPTERS[channel_type]()
    return adapter


def type_choices() -> list[tuple[int, str]]:
    return [(type_id, f"{cls.label} ({type_id})") for type_id, cls in sorted(ADAPTERS.items())]


def secret_config_fields() -> frozenset[str]:
    """Every config key some adapter marks as a credential."""
    return frozenset(name for cls in ADAPTERS.values() for name in cls.secret_config_fields)
