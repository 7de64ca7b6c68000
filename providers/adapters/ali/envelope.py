"""What every DashScope answer shares: its error, `{"code", "message", "request_id"}`
(https://help.aliyun.com/zh/model-studio/developer-reference/error-code), and its `usage`. Every module of
this package reads them here (Paraformer's task-failed events too: ali.py and ali_asr.py once imported each
other for ali_error).
"""

from __future__ import annotations

from providers.adapters.base import UpstreamError, Usage, retryable_status
from providers.adapters.openai_shapes import count


def invalid(message: str, code: str = "invalid_request", param: str | None = None) -> UpstreamError:
    """A request DashScope cannot be asked: the client's, never retried."""
    return UpstreamError(status=400, message=message, type="invalid_request_error", code=code, param=param)


def ali_error(payload: dict, status: int = 200) -> UpstreamError:
    """DashScope's `{"code", "message", "request_id"}` as an OpenAI-style error."""
    code = str(payload.get("code") or "")
    message = str(payload.get("message") or code or f"DashScope answered HTTP {status}")
    status = status if status != 200 else 400
    type_, mapped, retryable = "upstream_error", code, retryable_status(status)
    if code.startswith("Throttling"):  # Throttling, .RateQuota, .BurstRate, .AllocationQuota
        status, type_, mapped, retryable = 429, "rate_limit_error", "rate_limit_exceeded", True
    elif code == "InvalidApiKey":
        status, type_, mapped, retryable = 401, "authentication_error", "invalid_api_key", False
    elif code in ("Arrearage", "Quota.Exhausted"):
        type_, mapped, retryable = "insufficient_quota", "insufficient_quota", False
    elif code in ("DataInspectionFailed", "data_inspection_failed"):
        type_, mapped, retryable = "invalid_request_error", "content_filter", False
    elif code.startswith("InvalidParameter") or code in ("InvalidInput", "BadRequest.TooLarge"):
        type_, retryable = "invalid_request_error", False
    elif code.startswith(("AccessDenied", "Model.AccessDenied")):
        type_, retryable = "permission_error", False
    elif code in ("ModelNotFound", "Model.NotFound"):
        type_, mapped, retryable = "invalid_request_error", "model_not_found", False
    elif code.startswith(("InternalError", "ServiceUnavailable", "RequestTimeOut", "SystemError")):
        status, retryable = (status if status >= 500 else 503), True
    error_body = {"message": message, "type": type_, "param": None, "code": mapped or "upstream_error"}
    if payload.get("request_id"):
        error_body["request_id"] = payload["request_id"]
    return UpstreamError(status=status, message=message, type=type_, code=mapped or "upstream_error",
                         retryable=retryable, error_body=error_body)


def usage_from(raw) -> Usage | None:
    """DashScope's usage: input/output tokens, the cached part of the input under prompt_tokens_details
    (its context cache, https://help.aliyun.com/zh/model-studio/context-cache: reads as cached_tokens, an
    explicit cache's writes as cache_creation_input_tokens, both within the input), the thinking under
    output_tokens_details."""
    if not isinstance(raw, dict):
        return None
    prompt = count(raw.get("input_tokens"))
    completion = count(raw.get("output_tokens"))
    if not prompt and not completion and raw.get("total_tokens"):
        prompt = count(raw["total_tokens"])  # embeddings report a total only
    asked = raw.get("prompt_tokens_details") if isinstance(raw.get("prompt_tokens_details"), dict) else {}
    answered = raw.get("output_tokens_details") if isinstance(raw.get("output_tokens_details"), dict) else {}
    cached = min(count(asked.get("cached_tokens")), prompt)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached,
                 cache_write_tokens=min(count(asked.get("cache_creation_input_tokens")), prompt - cached),
                 reasoning_tokens=min(count(answered.get("reasoning_tokens")), completion))
