"""The clients of the conformance matrix: each official SDK asking the same things in its own protocol, and
what it got back read out of the SDK's own types into one `Seen`.

`ask` sends one request (the system prompt and the prompt, optionally with images, the weather tool (its use
forced or not), a request to think, or streamed); `send_tool_results` continues the conversation `ask` began
with a result for every call it got."""

from __future__ import annotations

import base64
import json
from typing import Any, ClassVar

import anthropic
import openai
from google import genai
from google.genai import types

from tests.relay.conformance_targets import Seen, Usage

SYSTEM = "Answer in one word."
PROMPT = "What is the capital of France?"
TOOL_RESULT = "Sunny, 21 C"
# A 1x1 transparent PNG.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002"
                    "000154a24f5d0000000049454e44ae426082")
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
BASE_URL = "http://testserver"


class Client:
    name: ClassVar[str]

    def __init__(self, key: str, http) -> None:
        self.key, self.http = key, http

    async def ask(self, model: str, *, image_url: str | None = None, tools: bool = False, force_tool: bool = False,
                  reasoning: bool = False, stream: bool = False) -> Seen:
        """Ask PROMPT of `model`; with `image_url`, with two images: PNG inline, then the one at that link."""
        raise NotImplementedError

    async def send_tool_results(self) -> Seen:
        raise NotImplementedError


def _cache_writes(details) -> int:
    """The prompt tokens written to the cache, beside those read from it (a field of the SDK's newer types)."""
    if details is None:
        return 0
    return getattr(details, "cache_write_tokens", None) or (details.model_extra or {}).get("cache_write_tokens") or 0


class OpenAIChatClient(Client):
    name = "openai"
    TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a place",
                                             "parameters": WEATHER_SCHEMA}}

    def __init__(self, key: str, http) -> None:
        super().__init__(key, http)
        self.sdk = openai.AsyncOpenAI(base_url=f"{BASE_URL}/v1", api_key=key, http_client=http, max_retries=0)

    async def ask(self, model, *, image_url=None, tools=False, force_tool=False, reasoning=False, stream=False):
        content: Any = [{"type": "text", "text": PROMPT}, {"type": "image_url", "image_url": {"url": DATA_URL}},
                        {"type": "image_url", "image_url": {"url": image_url}}] if image_url else PROMPT
        self.model = model
        self.messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]
        self.extra: dict[str, Any] = {"tools": [self.TOOL]} if tools else {}
        if force_tool:
            self.extra["tool_choice"] = "required"
        if reasoning:
            self.extra["reasoning_effort"] = "high"
        if stream:
            return await self._stream()
        return await self._create()

    async def _create(self) -> Seen:
        answer = await self.sdk.chat.completions.create(model=self.model, messages=self.messages, **self.extra)
        message = answer.choices[0].message
        self.last = message
        return Seen(text=message.content or "", reasoning=(message.model_extra or {}).get("reasoning_content") or "",
                    calls=[(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or ()],
                    usage=self._usage(answer.usage), tool_stop=answer.choices[0].finish_reason == "tool_calls")

    async def _stream(self) -> Seen:
        seen, calls = Seen(), {}
        async for chunk in await self.sdk.chat.completions.create(
                model=self.model, messages=self.messages, stream=True, stream_options={"include_usage": True},
                **self.extra):
            if chunk.choices:
                if chunk.choices[0].finish_reason:
                    seen.tool_stop = chunk.choices[0].finish_reason == "tool_calls"
                delta = chunk.choices[0].delta
                seen.text += delta.content or ""
                seen.reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
                for call in delta.tool_calls or ():
                    name, arguments = calls.get(call.index, ("", ""))
                    calls[call.index] = (name + (call.function.name or ""), arguments + (call.function.arguments or ""))
            if chunk.usage:
                seen.usage = self._usage(chunk.usage)
        seen.calls = [(name, json.loads(arguments)) for name, arguments in calls.values()]
        return seen

    @staticmethod
    def _usage(usage) -> Usage:
        details = usage.prompt_tokens_details
        cached = (details.cached_tokens or 0) if details else 0
        return Usage(usage.prompt_tokens, usage.completion_tokens, cached=cached, cache_write=_cache_writes(details))

    async def send_tool_results(self):
        self.messages += [self.last.model_dump(exclude_none=True), *[
            {"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT} for call in self.last.tool_calls]]
        return await self._create()


class AnthropicClient(Client):
    name = "anthropic"
    TOOL = {"name": "get_weather", "description": "Weather for a place", "input_schema": WEATHER_SCHEMA}

    def __init__(self, key: str, http) -> None:
        super().__init__(key, http)
        self.sdk = anthropic.AsyncAnthropic(base_url=BASE_URL, api_key=key, http_client=http, max_retries=0)

    async def ask(self, model, *, image_url=None, tools=False, force_tool=False, reasoning=False, stream=False):
        content: Any = [{"type": "text", "text": PROMPT}, {"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": DATA_URL.split(",", 1)[1]}},
            {"type": "image", "source": {"type": "url", "url": image_url}}] if image_url else PROMPT
        self.model, self.messages = model, [{"role": "user", "content": content}]
        self.extra: dict[str, Any] = {"system": SYSTEM, "tools": [self.TOOL]} if tools else {"system": SYSTEM}
        if force_tool:
            self.extra["tool_choice"] = {"type": "any"}
        if reasoning:
            self.extra["thinking"] = {"type": "enabled", "budget_tokens": 2048}
        if stream:
            async with self.sdk.messages.stream(model=model, max_tokens=4096, messages=self.messages,
                                                **self.extra) as events:
                return self._seen(await events.get_final_message())
        return await self._create()

    async def _create(self) -> Seen:
        self.last = await self.sdk.messages.create(model=self.model, max_tokens=4096, messages=self.messages,
                                                   **self.extra)
        return self._seen(self.last)

    @staticmethod
    def _seen(message) -> Seen:
        usage = message.usage
        read, written = usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0
        return Seen(text="".join(b.text for b in message.content if b.type == "text"),
                    reasoning="".join(b.thinking for b in message.content if b.type == "thinking"),
                    calls=[(b.name, b.input) for b in message.content if b.type == "tool_use"],
                    usage=Usage(usage.input_tokens + read + written, usage.output_tokens, cached=read,
                                cache_write=written),
                    tool_stop=message.stop_reason == "tool_use")

    async def send_tool_results(self):
        self.messages += [{"role": "assistant", "content": self.last.content}, {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": b.id, "content": TOOL_RESULT}
            for b in self.last.content if b.type == "tool_use"]}]
        return await self._create()


class ResponsesClient(Client):
    name = "responses"
    TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a place",
            "parameters": WEATHER_SCHEMA}

    def __init__(self, key: str, http) -> None:
        super().__init__(key, http)
        self.sdk = openai.AsyncOpenAI(base_url=f"{BASE_URL}/v1", api_key=key, http_client=http, max_retries=0)

    async def ask(self, model, *, image_url=None, tools=False, force_tool=False, reasoning=False, stream=False):
        content: Any = [{"type": "input_text", "text": PROMPT}, {"type": "input_image", "image_url": DATA_URL},
                        {"type": "input_image", "image_url": image_url}] if image_url else PROMPT
        self.model, self.input = model, [{"role": "user", "content": content}]
        self.extra: dict[str, Any] = {"instructions": SYSTEM}
        if tools:
            self.extra["tools"] = [self.TOOL]
        if force_tool:
            self.extra["tool_choice"] = "required"
        if reasoning:
            self.extra["reasoning"] = {"effort": "high"}
        if stream:
            async with self.sdk.responses.stream(model=model, input=self.input, **self.extra) as events:
                return self._seen(await events.get_final_response())
        return await self._create()

    async def _create(self) -> Seen:
        self.last = await self.sdk.responses.create(model=self.model, input=self.input, **self.extra)
        return self._seen(self.last)

    @staticmethod
    def _seen(response) -> Seen:
        usage = response.usage
        return Seen(text=response.output_text,
                    reasoning="".join(s.text for item in response.output if item.type == "reasoning"
                                      for s in item.summary),
                    calls=[(item.name, json.loads(item.arguments)) for item in response.output
                           if item.type == "function_call"],
                    usage=Usage(usage.input_tokens, usage.output_tokens,
                                cached=usage.input_tokens_details.cached_tokens or 0,
                                cache_write=_cache_writes(usage.input_tokens_details)))

    async def send_tool_results(self):
        self.input += [*[item.model_dump(exclude_none=True) for item in self.last.output], *[
            {"type": "function_call_output", "call_id": item.call_id, "output": TOOL_RESULT}
            for item in self.last.output if item.type == "function_call"]]
        return await self._create()


class GeminiClient(Client):
    name = "gemini"
    TOOL = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", description="Weather for a place",
        parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]))])

    def __init__(self, key: str, http) -> None:
        super().__init__(key, http)
        self.sdk = genai.Client(api_key=key, http_options=types.HttpOptions(
            base_url=BASE_URL, api_version="v1beta", httpx_async_client=http,
            retry_options=types.HttpRetryOptions(attempts=1)))

    async def ask(self, model, *, image_url=None, tools=False, force_tool=False, reasoning=False, stream=False):
        parts = [types.Part(text=PROMPT)]
        if image_url:
            parts += [types.Part.from_bytes(data=PNG, mime_type="image/png"),
                      types.Part.from_uri(file_uri=image_url, mime_type="image/png")]
        self.model, self.contents = model, [types.Content(role="user", parts=parts)]
        config = types.GenerateContentConfig(system_instruction=SYSTEM)
        if tools:
            config.tools = [self.TOOL]
            config.automatic_function_calling = types.AutomaticFunctionCallingConfig(disable=True)
        if force_tool:
            config.tool_config = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY"))
        if reasoning:
            config.thinking_config = types.ThinkingConfig(include_thoughts=True, thinking_budget=2048)
        self.config = config
        if stream:
            seen = Seen()
            async for chunk in await self.sdk.aio.models.generate_content_stream(
                    model=model, contents=self.contents, config=config):
                self._add(seen, chunk)
            return seen
        return await self._create()

    async def _create(self) -> Seen:
        self.last = await self.sdk.aio.models.generate_content(model=self.model, contents=self.contents,
                                                               config=self.config)
        return self._add(Seen(), self.last)

    @staticmethod
    def _add(seen: Seen, answer) -> Seen:
        for part in (answer.candidates[0].content.parts or ()) if answer.candidates else ():
            if part.function_call:
                seen.calls.append((part.function_call.name, part.function_call.args))
            elif part.text and part.thought:
                seen.reasoning += part.text
            elif part.text:
                seen.text += part.text
        if usage := answer.usage_metadata:
            seen.usage = Usage(usage.prompt_token_count or 0,
                               (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0),
                               cached=usage.cached_content_token_count or 0)
        return seen

    async def send_tool_results(self):
        self.contents += [self.last.candidates[0].content, types.Content(role="user", parts=[
            types.Part.from_function_response(name=call.name, response={"output": TOOL_RESULT})
            for call in self.last.function_calls])]
        return await self._create()


CLIENTS: dict[str, type[Client]] = {c.name: c for c in (OpenAIChatClient, AnthropicClient, ResponsesClient,
                                                         GeminiClient)}
