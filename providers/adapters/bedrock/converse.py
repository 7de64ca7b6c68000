"""Bedrock's Converse API, for the models that are not Claude (Llama, Nova, Mistral, Cohere, DeepSeek...).

https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html and
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html: one request
and answer shape for every model Bedrock serves. Claude keeps InvokeModel with Anthropic's own body
(adapter.py), as before.

The OpenAI messages go through the Anthropic adapter's conversion first (system on top, alternating
turns, tool calls and results as blocks): its blocks map one to one onto Converse's. The answers and
stream events map back onto Anthropic's, so Anthropic's answer conversion and stream decoder serve
here too. Pure dict work: the adapter and the decoder live in adapter.py.
"""

from __future__ import annotations

import secrets
from typing import Any

from providers.adapters.anthropic import convert_messages
from providers.adapters.base import UpstreamError
from providers.adapters.openai_shapes import count

# Converse's stopReason → the Anthropic stop_reason that Anthropic's conversion maps to OpenAI's.
STOP_REASONS = {"guardrail_intervened": "refusal", "content_filtered": "refusal"}


def bad_input(message: str, code: str = "invalid_request") -> UpstreamError:
    return UpstreamError(status=400, message=message, type="invalid_request_error", code=code, param="messages")


def converse_block(block: dict) -> dict | None:
    """One Anthropic content block as a Converse ContentBlock."""
    kind = block.get("type")
    if kind == "text":
        return {"text": block.get("text") or ""}
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") != "base64":
            raise bad_input("Bedrock takes images inline only; the image URL was not fetched.", "invalid_image")
        image_format = str(source.get("media_type") or "image/png").removeprefix("image/")
        # In the JSON protocol a blob travels base64-encoded, which the data: URL already is.
        return {"image": {"format": "jpeg" if image_format == "jpg" else image_format,
                          "source": {"bytes": source.get("data") or ""}}}
    if kind == "tool_use":
        return {"toolUse": {"toolUseId": block.get("id") or "", "name": block.get("name") or "",
                            "input": block.get("input") or {}}}
    if kind == "tool_result":
        content = [c for c in map(converse_block, block.get("content") or ()) if c] or [{"text": ""}]
        return {"toolResult": {"toolUseId": block.get("tool_use_id") or "", "content": content}}
    return None


def inference_config(body: dict) -> dict:
    """maxTokens only when the client set one: Bedrock refuses more than a model's own ceiling (Llama 3
    8B stops at 2048), so the 4096 that Claude's InvokeModel needs is not forced here."""
    config: dict[str, Any] = {}
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    if max_tokens:
        config["maxTokens"] = max_tokens
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        config["temperature"] = max(0.0, min(float(temperature), 1.0))  # OpenAI allows 0..2, Converse 0..1
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    return config


def tool_config(body: dict, messages: list[dict]) -> dict | None:
    tools = [t["function"] for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"
             and isinstance(t.get("function"), dict)]
    uses_tools = any("toolUse" in c or "toolResult" in c for m in messages for c in m["content"])
    choice = body.get("tool_choice")
    # Converse has no "none"; tools stay when the history holds tool blocks, which Bedrock then requires.
    if not tools or (choice == "none" and not uses_tools):
        return None
    specs = []
    for fn in tools:
        spec: dict[str, Any] = {"name": fn.get("name") or "",
                                "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}}}
        if fn.get("description"):
            spec["description"] = fn["description"]  # Bedrock refuses an empty description
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    # Only Claude, Mistral Large and Nova take toolChoice: "auto", the default, is left out for the others.
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config["toolChoice"] = {"tool": {"name": choice["function"].get("name") or ""}}
    return config


def converse_request(body: dict) -> dict:
    """The Converse body for an OpenAI chat request (the model and streaming are in the URL)."""
    system, turns = convert_messages(body.get("messages") or [])
    messages = [{"role": turn["role"], "content": [c for c in map(converse_block, turn["content"]) if c]}
                for turn in turns]
    request: dict[str, Any] = {"messages": messages}
    if system:
        request["system"] = [{"text": system}]
    if config := inference_config(body):
        request["inferenceConfig"] = config
    if tools := tool_config(body, messages):
        request["toolConfig"] = tools
    return request


def anthropic_usage(usage: Any) -> dict:
    """Converse's TokenUsage as Anthropic's usage: inputTokens leave out the cache reads and writes, as
    Anthropic's input_tokens do, and `cacheDetails` splits the writes by lifetime ({inputTokens, ttl})."""
    usage = usage if isinstance(usage, dict) else {}
    split = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    for detail in usage.get("cacheDetails") or ():
        if isinstance(detail, dict) and detail.get("ttl") in ("5m", "1h"):
            split[f"ephemeral_{detail['ttl']}_input_tokens"] += count(detail.get("inputTokens"))
    return {"input_tokens": count(usage.get("inputTokens")), "output_tokens": count(usage.get("outputTokens")),
            "cache_read_input_tokens": count(usage.get("cacheReadInputTokens")),
            "cache_creation_input_tokens": count(usage.get("cacheWriteInputTokens")), "cache_creation": split}


def stop_reason(reason: Any) -> str | None:
    return STOP_REASONS.get(reason, reason) if isinstance(reason, str) else None


def anthropic_block(block: Any) -> dict | None:
    if not isinstance(block, dict):
        return None
    if "text" in block:
        return {"type": "text", "text": block.get("text") or ""}
    if isinstance(block.get("toolUse"), dict):
        call = block["toolUse"]
        return {"type": "tool_use", "id": call.get("toolUseId") or "", "name": call.get("name") or "",
                "input": call.get("input") or {}}
    if isinstance(block.get("reasoningContent"), dict):
        text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
        return {"type": "thinking", "thinking": text or ""}
    return None


def anthropic_message(payload: dict, model: str) -> dict:
    """A Converse answer in the shape of an Anthropic Messages answer. Converse names no id: one is made."""
    message = (payload.get("output") or {}).get("message") or {}
    return {"id": f"bedrock-{secrets.token_hex(12)}", "type": "message", "role": "assistant", "model": model,
            "content": [b for b in map(anthropic_block, message.get("content") or ()) if b],
            "stop_reason": stop_reason(payload.get("stopReason")), "usage": anthropic_usage(payload.get("usage"))}


class ConverseEvents:
    """ConverseStream's events (messageStart, contentBlockStart/Delta/Stop, messageStop, metadata) as the
    Anthropic stream events they match. Converse reports the stop reason before the usage, Anthropic both
    in message_delta: the stop reason is held until metadata brings the usage (or the stream ends)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.stop: str | None = None
        self.stopped = False

    def translate(self, name: str, payload: dict) -> list[dict]:
        if name == "messageStart":
            return [{"type": "message_start", "message": {"id": f"bedrock-{secrets.token_hex(12)}",
                                                          "model": self.model, "usage": {}}}]
        if name == "contentBlockStart":
            call = (payload.get("start") or {}).get("toolUse")
            if not isinstance(call, dict):
                return []
            return [{"type": "content_block_start", "index": payload.get("contentBlockIndex", 0),
                     "content_block": {"type": "tool_use", "id": call.get("toolUseId") or "",
                                       "name": call.get("name") or "", "input": {}}}]
        if name == "contentBlockDelta":
            return self._delta(payload)
        if name == "messageStop":
            self.stop, self.stopped = stop_reason(payload.get("stopReason")), True
            return []
        if name == "metadata" and isinstance(payload.get("usage"), dict):
            return [{"type": "message_delta", "delta": {"stop_reason": self.stop},
                     "usage": anthropic_usage(payload["usage"])}]
        return []  # contentBlockStop and future event types

    def _delta(self, payload: dict) -> list[dict]:
        index = payload.get("contentBlockIndex", 0)
        delta = payload.get("delta") or {}
        if isinstance(delta.get("text"), str):
            converted: dict[str, Any] = {"type": "text_delta", "text": delta["text"]}
        elif isinstance(delta.get("toolUse"), dict):
            converted = {"type": "input_json_delta", "partial_json": delta["toolUse"].get("input") or ""}
        elif isinstance(delta.get("reasoningContent"), dict) and delta["reasoningContent"].get("text"):
            converted = {"type": "thinking_delta", "thinking": delta["reasoningContent"]["text"]}
        else:
            return []
        return [{"type": "content_block_delta", "index": index, "delta": converted}]
