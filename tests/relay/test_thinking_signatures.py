"""Claude's signed thinking carried through chat and Responses history, so a converted Claude channel keeps
thinking in a tool loop: the openai SDK (chat, then Responses) and google-genai as clients against the
Anthropic mock.

Anthropic refuses tool results after thinking unless the assistant turn starts with the signed thinking block
it answered; the gateway hands that block out (chat's `thinking_blocks`, a reasoning item's encrypted_content,
a functionCall's thoughtSignature) and rebuilds it from what the client sends back."""

from __future__ import annotations

import base64

import httpx2
import openai
import pytest
from google import genai
from google.genai import types

from relay import http
from relay.codecs.signed_thinking import MARKER, SEALED, seal, unseal
from tests.providers.mock_anthropic import MockAnthropic
from tests.providers.vendor_harness import serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

anthropic_server = serve(MockAnthropic)

MODEL = "claude-house"
CHAT_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a place",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a place",
           "parameters": CHAT_TOOLS[0]["function"]["parameters"]}
SIGNED = {"type": "thinking", "thinking": "The user wants the weather; I should call the tool.",
          "signature": "EqQBCkYIBxgCKkA3sig+tool=="}
STREAM_SIGNED = [{**SIGNED, "signature": "EqQBCkYIBxgCKkA3sig+toolstream=="},
                 {"type": "redacted_thinking", "data": "EmwKAhgBEgy3redacted=="}]


@pytest.fixture
def claude(transactional_db, anthropic_server):
    return new_world(anthropic_server, username="bob", type=14, name="claude", key="sk-ant-upstream",
                     models=MODEL, model_mapping={MODEL: "claude-sonnet-4-5-20250929"},
                     config={"api_version": "2023-06-01"})


@pytest.fixture
async def sdk(claude, asgi_app):
    transport = httpx2.ASGITransport(app=asgi_app, client=("127.0.0.1", 12345))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
        yield openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=f"sk-{claude.token.key}",
                                 http_client=client, max_retries=0)
    await http.close()


def second_request(claude) -> dict:
    return claude.upstream.requests[-1].body


async def test_a_chat_tool_loop_sends_the_signed_thinking_back_and_keeps_thinking(sdk, claude):
    claude.upstream.then(answer="thinking_tool")
    history = [{"role": "user", "content": "Weather in Paris?"}]
    first = await sdk.chat.completions.create(model=MODEL, messages=history, tools=CHAT_TOOLS,
                                              reasoning_effort="low")
    message = first.choices[0].message
    assert message.model_extra["thinking_blocks"] == [SIGNED]
    assert message.model_extra["reasoning_content"] == SIGNED["thinking"]
    call = message.tool_calls[0]

    # The client sends the assistant message back as it got it, as SDK users and agent loops do.
    history += [message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}]
    await sdk.chat.completions.create(model=MODEL, messages=history, tools=CHAT_TOOLS, reasoning_effort="low")
    sent = second_request(claude)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assistant = sent["messages"][1]
    assert assistant["role"] == "assistant" and assistant["content"][0] == SIGNED
    assert assistant["content"][1]["type"] == "tool_use" and assistant["content"][1]["id"] == call.id
    assert sent["messages"][2]["content"][0]["type"] == "tool_result"


async def test_a_streamed_chat_gives_each_signed_block_whole_for_the_next_turn(sdk, claude):
    claude.upstream.then(answer="thinking_tool")
    history = [{"role": "user", "content": "Weather in Paris?"}]
    stream = await sdk.chat.completions.create(model=MODEL, messages=history, tools=CHAT_TOOLS,
                                               reasoning_effort="low", stream=True)
    blocks, reasoning, arguments, call_id = [], "", "", ""
    async for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        blocks += (delta.model_extra or {}).get("thinking_blocks") or []
        reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        for call in delta.tool_calls or ():
            call_id = call.id or call_id
            arguments += call.function.arguments or ""
    assert blocks == STREAM_SIGNED and reasoning == SIGNED["thinking"]

    history += [{"role": "assistant", "content": None, "thinking_blocks": blocks, "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]},
                {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"}]
    await sdk.chat.completions.create(model=MODEL, messages=history, tools=CHAT_TOOLS, reasoning_effort="low")
    sent = second_request(claude)
    assert "thinking" in sent and sent["messages"][1]["content"][:2] == STREAM_SIGNED


async def test_a_tool_loop_whose_history_lost_the_signature_goes_without_thinking(sdk, claude):
    claude.upstream.then(answer="thinking_tool")
    history = [{"role": "user", "content": "Weather in Paris?"}]
    first = await sdk.chat.completions.create(model=MODEL, messages=history, tools=CHAT_TOOLS,
                                              reasoning_effort="low")
    message = first.choices[0].message
    unsigned = {"role": "assistant", "content": None, "reasoning_content": SIGNED["thinking"],
                "thinking_blocks": [{"type": "thinking", "thinking": SIGNED["thinking"]}],
                "tool_calls": [call.model_dump() for call in message.tool_calls]}
    history += [unsigned, {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "18C"}]
    await sdk.chat.completions.create(model=MODEL, messages=history, tools=CHAT_TOOLS, reasoning_effort="low")
    sent = second_request(claude)
    assert "thinking" not in sent and sent["messages"][1]["content"][0]["type"] == "tool_use"


async def test_a_turn_that_does_not_think_sends_the_history_without_its_thinking(sdk, claude):
    """Anthropic refuses thinking blocks in a prefilled assistant turn when thinking is off, and the models that
    do not think know no such block: a request without thinking sends none, as before signatures were kept."""
    history = [{"role": "user", "content": "Weather in Paris?"},
               {"role": "assistant", "content": "Checking.", "thinking_blocks": [SIGNED]}]
    await sdk.chat.completions.create(model=MODEL, messages=history)
    sent = second_request(claude)
    assert "thinking" not in sent
    assert sent["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "Checking."}]}


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_responses_tool_loop_round_trips_the_signature_in_encrypted_content(sdk, claude, streamed):
    claude.upstream.then(answer="thinking_tool")
    ask = {"model": MODEL, "tools": [WEATHER], "reasoning": {"effort": "low"}, "store": False,
           "include": ["reasoning.encrypted_content"]}
    question = [{"role": "user", "content": "Weather in Paris?"}]
    if streamed:
        async with sdk.responses.stream(input=question, **ask) as stream:
            first = await stream.get_final_response()
    else:
        first = await sdk.responses.create(input=question, **ask)
    reasoning, call = first.output[0], first.output[-1]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content
    assert unseal(reasoning.encrypted_content) == (STREAM_SIGNED if streamed else [SIGNED])
    assert call.type == "function_call"

    # Codex sends back every output item, its reasoning with the encrypted_content, then the call's output.
    history = [*question, *[item.model_dump(exclude_none=True) for item in first.output],
               {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}]
    await sdk.responses.create(input=history, **ask)
    sent = second_request(claude)
    assert sent["thinking"]["type"] == "enabled"
    assistant = sent["messages"][1]
    assert assistant["content"][0] == (STREAM_SIGNED if streamed else [SIGNED])[0]
    assert assistant["content"][-1]["type"] == "tool_use" and assistant["content"][-1]["id"] == call.call_id


async def test_encrypted_content_is_given_only_to_a_client_that_asks(sdk, claude):
    claude.upstream.then(answer="thinking_tool")
    answer = await sdk.responses.create(model=MODEL, input="Weather in Paris?", tools=[WEATHER],
                                        reasoning={"effort": "low"})
    assert answer.output[0].type == "reasoning" and answer.output[0].encrypted_content is None


def test_a_seal_the_gateway_did_not_write_carries_no_thinking():
    assert unseal(seal([SIGNED])) == [SIGNED]
    assert unseal("gAAAAABo-openai-encrypted-reasoning") == []
    assert unseal(seal([SIGNED]).replace("+", "-").replace("/", "_")) == [SIGNED]  # as Google's SDKs write it
    assert unseal(SEALED + "not base64!") == []
    assert unseal(base64.b64encode(MARKER + b"{}").decode()) == []  # {} is not a list of blocks
    assert unseal(seal([{"type": "thinking", "thinking": "unsigned"}])) == []


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_gemini_tool_loop_round_trips_the_signature_in_thought_signature(claude, asgi_app, streamed):
    claude.upstream.then(answer="thinking_tool")
    transport = httpx2.ASGITransport(app=asgi_app, client=("127.0.0.1", 12345))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
        gemini = genai.Client(api_key=f"sk-{claude.token.key}", http_options=types.HttpOptions(
            base_url="http://testserver", api_version="v1beta", httpx_async_client=client,
            retry_options=types.HttpRetryOptions(attempts=1)))
        config = types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
                name="get_weather", description="Weather for a place",
                parameters_json_schema=WEATHER["parameters"])])],
            thinking_config=types.ThinkingConfig(thinking_budget=2048, include_thoughts=True),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
        asked = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])
        if streamed:
            parts = [part async for chunk in await gemini.aio.models.generate_content_stream(
                model=MODEL, contents=[asked], config=config) for part in chunk.candidates[0].content.parts]
            answered = types.Content(role="model", parts=parts)
        else:
            answered = (await gemini.aio.models.generate_content(model=MODEL, contents=[asked],
                                                                 config=config)).candidates[0].content
        [call] = [part for part in answered.parts if part.function_call]
        assert call.thought_signature  # bytes to the SDK, as Gemini's own signatures are

        result = types.Part.from_function_response(name="get_weather", response={"output": "18C"})
        await gemini.aio.models.generate_content(model=MODEL, config=config, contents=[
            asked, answered, types.Content(role="user", parts=[result])])
    await http.close()
    sent = second_request(claude)
    assert sent["thinking"]["type"] == "enabled"
    assistant = sent["messages"][1]
    assert assistant["content"][0] == (STREAM_SIGNED if streamed else [SIGNED])[0]
    assert assistant["content"][-1]["type"] == "tool_use"
