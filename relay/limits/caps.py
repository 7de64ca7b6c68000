"""What a limit is: a scope (a key, a user, a group, a model in a group, a channel) and its caps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

WINDOW_MS = 60_000  # RPM and TPM count over the last 60 s


class Caps(NamedTuple):
    """A scope's limits; 0 is none. The order is limit_fields.RateLimits' and ChannelInfo.limits'."""

    rpm: int = 0
    tpm: int = 0
    concurrency: int = 0
    rpd: int = 0


NO_LIMITS = Caps()

KIND_TEXT = {
    "rpm": ("request per minute", "requests per minute"),
    "tpm": ("token per minute", "tokens per minute"),
    "concurrency": ("concurrent request", "concurrent requests"),
    "rpd": ("request per day", "requests per day"),
}


def limit_text(kind: str, limit: int) -> str:
    """'60 requests per minute', '1 request per day'."""
    return f"{limit} {KIND_TEXT[kind][limit != 1]}"


@dataclass(frozen=True, slots=True)
class Scope:
    key: str  # the counters' name, unique per scope: "t:12", "u:3", "g:<group>", "m:<len>:<group>:<model>", "c:7"
    owner: str  # whose limit, as a refusal names it: "This API key's"
    caps: Caps


@dataclass(frozen=True, slots=True)
class Refusal:
    """The scope (None: every channel of the model) and kind that refused, and when it may admit again."""

    scope: Scope | None
    kind: str
    limit: int
    retry_ms: int
    too_large: bool = False  # the request alone asks for more tokens than the limit allows in a window
    remaining: int = 0  # tokens the window has left, when too_large (else none for this request)


@dataclass(frozen=True, slots=True)
class Usage:
    """The tightest limit of one kind after an admission: what OpenAI's x-ratelimit-*-requests/-tokens carry."""

    limit: int
    remaining: int
    reset_ms: int


def tighter(current: Usage | None, limit: int, remaining: int, reset_ms: int) -> Usage:
    """The tighter of two limits of a kind: less remaining, then the lower limit."""
    if current is None or remaining < current.remaining or (
            remaining == current.remaining and limit < current.limit):
        return Usage(limit, max(remaining, 0), max(reset_ms, 0))
    return current
