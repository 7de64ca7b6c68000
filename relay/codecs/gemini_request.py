"""Gemini's generateContent and embedContent requests as the relay's internal bodies (relay/codecs/gemini.py
answers them).

Field references: https://ai.google.dev/api/generate-content#request-body and https://ai.google.dev/api/embeddings.
Google's servers parse requests as protobuf JSON, which takes a field by its camelCase name or its proto
snake_case name (the Python SDK and hand-written clients send either), so structural fields are read by
both; schemas, arguments and responses are the client's data and are never renamed. What chat cannot carry
and that changes nothing of the answer's meaning (safetySettings, cachedContent, Google's own tools) is
dropped, because clients send such fields on every request and Google itself never refuses them.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson

from relay.codecs.anthropic_request import EFFORT_BUDGETS, WRITE_NESTING
from relay.codecs.signed_thinking import is_sealed, unseal
from relay.errors import bad_request

ROLES = {"user": "user", "model": "model", "function": "user", "tool": "user", "": "user"}
TOOL_MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}
THINKING_LEVELS = {"MINIMAL": "low", "LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
# Schema keys of Gemini's OpenAPI subset that JSON Schema does not have.
SCHEMA_ONLY_KEYS = ("propertyOrdering",)
SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def refuse(where: str, message: str):
    return bad_request(f"{where}: {message}", param=where.split(".")[0].split("[")[0])


@functools.cache
def _snake(name: str) -> str:
    return SNAKE.sub("_", name).lower()


def field(obj: dict, name: str) -> Any:
    """`obj`'s field by its camelCase name, or by the snake_case name protobuf JSON takes as well."""
    value = obj.get(name)
    if value is None:
        value = obj.get(_snake(name))
    return value


def _dumps(value: Any, where: str) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        raise refuse(where, f"nested deeper than {WRITE_NESTING} levels, which no upstream request can carry") \
            from None


# --- contents ------------------------------------------------------------------------------------


def _media_part(mime: str, data: str, where: str) -> dict:
    """inlineData as chat's content part: images and audio as their own kinds, any other file as a file."""
    if not isinstance(mime, str) or not isinstance(data, str):
        raise refuse(where, "inlineData needs a mimeType and base64 data")
    url = f"data:{mime};base64,{data}"
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": url}}
    if mime.startswith("audio/"):
        return {"type": "input_audio", "input_audio": {"data": data, "format": mime.split("/", 1)[1]}}
    return {"type": "file", "file": {"file_data": url}}


class _CallIds:
    """Ids for function calls and their responses. Gemini CLI names its calls (`id`); most clients do not,
    and a response then belongs to the oldest unanswered call of its name, as Gemini itself pairs them."""

    def __init__(self) -> None:
        self.made = 0
        self.pending: dict[str, list[str]] = {}

    def call(self, name: str, given: Any) -> str:
        if isinstance(given, str) and given:
            call_id = given
        else:
            call_id = f"call_{self.made}_{name}"
            self.made += 1
        self.pending.setdefault(name, []).append(call_id)
        return call_id

    def response(self, name: str, given: Any) -> str:
        waiting = self.pending.get(name) or []
        if isinstance(given, str) and given:
            if given in waiting:
                waiting.remove(given)
            return given
        if waiting:
            return waiting.pop(0)
        return self.call(name, None)  # a response to a call the history left out keeps an id of its own


def _response_text(response: Any, where: str) -> str:
    """A functionResponse's `response` as a tool message's text. Google's examples and Gemini CLI put a plain
    result in `output` (and an error in `error`); those go as their text, anything else as its JSON."""
    if isinstance(response, dict) and len(response) == 1:
        (key, value), = response.items()
        if key == "output" and isinstance(value, str):
            return value
        if key == "error" and isinstance(value, str):
            return f"Error: {value}"
    return _dumps(response if response is not None else {}, where)


def _turn(content: Any, where: str, ids: _CallIds) -> list[dict]:
    """One Content as chat messages: a model turn as one assistant message, a user turn as its tool results
    (chat wants them right after the assistant's calls) and then a user message with the rest."""
    if not isinstance(content, dict):
        raise refuse(where, "a content is an object with role and parts")
    role = content.get("role") or ""
    role = ROLES.get(role) if isinstance(role, str) else None
    if role is None:
        raise refuse(f"{where}.role", "Please use a valid role: user, model.")
    parts = content.get("parts")
    if parts is None:
        parts = []
    if not isinstance(parts, list):
        raise refuse(f"{where}.parts", "Input should be a list of parts")
    texts: list[str] = []
    media: list[dict] = []
    calls: list[dict] = []
    results: list[dict] = []
    signed: list[dict] = []
    for index, part in enumerate(parts):
        at = f"{where}.parts[{index}]"
        if not isinstance(part, dict):
            raise refuse(at, "a part is an object")
        inline, file, call, response = (field(part, "inlineData"), field(part, "fileData"),
                                        field(part, "functionCall"), field(part, "functionResponse"))
        if isinstance(part.get("text"), str):
            if part.get("thought") is True:
                continue  # the model's earlier thinking means nothing to another vendor: dropped
            texts.append(part["text"])
        elif isinstance(inline, dict):
            media.append(_media_part(field(inline, "mimeType"), inline.get("data"), f"{at}.inlineData"))
        elif isinstance(file, dict):
            uri = field(file, "fileUri")
            if not isinstance(uri, str) or not uri:
                raise refuse(f"{at}.fileData.fileUri", "Field required")
            media.append({"type": "image_url", "image_url": {"url": uri}})
        elif isinstance(call, dict):
            name = call.get("name")
            if not isinstance(name, str) or not name:
                raise refuse(f"{at}.functionCall.name", "Field required")
            args = call.get("args")
            calls.append({"id": ids.call(name, call.get("id")), "type": "function", "function": {
                "name": name, "arguments": _dumps(args if args is not None else {}, f"{at}.functionCall.args")}})
            signature = field(part, "thoughtSignature")
            if is_sealed(signature):  # a Claude channel's signed thinking, sealed by relay/codecs/gemini.py
                signed.extend(unseal(signature))
            elif isinstance(signature, str) and signature:
                # Where a Gemini channel's adapter looks for it (providers/adapters/gemini/convert.py).
                calls[-1]["extra_content"] = {"google": {"thought_signature": signature}}
        elif isinstance(response, dict):
            name = response.get("name")
            if not isinstance(name, str) or not name:
                raise refuse(f"{at}.functionResponse.name", "Field required")
            results.append({"role": "tool", "tool_call_id": ids.response(name, response.get("id")),
                            "content": _response_text(response.get("response"), f"{at}.functionResponse")})
        # executableCode, codeExecutionResult and parts of shapes to come carry nothing chat can: dropped.
    if role == "model":
        if not texts and not calls:
            return []
        message: dict = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
        if signed:
            message["thinking_blocks"] = signed
        if calls:
            message["tool_calls"] = calls
        return [message]
    messages = results
    if media:
        messages.append({"role": "user", "content": [*({"type": "text", "text": t} for t in texts), *media]})
    elif texts:
        messages.append({"role": "user", "content": "\n".join(texts) if len(texts) > 1 else texts[0]})
    return messages


def _contents(contents: Any) -> list[dict]:
    if isinstance(contents, str) and contents:  # hand-written clients send the SDKs' shorthand too
        contents = [{"role": "user", "parts": [{"text": contents}]}]
    if isinstance(contents, dict):  # one Content, as some clients send it
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise refuse("contents", "contents is not specified")
    ids = _CallIds()
    messages: list[dict] = []
    for index, content in enumerate(contents):
        messages.extend(_turn(content, f"contents[{index}]", ids))
    return messages


def _system(instruction: Any) -> str:
    """systemInstruction as one text: a Content (of any role; Gemini CLI says "user"), its parts, or a string."""
    if isinstance(instruction, str):
        return instruction
    parts = instruction.get("parts") if isinstance(instruction, dict) else instruction
    if isinstance(parts, dict):
        parts = [parts]
    if not isinstance(parts, list):
        raise refuse("systemInstruction", "Input should be a content with text parts")
    return "\n\n".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


# --- tools -----------------------------------------------------------------------------------------


def json_schema(schema: Any) -> Any:
    """Gemini's Schema (an OpenAPI 3.0 subset whose types are written "STRING", "OBJECT"...) as JSON Schema.
    A JSON Schema passes through: it only loses keys Gemini's subset adds."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in SCHEMA_ONLY_KEYS:
            continue
        if key == "type" and isinstance(value, str):
            if value.upper() == "TYPE_UNSPECIFIED":
                continue
            value = value.lower()
        elif key == "type" and isinstance(value, list):
            value = [v.lower() if isinstance(v, str) else v for v in value]
        elif key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            value = {name: json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf", "not", "prefixItems", "additionalProperties"):
            value = json_schema(value)
        out[key] = value
    return out


def _declaration(declaration: Any, where: str) -> dict:
    if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str):
        raise refuse(where, "a function declaration needs a name")
    function: dict[str, Any] = {"name": declaration["name"]}
    if isinstance(declaration.get("description"), str):
        function["description"] = declaration["description"]
    schema = field(declaration, "parametersJsonSchema")
    if schema is None:
        schema = declaration.get("parameters")
    if schema is not None:
        if not isinstance(schema, dict):
            raise refuse(f"{where}.parameters", "Input should be a schema object")
        function["parameters"] = json_schema(schema)
    return {"type": "function", "function": function}


def _tools(tools: Any) -> list[dict]:
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list):
        raise refuse("tools", "Input should be a list of tools")
    out = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise refuse(f"tools[{index}]", "a tool is an object")
        declarations = field(tool, "functionDeclarations")
        if declarations is None:
            continue  # googleSearch, codeExecution, urlContext...: Google's own tools, which no other vendor runs
        if not isinstance(declarations, list):
            raise refuse(f"tools[{index}].functionDeclarations", "Input should be a list")
        out.extend(_declaration(d, f"tools[{index}].functionDeclarations[{i}]") for i, d in enumerate(declarations))
    return out


def _tool_choice(config: Any, tools: list[dict]) -> tuple[Any, list[dict]]:
    """toolConfig.functionCallingConfig as chat's tool_choice, and the tools left once allowedFunctionNames
    narrowed them (chat can force one named tool, or any of the tools it is given)."""
    calling = field(config, "functionCallingConfig") if isinstance(config, dict) else None
    if not isinstance(calling, dict):
        return None, tools
    mode = str(calling.get("mode") or "").upper()
    choice = TOOL_MODES.get(mode)
    allowed = field(calling, "allowedFunctionNames")
    if choice == "required" and isinstance(allowed, list) and allowed:
        names = {name for name in allowed if isinstance(name, str)}
        tools = [tool for tool in tools if tool["function"]["name"] in names] or tools
        if len(tools) == 1:
            choice = {"type": "function", "function": {"name": tools[0]["function"]["name"]}}
    return choice, tools


# --- generation config -----------------------------------------------------------------------------


def _number(config: dict, name: str, *, integer: bool = False) -> Any:
    value = field(config, name)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise refuse(f"generationConfig.{name}", f"Input should be {'an integer' if integer else 'a number'}")
    return value


def _reasoning_effort(thinking: Any) -> str | None:
    """Chat's effort for thinkingConfig, where it says how much to think.

    `includeThoughts` alone (which Gemini CLI sends on every request) and a dynamic budget (-1) leave it to
    the model, as a chat request without an effort does: an effort would make OpenAI refuse every request to
    a model that does not reason. A budget of 0 (no thinking) has no effort every vendor takes: dropped."""
    if not isinstance(thinking, dict):
        return None
    level = field(thinking, "thinkingLevel")
    if isinstance(level, str) and level.upper() in THINKING_LEVELS:
        return THINKING_LEVELS[level.upper()]
    budget = field(thinking, "thinkingBudget")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0:
        return None
    return next((effort for limit, effort in EFFORT_BUDGETS if budget <= limit), "high")


def _response_format(config: dict) -> dict | None:
    schema = field(config, "responseJsonSchema")
    if schema is None:
        schema = field(config, "responseSchema")
    if isinstance(schema, dict):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": json_schema(schema)}}
    if field(config, "responseMimeType") == "application/json":
        return {"type": "json_object"}
    return None  # text/plain, text/x.enum without a schema: a plain answer


def _generation_config(config: Any, chat: dict) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise refuse("generationConfig", "Input should be an object")
    count = _number(config, "candidateCount", integer=True)
    if count is not None and count != 1:
        raise refuse("generationConfig.candidateCount", "only 1 candidate can be generated through this gateway")
    for name, chat_name in (("temperature", "temperature"), ("topP", "top_p"), ("presencePenalty", "presence_penalty"),
                            ("frequencyPenalty", "frequency_penalty")):
        value = _number(config, name)
        if value is not None:
            chat[chat_name] = value
    for name, chat_name in (("topK", "top_k"), ("seed", "seed"), ("maxOutputTokens", "max_tokens")):
        value = _number(config, name, integer=True)
        if value is not None:
            chat[chat_name] = value
    if chat.get("max_tokens", 1) < 1:
        raise refuse("generationConfig.maxOutputTokens", "Input should be greater than or equal to 1")
    stop = field(config, "stopSequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise refuse("generationConfig.stopSequences", "Input should be a list of strings")
        if stop:
            chat["stop"] = stop
    response_format = _response_format(config)
    if response_format is not None:
        chat["response_format"] = response_format
    effort = _reasoning_effort(field(config, "thinkingConfig"))
    if effort is not None:
        chat["reasoning_effort"] = effort


# --- requests --------------------------------------------------------------------------------------


def decode_generate(body: dict, *, model: str, stream: bool, counting: bool = False) -> dict:
    """The chat body for a generateContent request on `model` (`counting`: for countTokens, the prompt only)."""
    chat: dict[str, Any] = {"model": model}
    messages = _contents(body.get("contents"))
    instruction = field(body, "systemInstruction")
    if instruction is not None:
        system = _system(instruction)
        if system:
            messages.insert(0, {"role": "system", "content": system})
    chat["messages"] = messages
    tools = _tools(body["tools"]) if body.get("tools") is not None else []
    if tools:
        choice, tools = _tool_choice(field(body, "toolConfig"), tools)
        chat["tools"] = tools
        if choice is not None:
            chat["tool_choice"] = choice
    if counting:
        return chat
    _generation_config(field(body, "generationConfig"), chat)
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # the usage goes into the last chunk's usageMetadata
    return chat


def decode_count(body: dict, *, model: str) -> dict:
    """countTokens: `contents` (with nothing else), or a whole `generateContentRequest` with its tools and
    system instruction."""
    request = field(body, "generateContentRequest")
    if isinstance(request, dict):
        return decode_generate(request, model=model, stream=False, counting=True)
    return decode_generate(body, model=model, stream=False, counting=True)


def _embed_text(request: Any, where: str) -> str:
    content = request.get("content") if isinstance(request, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise refuse(f"{where}.content", "a content with text parts is required")
    texts = [p.get("text") for p in parts if isinstance(p, dict)]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise refuse(f"{where}.content.parts", "only text can be embedded through this gateway")
    return "\n".join(texts)


def _dimensions(request: dict, body: dict) -> None:
    dimensions = field(request, "outputDimensionality")
    if dimensions is not None:
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
            raise refuse("outputDimensionality", "Input should be a positive integer")
        body["dimensions"] = dimensions


def decode_embed(body: dict, *, model: str, batch: bool) -> dict:
    """An embeddings body for embedContent (one text) or batchEmbedContents (a list, answered in order);
    taskType and title have no counterpart and are dropped."""
    out: dict[str, Any] = {"model": model}
    if not batch:
        out["input"] = _embed_text(body, "request")
        _dimensions(body, out)
        return out
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise refuse("requests", "Input should be a non-empty list")
    out["input"] = [_embed_text(request, f"requests[{i}]") for i, request in enumerate(requests)]
    _dimensions(requests[0], out)  # one call gives one size: the first request's says which
    return out
