"""Gemini CLI (`gemini -p`, GOOGLE_GEMINI_BASE_URL at the gateway, GEMINI_API_KEY its key) through the gateway's
Gemini route to an OpenAI-protocol channel, against a mock vendor that answers as the conversation goes: a
one-turn prompt, and a turn where the model has the CLI read a file with its read_file tool; and the tool turn
again through a Gemini channel, where the CLI's requests are passed through as it sent them.

Skipped while this tree has no Gemini routes (the relay answers 404 on /v1beta/models/...); it runs once they
land."""

from __future__ import annotations

import pytest

from tests.e2e.agents.conftest import add_channel, assert_turns_billed
from tests.e2e.agents.harness import gemini_settings
from tests.e2e.agents.scripted_upstream import ScriptedGemini, ScriptedOpenAI, Turn, tool_then_answer
from tests.providers.vendor_harness import serve

# A model named on the command line: on its default `auto` model the CLI first asks a router model.
MODEL = "gemini-agents-cli"  # mapped to gpt-4o-mini; a name of its own so the session's gateway routes it here
NATIVE_MODEL = "gemini-agents-native"  # on a Gemini channel, mapped to gemini-2.5-flash
SECRET = "PUFFIN-8"

vendor_server = serve(ScriptedOpenAI)
gemini_server = serve(ScriptedGemini)


@pytest.fixture(scope="module", autouse=True)
def channel(admin, vendor_server):
    add_channel(admin, type=1, name="agents-gemini-cli", base_url=vendor_server.url, models=MODEL,
                model_mapping={MODEL: "gpt-4o-mini"})


@pytest.fixture(scope="module", autouse=True)
def gemini_channel(admin, gemini_server):
    add_channel(admin, type=24, name="agents-gemini-native", base_url=gemini_server.url, models=NATIVE_MODEL,
                model_mapping={NATIVE_MODEL: "gemini-2.5-flash"})


@pytest.fixture
def vendor(vendor_server):
    vendor_server.reset()
    return vendor_server


def gemini(agent, gateway, home, key, prompt: str, model: str = MODEL):
    gemini_settings(home)
    run = agent.run("-p", prompt, "--model", model, home=home,
                    env={"GOOGLE_GEMINI_BASE_URL": gateway.url, "GEMINI_API_KEY": key.secret})
    assert run.returncode == 0, str(run)
    return run


def test_a_one_turn_prompt(gemini_cli, gateway, tmp_path, vendor, key):
    vendor.policy = lambda seen: Turn(text="Hello through the gateway.", usage=(31, 6))
    run = gemini(gemini_cli, gateway, tmp_path, key, "Say hello")
    assert "Hello through the gateway." in run.stdout
    [sent] = vendor.requests
    assert (sent.path, sent.body["model"]) == ("/v1/chat/completions", "gpt-4o-mini")
    assert "Say hello" in str(sent.body["messages"])
    assert_turns_billed(key, vendor, MODEL, "gemini")


def test_a_turn_that_reads_a_file(gemini_cli, gateway, tmp_path, vendor, key):
    notes = tmp_path / "notes.txt"
    notes.write_text(f"The secret word is {SECRET}.\n")
    vendor.policy = tool_then_answer("READ-THE-NOTES", "read_file", {"file_path": str(notes)},
                                     final=f"The notes say the secret word is {SECRET}.", reply="Hi.")
    run = gemini(gemini_cli, gateway, tmp_path, key, "READ-THE-NOTES in notes.txt and tell me the secret")
    assert f"the secret word is {SECRET}" in run.stdout
    first, second = vendor.requests
    assert "read_file" in [tool["function"]["name"] for tool in first.body["tools"]]
    # The tool really ran: the file's content came back to the model as the tool's result.
    results = [m for m in second.body["messages"] if m["role"] == "tool"]
    assert len(results) == 1 and SECRET in str(results[0])
    assert_turns_billed(key, vendor, MODEL, "gemini")


def test_a_tool_turn_through_a_gemini_channel_is_passed_through(gemini_cli, gateway, tmp_path, gemini_server, key):
    gemini_server.reset()
    notes = tmp_path / "notes.txt"
    notes.write_text(f"The secret word is {SECRET}.\n")
    gemini_server.policy = tool_then_answer("READ-THE-NOTES", "read_file", {"file_path": str(notes)},
                                            final=f"The notes say the secret word is {SECRET}.", reply="Hi.")
    run = gemini(gemini_cli, gateway, tmp_path, key, "READ-THE-NOTES in notes.txt and tell me the secret",
                 model=NATIVE_MODEL)
    assert f"the secret word is {SECRET}" in run.stdout
    streamed = [r for r in gemini_server.requests if r.path.endswith(":streamGenerateContent")]
    first, second = streamed[0], streamed[-1]
    assert first.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent" and first.query == "alt=sse"
    assert first.headers["x-goog-api-key"] == "sk-upstream-agents" and key.secret not in str(first.headers)
    # Passed through, not converted: the CLI's own fields reach the vendor as it wrote them.
    assert "thinkingConfig" in first.body["generationConfig"]
    assert "parametersJsonSchema" in str(first.body["tools"])
    responses = [part["functionResponse"] for content in second.body["contents"] for part in content["parts"]
                 if "functionResponse" in part]
    assert len(responses) == 1 and responses[0]["id"] == "fc-scripted" and SECRET in str(responses[0])
    logs = key.consume_logs(len(gemini_server.turns))
    assert [(log["prompt_tokens"], log["completion_tokens"]) for log in logs] == [t.usage for t in gemini_server.turns]
    assert {(log["model_name"], log["client_protocol"]) for log in logs} == {(NATIVE_MODEL, "gemini")}
    assert key.used_quota() == sum(log["quota"] for log in logs)
