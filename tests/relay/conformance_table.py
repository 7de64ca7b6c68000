"""The conformance matrix as data: which client protocol, to which kind of channel, with which feature, and
what is expected of every cell. tests/relay/test_conformance.py runs each cell against the mock vendors and
the README shows the table this module prints (`make conformance`, or `python -m tests.relay.conformance_table`);
a test keeps the two the same.

A cell is OK (the client gets the vendor's answer in its own types and the vendor gets what the client sent)
unless OUTCOMES says otherwise: then it names what happens instead, which the cell's test checks, and why."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

CLIENTS = {"openai": "OpenAI chat (`openai`)", "anthropic": "Anthropic Messages (`anthropic`)",
           "responses": "OpenAI Responses (`openai`)", "gemini": "Gemini (`google-genai`)"}
TARGETS = {"openai": "OpenAI-protocol (1)", "anthropic": "Anthropic (14)", "gemini": "Gemini (24)",
           "bedrock": "AWS Bedrock Converse (33)"}
FEATURES = {"text": "text", "stream": "stream", "tools": "tools", "images": "images", "reasoning": "reasoning",
            "usage": "usage"}


@dataclass(frozen=True)
class Outcome:
    """What a cell does: "ok", or the name of what it does instead, with a note for the README saying why."""

    kind: str
    note: str = ""


OK = Outcome("ok")
# The request goes without a switch to think (none exists), and what the model thinks anyway still arrives.
NO_REASONING_SWITCH = Outcome("no_reasoning_switch", "Converse has no switch that asks these models to think: "
                              "the request goes without one, and what a model thinks of its own accord "
                              "reaches the client.")
# The usage arrives without the count of cache writes, which the client's protocol has no field for.
NO_CACHE_WRITES = Outcome("no_cache_writes", "Gemini's usageMetadata has no count of cache writes: they are "
                          "billed at their own price and counted in promptTokenCount.")

OUTCOMES: dict[tuple[str, str, str], Outcome] = {
    **{(client, "bedrock", "reasoning"): NO_REASONING_SWITCH for client in CLIENTS},
    **{("gemini", target, "usage"): NO_CACHE_WRITES for target in ("anthropic", "bedrock")},
}

CELLS = list(product(CLIENTS, TARGETS, FEATURES))


def outcome(client: str, target: str, feature: str) -> Outcome:
    return OUTCOMES.get((client, target, feature), OK)


def markdown() -> str:
    """The matrix as a markdown table: a row per client and target, a column per feature, notes below."""
    notes: list[str] = []
    lines = ["| client | channel | " + " | ".join(FEATURES.values()) + " |",
             "|---|---|" + "---|" * len(FEATURES)]
    for client, target in product(CLIENTS, TARGETS):
        cells = []
        for feature in FEATURES:
            found = outcome(client, target, feature)
            if found is OK:
                cells.append("✓")
                continue
            if found.note not in notes:
                notes.append(found.note)
            cells.append(f"✓ ({notes.index(found.note) + 1})")
        lines.append(f"| {CLIENTS[client]} | {TARGETS[target]} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + [f"({i}) {note}" for i, note in enumerate(notes, 1)]) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
