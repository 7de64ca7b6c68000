"""The conformance matrix: every client protocol, through the gateway, to every kind of channel, with every
feature. The table and what each cell is expected to do are in conformance_table.py; the official SDKs ask
(conformance_clients.py) and the mock vendors answer (conformance_targets.py).

Each cell checks both ends at the level of content, not bytes: what the client's SDK got (text, tool calls,
thinking, usage equal to what the vendor reported, as the client's protocol counts it) and what the vendor
got (the words, the tool and its result, the image's bytes, the request to think)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from tests.providers.mock_anthropic import MockAnthropic
from tests.providers.mock_bedrock import MockBedrock
from tests.providers.mock_gemini import MockGemini
from tests.providers.vendor_harness import serve
from tests.relay import conformance_table as table
from tests.relay.conformance_clients import CLIENTS, PNG, PROMPT, SYSTEM, TOOL_RESULT, Client
from tests.relay.conformance_targets import ANSWER, TARGETS, THOUGHT, Target, Usage
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

AK, SK, REGION = "AKIAIOSFODNN7EXAMPLE", "bedrock-matrix-secret", "us-east-1"
WEATHER = ("get_weather", ("city",))  # the tool every client declares, as its name and its arguments
README = Path(__file__).resolve().parents[2] / "README.md"

anthropic_server = serve(MockAnthropic)
gemini_server = serve(MockGemini)
bedrock_server = serve(lambda: MockBedrock(access_key=AK, secret_key=SK, region=REGION))


@pytest.fixture
def channel(request, transactional_db, upstream):
    """The world of the cell's target: a caller, and a channel of that kind at its mock."""
    name = request.param
    if name == "openai":
        # A chat-only OpenAI-protocol channel (most proxies and OpenAI-compatible vendors): Responses clients reach
        # it through the bridge; OpenAI's own Responses pass-through is tests/relay/test_responses_native.py's.
        world = new_world(upstream, username="alice", name="openai", key="sk-upstream", models="gpt-4o-mini",
                          config={"responses_api": False})
    elif name == "anthropic":
        world = new_world(request.getfixturevalue("anthropic_server"), username="alice", type=14, name="claude",
                          key="sk-ant-upstream", models=TARGETS[name].model,
                          model_mapping={TARGETS[name].model: "claude-sonnet-4-5-20250929"})
    elif name == "gemini":
        world = new_world(request.getfixturevalue("gemini_server"), username="alice", type=24, name="gemini",
                          key="gemini-upstream-key", models=TARGETS[name].model)
    else:
        world = new_world(request.getfixturevalue("bedrock_server"), username="alice", type=33, name="bedrock",
                          key=AK, models=TARGETS[name].model, config={"region": REGION, "ak": AK, "sk": SK})
    return world, TARGETS[name](world.upstream)


async def run_cell(feature: str, client: Client, target: Target, outcome: table.Outcome, image_url: str) -> None:
    model = target.model

    def expected_usage(usage: Usage) -> Usage:
        """The vendor's counts as the client should see them."""
        return dataclasses.replace(usage, cache_write=0) if outcome is table.NO_CACHE_WRITES else usage

    if feature in ("text", "stream", "images"):
        target.script("text")
        seen = await client.ask(model, stream=feature == "stream", image_url=image_url if feature == "images" else None)
        text, usage = (target.stream_text, target.stream_usage) if feature == "stream" else \
            (target.text, target.text_usage)
        assert (seen.text, seen.usage) == (text, expected_usage(usage))
        [sent] = target.requests()
        assert (sent.system, sent.texts) == (SYSTEM, [PROMPT])
        if feature == "images":
            # The inline one as its bytes; the linked one as its link where the vendor fetches links (a target
            # reads only what its vendor takes), else fetched by the gateway and inlined.
            assert sent.images[:1] == [PNG]
            assert (sent.images[1:], sent.image_urls) in (([PNG], []), ([], [image_url]))
        if feature == "stream":  # and a tool call, whose arguments come in pieces
            target.script("stream_tools")
            seen = await client.ask(model, tools=True, stream=True)
            assert seen.calls == target.stream_calls and seen.tool_stop in (True, None)
            assert target.requests()[-1].tools == [WEATHER]
    elif feature == "tools":
        target.script("tools")
        first = await client.ask(model, tools=True, force_tool=True)
        assert first.calls == target.calls and first.tool_stop in (True, None)
        second = await client.send_tool_results()
        assert second.text == target.text
        asked, answered = target.requests()
        assert asked.tools == answered.tools == [WEATHER] and asked.tool_choice == "required"
        assert (asked.texts, asked.tool_results) == ([PROMPT], [])
        assert answered.tool_results == [TOOL_RESULT] * len(target.calls)
    elif feature == "reasoning":
        target.script("thinking")
        seen = await client.ask(model, reasoning=True)
        assert (seen.reasoning, seen.text) == (THOUGHT, ANSWER)
        assert seen.usage == expected_usage(target.thinking_usage)
        target.script("stream_thinking")
        streamed = await client.ask(model, reasoning=True, stream=True)
        assert (streamed.reasoning, streamed.text, streamed.usage) == (THOUGHT, ANSWER, seen.usage)
        for sent in target.requests():
            assert sent.reasoning is (outcome is not table.NO_REASONING_SWITCH)
    elif feature == "usage":
        target.script("cached")
        seen = await client.ask(model)
        assert seen.usage == expected_usage(target.cached_usage)
        target.script("stream_cached")
        streamed = await client.ask(model, stream=True)
        assert (streamed.text, streamed.usage) == (seen.text, seen.usage)
    else:
        raise AssertionError(f"no check for {feature}")


@pytest.mark.parametrize("client_name, channel, feature", [pytest.param(c, t, f, id=f"{c}-{t}-{f}")
                                                           for c, t, f in table.CELLS], indirect=["channel"])
async def test_a_cell_of_the_matrix(client_name, channel, feature, sdk_http, gemini_server):
    world, target = channel
    client = CLIENTS[client_name](f"sk-{world.token.key}", sdk_http)
    image_url = f"{gemini_server.url}/images/pixel.png"  # the Gemini mock serves PNG there, unrecorded
    await run_cell(feature, client, target, table.outcome(client_name, target.name, feature), image_url)


def test_the_matrix_covers_every_client_target_and_feature_it_names():
    assert list(CLIENTS) == list(table.CLIENTS) and list(TARGETS) == list(table.TARGETS)
    assert set(table.OUTCOMES) <= set(table.CELLS)
    assert all(o in (table.NO_REASONING_SWITCH, table.NO_CACHE_WRITES) and o.note for o in table.OUTCOMES.values())


def test_the_readme_shows_the_matrix_as_the_table_prints_it():
    found = re.search(r"<!-- conformance:start -->\n(.*?)<!-- conformance:end -->", README.read_text(), re.S)
    assert found, "README.md has no conformance matrix between its markers"
    assert found[1] == table.markdown(), "README.md's matrix is stale: run `make conformance` and paste its output"

