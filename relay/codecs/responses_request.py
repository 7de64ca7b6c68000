"""OpenAI's Responses request as the relay's internal chat body (relay/codecs/responses.py answers it).

The bridge carries what chat can: input messages and items, instructions, function tools, custom (free-form)
tools as functions of one string, tool choice, sampling, the output limit, reasoning effort and a JSON-schema
format, and Claude's signed thinking sealed in a reasoning item's encrypted_content (relay/codecs/signed_thinking.py).
What chat cannot carry and that changes nothing of the answer's meaning is dropped: other reasoning items a
client sends back, OpenAI's hosted tools (web search, file search...), `include`, `prompt_cache_key`,
`client_metadata`, `metadata`. Codex CLI sends all of these on every turn and must never be refused for them.
What needs a response stored at OpenAI (`previous_response_id`, conversations, stored prompts, background runs)
cannot be bridged: a 400 that says so.
"""

from __future__ import annotations

from typing import Any

import orjson

from relay.codecs.signed_thinking import unseal
from relay.errors import bad_request

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TOOL_CHOICES = ("auto", "none", "required")
# Input items with nothing chat can carry: the model's own reasoning (encrypted or summarised for OpenAI's
# models only), and the calls of tools that run at OpenAI or that chat has no shape for, which are dropped
# with their outputs so that no call is left unanswered.
DROPPED_ITEMS = frozenset({
    "reasoning", "compaction", "web_search_call", "file_search_call", "computer_call", "computer_call_output",
    "code_interpreter_call", "image_generation_call", "local_shell_call", "local_shell_call_output",
    "shell_call", "shell_call_output", "apply_patch_call", "apply_patch_call_output", "mcp_call",
    "mcp_list_tools", "mcp_approval_request", "mcp_approval_response", "tool_search_call",
    "tool_search_output",
})
# Fields that name something OpenAI stored; a gateway bridging through chat keeps nothing.
STORED = ("previous_response_id", "conversation", "prompt")
# What only a channel that serves Responses natively can take (relay/codecs/responses.py, decode_native).
NATIVE_ONLY = STORED
# A custom tool is a chat function with this one string parameter; its answer's `input` is that string.
CUSTOM_INPUT = "input"
# A grammar longer than this is named, not quoted: the description would crowd the prompt (Codex's
# apply_patch grammar is about 700 characters).
GRAMMAR_QUOTED = 4000
STORED_HINT = ("this gateway answers /v1/responses through chat completions and stores no responses; "
               "it needs a channel that serves the Responses API natively")


def _refuse(where: str, message: str):
    return bad_request(f"{where}: {message}", param=where.split(".")[0].split("[")[0])


def background_refusal():
    # A background run answers "queued" with no usage and is fetched later through GET /v1/responses/{id}, which
    # is not billed: passed through, its whole answer would cost a local count of the prompt.
    return _refuse("background", "not available through this gateway: a background run is billed when it "
                                 "finishes, which the gateway does not see; send the request without it")


def stored_refusal(where: str):
    return _refuse(where, f"not available: {STORED_HINT}")


def flat_name(namespace: str, name: str) -> str:
    """A namespaced function's name as one chat function name (Codex joins the two with `__` as well)."""
    return f"{namespace.rstrip('_')}__{name.lstrip('_')}"


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _refuse(where, "Input should be a valid string")
    return value


def _image(part: dict, where: str) -> dict:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        # A file id points into OpenAI's file store, which no other vendor can read.
        raise _refuse(f"{where}.image_url", "an image is sent by its URL or as a data URL through this gateway")
    image = {"url": url}
    if isinstance(part.get("detail"), str):
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _file(part: dict, where: str) -> dict:
    fields = {name: part[name] for name in ("file_data", "file_id", "filename") if isinstance(part.get(name), str)}
    if "file_data" not in fields and "file_id" not in fields:
        raise _refuse(where, "a file is sent as file_data (or a file_id the channel knows) through this gateway")
    return {"type": "file", "file": fields}


def _parts(content: list, where: str) -> list[dict]:
    """A message's content parts as chat's; text of any kind becomes a text part."""
    parts: list[dict] = []
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            parts.append({"type": "text", "text": _text(part.get("text"), f"{at}.text")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": _text(part.get("refusal"), f"{at}.refusal")})
        elif kind == "input_image":
            parts.append(_image(part, at))
        elif kind == "input_file":
            parts.append(_file(part, at))
        else:
            raise _refuse(at, f"content parts of type {kind!r} cannot be sent through this gateway")
    return parts


def _joined(parts: list[dict], where: str, separator: str) -> str:
    if any(part["type"] != "text" for part in parts):
        raise _refuse(where, "only text can be sent in this role")
    return separator.join(part["text"] for part in parts)


def _message(item: dict, where: str) -> dict:
    role = item.get("role")
    role = ROLES.get(role) if isinstance(role, str) else None
    if role is None:
        raise _refuse(f"{where}.role", "Input should be 'user', 'assistant', 'system' or 'developer'")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _refuse(f"{where}.content", "Input should be a string or a list of content parts")
    parts = _parts(content, f"{where}.content")
    if role == "system":  # many vendors take a system prompt only as text
        return {"role": role, "content": _joined(parts, f"{where}.content", "\n\n")}
    if role == "assistant":
        return {"role": role, "content": _joined(parts, f"{where}.content", "")}
    if len(parts) == 1 and parts[0]["type"] == "text":
        return {"role": role, "content": parts[0]["text"]}
    return {"role": role, "content": parts}


def _call(item: dict, where: str) -> dict:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise _refuse(where, "a function_call item needs a call_id and a name")
    arguments = item.get("arguments")
    if arguments is None:
        arguments = "{}"
    elif not isinstance(arguments, str):
        raise _refuse(f"{where}.arguments", "Input should be a string of JSON")
    namespace = item.get("namespace")
    if isinstance(namespace, str) and namespace:
        name = flat_name(namespace, name)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _custom_call(item: dict, where: str) -> dict:
    """A custom_tool_call as the call of the chat function its tool became (its input as that one string)."""
    call_id, name, text = item.get("call_id"), item.get("name"), item.get("input")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise _refuse(where, "a custom_tool_call item needs a call_id and a name")
    if not isinstance(text, str):
        raise _refuse(f"{where}.input", "Input should be a valid string")
    arguments = orjson.dumps({CUSTOM_INPUT: text}).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _call_output(item: dict, where: str) -> tuple[dict, list[dict]]:
    """The chat `tool` message for a function_call_output, and the images it held (a tool message is text)."""
    call_id = item.get("call_id")
    if not isinstance(call_id, str):
        raise _refuse(f"{where}.call_id", "Field required")
    output = item.get("output")
    if isinstance(output, str):
        return {"role": "tool", "tool_call_id": call_id, "content": output}, []
    if not isinstance(output, list):
        raise _refuse(f"{where}.output", "Input should be a string or a list of content parts")
    parts = _parts(output, f"{where}.output")
    text = "\n\n".join(part["text"] for part in parts if part["type"] == "text")
    return {"role": "tool", "tool_call_id": call_id, "content": text}, [p for p in parts if p["type"] != "text"]


def _input(value: Any) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise _refuse("input", "Input should be a string or a list of items")
    messages: list[dict] = []
    held: list[dict] = []  # images returned by tools, sent once the tool messages of that turn are done
    dropped: set[str] = set()  # the call ids of dropped calls, whose outputs go with them
    signed: list[dict] = []  # signed thinking from reasoning items, for the assistant turn they came before

    def release() -> None:
        if held:
            messages.append({"role": "user", "content": list(held)})
            held.clear()

    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise _refuse(where, "Input should be an object")
        kind = item.get("type")
        if kind is not None and not isinstance(kind, str):
            raise _refuse(f"{where}.type", "Input should be a valid string")
        if kind == "reasoning":
            # The signed thinking of a Claude channel, sealed by relay/codecs/responses.py; OpenAI's own
            # encrypted reasoning, which no chat channel reads, is dropped with the item.
            signed.extend(unseal(item.get("encrypted_content")))
        if kind in DROPPED_ITEMS:
            if isinstance(item.get("call_id"), str):
                dropped.add(item["call_id"])
            continue
        if kind in ("function_call_output", "custom_tool_call_output"):
            if isinstance(item.get("call_id"), str) and item["call_id"] in dropped:
                continue  # Codex answers a local shell call with a function_call_output
            message, images = _call_output(item, where)
            messages.append(message)
            held.extend(images)
            continue
        release()
        if kind is None or kind == "message":
            message = _message(item, where)
            if message["role"] == "assistant" and signed:
                message["thinking_blocks"], signed = signed, []
            elif message["role"] != "system":
                signed = []  # thinking belongs to the assistant turn right after it
            messages.append(message)
        elif kind in ("function_call", "custom_tool_call"):
            call = _call(item, where) if kind == "function_call" else _custom_call(item, where)
            last = messages[-1] if messages else None
            # Chat has the calls of one turn on one assistant message, right before their results.
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            if signed:
                messages[-1]["thinking_blocks"], signed = signed, []
        elif kind == "item_reference":
            raise stored_refusal(f"{where}.id")
        else:
            raise _refuse(f"{where}.type", f"input items of type {kind!r} cannot be sent through this gateway")
    release()
    return messages


def _function(tool: dict, where: str, namespace: str | None = None) -> dict:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise _refuse(f"{where}.name", "Field required")
    function: dict = {"name": flat_name(namespace, name) if namespace else name}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    parameters = tool.get("parameters")
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise _refuse(f"{where}.parameters", "Input should be a JSON schema object")
        function["parameters"] = parameters
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _grammar_note(fmt: Any) -> str:
    """What a custom tool's input must look like, for the model that sees only a string parameter."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind != "grammar":
        return "The tool's whole input, as free-form text."
    syntax = fmt.get("syntax") if isinstance(fmt.get("syntax"), str) else "grammar"
    definition = fmt.get("definition")
    if isinstance(definition, str) and len(definition) <= GRAMMAR_QUOTED:
        return f"The tool's whole input as raw text (not JSON), matching this {syntax} grammar:\n{definition}"
    return f"The tool's whole input as raw text (not JSON), in the {syntax} grammar the tool describes."


def _custom(tool: dict, where: str) -> dict:
    """A custom tool as a chat function of one string: chat has no free-form tools, every vendor has functions."""
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise _refuse(f"{where}.name", "Field required")
    function: dict = {"name": name}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    function["parameters"] = {
        "type": "object", "additionalProperties": False, "required": [CUSTOM_INPUT],
        "properties": {CUSTOM_INPUT: {"type": "string", "description": _grammar_note(tool.get("format"))}}}
    return {"type": "function", "function": function}


def _tools(tools: Any) -> list[dict]:
    """Chat's function tools for a Responses request's tools."""
    if not isinstance(tools, list):
        raise _refuse("tools", "Input should be a list")
    out: list[dict] = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise _refuse(where, "Input should be an object")
        kind = tool.get("type")
        if kind == "function":
            out.append(_function(tool, where))
        elif kind == "custom":
            out.append(_custom(tool, where))
        elif kind == "namespace":
            namespace, members = tool.get("name"), tool.get("tools")
            if not isinstance(namespace, str) or not isinstance(members, list):
                raise _refuse(where, "a namespace tool needs a name and a list of tools")
            for position, member in enumerate(members):
                if isinstance(member, dict) and member.get("type") == "function":
                    out.append(_function(member, f"{where}.tools[{position}]", namespace))
        # Hosted tools (web_search, file_search, code_interpreter, image_generation, mcp...) run at OpenAI:
        # no other vendor can take them.
    return out


def namespaced_names(tools: Any) -> dict[str, tuple[str, str]]:
    """The (namespace, name) of each namespace function by the flat name chat knows it by."""
    names: dict[str, tuple[str, str]] = {}
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict) and tool.get("type") == "namespace" and isinstance(tool.get("name"), str):
            for member in tool.get("tools") or ():
                name = member.get("name") if isinstance(member, dict) and member.get("type") == "function" else None
                if isinstance(name, str):
                    names[flat_name(tool["name"], name)] = (tool["name"], name)
    return names


def custom_names(tools: Any) -> frozenset[str]:
    """The names of the request's custom tools, whose chat calls go back as custom_tool_call items."""
    return frozenset(tool["name"] for tool in tools if isinstance(tool, dict) and tool.get("type") == "custom"
                     and isinstance(tool.get("name"), str)) if isinstance(tools, list) else frozenset()


def _tool_choice(choice: Any, names: set[str]) -> str | dict | None:
    """Chat's tool_choice; None where the chosen tool was dropped (the model then chooses, as with auto)."""
    if choice in TOOL_CHOICES:
        return choice
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        name = choice["name"]
        if isinstance(choice.get("namespace"), str):
            name = flat_name(choice["namespace"], name)
        return {"type": "function", "function": {"name": name}} if name in names else None
    if kind == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    if kind is None:
        raise _refuse("tool_choice", "Input should be 'auto', 'none', 'required' or a tool choice object")
    return None


def _response_format(text: Any) -> dict | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema":
        schema = {"name": fmt.get("name") or "response", "schema": fmt.get("schema")}
        for name in ("description", "strict"):
            if fmt.get(name) is not None:
                schema[name] = fmt[name]
        return {"type": "json_schema", "json_schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def _positive(body: dict, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _refuse(name, "Input should be an integer greater than or equal to 1")
    return value


def _instructions(value: Any) -> list[dict]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [{"role": "system", "content": value}]
    return _input(value)  # a list of input items, as a Response echoes them


def decode(body: dict, *, counting: bool = False) -> dict:
    """The chat body for a Responses request (`counting`: only what its prompt is counted from)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _refuse("model", "Field required")
    for name in STORED:
        if body.get(name) is not None:
            raise stored_refusal(name)
    if body.get("background") is True:
        raise background_refusal()
    messages = _instructions(body.get("instructions")) + _input(body.get("input", []))
    if not messages:
        raise _refuse("input", "Field required")
    chat: dict = {"model": model, "messages": messages}
    if body.get("tools") is not None:
        tools = _tools(body["tools"])
        if tools:
            chat["tools"] = tools
            if body.get("tool_choice") is not None:
                choice = _tool_choice(body["tool_choice"], {t["function"]["name"] for t in tools})
                if choice is not None:
                    chat["tool_choice"] = choice
            if isinstance(body.get("parallel_tool_calls"), bool):
                chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    if counting:
        return chat
    max_tokens = _positive(body, "max_output_tokens")
    if max_tokens is not None:
        chat["max_tokens"] = max_tokens
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]  # relay/shapes.py checks their types as for any chat request
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        chat["reasoning_effort"] = reasoning["effort"]
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        chat["user"] = user
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # the usage goes into response.completed
    return chat
