"""Channel credentials masked out of any text an upstream sends back.

Vendors echo keys in their error texts (OpenAI: "Incorrect API key provided: sk-abc***wxyz"; proxies echo
the whole key), and an echo reaches clients, logs, channel-test results and auto-disable mails alike. The
relay applies `mask_error` where an upstream failure enters the gateway (relay.upstream.call_channel,
the balance query), so every reader after it gets masked text; none of them masks again.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from providers.adapters.base import UpstreamError

MASK = "***"
# The shortest run of a secret that counts as leaked: shorter runs ("sk-", "-1") are in every key and in
# ordinary words. (Adapter.secrets leaves out credentials shorter than this: they cannot be told apart.)
MIN_RUN = 8
# A partial echo, as vendors print keys: a head, a run of stars or dots, perhaps a tail ("sk-abc***wxyz",
# "sk-proj-....WXYZ", "AKIA…"). It is masked when the head starts a secret and the tail ends it.
_ECHO = re.compile(r"([\w\-]{3,})(\*+|\.{3,}|…)([\w\-]*)")
ECHO_MIN = 5  # characters of the key an echo shows, at least: "sk-..." alone tells nothing


def _grams(secrets: Iterable[str]) -> set[str]:
    return {secret[i:i + MIN_RUN] for secret in secrets for i in range(len(secret) - MIN_RUN + 1)}


def mask_text(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every partial echo of a secret, and every run of MIN_RUN or more of its characters,
    replaced by MASK."""
    if not text or not secrets:
        return text
    text = _ECHO.sub(lambda match: _echo(match, secrets), text)
    grams = _grams(secrets)
    spans: list[list[int]] = []
    for start in range(len(text) - MIN_RUN + 1):
        if text[start:start + MIN_RUN] in grams:
            if spans and start <= spans[-1][1]:
                spans[-1][1] = start + MIN_RUN
            else:
                spans.append([start, start + MIN_RUN])
    if not spans:
        return text
    pieces, last = [], 0
    for start, end in spans:
        pieces += [text[last:start], MASK]
        last = end
    return "".join(pieces) + text[last:]


def _echo(match: re.Match, secrets: tuple[str, ...]) -> str:
    """A partial echo masked: the end of its head (3 characters or more) starts a secret, and the start of
    its tail (perhaps nothing) ends the same secret, ECHO_MIN characters of it in all. What is before and
    after stays."""
    head, tail = match[1], match[3]
    for secret in secrets:
        for cut in range(len(head) - 2):
            shown = head[cut:]
            if not secret.startswith(shown):
                continue
            for keep in range(len(tail), -1, -1):
                end = tail[:keep]
                if ECHO_MIN <= len(shown) + len(end) < len(secret) and (not end or secret.endswith(end)):
                    return head[:cut] + MASK + tail[keep:]
    return match[0]


def mask_value(value: Any, secrets: tuple[str, ...]) -> Any:
    """Every string in a JSON-like value (an upstream's error object) masked."""
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, dict):
        return {k: mask_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v, secrets) for v in value]
    return value


def mask_bytes(data: bytes, secrets: tuple[str, ...]) -> bytes:
    """An upstream's bytes (an error event) masked; unchanged when they hold no secret."""
    if not secrets:
        return data
    text = data.decode("utf-8", "replace")
    masked = mask_text(text, secrets)
    return data if masked == text else masked.encode()


def mask_error(err: UpstreamError, secrets: tuple[str, ...]) -> UpstreamError:
    """The error with its message and the vendor's error object masked (the same error when nothing was)."""
    message = mask_text(err.message, secrets)
    body = mask_value(err.error_body, secrets) if err.error_body else err.error_body
    if message == err.message and body == err.error_body:
        return err
    return dataclasses.replace(err, message=message, error_body=body)
