"""OpenAI requests in Gemini's form: generateContent and batchEmbedContents bodies.

Field references: https://ai.google.dev/api/generate-content#request-body (contents, systemInstruction,
tools, toolConfig, safetySettings, generationConfig) and https://ai.google.dev/api/caching#Schema.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from typing import Any
from urllib.parse import unquote_to_bytes

import aiohttp
import orjson

from providers.adapters.base import UpstreamError
from providers.adapters.inline_images import inline_images

IMAGE_LIMIT = 20 * 1024 * 1024  # Gemini's inline-data ceiling for one request

# one-api sends every category at GEMINI_SAFETY_SETTING, BLOCK_NONE by default: the gateway's
# operator, not Google's defaults, decides what to filter.
SAFETY_SETTINGS = [
    {"category": category, "threshold": "BLOCK_NONE"}
    for category in ("HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_HATE_SPEECH", "HARM_CATEGORY_SEXUALLY_EXPLICIT",
                     "HARM_CATEGORY_DANGEROUS_CONTENT", "HARM_CATEGORY_CIVIC_INTEGRITY")
]

TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}

# Gemini's Schema is an OpenAPI 3.0 subset and rejects unknown keys ("Invalid JSON payload received.
# Unknown name additionalProperties"), so tool parameters and response schemas keep only these.
SCHEMA_KEYS = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
               "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
               "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum"}
STRING_FORMATS = {"enum", "date-time"}  # the only string formats Gemini accepts

# https://ai.google.dev/gemini-api/docs/thought-signatures: Gemini 3 refuses a history whose function
# calls lack their signature; for calls made elsewhere (or whose signature the client dropped) Google
# documents this placeholder.
PLACEHOLDER_SIGNATURE = "skip_thought_signature_validator"

# Files API URIs are Gemini's own and go as fileData; every other URL is fetched and inlined.
FILES_API = re.compile(r"^https://generativelanguage\.googleapis\.com/v1[a-z0-9]*/files/")
DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.S)


def invalid(message: str, code: str = "invalid_request", *, param: str | None = None) -> UpstreamError:
    body = {"message": message, "type": "invalid_request_error", "code": code, "param": param}
    return UpstreamError(status=400, message=message, type="invalid_request_error", code=code, param=param,
                         error_body=body)


# --- images ------------------------------------------------------------------------------------


async def inline_remote_images(body: dict, session: aiohttp.ClientSession) -> dict:
    """Gemini's fileData takes only uploaded-file URIs, so other http(s) images are fetched here and sent
    inline (bounded per request and per process: providers/adapters/inline_images.py)."""
    return await inline_images(body, session, fetchable=lambda url: not FILES_API.match(url), limit=IMAGE_LIMIT)


def data_part(url: str) -> dict:
    match = DATA_URL.match(url)
    if not match:
        raise invalid("An image or file data URL is malformed.", "invalid_image_url")
    mime = match["mime"] or "application/octet-stream"
    data = match["data"]
    if ";base64" not in (match["params"] or ""):
        data = base64.b64encode(unquote_to_bytes(data)).decode()
    return {"inlineData": {"mimeType": mime, "data": data}}


def content_parts(content: Any) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict] = []
    for item in content if isinstance(content, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "text" and item.get("text"):
            parts.append({"text": item["text"]})
        elif kind == "image_url":
            image = item.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                continue
            if url.startswith("data:"):
                parts.append(data_part(url))
            else:  # a Files API URI (open() inlines every other URL)
                parts.append({"fileData": {"fileUri": url, "mimeType": guess_mime(url)}})
        elif kind == "input_audio" and isinstance(item.get("input_audio"), dict):
            audio = item["input_audio"]
            parts.append({"inlineData": {"mimeType": f"audio/{audio.get('format') or 'wav'}",
                                         "data": audio.get("data") or ""}})
        elif kind == "file" and isinstance(item.get("file"), dict) \
                and str(item["file"].get("file_data") or "").startswith("data:"):
            parts.append(data_part(item["file"]["file_data"]))
    return parts


def guess_mime(url: str) -> str:
    return mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg"


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


# --- schemas and tools -------------------------------------------------------------------------


def gemini_schema(schema: Any) -> Any:
    """A JSON Schema cut down to the keys Gemini's Schema object knows."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "const":
            out["enum"] = [value]
            continue
        if key not in SCHEMA_KEYS:
            continue
        if key == "type" and isinstance(value, list):  # ["string", "null"] -> nullable string
            kinds = [k for k in value if k != "null"]
            if len(kinds) < len(value):
                out["nullable"] = True
            value = kinds[0] if kinds else "string"
        elif key == "properties" and isinstance(value, dict):
            value = {name: gemini_schema(sub) for name, sub in value.items()}
        elif key == "items":
            value = gemini_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            value = [gemini_schema(sub) for sub in value]
        out[key] = value
    if out.get("type") == "string" and "format" in out and out["format"] not in STRING_FORMATS:
        del out["format"]
    if "enum" in out and isinstance(out["enum"], list):
        out["enum"] = [str(v) for v in out["enum"]]  # Gemini enums are strings only
    return out


def function_declarations(body: dict) -> list[dict]:
    functions = [t["function"] for t in body.get("tools") or () if isinstance(t, dict)
                 and t.get("type", "function") == "function" and isinstance(t.get("function"), dict)]
    functions += [f for f in body.get("functions") or () if isinstance(f, dict)]  # legacy `functions`
    declarations = []
    for function in functions:
        declaration: dict[str, Any] = {"name": function.get("name") or ""}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        # An OBJECT with no properties is refused ("properties: should be non-empty"): send none.
        if isinstance(parameters, dict) and parameters.get("properties"):
            declaration["parameters"] = gemini_schema(parameters)
        declarations.append(declaration)
    return declarations


def tool_config(choice: Any) -> dict | None:
    if isinstance(choice, str) and choice in TOOL_MODES:
        return {"functionCallingConfig": {"mode": TOOL_MODES[choice]}}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else choice.get("name")
        if name:
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


def tool_response(content: Any) -> dict:
    """functionResponse.response must be a JSON object; Google's examples put plain results in `output`."""
    if isinstance(content, dict):
        return content
    text = text_of(content)
    try:
        value = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return {"output": text}
    return value if isinstance(value, dict) else {"output": value}


def call_args(arguments: Any) -> dict:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def needs_signatures(model: str) -> bool:
    match = re.match(r"gemini-(\d+)", model)
    return bool(match) and int(match[1]) >= 3


# --- the request -------------------------------------------------------------------------------


def chat_request(body: dict, model: str) -> dict:
    system: list[dict] = []
    contents: list[dict] = []
    call_names: dict[str, str] = {}
    sign = needs_signatures(model)

    def add(role: str, parts: list[dict]) -> None:
        # Parallel calls' results must come back in one turn, so consecutive same-role turns merge.
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            text = text_of(message.get("content"))
            if text:
                system.append({"text": text})
        elif role in ("tool", "function"):
            name = call_names.get(message.get("tool_call_id") or "") or message.get("name") or ""
            add("user", [{"functionResponse": {"name": name, "response": tool_response(message.get("content"))}}])
        elif role == "assistant":
            parts = content_parts(message.get("content"))
            calls = [c for c in message.get("tool_calls") or () if isinstance(c, dict)]
            if isinstance(message.get("function_call"), dict):
                calls.append({"id": "", "function": message["function_call"]})
            signed = False
            for call in calls:
                function = call.get("function") or {}
                call_names[call.get("id") or ""] = function.get("name") or ""
                part: dict[str, Any] = {"functionCall": {"name": function.get("name") or "",
                                                         "args": call_args(function.get("arguments"))}}
                google = ((call.get("extra_content") or {}).get("google") or {})
                if google.get("thought_signature"):
                    part["thoughtSignature"] = google["thought_signature"]
                    signed = True
                elif sign and not signed:  # only the first call of a turn carries one
                    part["thoughtSignature"] = PLACEHOLDER_SIGNATURE
                    signed = True
                parts.append(part)
            if parts:
                add("model", parts)
        else:
            parts = content_parts(message.get("content"))
            if parts:
                add("user", parts)

    payload: dict[str, Any] = {"contents": contents, "safetySettings": SAFETY_SETTINGS}
    if system and contents:
        payload["systemInstruction"] = {"parts": system}
    elif system:  # Gemini refuses a request without contents: a lone system prompt becomes the user turn
        payload["contents"] = [{"role": "user", "parts": system}]
    config = generation_config(body)
    thinking = thinking_config(body.get("reasoning_effort"), model)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    if config:
        payload["generationConfig"] = config
    declarations = function_declarations(body)
    if declarations:
        payload["tools"] = [{"functionDeclarations": declarations}]
        choice = tool_config(body.get("tool_choice", body.get("function_call")))
        if choice:
            payload["toolConfig"] = choice
    return payload


def generation_config(body: dict) -> dict:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(body.get("n"), int) and body["n"] > 1:
        config["candidateCount"] = body["n"]
    if body.get("seed") is not None:
        config["seed"] = body["seed"]
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            config["responseSchema"] = gemini_schema(schema)
    return config


# Chat's reasoning_effort as Gemini's thinkingConfig (https://ai.google.dev/gemini-api/docs/thinking): Gemini 3
# takes a level (its Pro models only low and high), 2.5 a token budget (Flash may turn thinking off with 0,
# Pro may not: its least is 128). Earlier models, and the image and speech models, do not think and get none.
# The budgets are those Google's own OpenAI endpoint uses (https://ai.google.dev/gemini-api/docs/openai#thinking).
THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
PRO_LEVELS = {"none": "low", "minimal": "low", "low": "low", "medium": "high", "high": "high"}
FLASH_LEVELS = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
PRO_LEAST_BUDGET = 128
VERSION = re.compile(r"gemini-(\d+)(?:\.(\d+))?")


def thinking_config(effort: Any, model: str) -> dict | None:
    """reasoning_effort for `model`, with the thoughts asked back (else a chat client would get none)."""
    match = VERSION.match(model)
    if not isinstance(effort, str) or effort not in THINKING_BUDGETS or not match or "-image" in model \
            or "-tts" in model:
        return None
    version = (int(match[1]), int(match[2] or 0))
    pro = "-pro" in model
    if version >= (3, 0):
        level = (PRO_LEVELS if pro else FLASH_LEVELS)[effort]
        return {"thinkingLevel": level, "includeThoughts": effort != "none"}
    if version < (2, 5):
        return None
    budget = THINKING_BUDGETS[effort]
    if pro:
        budget = max(budget, PRO_LEAST_BUDGET)
    return {"thinkingBudget": budget, "includeThoughts": budget > 0}


def embeddings_request(body: dict, model: str) -> dict:
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    if not items or not all(isinstance(item, str) for item in items):
        raise invalid("Gemini embeds text only: `input` must be a string or a list of strings.", "invalid_input")
    requests = []
    for text in items:
        request: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if body.get("dimensions"):
            request["outputDimensionality"] = body["dimensions"]
        requests.append(request)
    return {"requests": requests}
