"""Alibaba adapters, bytes in and bytes out: DashScope's native request and answers, and Bailian's URL."""

from pathlib import Path

import orjson
import pytest

from providers.adapters import ADAPTERS, adapter_for
from providers.adapters.ali import adapter as ali
from providers.adapters.ali import wanx
from providers.adapters.base import ChannelInfo, UpstreamError
from relay.streaming import ChunkGatherer, SSEParser
from tests.providers.vendor_harness import call_context

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "ali"
KEY = "sk-dashscope-0123456789abcdef"
CHAT = {"model": "qwen-plus", "messages": [{"role": "system", "content": "简短回答"},
                                            {"role": "user", "content": "你是谁"}]}
TOOLS = [{"type": "function", "function": {"name": "get_current_weather", "description": "天气",
                                           "parameters": {"type": "object",
                                                          "properties": {"location": {"type": "string"}}}}}]


def channel(base_url="", config=None, type_=17, key=KEY):
    return ChannelInfo(id=1, type=type_, name="a", key=key, base_url=base_url, models=("qwen-plus",),
                       model_mapping={}, config=config or {}, system_prompt="", priority=0, weight=0)


def build(body=CHAT, stream=False, **kwargs):
    return adapter_for(17).build_request(call_context(channel(**kwargs), body=body, stream=stream))


def sent(request) -> dict:
    return orjson.loads(request.body)


def decode(name_or_bytes, model="qwen-plus"):
    raw = name_or_bytes if isinstance(name_or_bytes, bytes) else (FIXTURES / name_or_bytes).read_bytes()
    decoder = adapter_for(17).stream_decoder(call_context(model=model))
    parser = SSEParser()
    events = []
    for event, data in [*parser.feed(raw), *parser.close()]:
        if event != b":":  # the relay skips comments (`:HTTP_STATUS/200`)
            events.extend(decoder.feed(event, data))
    return events + decoder.close()


def test_ali_types_are_registered():
    assert ADAPTERS[17] is ali.AliAdapter and ADAPTERS[49] is ali.BailianAdapter
    assert ali.AliAdapter.config_fields == ("plugin",)
    assert ali.AliAdapter.label == "Alibaba DashScope"
    assert ali.BailianAdapter.label == "Alibaba Bailian (OpenAI-compatible)"


def test_plain_request_url_headers_and_body():
    body = {**CHAT, "max_tokens": 300, "temperature": 2, "top_p": 1, "stop": ["。"], "seed": 7,
            "presence_penalty": 0.5}
    request = build(body)
    assert request.url == "https://dashscope.aliyuncs.com/api/v1/services/aigc/text-generation/generation"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert "X-DashScope-SSE" not in request.headers and "X-DashScope-Plugin" not in request.headers
    assert sent(request) == {
        "model": "qwen-plus", "input": {"messages": CHAT["messages"]},
        "parameters": {"result_format": "message", "max_tokens": 300, "temperature": 1.99, "top_p": 0.9999,
                       "stop": ["。"], "seed": 7, "presence_penalty": 0.5}}


def test_stream_asks_for_sse_and_incremental_output_and_plugin_goes_in_a_header():
    request = build({**CHAT, "stream": True, "stream_options": {"include_usage": True}}, stream=True,
                    base_url="http://dash.local/", config={"plugin": "{\"pdf_extracter\":{}}"})
    assert request.url == "http://dash.local/api/v1/services/aigc/text-generation/generation"
    assert request.headers["X-DashScope-SSE"] == "enable"
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["X-DashScope-Plugin"] == "{\"pdf_extracter\":{}}"
    payload = sent(request)
    assert payload["parameters"]["incremental_output"] is True
    assert "stream_options" not in payload and "stream" not in payload


def test_internet_suffix_turns_on_search():
    payload = sent(build({**CHAT, "model": "qwen-max-internet"}))
    assert payload["model"] == "qwen-max" and payload["parameters"]["enable_search"] is True
    assert "enable_search" not in sent(build(CHAT))["parameters"]


def test_tools_and_tool_history_are_sent_in_dashscopes_form():
    history = [{"role": "user", "content": "杭州天气?"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "call_1", "type": "function",
                    "function": {"name": "get_current_weather", "arguments": "{\"location\":\"杭州\"}"}}]},
               {"role": "tool", "tool_call_id": "call_1", "content": "晴, 25°C"}]
    payload = sent(build({"model": "qwen-plus", "messages": history, "tools": TOOLS, "tool_choice": "required"}))
    assert payload["parameters"]["tools"] == TOOLS
    assert payload["parameters"]["tool_choice"] == "auto"
    messages = payload["input"]["messages"]
    assert messages[1] == {"role": "assistant", "content": "", "tool_calls": history[1]["tool_calls"]}
    assert messages[2] == {"role": "tool", "content": "晴, 25°C", "tool_call_id": "call_1",
                           "name": "get_current_weather"}
    named = sent(build({**CHAT, "tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "x"}}}))
    assert named["parameters"]["tool_choice"] == {"type": "function", "function": {"name": "x"}}


def test_an_image_part_is_refused_clearly():
    body = {"model": "qwen-vl-plus", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}
    with pytest.raises(UpstreamError) as caught:
        build(body)
    assert (caught.value.status, caught.value.code) == (400, "unsupported_content")
    assert "Bailian" in caught.value.message


def test_plain_answer_becomes_a_chat_completion_with_qwens_usage():
    data, usage = adapter_for(17).parse_response(call_context(channel(), body=CHAT),
                                                 body=(FIXTURES / "chat.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "chat.completion" and answer["model"] == "qwen-plus"
    assert answer["id"] == "chatcmpl-09dceb20-ae2e-999b-85f9-c5ab266198c0"
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant",
                                                          "content": "我是通义千问，由阿里云开发的大规模语言模型。"},
                                  "logprobs": None, "finish_reason": "stop"}]
    assert answer["usage"] == {"prompt_tokens": 22, "completion_tokens": 16, "total_tokens": 38}
    assert (usage.prompt_tokens, usage.completion_tokens) == (22, 16)


def test_a_tool_call_answer_is_openais_tool_calls():
    data, usage = adapter_for(17).parse_response(call_context(), body=(FIXTURES / "tool_call.json").read_bytes())
    choice = orjson.loads(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [{"id": "call_240d6341de4c484384849d", "type": "function", "function": {
        "name": "get_current_weather", "arguments": "{\"location\": \"杭州市\"}"}}]
    assert usage.completion_tokens == 18


@pytest.mark.parametrize("fixture, http, status, type_, code, retryable", [
    ("error_auth.json", 401, 401, "authentication_error", "invalid_api_key", False),
    ("error_throttling.json", 429, 429, "rate_limit_error", "rate_limit_exceeded", True),
    ("error_arrearage.json", 400, 400, "insufficient_quota", "insufficient_quota", False),
])
def test_errors_keep_dashscopes_message(fixture, http, status, type_, code, retryable):
    raw = (FIXTURES / fixture).read_bytes()
    err = adapter_for(17).parse_error(call_context(), status=http, body=raw)
    assert (err.status, err.type, err.code, err.retryable) == (status, type_, code, retryable)
    assert err.message == orjson.loads(raw)["message"]
    assert err.error_body["request_id"] == orjson.loads(raw)["request_id"]


def test_an_error_body_with_http_200_is_raised_not_relayed():
    with pytest.raises(UpstreamError) as caught:
        adapter_for(17).parse_response(call_context(), body=(FIXTURES / "error_throttling.json").read_bytes())
    assert caught.value.retryable and caught.value.status == 429


def test_stream_becomes_openai_chunks_billed_from_the_cumulative_usage():
    events = decode("stream.sse")
    content = [e for e in events if e.data and not e.usage_only]
    chunks = [orjson.loads(e.data) for e in content]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "我是通义千问，很高兴为你服务。"
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "qwen-plus" for c in chunks)
    assert [e.usage.completion_tokens for e in content] == [1, 4, 11], "usage so far, in every event"
    last = events[-1]
    assert last.usage_only and orjson.loads(last.data)["usage"] == {"prompt_tokens": 22, "completion_tokens": 11,
                                                                    "total_tokens": 33}


def test_streamed_tool_calls_send_id_and_name_once_and_gather_whole():
    events = decode("stream_tool_call.sse")
    gatherer = ChunkGatherer(mode="chat", model="qwen-plus", request_id="r")
    calls = []
    for e in events:
        gatherer.add(e.data)
        chunk = orjson.loads(e.data)
        for choice in chunk["choices"]:
            calls.extend(choice["delta"].get("tool_calls", []))
    assert calls[0] == {"index": 0, "id": "call_ec7b2e6c1e1b4d4e8f5f0e", "type": "function",
                        "function": {"name": "get_current_weather", "arguments": "{\"location\":"}}
    assert calls[1] == {"index": 0, "function": {"arguments": " \"杭州市\"}"}}
    answer = orjson.loads(gatherer.result(events[-1].usage))
    message = answer["choices"][0]["message"]
    assert message["tool_calls"][0]["function"] == {"name": "get_current_weather",
                                                    "arguments": "{\"location\": \"杭州市\"}"}
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    assert answer["usage"]["completion_tokens"] == 18


def test_a_malformed_event_is_skipped_and_the_stream_goes_on():
    events = decode("malformed.sse")
    chunks = [orjson.loads(e.data) for e in events if e.data and not e.usage_only]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "第一句。第二句。"
    assert events[-1].usage.completion_tokens == 6


def test_a_stream_cut_mid_way_is_billed_from_what_qwen_counted():
    events = decode("stream_cut.sse")
    assert [e.text for e in events] == ["说到一半"]
    assert events[0].usage.completion_tokens == 4 and not any(e.usage_only for e in events)


def test_an_error_event_becomes_an_openai_error_chunk():
    events = decode("stream_error.sse")
    error = orjson.loads(events[0].data)["error"]
    assert (error["code"], error["message"]) == ("content_filter", "Output data may contain inappropriate content.")


def test_embeddings_request_and_answer():
    ctx = call_context(channel(), "embeddings", {"model": "text-embedding-v3", "input": ["你好", "世界"],
                                                 "dimensions": 512})
    request = adapter_for(17).build_request(ctx)
    assert request.url == "https://dashscope.aliyuncs.com/api/v1/services/embeddings/text-embedding/text-embedding"
    assert sent(request) == {"model": "text-embedding-v3", "input": {"texts": ["你好", "世界"]},
                             "parameters": {"text_type": "query", "dimension": 512}}
    data, usage = adapter_for(17).parse_response(ctx, body=(FIXTURES / "embeddings.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "list" and answer["model"] == "text-embedding-v3"
    assert [d["index"] for d in answer["data"]] == [0, 1]
    assert answer["data"][0]["embedding"] == [-0.0069, 0.0128, 0.0427]
    assert answer["usage"] == {"prompt_tokens": 8, "total_tokens": 8} and usage.prompt_tokens == 8
    single = adapter_for(17).build_request(call_context(channel(), "embeddings",
                                                        {"model": "text-embedding-v1", "input": "一句"}))
    assert sent(single)["input"] == {"texts": ["一句"]}


@pytest.mark.parametrize("base", ["", "https://dashscope.aliyuncs.com/compatible-mode/v1"])
def test_bailian_speaks_openai_under_compatible_mode(base):
    adapter = adapter_for(49)
    ch = channel(base_url=base, type_=49)
    request = adapter.build_request(call_context(ch, body=CHAT))
    assert request.url == "https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert sent(request) == CHAT
    embed = adapter.build_request(call_context(ch, "embeddings", {"model": "text-embedding-v3", "input": "x"}))
    assert embed.url == "https://dashscope.aliyuncs.com/compatible-mode/v1/embeddings"
    assert adapter.balance_requests(ch) == []


# --- Wanx images ---------------------------------------------------------------------------------------

IMAGE = {"model": "wanx2.1-t2i-turbo", "prompt": "一间有着精致窗户的花店", "size": "1280x720", "n": 2,
         "negative_prompt": "低分辨率", "seed": 42, "quality": "hd", "response_format": "url", "user": "u1"}


def image_context(body=IMAGE, **kwargs):
    return call_context(channel(**kwargs), mode="images", body=body)


def test_an_image_request_is_a_wanx_task_with_the_size_written_dashscopes_way():
    adapter = adapter_for(17)
    assert "images" in adapter.modes and "images" in adapter.complete_modes
    request = adapter.build_request(image_context(config={"plugin": "pdf"}))
    assert (request.method, request.url) == (
        "POST", "https://dashscope.aliyuncs.com/api/v1/services/aigc/text2image/image-synthesis")
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["X-DashScope-Async"] == "enable"  # the HTTP API runs images only as tasks
    assert "X-DashScope-SSE" not in request.headers
    assert sent(request) == {"model": "wanx2.1-t2i-turbo",
                             "input": {"prompt": "一间有着精致窗户的花店", "negative_prompt": "低分辨率"},
                             "parameters": {"n": 2, "size": "1280*720", "seed": 42}}


def test_n_is_always_sent_because_wanx_makes_four_without_it():
    request = adapter_for(17).build_request(image_context({"model": "wanx-v1", "prompt": "猫", "size": "auto"}))
    assert sent(request) == {"model": "wanx-v1", "input": {"prompt": "猫"}, "parameters": {"n": 1}}


def test_the_task_is_polled_and_cancelled_at_its_own_url():
    ctx = image_context(base_url="https://dashscope-intl.aliyuncs.com/")
    request = adapter_for(17).task_request(ctx, "ab/cd")
    assert (request.method, request.url) == ("GET", "https://dashscope-intl.aliyuncs.com/api/v1/tasks/ab%2Fcd")
    assert request.headers["Authorization"] == f"Bearer {KEY}" and request.body is None
    cancel = adapter_for(17).task_request(ctx, "ab/cd", "cancel")
    assert (cancel.method, cancel.url) == ("POST", "https://dashscope-intl.aliyuncs.com/api/v1/tasks/ab%2Fcd/cancel")
    assert cancel.headers["Authorization"] == f"Bearer {KEY}" and cancel.body is None


def _output(name):
    return orjson.loads((FIXTURES / name).read_bytes())["output"]


def test_the_submit_answer_and_a_status_query_give_the_task_and_its_state():
    submitted = wanx._task_output((FIXTURES / "image_task_submitted.json").read_bytes())
    running = wanx._task_output((FIXTURES / "image_task_running.json").read_bytes())
    assert submitted["task_id"] == running["task_id"] == "0385dc79-5ff8-4d82-bcb6-2b7d4a1c9e01"
    assert (submitted["task_status"], running["task_status"]) == ("PENDING", "RUNNING")
    with pytest.raises(UpstreamError) as refused:  # DashScope's error body, whatever the HTTP status
        wanx._task_output((FIXTURES / "error_throttling.json").read_bytes())
    assert refused.value.status == 429 and refused.value.retryable


async def test_a_finished_task_becomes_openais_images_answer_with_the_rewritten_prompt():
    data = await wanx.image_answer(image_context(), _output("image_task_succeeded.json"), "t", session=None)
    answer = orjson.loads(data)
    assert [i["url"] for i in answer["data"]] == [
        "https://dashscope-result-wlcb.oss-cn-wulanchabu.aliyuncs.com/1.png",
        "https://dashscope-result-wlcb.oss-cn-wulanchabu.aliyuncs.com/2.png"]
    assert answer["data"][0]["revised_prompt"].startswith("一间有着精致雕花窗户的花店")
    assert isinstance(answer["created"], int)


async def test_a_partly_failed_task_answers_with_the_images_it_made():
    data = await wanx.image_answer(image_context(), _output("image_task_partial.json"), "t", session=None)
    assert orjson.loads(data)["data"] == [{"url": "https://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/1.png"}]


async def test_a_finished_task_without_images_is_an_error_with_the_results_message():
    output = {**_output("image_task_partial.json")}
    output["results"] = output["results"][1:]
    with pytest.raises(UpstreamError) as failed:
        await wanx.image_answer(image_context(), output, "t", session=None)
    assert failed.value.message.startswith("An internal timeout error")
    assert failed.value.retryable  # nothing was made, so nothing billed: another channel may try


def test_a_failed_task_keeps_dashscopes_code_and_message():
    err = wanx._task_failed(_output("image_task_failed.json"), "t")
    assert (err.status, err.type, err.code, err.retryable) == (400, "invalid_request_error", "InvalidParameter",
                                                               False)
    assert err.message.startswith("The size is not match")


def test_an_unknown_task_is_an_upstream_error_naming_it():
    err = wanx._task_failed(_output("image_task_unknown.json"), "0385dc79")
    assert (err.status, err.code, err.retryable) == (502, "task_failed", False)
    assert "0385dc79" in err.message and "expired" in err.message
