"""What each coding agent sends, captured against a stub that answers in the agent's own protocol
(tests/e2e/agents/native_stub.py): the endpoints, headers and body fields the gateway's ingress must take.
The README's "Coding agents" section is written from these; a new pinned version that sends something else
fails here first."""

from __future__ import annotations

import pytest

from tests.e2e.agents.harness import codex_config, gemini_settings
from tests.e2e.agents.native_stub import REPLY, NativeStub
from tests.providers.vendor_harness import serve

stub_server = serve(NativeStub)


@pytest.fixture
def stub(stub_server):
    stub_server.reset()
    return stub_server


def the_one_request(stub):
    """The agent's only request, with its header names lower-cased."""
    assert len(stub.requests) == 1, [(r.method, r.path) for r in stub.requests]
    sent = stub.requests[0]
    return sent, {name.lower(): value for name, value in sent.headers.items()}


def test_claude_code_sends_one_streamed_message_with_its_key_in_x_api_key(claude_code, stub, tmp_path):
    run = claude_code.run("-p", "Say hello", home=tmp_path,
                          env={"ANTHROPIC_BASE_URL": stub.url, "ANTHROPIC_API_KEY": "sk-capture"})
    assert run.returncode == 0 and REPLY in run.stdout, str(run)
    sent, headers = the_one_request(stub)
    assert (sent.method, sent.path, sent.query) == ("POST", "/v1/messages", "beta=true")
    assert headers["x-api-key"] == "sk-capture" and "authorization" not in headers
    assert (headers["anthropic-version"], headers["x-app"]) == ("2023-06-01", "cli")
    assert "claude-code-20250219" in headers["anthropic-beta"].split(",")
    body = sent.body
    assert body["stream"] is True
    assert {"model", "messages", "system", "tools", "max_tokens", "metadata"} <= set(body)
    # Fields a strict decoder would refuse: the gateway must drop or pass them, never answer 400.
    assert body["thinking"]["type"] == "adaptive" and "effort" in body["output_config"]
    assert "context_management" in body
    assert "system" in [m["role"] for m in body["messages"]]
    assert any("cache_control" in block for block in body["system"])
    assert any(tool.get("defer_loading") for tool in body["tools"])


def test_claude_code_with_an_auth_token_sends_it_as_bearer_only(claude_code, stub, tmp_path):
    run = claude_code.run("-p", "Say hello", home=tmp_path,
                          env={"ANTHROPIC_BASE_URL": stub.url, "ANTHROPIC_AUTH_TOKEN": "sk-capture"})
    assert run.returncode == 0 and REPLY in run.stdout, str(run)
    sent, headers = the_one_request(stub)
    assert (sent.path, sent.query) == ("/v1/messages", "beta=true")
    assert headers["authorization"] == "Bearer sk-capture" and "x-api-key" not in headers


def test_codex_sends_one_streamed_response_request_with_bearer_auth(codex, stub, tmp_path):
    codex_config(tmp_path, base_url=f"{stub.url}/v1", model="gpt-4o-mini", key_variable="GATEWAY_KEY")
    run = codex.run("exec", "--skip-git-repo-check", "Say hello", home=tmp_path, env={"GATEWAY_KEY": "sk-capture"})
    assert run.returncode == 0 and REPLY in run.stdout, str(run)
    sent, headers = the_one_request(stub)
    assert (sent.method, sent.path) == ("POST", "/v1/responses")
    assert headers["authorization"] == "Bearer sk-capture" and headers["accept"] == "text/event-stream"
    body = sent.body
    assert (body["model"], body["stream"], body["store"]) == ("gpt-4o-mini", True, False)
    assert body["include"] == ["reasoning.encrypted_content"]
    assert {"prompt_cache_key", "client_metadata", "tool_choice", "parallel_tool_calls", "reasoning"} <= set(body)
    # No `instructions`: the system prompt comes as developer messages ahead of the user's.
    assert "instructions" not in body
    roles = [item.get("role") for item in body["input"] if item.get("type") == "message"]
    assert roles[0] == "developer" and roles[-1] == "user"
    assert {tool["type"] for tool in body["tools"]} == {"function", "namespace", "web_search"}
    assert "exec_command" in [tool.get("name") for tool in body["tools"]]


def test_gemini_cli_sends_one_sse_stream_request_with_x_goog_api_key(gemini_cli, stub, tmp_path):
    gemini_settings(tmp_path)
    run = gemini_cli.run("-p", "Say hello", "--model", "gemini-2.5-flash", home=tmp_path,
                         env={"GOOGLE_GEMINI_BASE_URL": stub.url, "GEMINI_API_KEY": "sk-capture"})
    assert run.returncode == 0 and REPLY in run.stdout, str(run)
    sent, headers = the_one_request(stub)
    assert (sent.method, sent.path, sent.query) == (
        "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "alt=sse")
    assert headers["x-goog-api-key"] == "sk-capture" and "authorization" not in headers
    body = sent.body
    assert set(body) == {"contents", "systemInstruction", "tools", "generationConfig"}
    assert body["systemInstruction"]["role"] == "user"
    assert body["generationConfig"]["thinkingConfig"]["includeThoughts"] is True
    declarations = [d for tool in body["tools"] for d in tool["functionDeclarations"]]
    assert "read_file" in [d["name"] for d in declarations]
    assert all("parametersJsonSchema" in d and "parameters" not in d for d in declarations)

