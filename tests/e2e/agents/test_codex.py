"""Codex CLI (`codex exec`) through the gateway's Responses route (a model provider whose base_url is the
gateway, wire_api = "responses") to an OpenAI-protocol channel, against a mock vendor that answers as the
conversation goes: a one-turn prompt, a turn where the model has Codex run a shell command, and one where it
has Codex edit a file with apply_patch (a custom tool, which chat carries as a function of one string). And a turn
through a channel that serves the Responses API itself, which gets Codex's request as Codex sent it (its
`store: false` included, so nothing is recorded as stored).

Skipped while this tree has no /v1/responses (the relay answers 501 there); it runs once the route lands."""

from __future__ import annotations

import json

import pytest

from tests.e2e.agents.conftest import add_channel, assert_turns_billed
from tests.e2e.agents.harness import codex_config
from tests.e2e.agents.native_stub import REPLY as NATIVE_REPLY
from tests.e2e.agents.native_stub import USAGE_IN, USAGE_OUT, NativeStub
from tests.e2e.agents.scripted_upstream import ScriptedOpenAI, Turn, tool_then_answer
from tests.providers.vendor_harness import serve

MODEL = "gpt-agents-codex"  # mapped to gpt-4o-mini; a name of its own so the session's gateway routes it here
SECRET = "HERON-17"
# Codex gives apply_patch as a custom (free-form) tool only to the models its catalog says take one, and it
# finds a model in its catalog by prefix: this name is gpt-5.5's to Codex and the channel's own to the gateway.
PATCH_MODEL = "gpt-5.5-agents-codex-patch"
PATCH = "*** Begin Patch\n*** Add File: greeting.txt\n+Hello from apply_patch.\n+Second line.\n*** End Patch\n"
NATIVE_MODEL = "gpt-agents-codex-native"  # on an OpenAI channel whose host serves /v1/responses

vendor_server = serve(ScriptedOpenAI)
native_server = serve(NativeStub)


@pytest.fixture(scope="module", autouse=True)
def channel(admin, vendor_server):
    # The mock vendor speaks chat only, so the channel says it serves no Responses API: Codex is bridged.
    add_channel(admin, type=1, name="agents-codex", base_url=vendor_server.url, models=f"{MODEL},{PATCH_MODEL}",
                model_mapping={MODEL: "gpt-4o-mini", PATCH_MODEL: "gpt-4o-mini"},
                config={"responses_api": "false"})


@pytest.fixture(scope="module", autouse=True)
def native_channel(admin, native_server):
    add_channel(admin, type=1, name="agents-codex-native", base_url=native_server.url, models=NATIVE_MODEL)


@pytest.fixture
def vendor(vendor_server):
    vendor_server.reset()
    return vendor_server


def codex_exec(agent, gateway, home, key, prompt: str, model: str = MODEL, *options: str):
    codex_config(home, base_url=f"{gateway.url}/v1", model=model, key_variable="ONEAPI_KEY")
    run = agent.run("exec", "--skip-git-repo-check", *options, prompt, home=home, env={"ONEAPI_KEY": key.secret})
    assert run.returncode == 0, str(run)
    return run


def test_a_one_turn_prompt(codex, gateway, tmp_path, vendor, key):
    vendor.policy = lambda seen: Turn(text="Hello through the gateway.", usage=(31, 6))
    run = codex_exec(codex, gateway, tmp_path, key, "Say hello")
    assert "Hello through the gateway." in run.stdout
    [sent] = vendor.requests
    assert (sent.path, sent.body["model"]) == ("/v1/chat/completions", "gpt-4o-mini")
    assert "Say hello" in str(sent.body["messages"])
    assert_turns_billed(key, vendor, MODEL, "responses")


def test_a_turn_that_runs_a_shell_command(codex, gateway, tmp_path, vendor, key):
    (tmp_path / "notes.txt").write_text(f"The secret word is {SECRET}.\n")
    vendor.policy = tool_then_answer("READ-THE-NOTES", "exec_command", {"cmd": "cat notes.txt"},
                                     final=f"The notes say the secret word is {SECRET}.", reply="Hi.")
    run = codex_exec(codex, gateway, tmp_path, key, "READ-THE-NOTES in notes.txt and tell me the secret")
    assert f"the secret word is {SECRET}" in run.stdout
    first, second = vendor.requests
    assert "exec_command" in [tool["function"]["name"] for tool in first.body["tools"]]
    # The command really ran: the file's content came back to the model as the tool's result.
    results = [m for m in second.body["messages"] if m["role"] == "tool"]
    assert len(results) == 1 and results[0]["tool_call_id"] == "call_scripted" and SECRET in str(results[0])
    assert_turns_billed(key, vendor, MODEL, "responses")


def test_a_turn_that_edits_a_file_with_apply_patch(codex, gateway, tmp_path, vendor, key):
    vendor.policy = tool_then_answer("ADD-THE-GREETING", "apply_patch", {"input": PATCH},
                                     final="I added greeting.txt.", reply="Hi.")
    run = codex_exec(codex, gateway, tmp_path, key, "ADD-THE-GREETING file, please", PATCH_MODEL,
                     "--sandbox", "workspace-write")
    assert "I added greeting.txt." in run.stdout
    # Codex applied the patch the model wrote: the file is in its working directory with the patch's lines.
    assert (tmp_path / "greeting.txt").read_text() == "Hello from apply_patch.\nSecond line.\n"
    first, second = vendor.requests
    [tool] = [tool["function"] for tool in first.body["tools"] if tool["function"]["name"] == "apply_patch"]
    assert list(tool["parameters"]["properties"]) == ["input"]
    assert "*** Begin Patch" in tool["parameters"]["properties"]["input"]["description"]  # its grammar, quoted
    # The call went back to the model as chat's tool call, and Codex's custom_tool_call_output as its result.
    [call] = [c for m in second.body["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    assert (call["id"], call["function"]["name"]) == ("call_scripted", "apply_patch")
    assert json.loads(call["function"]["arguments"]) == {"input": PATCH}
    results = [m for m in second.body["messages"] if m["role"] == "tool"]
    assert len(results) == 1 and results[0]["tool_call_id"] == "call_scripted" and "greeting.txt" in str(results[0])
    assert_turns_billed(key, vendor, PATCH_MODEL, "responses")


def test_a_turn_through_a_channel_that_serves_responses(codex, gateway, tmp_path, native_server, key):
    native_server.reset()
    run = codex_exec(codex, gateway, tmp_path, key, "Say hello", model=NATIVE_MODEL)
    assert NATIVE_REPLY in run.stdout
    sent = [r for r in native_server.requests if r.path == "/v1/responses"]
    assert sent and len(sent) == len(native_server.requests)
    assert all(r.body["store"] is False and r.body["stream"] is True and r.body["model"] == NATIVE_MODEL
               for r in sent)
    logs = key.consume_logs(len(sent))
    assert [(log["prompt_tokens"], log["completion_tokens"], log["client_protocol"]) for log in logs] == [
        (USAGE_IN, USAGE_OUT, "responses")] * len(sent)
