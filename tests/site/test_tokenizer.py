"""Local token counts of prompts and inputs, for when a vendor reports no usage: any client text is
counted, never refused."""

import orjson

from oneapi_site.lib import tokenizer

MODEL = "gpt-3.5-turbo"


def test_special_token_text_is_counted_as_text():
    assert tokenizer.count_text("<|endoftext|>", "gpt-4o-mini") > 1
    assert tokenizer.count_text("<|endoftext|>", "gpt-3.5-turbo") > 1


def test_a_text_past_the_encoders_limits_is_counted_in_pieces():
    # 1.25 million characters and about 250,000 tokens: past both of bpe-openai's limits.
    assert abs(tokenizer.count_text("word " * 250_000, "gpt-4o-mini") - 250_000) < 100
    assert tokenizer.count_text("😀" * 300_000, "gpt-4o-mini") >= 300_000


def test_messages_of_any_shape_are_counted():
    messages = [{"role": "assistant", "content": "<|endoftext|>", "tool_calls": 5},
                {"role": "user", "name": "<|fim_prefix|>", "content": [{"type": "text", "text": "hi"}]}]
    assert tokenizer.count_messages(messages, "gpt-4o-mini") > 10


def test_an_input_is_counted_as_strings_lists_and_token_ids():
    hello = tokenizer.count_text("hello world", MODEL)
    assert hello > 0
    assert tokenizer.count_input("hello world", MODEL) == hello
    assert tokenizer.count_input(["hello world", "hello world"], MODEL) == 2 * hello
    assert tokenizer.count_input([1, 2, 3], MODEL) == 3
    assert tokenizer.count_input([[1, 2, 3], [4, 5], "hello world"], MODEL) == 5 + hello
    assert tokenizer.count_input(None, MODEL) == tokenizer.count_input({"a": "b"}, MODEL) == 0


def test_an_input_nested_as_deep_as_json_allows_is_counted_without_recursing():
    # orjson reads 1024 levels: far past Python's recursion limit for a walk that recursed per level.
    deep = orjson.loads(b"[" * 1023 + b'"hello world"' + b"]" * 1023)
    assert tokenizer.count_input(deep, MODEL) == tokenizer.count_text("hello world", MODEL)
