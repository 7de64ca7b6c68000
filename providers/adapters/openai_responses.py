"""OpenAI's Responses API spoken natively: a Responses client's request goes to a channel that serves it as the
client sent it, and the answer (a Response, or its event stream) comes back untouched, read only for its bill
and for the id under which the vendor stored it.

Wire facts (https://platform.openai.com/docs/api-reference/responses): a Response carries `usage` with
`input_tokens` (cached ones included, told apart in `input_tokens_details.cached_tokens`) and `output_tokens`
(reasoning included, `output_tokens_details.reasoning_tokens`); a stream starts with `response.created` (the
Response's id) and ends with `response.completed`, `response.incomplete` or `response.failed`, each carrying the
whole Response with its usage; a failure before any Response is an `error` event.
"""

from __future__ import annotations

import orjson

from providers.adapters.base import (
    NativeStream,
    UpstreamError,
    Usage,
    check_answer,
    json_or_none,
    retryable_status,
)

# A Response's final events: each carries the whole Response, usage included.
FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
# The events whose deltas are the answer's words (counted when the vendor gives no usage).
WORD_DELTAS = ("response.output_text.delta", "response.function_call_arguments.delta",
               "response.reasoning_summary_text.delta", "response.reasoning_text.delta", "response.refusal.delta")
# The status a Response's failure code stands for, for failover and the client's error.
FAILURE_STATUSES = {"rate_limit_exceeded": 429, "server_error": 500, "invalid_prompt": 400,
                    "vector_store_timeout": 504}


def _count(where, name: str) -> int:
    value = where.get(name) if isinstance(where, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from(usage) -> Usage | None:
    """A Response's usage in the relay's terms (input and output already hold the cached and reasoning tokens)."""
    if not isinstance(usage, dict):
        return None
    return Usage(prompt_tokens=_count(usage, "input_tokens"), completion_tokens=_count(usage, "output_tokens"),
                 cached_tokens=_count(usage.get("input_tokens_details"), "cached_tokens"),
                 reasoning_tokens=_count(usage.get("output_tokens_details"), "reasoning_tokens"))


def stored_id(response) -> str:
    """The id under which the vendor keeps a Response, or "" when it keeps none (`store: false`)."""
    if not isinstance(response, dict) or response.get("store") is False:
        return ""
    value = response.get("id")
    return value if isinstance(value, str) else ""


def _words(output) -> str:
    words: list[str] = []
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            words.append(str(item.get("name") or "") + str(item.get("arguments") or ""))
        for part in item.get("content") or () if isinstance(item.get("content"), list) else ():
            if isinstance(part, dict):
                words.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(words)


def error_from(status: int, error, label: str) -> UpstreamError:
    """An error object the vendor sent in a 200 or a stream ({message, type?, code?}), as an UpstreamError."""
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message") or f"{label} reported an error.")
    code = error.get("code")
    status = FAILURE_STATUSES.get(str(code), status)
    return UpstreamError(status=status, message=message, type=str(error.get("type") or "upstream_error"),
                         code=str(code or "bad_response_status_code"), param=error.get("param"),
                         retryable=retryable_status(status), error_body=error)


def read_response(body: bytes, label: str) -> tuple[Usage | None, str, str]:
    """A whole Response as the vendor answered it: its usage, its words (counted when it has no usage) and the
    id it is stored under. A 200 that is no Response (an error object some proxies answer with) is raised."""
    payload = json_or_none(body)
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict) and payload.get("output") is None:
        raise error_from(502, payload["error"], label)
    check_answer(payload, label, "output", what="a Response")
    return usage_from(payload.get("usage")), _words(payload["output"]), stored_id(payload)


def read_count(body: bytes, label: str) -> None:
    """An input_tokens answer ({"object": "response.input_tokens", "input_tokens": n}), or a 502."""
    check_answer(json_or_none(body), label, "input_tokens", what="a token count")


class ResponseEvents(NativeStream):
    """A Response's event stream, read for its bill as it goes by: the id from response.created, the words
    from the deltas, the usage from the final event."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self.answer_id = ""  # the id the vendor stores the Response under ("" when it stores none)

    def read(self, event: bytes, data: bytes) -> None:
        payload = json_or_none(data)
        if not isinstance(payload, dict):
            return  # a garbled event is passed on; the rest of the stream still counts
        kind = payload.get("type")
        if kind == "error":
            self.error = self.error or error_from(502, payload, self.label)
            return
        self.answered = True
        response = payload.get("response")
        if kind == "response.created":
            self.answer_id = stored_id(response)
        elif kind in FINAL_EVENTS:
            # A Response that failed with nothing said yet is the channel's failure, which another may answer.
            self.begun = self.begun or kind != "response.failed"
            if isinstance(response, dict):
                self.usage = usage_from(response.get("usage")) or self.usage
                self.answer_id = stored_id(response) or self.answer_id
                if kind == "response.failed":
                    self.error = self.error or error_from(502, response.get("error"), self.label)
        elif kind in WORD_DELTAS:
            self.begun = True
            delta = payload.get("delta")
            self.texts.append(delta if isinstance(delta, str) else "")
        elif kind == "response.output_item.added":
            self.begun = True

    def interruption(self, message: str) -> bytes:
        """Responses' `error` event: the stream broke off before its final event."""
        payload = {"type": "error", "code": "server_error", "message": message, "param": None}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
