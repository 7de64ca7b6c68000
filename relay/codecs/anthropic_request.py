"""Anthropic's Messages request as the relay's internal chat body (relay/codecs/anthropic.py answers it).

What chat can carry is converted; what it cannot and changes nothing of the answer's meaning (prompt-cache
marks, server tools, context management, beta-only fields) is dropped, because Claude Code sends such
fields on every request and must never be refused for them. A shape Anthropic itself would refuse (no
`max_tokens`, a role that does not exist) is refused with Anthropic's 400.
"""

from __future__ import annotations

from typing import Any

import orjson

from relay.errors import bad_request

ROLES = ("user", "assistant", "system")
WRITE_NESTING = 255  # how deep orjson writes (the client's JSON may be read 1024 levels deep)
# `thinking.budget_tokens` to chat's `reasoning_effort`: the budget a vendor's effort level roughly spends.
EFFORT_BUDGETS = ((4096, "low"), (16384, "medium"))
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _refuse(where: str, message: str):
    return bad_request(f"{where}: {message}", param=where)


def _cannot_convert(err, skipped: list | None) -> None:
    """A block chat cannot carry: refused, or, when decoding for a channel that may take the Messages body as
    it is (`skipped` collects them), left out of the chat body and kept as the refusal a conversion gives."""
    if skipped is None:
        raise err
    skipped.append(err)


def too_deep(where: str):
    return _refuse(where, f"nested deeper than {WRITE_NESTING} levels, which no upstream request can carry")


def _arguments(value: Any, where: str) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        raise too_deep(where) from None


def _text_of(blocks: Any, where: str) -> str:
    """A system prompt or a tool result given as a string or as text blocks, as one string."""
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise _refuse(where, "Input should be a string or a list of text blocks")
    texts = []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or not isinstance(block.get("text"), str):
            raise _refuse(f"{where}.{index}", "Input should be a text block")
        texts.append(block["text"])
    return "\n\n".join(texts)


def _image(block: dict, where: str, skipped: list | None = None) -> dict | None:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source.get("data"), str) and isinstance(source.get("media_type"), str):
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        _cannot_convert(_refuse(f"{where}.source", "an image source is {type: base64, media_type, data} or "
                                                   "{type: url, url}"), skipped)
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: dict, where: str, skipped: list | None) -> tuple[dict, list[dict]]:
    """The chat `tool` message for a tool_result, and the images it held (a tool message carries only text)."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise _refuse(f"{where}.tool_use_id", "Field required")
    content = block.get("content")
    images: list[dict] = []
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image":
                image = _image(part, f"{where}.content.{index}", skipped)
                images.extend([image] if image else [])
            else:
                _cannot_convert(_refuse(f"{where}.content.{index}", "a tool result holds text and image blocks"),
                                skipped)
        text = "\n\n".join(texts)
    else:
        raise _refuse(f"{where}.content", "Input should be a string or a list of blocks")
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"  # chat has no flag for a failed tool call
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _user(content: list, where: str, skipped: list | None) -> list[dict]:
    """A user turn: its tool results first (chat wants them right after the assistant's calls), then the rest."""
    results: list[dict] = []
    parts: list[dict] = []
    for index, block in enumerate(content):
        at = f"{where}.{index}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise _refuse(f"{at}.text", "Input should be a valid string")
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            image = _image(block, at, skipped)
            parts.extend([image] if image else [])
        elif kind == "tool_result":
            message, images = _tool_result(block, at, skipped)
            results.append(message)
            parts.extend(images)
        elif kind == "document" and isinstance(block.get("source"), dict) and block["source"].get("type") == "text":
            parts.append({"type": "text", "text": str(block["source"].get("data", ""))})
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            _cannot_convert(_refuse(at, f"content blocks of type {kind!r} cannot be sent to this model through this "
                                        f"gateway"), skipped)
    if parts:
        results.append({"role": "user", "content": parts})
    elif not results and skipped:
        results.append({"role": "user", "content": ""})  # a turn of blocks only Messages carries: kept as a turn
    return results


def _assistant(content: list, where: str) -> dict:
    texts: list[str] = []
    calls: list[dict] = []
    for index, block in enumerate(content):
        at = f"{where}.{index}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise _refuse(f"{at}.text", "Input should be a valid string")
            texts.append(block["text"])
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise _refuse(at, "a tool_use block needs an id and a name")
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"],
                                       "arguments": _arguments(block.get("input") or {}, f"{at}.input")}})
        # Thinking, and the blocks of Anthropic's server tools, mean nothing to another vendor: dropped.
    message: dict = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _messages(messages: Any, skipped: list | None = None) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise _refuse("messages", "Input should be a non-empty list")
    out: list[dict] = []
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise _refuse(where, "Input should be an object")
        role = message.get("role")
        if role not in ROLES:
            raise _refuse(f"{where}.role", "Input should be 'user' or 'assistant'")
        content = message.get("content")
        if role == "system":  # Claude Code puts some of its instructions here
            out.append({"role": "system", "content": _text_of(content, f"{where}.content")})
        elif isinstance(content, str):
            out.append({"role": role, "content": content})
        elif not isinstance(content, list):
            raise _refuse(f"{where}.content", "Input should be a string or a list of content blocks")
        elif role == "user":
            out.extend(_user(content, f"{where}.content", skipped))
        else:
            out.append(_assistant(content, f"{where}.content"))
    return out


def _tools(tools: Any) -> list[dict]:
    if not isinstance(tools, list):
        raise _refuse("tools", "Input should be a list")
    out = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _refuse(f"tools.{index}", "Input should be an object")
        schema = tool.get("input_schema")
        if schema is None:
            continue  # a server tool (web search, code execution...): Anthropic's own, no other vendor runs it
        if not isinstance(tool.get("name"), str) or not isinstance(schema, dict):
            raise _refuse(f"tools.{index}", "a tool needs a name and an input_schema object")
        function = {"name": tool["name"], "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> str | dict | None:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in TOOL_CHOICES:
        return TOOL_CHOICES[kind]
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _refuse("tool_choice", "Input should be {type: auto | any | none} or {type: tool, name}")


def _reasoning_effort(thinking: Any) -> str | None:
    """Chat's effort for Anthropic's `thinking`, when the client asked for a budget.

    Adaptive thinking leaves it to the model whether to think at all, which is what a chat request without
    `reasoning_effort` asks of a reasoning model; sending an effort would also make OpenAI refuse every
    request to a model that does not reason, and Claude Code sends adaptive thinking with each one."""
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        return "medium"
    return next((effort for limit, effort in EFFORT_BUDGETS if budget <= limit), "high")


def _max_tokens(body: dict) -> int:
    value = body.get("max_tokens")
    if value is None:
        raise _refuse("max_tokens", "Field required")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _refuse("max_tokens", "Input should be an integer greater than or equal to 1")
    return value


def decode_request(body: dict, *, counting: bool = False, skipped: list | None = None) -> dict:
    """The chat body for a Messages request (`counting`: a count_tokens request, which has no max_tokens).
    With `skipped`, blocks chat cannot carry are left out and their refusals added to it (for a request
    that may still go as it is to a channel that speaks Messages)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _refuse("model", "Field required")
    chat: dict = {"model": model}
    messages = _messages(body.get("messages"), skipped)
    system = body.get("system")
    if system is not None and system != "" and system != []:
        messages.insert(0, {"role": "system", "content": _text_of(system, "system")})
    chat["messages"] = messages
    if not counting:
        chat["max_tokens"] = _max_tokens(body)
    tools = _tools(body["tools"]) if body.get("tools") is not None else []
    if tools:
        chat["tools"] = tools
        choice = body.get("tool_choice")
        if choice is not None:
            chat["tool_choice"] = _tool_choice(choice)
            if choice.get("disable_parallel_tool_use") is True and chat["tool_choice"] != "none":
                chat["parallel_tool_calls"] = False
    if counting:
        return chat
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _refuse("stop_sequences", "Input should be a list of strings")
        if stop:
            chat["stop"] = stop
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            chat[name] = body[name]  # relay/shapes.py checks their types as for any chat request
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # the usage goes into message_delta
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    effort = _reasoning_effort(body.get("thinking"))
    if effort is not None:
        chat["reasoning_effort"] = effort
    return chat
