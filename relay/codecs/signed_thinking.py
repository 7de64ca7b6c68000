"""Claude's signed thinking sealed into one opaque string, for client protocols whose history has only such a
string to keep it in: a Responses reasoning item's encrypted_content, a Gemini functionCall's thoughtSignature.

Anthropic takes tool results after thinking only with the signed thinking block it answered before the calls
(https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking); chat carries those blocks in
`thinking_blocks`, and a client that sends the sealed string back gives them back. The seal is base64 (Google's
SDKs read thoughtSignature as bytes in base64, and may write it back URL-safe) of a marker and the blocks as
JSON; the blocks are Anthropic's, which checks their signatures. Strings without the marker are what vendors
wrote there themselves, and are left alone.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from providers.adapters.anthropic import signed_blocks

MARKER = b"oneapi-thinking:v1"  # 18 bytes: its base64 is the same fixed 24 characters in front of every seal
SEALED = base64.b64encode(MARKER).decode()


def seal(blocks: list[dict]) -> str:
    return base64.b64encode(MARKER + orjson.dumps(blocks)).decode()


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SEALED)


def unseal(value: Any) -> list[dict]:
    """The signed thinking blocks in a string this gateway sealed; [] for anything else."""
    if not is_sealed(value):
        return []
    try:
        raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
        return signed_blocks(orjson.loads(raw[len(MARKER):]))
    except (binascii.Error, ValueError):  # orjson's decode error is a ValueError
        return []
