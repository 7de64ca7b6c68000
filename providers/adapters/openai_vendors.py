"""The one-api channel types that speak OpenAI's protocol at an address of their own, and MiniMax.

Their default base URLs are one-api's (relay/channeltype/url.go); the request goes as OpenAI's adapter
builds it, and the answer comes back as the vendor sent it. MiniMax serves OpenAI's chat shape under its own
path (chatcompletion_v2) and tells its errors in `base_resp`, often with a 200.
"""

from __future__ import annotations

from providers.adapters.base import RequestContext, UpstreamError, json_or_none
from providers.adapters.openai import OpenAIAdapter, vendor_adapter

API2DAdapter = vendor_adapter(2, "API2D", "https://oa.api2d.net")
OpenAIMaxAdapter = vendor_adapter(6, "OpenAIMax", "https://api.openaimax.com")
OhMyGPTAdapter = vendor_adapter(7, "OhMyGPT", "https://api.ohmygpt.com")
AILSAdapter = vendor_adapter(9, "AI.LS", "https://api.caipacity.com")
AI360Adapter = vendor_adapter(19, "360 AI Brain", "https://ai.360.cn", models=(
    "360GPT_S2_V9", "embedding-bert-512-v1", "embedding_s1_v1", "semantic_similarity_s1_v1"))
# FastGPT's OpenAPI: an app's key, the chat path under /api/openapi (https://doc.fastgpt.in, "API 调用").
FastGPTAdapter = vendor_adapter(22, "FastGPT", "https://fastgpt.run/api/openapi")
BaichuanAdapter = vendor_adapter(26, "Baichuan", "https://api.baichuan-ai.com", models=(
    "Baichuan2-Turbo", "Baichuan2-Turbo-192k", "Baichuan-Text-Embedding"))
LingYiWanWuAdapter = vendor_adapter(31, "LingYiWanWu", "https://api.lingyiwanwu.com", models=(
    "yi-34b-chat-0205", "yi-34b-chat-200k", "yi-vl-plus"))

# MiniMax's base_resp.status_code (https://platform.minimaxi.com/document/ChatCompletion v2, "错误码"), as
# (HTTP status, OpenAI error code, retryable); any other code is the client's request (400).
MINIMAX_ERRORS = {
    1000: (500, "upstream_error", True), 1001: (504, "upstream_timeout", True),
    1002: (429, "rate_limit_exceeded", True), 1004: (401, "invalid_api_key", False),
    1008: (403, "insufficient_quota", False), 1013: (500, "upstream_error", True),
    1026: (400, "content_filter", False), 1027: (400, "content_filter", False),
    1039: (429, "rate_limit_exceeded", True), 2049: (401, "invalid_api_key", False),
}


def minimax_error(payload) -> UpstreamError | None:
    """The error a MiniMax body tells in base_resp (status_code 0 is success); None when it tells none."""
    base = payload.get("base_resp") if isinstance(payload, dict) else None
    if not isinstance(base, dict) or not base.get("status_code"):
        return None
    code = base["status_code"]
    status, kind, retryable = MINIMAX_ERRORS.get(code, (400, "invalid_request", False))
    message = str(base.get("status_msg") or f"MiniMax error {code}")
    kind_of = "invalid_request_error" if status == 400 else "upstream_error"
    return UpstreamError(status=status, message=message, code=kind, retryable=retryable, type=kind_of,
                         error_body={"message": message, "type": kind_of, "code": kind, "minimax_code": code})


class MiniMaxAdapter(OpenAIAdapter):
    """Type 27: OpenAI's chat request and answer at /v1/text/chatcompletion_v2, as one-api sends it."""

    channel_type = 27
    label = "MiniMax"
    default_base_url = "https://api.minimax.chat"
    modes = ("chat",)
    config_fields = ()
    native_protocols = ()
    default_models = ("abab6.5-chat", "abab6.5s-chat", "abab6-chat", "abab5.5-chat", "abab5.5s-chat",
                      "MiniMax-VL-01", "MiniMax-Text-01")

    def path(self, mode, model, channel):
        return "/v1/text/chatcompletion_v2"

    def balance_requests(self, channel):
        return []  # MiniMax has no balance endpoint a key can read

    def error_in_answer(self, ctx: RequestContext, payload, body: bytes) -> UpstreamError | None:
        return minimax_error(payload) or super().error_in_answer(ctx, payload, body)

    def parse_error(self, ctx, *, status, body, headers=None):
        found = minimax_error(json_or_none(body))
        if found is not None:
            return found
        return super().parse_error(ctx, status=status, body=body, headers=headers)
