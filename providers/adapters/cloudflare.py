"""Cloudflare Workers AI through its OpenAI-compatible endpoints.

https://developers.cloudflare.com/workers-ai/configuration/open-ai-compatibility/: the account's
`/ai/v1/chat/completions` and `/ai/v1/embeddings`, with an API token as the Bearer key. A channel may
instead point at an AI Gateway (`https://gateway.ai.cloudflare.com/v1/{account}/{gateway}/workers-ai`),
which already names the account: one-api appends the OpenAI path to such a base as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from providers.adapters.base import (
    ChannelInfo,
    RequestContext,
    UpstreamError,
    UpstreamRequest,
    json_or_none,
)
from providers.adapters.openai import OpenAIAdapter

TASKS = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings"}
GATEWAY_PREFIX = "https://gateway.ai.cloudflare.com"


class CloudflareAdapter(OpenAIAdapter):
    channel_type: ClassVar[int] = 37
    label: ClassVar[str] = "Cloudflare Workers AI"
    default_base_url: ClassVar[str] = "https://api.cloudflare.com"
    config_fields: ClassVar[tuple[str, ...]] = ("user_id",)  # the Account ID, under one-api's name
    modes: ClassVar[tuple[str, ...]] = ("chat", "embeddings")
    default_models: ClassVar[tuple[str, ...]] = (
        "@cf/meta/llama-3.3-70b-instruct-fp8-fast", "@cf/meta/llama-3.1-8b-instruct", "@cf/meta/llama-3.2-3b-instruct",
        "@cf/qwen/qwen2.5-coder-32b-instruct", "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
        "@cf/mistralai/mistral-small-3.1-24b-instruct", "@cf/google/gemma-3-12b-it",
        "@cf/baai/bge-base-en-v1.5", "@cf/baai/bge-m3",
    )

    @staticmethod
    def is_gateway(base: str) -> bool:
        return base.startswith(GATEWAY_PREFIX)

    def path(self, mode: str, model: str, channel: ChannelInfo) -> str:
        task = TASKS.get(mode)
        if task is None:
            raise UpstreamError(status=400, message=f"Cloudflare Workers AI channels do not serve {mode}.",
                                type="invalid_request_error", code="invalid_request", param="model")
        if self.is_gateway(self.base_url(channel)):
            return task
        account = str(channel.config.get("user_id") or "").strip()
        if not account:
            raise UpstreamError(status=500, message="The Cloudflare channel has no Account ID: set `user_id` in "
                                                    "the channel's config (Workers AI URLs name the account).",
                                type="one_api_error", code="channel_misconfigured", retryable=False)
        return f"/client/v4/accounts/{account}/ai{task}"

    def balance_requests(self, channel: ChannelInfo) -> list[UpstreamRequest]:
        return []  # Workers AI bills through the Cloudflare dashboard; there is no balance endpoint

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        """Cloudflare's API envelope `{"success": false, "errors": [{"code", "message"}]}`, else OpenAI's."""
        payload = json_or_none(body)
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict) and errors[0].get("message"):
            err = super().parse_error(ctx, status=status, body=b"")
            first = errors[0]
            err.message = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message"))
            err.code = str(first.get("code") or err.code)
            err.type = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                        404: "not_found_error", 429: "rate_limit_error"}.get(status, "upstream_error")
            err.error_body = {"message": err.message, "type": err.type, "param": None, "code": err.code}
            return err
        return super().parse_error(ctx, status=status, body=body, headers=headers)
