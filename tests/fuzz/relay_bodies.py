"""Valid `/v1` bodies, and values each field is likely to be given wrong: the seeds of the relay's fuzzing."""

from __future__ import annotations

from hypothesis import strategies as st

# Likely values are plain JSON, to get past the parser; the hostile kinds come through `bodies` swaps.
from tests.fuzz.strategies import plain_numbers as numbers
from tests.fuzz.strategies import plain_strings as strings
from tests.fuzz.strategies import plain_values as json_values

# The OpenAI world's channel serves all of these (tests/fuzz/test_relay.py).
MODELS = ("gpt-4o-mini", "gpt-3.5-turbo", "text-embedding-3-small", "gpt-3.5-turbo-instruct", "dall-e-2",
          "dall-e-3", "tts-1", "whisper-1", "gpt-4o-transcribe", "text-moderation-stable", "rerank-1")

models = st.one_of(st.sampled_from(MODELS), strings, json_values)
IMAGE = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAA"
         "AABJRU5ErkJggg==")  # one pixel
# Image addresses that stay on this machine: nothing a test does may reach the internet.
image_urls = st.one_of(st.sampled_from((IMAGE, "data:image/png;base64,", "data:image/png;base64,%%%", "data:,",
                                        "data:image/jpeg;base64," + "A" * 5000, "http://127.0.0.1:9/cat.png",
                                        "ftp://127.0.0.1/x", "", "not a url", "data:text/plain,hi")), json_values)

content_parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.one_of(strings, json_values)}),
    st.fixed_dictionaries({"type": st.just("image_url"),
                           "image_url": st.one_of(st.fixed_dictionaries({"url": image_urls},
                                                                        optional={"detail": json_values}),
                                                  image_urls)}),
    st.fixed_dictionaries({"type": st.just("input_audio"),
                           "input_audio": st.fixed_dictionaries({"data": strings, "format": strings})}),
    st.fixed_dictionaries({"type": st.one_of(strings, json_values)}),
    json_values,
)
contents = st.one_of(strings, st.lists(content_parts, max_size=4), json_values)
tool_calls = st.lists(st.one_of(
    st.fixed_dictionaries({"id": strings, "type": st.just("function"),
                           "function": st.fixed_dictionaries({"name": strings, "arguments": st.one_of(strings,
                                                                                                      json_values)})}),
    json_values), max_size=3)
messages = st.lists(st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(("user", "system", "assistant", "tool", "developer", "function")),
                           "content": contents},
                          optional={"name": st.one_of(strings, json_values), "tool_calls": tool_calls,
                                    "tool_call_id": st.one_of(strings, json_values)}),
    json_values,
), max_size=5)
tools = st.one_of(st.lists(st.one_of(
    st.fixed_dictionaries({"type": st.just("function"),
                           "function": st.fixed_dictionaries({"name": strings},
                                                             optional={"description": strings,
                                                                       "parameters": json_values})}),
    json_values), max_size=3), json_values)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "Say hello"}],
        "max_tokens": 16, "temperature": 0.5, "stream": False}
CHAT_LIKELY = {
    "model": models, "messages": messages, "stream": st.one_of(st.booleans(), json_values),
    "stream_options": st.one_of(st.fixed_dictionaries({"include_usage": json_values}), json_values),
    "max_tokens": numbers, "max_completion_tokens": numbers, "n": numbers, "temperature": numbers,
    "top_p": numbers, "tools": tools, "tool_choice": st.one_of(st.sampled_from(("auto", "none", "required")),
                                                               json_values),
    "response_format": st.one_of(st.fixed_dictionaries({"type": st.sampled_from(("json_object", "json_schema",
                                                                                 "text"))},
                                                       optional={"json_schema": json_values}), json_values),
    "stop": st.one_of(strings, st.lists(strings, max_size=5), json_values),
    "logit_bias": st.one_of(st.dictionaries(strings, numbers, max_size=3), json_values),
    "seed": numbers, "user": strings, "functions": json_values, "reasoning_effort": strings,
}

COMPLETIONS = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello", "max_tokens": 16}
prompts = st.one_of(strings, st.lists(strings, max_size=4), st.lists(numbers, max_size=4),
                    st.lists(st.lists(numbers, max_size=3), max_size=3), json_values)
COMPLETIONS_LIKELY = {"model": models, "prompt": prompts, "max_tokens": numbers, "stream": json_values,
                      "suffix": strings, "echo": json_values, "best_of": numbers, "logprobs": numbers}

EMBEDDINGS = {"model": "text-embedding-3-small", "input": "hello"}
EMBEDDINGS_LIKELY = {"model": models, "input": prompts, "encoding_format": st.one_of(
    st.sampled_from(("float", "base64")), json_values), "dimensions": numbers}

IMAGES = {"model": "dall-e-3", "prompt": "a lighthouse", "n": 1, "size": "1024x1024", "quality": "hd",
          "response_format": "url"}
IMAGES_LIKELY = {"model": models, "prompt": strings, "n": numbers,
                 "size": st.one_of(st.sampled_from(("256x256", "512x512", "1024x1024", "1024x1792", "1792x1024",
                                                    "0x0", "-1x-1", "99999999999x1")), json_values),
                 "quality": st.one_of(st.sampled_from(("hd", "standard", "high", "low")), json_values),
                 "style": json_values, "response_format": st.one_of(st.sampled_from(("url", "b64_json")),
                                                                   json_values)}

SPEECH = {"model": "tts-1", "input": "Hello there", "voice": "alloy", "response_format": "mp3", "speed": 1.0}
SPEECH_LIKELY = {"model": models, "input": strings, "voice": st.one_of(strings, json_values),
                 "response_format": st.one_of(st.sampled_from(("mp3", "opus", "aac", "flac", "wav", "pcm")),
                                              json_values),
                 "speed": numbers}

MODERATIONS = {"model": "text-moderation-stable", "input": "hello"}
MODERATIONS_LIKELY = {"model": models, "input": prompts}

RERANK = {"model": "rerank-1", "query": "which is a fruit", "documents": ["apple", "car"], "top_n": 1}
RERANK_LIKELY = {"model": models, "query": strings,
                 "documents": st.one_of(st.lists(st.one_of(strings, st.fixed_dictionaries({"text": json_values}),
                                                           json_values), max_size=4), json_values),
                 "top_n": numbers, "return_documents": json_values}

ROUTES = {
    "/v1/chat/completions": (CHAT, CHAT_LIKELY),
    "/v1/completions": (COMPLETIONS, COMPLETIONS_LIKELY),
    "/v1/embeddings": (EMBEDDINGS, EMBEDDINGS_LIKELY),
    "/v1/images/generations": (IMAGES, IMAGES_LIKELY),
    "/v1/audio/speech": (SPEECH, SPEECH_LIKELY),
    "/v1/moderations": (MODERATIONS, MODERATIONS_LIKELY),
    "/v1/rerank": (RERANK, RERANK_LIKELY),
}

# Anthropic's Messages API (relay/codecs/anthropic.py), converted to chat for the same OpenAI channel.
sources = st.one_of(
    st.fixed_dictionaries({"type": st.just("base64"), "media_type": st.one_of(strings, json_values),
                           "data": st.one_of(strings, json_values)}),
    st.fixed_dictionaries({"type": st.just("url"), "url": image_urls}),
    json_values)
blocks = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.one_of(strings, json_values)},
                          optional={"cache_control": json_values}),
    st.fixed_dictionaries({"type": st.just("image"), "source": sources}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": st.one_of(strings, json_values),
                           "name": st.one_of(strings, json_values), "input": json_values}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": st.one_of(strings, json_values)},
                          optional={"content": st.one_of(strings, st.lists(json_values, max_size=3), json_values),
                                    "is_error": json_values}),
    st.fixed_dictionaries({"type": st.sampled_from(("thinking", "document", "redacted_thinking"))},
                          optional={"thinking": strings, "source": json_values}),
    st.fixed_dictionaries({"type": st.one_of(strings, json_values)}),
    json_values)
anthropic_messages = st.lists(st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(("user", "assistant", "system", "tool")),
                           "content": st.one_of(strings, st.lists(blocks, max_size=4), json_values)}),
    json_values), max_size=5)
anthropic_tools = st.one_of(st.lists(st.one_of(
    st.fixed_dictionaries({"name": st.one_of(strings, json_values), "input_schema": json_values},
                          optional={"description": json_values, "defer_loading": json_values,
                                    "cache_control": json_values}),
    st.fixed_dictionaries({"type": strings, "name": strings}),
    json_values), max_size=3), json_values)

MESSAGES = {"model": "gpt-4o-mini", "max_tokens": 16, "system": "Be brief.",
            "messages": [{"role": "user", "content": "Say hello"}], "stream": False}
MESSAGES_LIKELY = {
    "model": models, "max_tokens": numbers, "messages": anthropic_messages,
    "system": st.one_of(strings, st.lists(blocks, max_size=3), json_values),
    "stream": st.one_of(st.booleans(), json_values), "tools": anthropic_tools,
    "tool_choice": st.one_of(st.fixed_dictionaries({"type": st.sampled_from(("auto", "any", "none", "tool"))},
                                                   optional={"name": json_values,
                                                             "disable_parallel_tool_use": json_values}),
                             json_values),
    "thinking": st.one_of(st.fixed_dictionaries({"type": st.sampled_from(("enabled", "adaptive", "disabled"))},
                                                optional={"budget_tokens": numbers}), json_values),
    "stop_sequences": st.one_of(st.lists(strings, max_size=3), json_values), "temperature": numbers,
    "top_p": numbers, "top_k": numbers, "metadata": st.one_of(st.fixed_dictionaries({"user_id": json_values}),
                                                              json_values),
}

MESSAGES_ROUTES = {
    "/v1/messages": (MESSAGES, MESSAGES_LIKELY),
    "/v1/messages/count_tokens": ({k: v for k, v in MESSAGES.items() if k != "max_tokens"}, MESSAGES_LIKELY),
}

# OpenAI's Responses API (relay/codecs/responses.py), bridged to chat on the same OpenAI channel.
response_parts = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(("input_text", "output_text", "refusal")),
                           "text": st.one_of(strings, json_values)}, optional={"refusal": json_values}),
    st.fixed_dictionaries({"type": st.just("input_image")},
                          optional={"image_url": image_urls, "detail": json_values, "file_id": json_values}),
    st.fixed_dictionaries({"type": st.just("input_file")},
                          optional={"file_data": json_values, "file_id": json_values, "filename": json_values}),
    st.fixed_dictionaries({"type": st.one_of(strings, json_values)}),
    json_values)
response_items = st.lists(st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(("user", "assistant", "system", "developer", "tool")),
                           "content": st.one_of(strings, st.lists(response_parts, max_size=3), json_values)},
                          optional={"type": st.just("message"), "status": json_values, "id": json_values}),
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": st.one_of(strings, json_values),
                           "name": st.one_of(strings, json_values)},
                          optional={"arguments": st.one_of(strings, json_values), "namespace": json_values}),
    st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": st.one_of(strings, json_values),
                           "output": st.one_of(strings, st.lists(response_parts, max_size=2), json_values)}),
    st.fixed_dictionaries({"type": st.just("custom_tool_call"), "call_id": st.one_of(strings, json_values),
                           "name": st.one_of(strings, json_values), "input": st.one_of(strings, json_values)}),
    st.fixed_dictionaries({"type": st.just("custom_tool_call_output"), "call_id": st.one_of(strings, json_values),
                           "output": st.one_of(strings, st.lists(response_parts, max_size=2), json_values)}),
    st.fixed_dictionaries({"type": st.sampled_from(("reasoning", "item_reference", "web_search_call"))},
                          optional={"id": json_values, "summary": json_values, "encrypted_content": json_values}),
    json_values), max_size=5)
response_functions = st.fixed_dictionaries({"type": st.just("function"), "name": st.one_of(strings, json_values)},
                                           optional={"parameters": json_values, "strict": json_values,
                                                     "description": json_values})
response_tools = st.one_of(st.lists(st.one_of(
    response_functions,
    st.fixed_dictionaries({"type": st.just("namespace"), "name": st.one_of(strings, json_values),
                           "tools": st.one_of(st.lists(response_functions, max_size=2), json_values)}),
    st.fixed_dictionaries({"type": st.sampled_from(("web_search", "file_search"))}),
    st.fixed_dictionaries({"type": st.just("custom"), "name": st.one_of(strings, json_values)},
                          optional={"description": json_values, "format": st.one_of(st.fixed_dictionaries(
                              {"type": st.sampled_from(("text", "grammar"))},
                              optional={"syntax": json_values, "definition": st.one_of(strings, json_values)}),
                              json_values)}),
    json_values), max_size=3), json_values)

RESPONSES = {"model": "gpt-4o-mini", "instructions": "Be brief.", "input": "Say hello", "max_output_tokens": 16,
             "stream": False, "store": False}
RESPONSES_LIKELY = {
    "model": models, "input": st.one_of(strings, response_items, json_values), "instructions": json_values,
    "stream": st.one_of(st.booleans(), json_values), "tools": response_tools,
    "tool_choice": st.one_of(st.sampled_from(("auto", "none", "required")),
                             st.fixed_dictionaries({"type": st.sampled_from(("function", "custom", "allowed_tools"))},
                                                   optional={"name": json_values, "mode": json_values}),
                             json_values),
    "reasoning": st.one_of(st.fixed_dictionaries({}, optional={"effort": json_values, "summary": json_values}),
                           json_values),
    "text": st.one_of(st.fixed_dictionaries({"format": st.one_of(st.fixed_dictionaries(
        {"type": st.sampled_from(("json_schema", "json_object", "text"))},
        optional={"name": json_values, "schema": json_values, "strict": json_values}), json_values)}), json_values),
    "max_output_tokens": numbers, "temperature": numbers, "top_p": numbers, "parallel_tool_calls": json_values,
    "previous_response_id": json_values, "metadata": json_values, "user": json_values,
    "safety_identifier": json_values, "include": json_values, "prompt_cache_key": json_values,
}

RESPONSES_ROUTES = {
    "/v1/responses": (RESPONSES, RESPONSES_LIKELY),
    "/v1/responses/input_tokens": ({k: v for k, v in RESPONSES.items() if k != "max_output_tokens"},
                                   RESPONSES_LIKELY),
}

# Gemini's API (relay/codecs/gemini.py), converted to chat and embeddings for the same OpenAI channel.
gemini_parts = st.lists(st.one_of(
    st.fixed_dictionaries({"text": st.one_of(strings, json_values)}, optional={"thought": json_values}),
    st.fixed_dictionaries({"inlineData": st.one_of(st.fixed_dictionaries(
        {"mimeType": st.one_of(st.sampled_from(("image/png", "audio/wav", "application/pdf")), json_values),
         "data": st.one_of(strings, json_values)}), json_values)}),
    st.fixed_dictionaries({"fileData": st.one_of(st.fixed_dictionaries({"fileUri": image_urls},
                                                                       optional={"mimeType": json_values}),
                                                 json_values)}),
    st.fixed_dictionaries({"functionCall": st.one_of(st.fixed_dictionaries(
        {"name": st.one_of(strings, json_values)}, optional={"args": json_values, "id": json_values}), json_values)},
        optional={"thoughtSignature": json_values}),
    st.fixed_dictionaries({"functionResponse": st.one_of(st.fixed_dictionaries(
        {"name": st.one_of(strings, json_values)}, optional={"response": json_values, "id": json_values}),
        json_values)}),
    json_values), max_size=4)
gemini_contents = st.one_of(st.lists(st.one_of(
    st.fixed_dictionaries({"parts": st.one_of(gemini_parts, json_values)},
                          optional={"role": st.one_of(st.sampled_from(("user", "model", "function", "system")),
                                                      json_values)}),
    json_values), max_size=4), json_values)
gemini_schema = st.one_of(st.fixed_dictionaries({"type": st.one_of(st.sampled_from(("OBJECT", "STRING", "object")),
                                                                   json_values)},
                                                optional={"properties": json_values, "items": json_values}),
                          json_values)
gemini_tools = st.one_of(st.lists(st.one_of(
    st.fixed_dictionaries({"functionDeclarations": st.one_of(st.lists(st.one_of(st.fixed_dictionaries(
        {"name": st.one_of(strings, json_values)},
        optional={"parameters": gemini_schema, "parametersJsonSchema": gemini_schema,
                  "description": json_values}), json_values), max_size=3), json_values)}),
    st.fixed_dictionaries({"googleSearch": json_values}), json_values), max_size=3), json_values)
gemini_config = st.one_of(st.fixed_dictionaries({}, optional={
    "temperature": numbers, "topP": numbers, "topK": numbers, "maxOutputTokens": numbers, "candidateCount": numbers,
    "stopSequences": st.one_of(st.lists(strings, max_size=3), json_values), "seed": numbers,
    "responseMimeType": st.one_of(st.just("application/json"), json_values), "responseSchema": gemini_schema,
    "thinkingConfig": st.one_of(st.fixed_dictionaries({}, optional={
        "includeThoughts": json_values, "thinkingBudget": numbers, "thinkingLevel": json_values}), json_values)}),
    json_values)

GENERATE = {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
            "systemInstruction": {"role": "user", "parts": [{"text": "Be brief."}]},
            "generationConfig": {"maxOutputTokens": 16}}
GENERATE_LIKELY = {
    "contents": gemini_contents, "systemInstruction": st.one_of(st.fixed_dictionaries({"parts": gemini_parts}),
                                                                strings, json_values),
    "tools": gemini_tools, "generationConfig": gemini_config, "safetySettings": json_values,
    "toolConfig": st.one_of(st.fixed_dictionaries({"functionCallingConfig": st.one_of(st.fixed_dictionaries(
        {"mode": st.one_of(st.sampled_from(("AUTO", "ANY", "NONE")), json_values)},
        optional={"allowedFunctionNames": json_values}), json_values)}), json_values),
}
EMBED = {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 3}
EMBED_LIKELY = {"content": st.one_of(st.fixed_dictionaries({"parts": gemini_parts}), json_values),
                "outputDimensionality": numbers, "taskType": json_values}

GEMINI_ROUTES = {
    "/v1beta/models/gpt-4o-mini:generateContent": (GENERATE, GENERATE_LIKELY),
    "/v1beta/models/gpt-4o-mini:streamGenerateContent?alt=sse": (GENERATE, GENERATE_LIKELY),
    "/v1/models/gpt-4o-mini:streamGenerateContent": (GENERATE, GENERATE_LIKELY),
    "/v1beta/models/gpt-4o-mini:countTokens": ({"contents": GENERATE["contents"]}, GENERATE_LIKELY),
    "/v1beta/models/text-embedding-3-small:embedContent": (EMBED, EMBED_LIKELY),
    "/v1beta/models/text-embedding-3-small:batchEmbedContents": (
        {"requests": [EMBED, EMBED]}, {"requests": st.one_of(st.lists(st.one_of(
            st.fixed_dictionaries({"content": EMBED_LIKELY["content"]}), json_values), max_size=3), json_values)}),
}
