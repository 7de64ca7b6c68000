"""Local token counts (when an upstream reports no usage): any client text is counted, never refused."""

from relay import tokenizer


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
