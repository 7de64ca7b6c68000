"""The channels of the conformance matrix: for each, how its mock vendor is told what to answer, what the
client should then receive (as internal counts, which each client protocol writes its own way), and what the
vendor received, read back at content level so the cells hold whether a request is converted or passed
through as it came.

Every target answers the same scenes: a plain text, a stream of text, a tool call (then text once the result
comes back), a streamed tool call, an answer that thinks first (whole and streamed), and one whose prompt was
mostly read from the cache (whole and streamed)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from tests.mock_upstream import REPLY
from tests.relay.chat_answers import WEATHER_IN_PARIS, chat_answer, chat_stream

THOUGHT = "The capital of France is Paris."
GEMINI_TOOL_CHOICES = {"ANY": "required", "AUTO": "auto"}
ANSWER = "Paris."


@dataclass(frozen=True)
class Usage:
    """Counts as the relay keeps them: the prompt includes what was read from or written to the cache, the
    completion includes the thinking."""

    prompt: int
    completion: int
    cached: int = 0
    cache_write: int = 0


@dataclass
class Seen:
    """What a client's SDK gave back, in every protocol's terms."""

    text: str = ""
    reasoning: str = ""
    calls: list[tuple[str, dict]] = field(default_factory=list)
    usage: Usage | None = None
    tool_stop: bool | None = None  # whether it says it stopped to have tools called (None: the protocol does not)


@dataclass
class Sent:
    """What the vendor mock received in one request."""

    system: str = ""  # the system prompt
    texts: list[str] = field(default_factory=list)  # the user's words, in order
    images: list[bytes] = field(default_factory=list)  # images as their bytes (a data: URL decoded)
    image_urls: list[str] = field(default_factory=list)  # images sent as links
    tools: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # the tools declared: names, arguments
    tool_choice: str | None = None  # "required" when a tool call is forced, "auto", None when not said
    tool_results: list[str] = field(default_factory=list)  # tool results sent back, as text
    reasoning: bool = False  # whether the request asked the model to think


def _data_url_bytes(url: str) -> bytes | None:
    if not url.startswith("data:") or "," not in url:
        return None
    return base64.b64decode(url.split(",", 1)[1])


def _tool(name: str, schema: Any) -> tuple[str, tuple[str, ...]]:
    """A declared tool as its name and the names of its arguments, whatever each vendor calls the schema."""
    return name, tuple((schema or {}).get("properties") or ())


def _text(content: Any) -> str:
    """Content as its text: a string, text blocks or parts, or a tool result's object (its `output`, where
    Gemini's functionResponse puts a plain result)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text(part.get("text", part) if isinstance(part, dict) else part) for part in content)
    if isinstance(content, dict):
        return _text(content.get("output", content.get("text"))) if ("output" in content or "text" in content) \
            else orjson.dumps(content).decode()
    return "" if content is None else str(content)


class Target:
    """One kind of channel in the matrix and its mock."""

    name: ClassVar[str]
    model: ClassVar[str]
    # What it answers in each scene, as internal counts.
    text: ClassVar[str]
    text_usage: ClassVar[Usage]
    stream_text: ClassVar[str]
    stream_usage: ClassVar[Usage]
    calls: ClassVar[list[tuple[str, dict]]]
    stream_calls: ClassVar[list[tuple[str, dict]]]
    thinking_usage: ClassVar[Usage]
    cached_usage: ClassVar[Usage]

    def __init__(self, mock) -> None:
        self.mock = mock

    def script(self, scene: str) -> None:
        """Make the next answers those of `scene` ("text", "tools", "stream_tools", "thinking", "stream_thinking",
        "cached", "stream_cached")."""

    def requests(self) -> list[Sent]:
        return [self.sent(r.body) for r in self.mock.requests if isinstance(r.body, dict)]

    def sent(self, body: dict) -> Sent:
        raise NotImplementedError


class OpenAITarget(Target):
    """An OpenAI-protocol channel (type 1, chat only: `responses_api` off) at the shared OpenAI mock."""

    name, model = "openai", "gpt-4o-mini"
    text, text_usage = REPLY, Usage(11, 7)
    stream_text, stream_usage = REPLY, Usage(11, 7)
    calls = stream_calls = [("get_weather", {"city": "Paris"})]
    thinking_usage = Usage(30, 41)
    cached_usage = Usage(1200, 40, cached=1000)

    def script(self, scene: str) -> None:
        if scene == "tools":
            self.mock.then(raw=WEATHER_IN_PARIS)
        elif scene == "stream_tools":
            self.mock.then(content_type="text/event-stream", raw=chat_stream(
                {"role": "assistant", "content": None, "tool_calls": [
                    {"index": 0, "id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"ci'}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]}, finish="tool_calls"))
        elif scene == "thinking":
            self.mock.then(raw=chat_answer({"content": ANSWER, "reasoning_content": THOUGHT}, "stop", (30, 41)))
        elif scene == "stream_thinking":
            self.mock.then(content_type="text/event-stream", raw=chat_stream(
                {"role": "assistant", "reasoning_content": "The capital of France"},
                {"reasoning_content": " is Paris."}, {"content": ANSWER}, finish="stop", usage=(30, 41)))
        elif scene in ("cached", "stream_cached"):
            self.mock.then(prompt_tokens=1200, completion_tokens=40,
                           usage_extra={"prompt_tokens_details": {"cached_tokens": 1000}})

    def sent(self, body: dict) -> Sent:
        out = Sent(tools=[_tool(t["function"]["name"], t["function"].get("parameters"))
                          for t in body.get("tools") or ()],
                   reasoning=body.get("reasoning_effort") is not None, tool_choice=body.get("tool_choice"))
        for message in body.get("messages") or ():
            content = message.get("content")
            if message["role"] in ("system", "developer"):
                out.system += _text(content)
            elif message["role"] == "tool":
                out.tool_results.append(_text(content))
            elif message["role"] == "user":
                for part in [{"type": "text", "text": content}] if isinstance(content, str) else content or ():
                    if part["type"] == "text":
                        out.texts.append(part["text"])
                    elif part["type"] == "image_url":
                        url = part["image_url"]["url"]
                        data = _data_url_bytes(url)
                        out.images.append(data) if data is not None else out.image_urls.append(url)
        return out


class AnthropicTarget(Target):
    """An Anthropic channel (type 14) at the Messages mock."""

    name, model = "anthropic", "claude-house"  # the channel maps it to a Claude id (the SDK warns on old ones)
    text, text_usage = "Hello from Claude.", Usage(12, 6)
    stream_text, stream_usage = "Hello from Claude.", Usage(12, 6)
    calls = [("get_weather", {"location": "San Francisco, CA", "unit": "celsius"})]
    stream_calls = [("get_weather", {"location": "San Francisco, CA"})]
    thinking_usage = Usage(30, 41)
    cached_usage = Usage(23050, 300, cached=20000, cache_write=3000)

    def script(self, scene: str) -> None:
        answers = {"tools": ["tool_call", "chat"], "stream_tools": ["tool_call"], "thinking": ["matrix_thinking"],
                   "stream_thinking": ["matrix_thinking"], "cached": ["cached"], "stream_cached": ["cached"]}
        for answer in answers.get(scene, ()):
            self.mock.then(answer=answer)

    def sent(self, body: dict) -> Sent:
        choice = (body.get("tool_choice") or {}).get("type")
        out = Sent(tools=[_tool(t["name"], t.get("input_schema")) for t in body.get("tools") or ()],
                   reasoning=(body.get("thinking") or {}).get("type") in ("enabled", "adaptive"),
                   system=_text(body.get("system")), tool_choice="required" if choice == "any" else choice)
        for message in body.get("messages") or ():
            if message["role"] != "user":
                continue
            content = message["content"]
            for block in [{"type": "text", "text": content}] if isinstance(content, str) else content:
                if block["type"] == "text":
                    out.texts.append(block["text"])
                elif block["type"] == "image":
                    source = block["source"]
                    if source["type"] == "base64":
                        out.images.append(base64.b64decode(source["data"]))
                    else:
                        out.image_urls.append(source["url"])
                elif block["type"] == "tool_result":
                    out.tool_results.append(_text(block.get("content")))
        return out


class GeminiTarget(Target):
    """A Gemini channel (type 24) at the Gemini mock."""

    name, model = "gemini", "gemini-2.5-flash"
    text, text_usage = "Hello from Gemini.", Usage(9, 17)
    stream_text, stream_usage = "Hello from Gemini.", Usage(9, 17)
    calls = [("get_weather", {"city": "Paris", "unit": "celsius"}), ("get_time", {"timezone": "Europe/Paris"})]
    stream_calls = [("get_weather", {"city": "Paris"}), ("get_time", {"timezone": "Europe/Paris"})]
    thinking_usage = Usage(30, 41)
    cached_usage = Usage(1200, 200, cached=1000)

    def script(self, scene: str) -> None:
        # Unscripted, the mock answers chat.json, or chat_stream.sse to a stream.
        fixtures = {"tools": ["tool_call_signed.json", "chat.json"], "stream_tools": ["tool_call_signed_stream.sse"],
                    "thinking": ["thinking.json"], "stream_thinking": ["thinking_stream.sse"],
                    "cached": ["chat_cached.json"], "stream_cached": ["chat_cached_stream.sse"]}
        for name in fixtures.get(scene, ()):
            self.mock.then(fixture=name)

    def sent(self, body: dict) -> Sent:
        config = body.get("generationConfig") or {}
        out = Sent(tools=[_tool(d["name"], d.get("parameters") or d.get("parametersJsonSchema"))
                          for tool in body.get("tools") or () for d in tool.get("functionDeclarations", ())],
                   reasoning="thinkingConfig" in config,
                   system=_text((body.get("systemInstruction") or {}).get("parts")),
                   tool_choice=GEMINI_TOOL_CHOICES.get(
                       ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")))
        for content in body.get("contents") or ():
            if content.get("role") != "user":
                continue
            for part in content["parts"]:
                if "text" in part:
                    out.texts.append(part["text"])
                elif "inlineData" in part:
                    out.images.append(base64.b64decode(part["inlineData"]["data"]))
                elif "fileData" in part:
                    # Google reads proto JSON, so either spelling; the google-genai SDK writes file_uri.
                    out.image_urls.append(part["fileData"].get("fileUri") or part["fileData"]["file_uri"])
                elif "functionResponse" in part:
                    out.tool_results.append(_text(part["functionResponse"].get("response")))
        return out


class BedrockTarget(Target):
    """An AWS Bedrock channel (type 33) serving a model through Converse, at the Bedrock mock (which checks
    every SigV4 signature). Converse has no switch that asks these models to think: a model that reasons
    answers with reasoningContent of its own accord."""

    name, model = "bedrock", "amazon.nova-pro-v1:0"
    text, text_usage = "Hello from Llama on Bedrock.", Usage(21, 8)
    stream_text, stream_usage = "Hello from Llama on Bedrock.", Usage(21, 8)
    calls = stream_calls = [("get_weather", {"location": "Paris"})]
    thinking_usage = Usage(30, 41)
    cached_usage = Usage(23050, 300, cached=20000, cache_write=3000)

    def script(self, scene: str) -> None:
        answers = {"tools": ["tool_call", "chat"], "stream_tools": ["tool_call"], "thinking": ["thinking"],
                   "stream_thinking": ["thinking"], "cached": ["cached"], "stream_cached": ["cached"]}
        for answer in answers.get(scene, ()):
            self.mock.then(answer=answer)

    def sent(self, body: dict) -> Sent:
        tools = (body.get("toolConfig") or {}).get("tools") or ()
        choice = next(iter((body.get("toolConfig") or {}).get("toolChoice") or {}), None)
        out = Sent(tools=[_tool(t["toolSpec"]["name"], t["toolSpec"]["inputSchema"]["json"]) for t in tools],
                   reasoning=bool(body.get("additionalModelRequestFields")), system=_text(body.get("system")),
                   tool_choice="required" if choice == "any" else choice)
        for message in body.get("messages") or ():
            if message["role"] != "user":
                continue
            for block in message["content"]:
                if "text" in block:
                    out.texts.append(block["text"])
                elif "image" in block:
                    out.images.append(base64.b64decode(block["image"]["source"]["bytes"]))
                elif "toolResult" in block:
                    out.tool_results.append(_text(block["toolResult"]["content"]))
        return out


TARGETS: dict[str, type[Target]] = {t.name: t for t in (OpenAITarget, AnthropicTarget, GeminiTarget, BedrockTarget)}
