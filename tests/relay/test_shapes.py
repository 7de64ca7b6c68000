"""The relay refuses bodies whose OpenAI fields have the wrong JSON type, naming the field, before any
adapter converts them; bodies of every documented shape pass."""

import pytest

from relay import shapes
from relay.errors import RelayError

USER = {"role": "user", "content": "hi"}


def chat(**fields):
    return {"model": "gpt-4o-mini", "messages": [USER], **fields}


@pytest.mark.parametrize("mode, body", [
    ("chat", chat(messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42", "name": "f"}],
        tools=[{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
        tool_choice={"type": "function", "function": {"name": "f"}}, stop=["a", "b"], n=2, seed=7, temperature=0,
        top_p=0.5, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        stream_options={"include_usage": True}, logit_bias={"50256": -100}, user="u", voice=None)),
    ("chat", chat(stop="end", tool_choice="auto", functions=[{"name": "f", "parameters": {}}],
                  function_call="auto", unknown_field=[1, {"x": None}])),
    ("completions", {"model": "m", "prompt": [[1, 2], [3]]}),
    ("completions", {"model": "m", "prompt": ["a", "b"], "suffix": "z", "best_of": 2}),
    ("embeddings", {"model": "m", "input": [1, 2, 3], "dimensions": 256, "encoding_format": "base64"}),
    ("moderations", {"model": "m", "input": [{"type": "text", "text": "x"}]}),
    ("rerank", {"model": "m", "query": "q", "documents": ["a", {"text": "b"}], "top_n": 1}),
    ("images", {"model": "m", "prompt": "p", "size": "1024x1024", "response_format": "b64_json"}),
    ("speech", {"model": "m", "input": "x", "voice": "alloy", "speed": 1.25, "response_format": "wav"}),
])
def test_every_documented_shape_passes(mode, body):
    shapes.check(mode, body)


@pytest.mark.parametrize("mode, body, where", [
    ("chat", chat(messages=[5]), "messages[0]"),
    ("chat", chat(messages=[{"content": "no role"}]), "messages[0].role"),
    ("chat", chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
    ("chat", chat(messages=[{"role": "user", "content": [None]}]), "messages[0].content[0]"),
    ("chat", chat(messages=[{"role": "user", "content": [{"type": "text", "text": ["x"]}]}]),
     "messages[0].content[0].text"),
    ("chat", chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 1}}]}]),
     "messages[0].content[0].image_url.url"),
    ("chat", chat(messages=[USER, {"role": "assistant", "tool_calls": {"id": "x"}}]), "messages[1].tool_calls"),
    ("chat", chat(messages=[{"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}]),
     "messages[0].tool_calls[0].function.arguments"),
    ("chat", chat(tools=[None]), "tools[0]"),
    ("chat", chat(tools=[{"type": "function", "function": "f"}]), "tools[0].function"),
    ("chat", chat(tools=[{"type": "function", "function": {"name": "f", "parameters": "{}"}}]),
     "tools[0].function.parameters"),
    ("chat", chat(functions=True), "functions"),
    ("chat", chat(tool_choice=1), "tool_choice"),
    ("chat", chat(response_format="json_object"), "response_format"),
    ("chat", chat(stop=5), "stop"),
    ("chat", chat(stop=["a", 1]), "stop"),
    ("chat", chat(n=0), "n"),
    ("chat", chat(n=True), "n"),
    ("chat", chat(temperature="hot"), "temperature"),
    ("chat", chat(seed=1.5), "seed"),
    ("chat", chat(user=42), "user"),
    ("chat", chat(stream_options=True), "stream_options"),
    ("completions", {"model": "m", "prompt": {"text": "x"}}, "prompt"),
    ("completions", {"model": "m", "prompt": ["a", 1]}, "prompt"),
    ("embeddings", {"model": "m", "input": [[1, "a"]]}, "input"),
    ("moderations", {"model": "m", "input": 5}, "input"),
    ("rerank", {"model": "m", "query": "q", "documents": [["a"]]}, "documents[0]"),
    ("rerank", {"model": "m", "query": "q", "documents": [{"text": 5}]}, "documents[0]"),
    ("images", {"model": "m", "prompt": "p", "response_format": ["url"]}, "response_format"),
    ("speech", {"model": "m", "input": "x", "voice": ["alloy"]}, "voice"),
])
def test_a_field_of_the_wrong_type_is_refused_by_name(mode, body, where):
    with pytest.raises(RelayError) as refused:
        shapes.check(mode, body)
    assert refused.value.status == 400
    assert refused.value.message.startswith(f"`{where}` must be ")
    assert refused.value.param == where.split("[")[0].split(".")[0]


@pytest.mark.django_db(transaction=True)
async def test_the_refusal_is_openai_error_json_and_nothing_reaches_the_upstream(client, world):
    body = chat(messages=[USER, {"role": "assistant", "content": None, "tool_calls": [None]}])
    response = await client.post("/v1/chat/completions", json=body, headers=world.auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "messages")
    assert error["message"].startswith("`messages[1].tool_calls[0]` must be an object.")
    assert world.upstream.requests == []
