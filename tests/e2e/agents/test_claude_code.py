"""Claude Code (`claude -p`) through the gateway's Messages route, to an OpenAI-protocol channel (converted) and
to an Anthropic channel, against mock vendors that answer as the conversation goes: a one-turn prompt, and a
turn where the model has Claude Code read a file and answers from what the Read tool returned."""

from __future__ import annotations

import math

import pytest

from tests.e2e.agents.conftest import add_channel, gpt_4o_mini_quota
from tests.e2e.agents.scripted_upstream import ScriptedAnthropic, ScriptedOpenAI, Turn, tool_then_answer
from tests.providers.vendor_harness import serve

# The client's model names, distinct from other e2e tests' so the session's gateway routes them here only.
VIA_OPENAI = "claude-agents-via-openai"  # mapped to gpt-4o-mini on the OpenAI channel
VIA_ANTHROPIC = "claude-sonnet-4-20250514"
SECRET = "PELICAN-42"

openai_vendor = serve(ScriptedOpenAI)
anthropic_vendor = serve(ScriptedAnthropic)


@pytest.fixture(scope="module", autouse=True)
def channels(admin, openai_vendor, anthropic_vendor):
    add_channel(admin, type=1, name="agents-openai", base_url=openai_vendor.url, models=VIA_OPENAI,
                model_mapping={VIA_OPENAI: "gpt-4o-mini"})
    add_channel(admin, type=14, name="agents-anthropic", base_url=anthropic_vendor.url, models=VIA_ANTHROPIC)


@pytest.fixture
def vendors(openai_vendor, anthropic_vendor):
    openai_vendor.reset()
    anthropic_vendor.reset()
    return openai_vendor, anthropic_vendor


def claude(agent, gateway, tmp_path, model: str, prompt: str, **auth: str):
    """`claude -p prompt` in `tmp_path` against the gateway; `auth` is ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN."""
    run = agent.run("-p", prompt, "--model", model, home=tmp_path,
                    env={"ANTHROPIC_BASE_URL": gateway.url, **auth})
    assert run.returncode == 0, str(run)
    return run


def claude_sonnet_4_quota(prompt: int, completion: int) -> int:
    return math.ceil((prompt + completion * 5) * 1.5)  # claude-sonnet-4-20250514's ratios: 1.5, completion x5


def assert_logs_match(key, vendor, model: str) -> list[dict]:
    """One consume log per vendor request, with the tokens the vendor reported, charged to the key."""
    logs = key.consume_logs(len(vendor.turns))
    assert len(logs) == len(vendor.turns) == len(vendor.requests)
    assert [(log["prompt_tokens"], log["completion_tokens"]) for log in logs] == [t.usage for t in vendor.turns]
    assert {(log["model_name"], log["client_protocol"]) for log in logs} == {(model, "anthropic")}
    assert key.used_quota() == sum(log["quota"] for log in logs) > 0
    return logs


def test_a_one_turn_prompt_through_an_openai_channel(claude_code, gateway, tmp_path, vendors, key):
    openai_vendor, _ = vendors
    openai_vendor.policy = lambda seen: Turn(text="Hello through the gateway.", usage=(31, 6))
    run = claude(claude_code, gateway, tmp_path, VIA_OPENAI, "Say hello", ANTHROPIC_API_KEY=key.secret)
    assert "Hello through the gateway." in run.stdout
    sent = openai_vendor.requests
    assert [(r.method, r.path) for r in sent] == [("POST", "/v1/chat/completions")]
    assert sent[0].body["model"] == "gpt-4o-mini" and "Say hello" in str(sent[0].body["messages"])
    assert sent[0].headers["Authorization"] == "Bearer sk-upstream-agents"
    logs = assert_logs_match(key, openai_vendor, VIA_OPENAI)
    assert [log["quota"] for log in logs] == [gpt_4o_mini_quota(31, 6)]


def test_a_tool_turn_through_an_openai_channel(claude_code, gateway, tmp_path, vendors, key):
    openai_vendor, _ = vendors
    notes = tmp_path / "notes.txt"
    notes.write_text(f"The secret word is {SECRET}.\n")
    openai_vendor.policy = tool_then_answer("READ-THE-NOTES", "Read", {"file_path": str(notes)},
                                            final=f"The notes say the secret word is {SECRET}.", reply="Hi.")
    run = claude(claude_code, gateway, tmp_path, VIA_OPENAI, "READ-THE-NOTES in notes.txt and tell me the secret",
                 ANTHROPIC_API_KEY=key.secret)
    assert f"the secret word is {SECRET}" in run.stdout
    first, second = openai_vendor.requests
    assert "Read" in [tool["function"]["name"] for tool in first.body["tools"]]
    # The tool really ran: the file's content came back to the model as the tool's result.
    results = [m for m in second.body["messages"] if m["role"] == "tool"]
    assert len(results) == 1 and results[0]["tool_call_id"] == "call_scripted" and SECRET in str(results[0])
    logs = assert_logs_match(key, openai_vendor, VIA_OPENAI)
    assert [log["quota"] for log in logs] == [gpt_4o_mini_quota(50, 20), gpt_4o_mini_quota(60, 12)]


def test_a_tool_turn_through_an_anthropic_channel_with_an_auth_token(claude_code, gateway, tmp_path, vendors, key):
    _, anthropic_vendor = vendors
    notes = tmp_path / "notes.txt"
    notes.write_text(f"The secret word is {SECRET}.\n")
    anthropic_vendor.policy = tool_then_answer("READ-THE-NOTES", "Read", {"file_path": str(notes)},
                                               final=f"The notes say the secret word is {SECRET}.", reply="Hi.")
    run = claude(claude_code, gateway, tmp_path, VIA_ANTHROPIC, "READ-THE-NOTES in notes.txt and tell me the secret",
                 ANTHROPIC_AUTH_TOKEN=key.secret)
    assert f"the secret word is {SECRET}" in run.stdout
    first, second = anthropic_vendor.requests
    assert (first.path, first.headers["x-api-key"]) == ("/v1/messages", "sk-upstream-agents")
    assert key.secret not in str(first.headers)
    assert "Read" in [tool["name"] for tool in first.body["tools"]]
    # Passed through, not converted: Claude Code's cache marks and beta features reach the vendor.
    assert isinstance(first.body["system"], list) and any("cache_control" in b for b in first.body["system"])
    assert first.headers.get("anthropic-beta")
    results = [b for m in second.body["messages"] if isinstance(m["content"], list) for b in m["content"]
               if b.get("type") == "tool_result"]
    assert len(results) == 1 and results[0]["tool_use_id"] == "toolu_scripted" and SECRET in str(results[0])
    logs = assert_logs_match(key, anthropic_vendor, VIA_ANTHROPIC)
    assert [log["quota"] for log in logs] == [claude_sonnet_4_quota(50, 20), claude_sonnet_4_quota(60, 12)]


def test_after_a_broken_stream_claude_code_asks_again_without_streaming(claude_code, gateway, tmp_path, vendors, key):
    """Claude Code answers a stream that breaks off by sending the same request with `stream: false`: the
    gateway must end the broken stream in a way it recognises, and serve the plain request."""
    openai_vendor, _ = vendors
    openai_vendor.policy = lambda seen: Turn(text="Hello after the retry.", usage=(31, 6))
    openai_vendor.cut_streams = 1
    run = claude(claude_code, gateway, tmp_path, VIA_OPENAI, "Say hello", ANTHROPIC_API_KEY=key.secret)
    assert "Hello after the retry." in run.stdout
    broken, plain = openai_vendor.requests
    assert (broken.body["stream"], plain.body.get("stream", False)) == (True, False)
    assert broken.body["messages"] == plain.body["messages"]
    # The broken stream is billed for what it used, counted by the gateway (the vendor sent no usage), the
    # plain answer by the vendor's usage.
    cut, whole = key.consume_logs(2)
    assert cut["is_stream"] and cut["prompt_tokens"] > 0 and cut["completion_tokens"] > 0
    assert (whole["is_stream"], whole["prompt_tokens"], whole["completion_tokens"]) == (False, 31, 6)
    assert key.used_quota() == cut["quota"] + whole["quota"]
