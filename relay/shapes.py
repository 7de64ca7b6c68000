"""The types of the OpenAI request fields the adapters read, checked once before any adapter sees a body.

OpenAI refuses a body whose fields have the wrong JSON type (a message that is a number, `stop: 5`,
a tool that is null) with a 400; so does the relay, here, instead of each vendor's conversion meeting
them one by one. Only types are checked: what a vendor accepts within them stays the adapter's call.
Fields OpenAI does not document, or documents as free-form, pass untouched.
"""

from __future__ import annotations

from typing import Any

from relay.errors import bad_request

INTEGERS = ("n", "seed", "top_k", "max_completion_tokens", "top_logprobs", "dimensions", "top_n",
            "max_tokens_per_doc", "num_ctx", "best_of")
NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty", "speed")
STRINGS = ("user", "size", "quality", "style", "encoding_format", "input_type", "negative_prompt", "language",
           "lang", "suffix", "tool_call_id")
OBJECTS = ("stream_options", "logit_bias", "metadata")
MAX_N = 128  # OpenAI's own ceiling on `n` for chat and completions


class _Refused(Exception):
    def __init__(self, where: str, wanted: str):
        self.where, self.wanted = where, wanted


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _want(ok: bool, where: str, wanted: str) -> None:
    if not ok:
        raise _Refused(where, wanted)


def _optional(body: dict, name: str, test, wanted: str, where: str = "") -> None:
    value = body.get(name)
    if value is not None:
        _want(test(value), f"{where}{name}", wanted)


def _string_list(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _token_input(value: Any) -> bool:
    """A prompt or an embeddings input: text, texts, token ids, or lists of token ids."""
    if isinstance(value, str):
        return True
    if not isinstance(value, list):
        return False
    return (all(isinstance(v, str) for v in value) or all(_is_int(v) for v in value)
            or all(isinstance(v, list) and all(_is_int(t) for t in v) for v in value))


def _content(content: Any, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    _want(isinstance(content, list), where, "a string or an array of content parts")
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        _want(isinstance(part, dict), at, "an object")
        _optional(part, "type", lambda v: isinstance(v, str), "a string", f"{at}.")
        _optional(part, "text", lambda v: isinstance(v, str), "a string", f"{at}.")
        image = part.get("image_url")
        if image is not None:
            _want(isinstance(image, str) or isinstance(image, dict), f"{at}.image_url", "an object with a url")
            if isinstance(image, dict):
                _want(isinstance(image.get("url"), str), f"{at}.image_url.url", "a string")
                _optional(image, "detail", lambda v: isinstance(v, str), "a string", f"{at}.image_url.")
        audio = part.get("input_audio")
        if audio is not None:
            _want(isinstance(audio, dict), f"{at}.input_audio", "an object")
            _optional(audio, "data", lambda v: isinstance(v, str), "a string", f"{at}.input_audio.")
            _optional(audio, "format", lambda v: isinstance(v, str), "a string", f"{at}.input_audio.")


def _function(fn: Any, where: str, *, call: bool) -> None:
    """A function a tool declares (name, description, parameters) or a call names (name, arguments)."""
    _want(isinstance(fn, dict), where, "an object")
    _optional(fn, "name", lambda v: isinstance(v, str), "a string", f"{where}.")
    if call:
        _optional(fn, "arguments", lambda v: isinstance(v, str), "a string of JSON", f"{where}.")
    else:
        _optional(fn, "description", lambda v: isinstance(v, str), "a string", f"{where}.")
        _optional(fn, "parameters", lambda v: isinstance(v, dict), "a JSON schema object", f"{where}.")


def _message(message: Any, where: str) -> None:
    _want(isinstance(message, dict), where, "an object")
    _want(isinstance(message.get("role"), str), f"{where}.role", "a string")
    _content(message.get("content"), f"{where}.content")
    _optional(message, "name", lambda v: isinstance(v, str), "a string", f"{where}.")
    _optional(message, "tool_call_id", lambda v: isinstance(v, str), "a string", f"{where}.")
    calls = message.get("tool_calls")
    if calls is not None:
        _want(isinstance(calls, list), f"{where}.tool_calls", "an array")
        for index, call in enumerate(calls):
            at = f"{where}.tool_calls[{index}]"
            _want(isinstance(call, dict), at, "an object")
            _optional(call, "id", lambda v: isinstance(v, str), "a string", f"{at}.")
            _optional(call, "type", lambda v: isinstance(v, str), "a string", f"{at}.")
            if call.get("function") is not None:
                _function(call["function"], f"{at}.function", call=True)
    if message.get("function_call") is not None:
        _function(message["function_call"], f"{where}.function_call", call=True)


def _chat(body: dict) -> None:
    for index, message in enumerate(body["messages"]):
        _message(message, f"messages[{index}]")
    tools = body.get("tools")
    if tools is not None:
        _want(isinstance(tools, list), "tools", "an array")
        for index, tool in enumerate(tools):
            _want(isinstance(tool, dict), f"tools[{index}]", "an object")
            _optional(tool, "type", lambda v: isinstance(v, str), "a string", f"tools[{index}].")
            if tool.get("function") is not None:
                _function(tool["function"], f"tools[{index}].function", call=False)
    functions = body.get("functions")
    if functions is not None:
        _want(isinstance(functions, list), "functions", "an array")
        for index, fn in enumerate(functions):
            _function(fn, f"functions[{index}]", call=False)
    choice = body.get("tool_choice")
    if choice is not None:
        _want(isinstance(choice, (str, dict)), "tool_choice", "a string or an object")
        if isinstance(choice, dict) and choice.get("function") is not None:
            _function(choice["function"], "tool_choice.function", call=False)
    _optional(body, "function_call", lambda v: isinstance(v, (str, dict)), "a string or an object")
    fmt = body.get("response_format")
    if fmt is not None:
        _want(isinstance(fmt, dict), "response_format", "an object")
        _optional(fmt, "type", lambda v: isinstance(v, str), "a string", "response_format.")
        schema = fmt.get("json_schema")
        if schema is not None:
            _want(isinstance(schema, dict), "response_format.json_schema", "an object")
            _optional(schema, "schema", lambda v: isinstance(v, dict), "an object", "response_format.json_schema.")


def _documents(documents: list) -> None:
    for index, doc in enumerate(documents):
        _want(isinstance(doc, str) or (isinstance(doc, dict) and isinstance(doc.get("text", ""), str)),
              f"documents[{index}]", "a string or an object with a text")


def check(mode: str, body: dict) -> None:
    """Refuse, as a 400 naming the field, a body whose documented fields have the wrong type."""
    try:
        for name in INTEGERS:
            _optional(body, name, _is_int, "an integer")
        for name in NUMBERS:
            _optional(body, name, _is_number, "a number")
        for name in STRINGS:
            _optional(body, name, lambda v: isinstance(v, str), "a string")
        for name in OBJECTS:
            _optional(body, name, lambda v: isinstance(v, dict), "an object")
        _optional(body, "stop", _string_list, "a string or an array of strings")
        _optional(body, "voice", lambda v: isinstance(v, (str, dict)), "a string")
        if mode in ("chat", "completions"):
            _optional(body, "n", lambda v: 1 <= v <= MAX_N, f"between 1 and {MAX_N}")
        if mode == "chat":
            _chat(body)
        elif mode == "completions":
            _want(_token_input(body["prompt"]), "prompt", "a string, an array of strings or token ids")
        elif mode == "embeddings":
            _want(_token_input(body["input"]), "input", "a string, an array of strings or token ids")
        elif mode == "moderations":
            value = body["input"]
            _want(_string_list(value) or (isinstance(value, list) and all(isinstance(v, dict) for v in value)),
                  "input", "a string, an array of strings or of content parts")
        elif mode == "rerank":
            _documents(body["documents"])
        elif mode in ("images", "speech"):
            _optional(body, "response_format", lambda v: isinstance(v, str), "a string")
    except _Refused as refused:
        param = refused.where.split("[")[0].split(".")[0]
        raise bad_request(f"`{refused.where}` must be {refused.wanted}.", param=param) from None
