"""Prompt-cache and reasoning tokens end to end, vendor by vendor: what the vendor reports (its own fields,
served from its fixtures), what is billed (reads at CacheRatio, writes at CreateCacheRatio, 1-hour writes at 1.6
times that, reasoning as output), what the consume log records, and what the client's usage says, plain and
streamed."""

import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.services import option_set
from providers.adapters import baidu, zhipu
from tests.helpers import consume_log
from tests.providers.mock_ali import MockAli
from tests.providers.mock_anthropic import MockAnthropic
from tests.providers.mock_anthropic import fixture as anthropic_fixture
from tests.providers.mock_baidu import MockBaidu
from tests.providers.mock_bedrock import MockBedrock
from tests.providers.mock_cohere import MockCohere
from tests.providers.mock_gemini import MockGemini
from tests.providers.mock_tencent import SECRET_ID, SECRET_KEY, MockTencent
from tests.providers.mock_zhipu import MockZhipu
from tests.providers.vendor_harness import serve, stream_chunks
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = [{"role": "user", "content": "What does the file define?"}]
AK, SK, REGION = "AKIAIOSFODNN7EXAMPLE", "bedrock-test-secret/key+with/slashes", "us-east-1"

anthropic_server = serve(MockAnthropic)
gemini_server = serve(MockGemini)
bedrock_server = serve(lambda: MockBedrock(access_key=AK, secret_key=SK, region=REGION))
baidu_server = serve(lambda: MockBaidu(keys={"bdApiKey123": "bdSecretKey456"}))
tencent_server = serve(MockTencent)
cohere_server = serve(MockCohere)
ali_server = serve(lambda: MockAli(keys={"sk-dashscope-mock-key"}))
zhipu_server = serve(lambda: MockZhipu(keys={"zkeyid": "zsecretvalue"}))


async def prices(model: str, *, ratio: float, completion: float) -> None:
    """Known ratios for `model`, so each bill below is worked out by hand; the cache ratios are the defaults."""
    await sync_to_async(option_set)(key="ModelRatio", value={model: ratio})
    await sync_to_async(option_set)(key="CompletionRatio", value={model: completion})


async def ask(client, world, model: str, *, stream: bool) -> dict:
    """The client's usage object, from the answer or the stream's usage chunk."""
    body = {"model": model, "messages": QUESTION}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    response = await client.post("/v1/chat/completions", json=body, headers=world.auth)
    assert response.status_code == 200, response.text
    if not stream:
        return response.json()["usage"]
    [usage] = [chunk["usage"] for chunk in stream_chunks(response.content) if chunk.get("usage")]
    return usage


async def logged(*, prompt, completion, cached, written, written_1h, reasoning, quota, content_has=()):
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.cached_tokens, log.cache_write_tokens,
            log.cache_write_1h_tokens, log.reasoning_tokens) == (prompt, completion, cached, written, written_1h,
                                                                 reasoning)
    assert log.quota == quota
    for text in content_has:
        assert text in log.content, log.content
    return log


# --- Anthropic: input_tokens leave the cache out; writes split 5-minute and 1-hour -------------------------

CLAUDE = "claude-sonnet-4-5-20250929"


@pytest.fixture
def claude(transactional_db, anthropic_server):
    return new_world(anthropic_server, username="alice", type=14, name="claude", key="sk-ant-test-key-123456",
                     models=CLAUDE)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_anthropic_cache_reads_and_5m_and_1h_writes_are_billed_at_their_ratios(relay_client, claude, stream):
    await prices(CLAUDE, ratio=1.5, completion=5)
    claude.upstream.then(answer="cached")
    usage = await ask(relay_client, claude, CLAUDE, stream=stream)
    # The client sees OpenAI's counts: the prompt is every input token, the cached ones among them, and the
    # writes (which OpenAI does not count) beside them.
    assert usage["prompt_tokens"] == 50 + 20000 + 3000 and usage["completion_tokens"] == 300
    assert usage["total_tokens"] == 23350
    assert usage["prompt_tokens_details"] == {"cached_tokens": 20000, "cache_write_tokens": 3000}
    # (50 + 20000 x 0.1 + 1000 x 1.25 + 2000 x 2 + 300 x 5) x 1.5 = 8800 x 1.5; at the full input price
    # it would have been (23050 + 1500) x 1.5 = 36825.
    await logged(prompt=23050, completion=300, cached=20000, written=3000, written_1h=2000, reasoning=0,
                 quota=13200, content_has=("cache read ratio 0.1", "cache write ratio 1.25",
                                           "1-hour cache write ratio 2"))


async def test_an_operators_cache_ratios_apply(relay_client, claude):
    await prices(CLAUDE, ratio=1, completion=1)
    await sync_to_async(option_set)(key="CacheRatio", value={CLAUDE: 0.5})
    await sync_to_async(option_set)(key="CreateCacheRatio", value={CLAUDE: 2})
    claude.upstream.then(answer="cached")
    await ask(relay_client, claude, CLAUDE, stream=False)
    # 50 + 20000 x 0.5 + 1000 x 2 + 2000 x 3.2 + 300 = 18750
    await logged(prompt=23050, completion=300, cached=20000, written=3000, written_1h=2000, reasoning=0,
                 quota=18750, content_has=("1-hour cache write ratio 3.2",))


async def ask_natively(client, world, model: str, *, stream: bool) -> bytes:
    """A Claude client's Messages request, which a channel that speaks Messages takes as it is."""
    body = {"model": model, "max_tokens": 1024, "messages": QUESTION, "stream": stream}
    response = await client.post("/v1/messages", json=body, headers={**world.auth, "anthropic-version": "2023-06-01"})
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_claude_client_passed_through_to_anthropic_pays_what_the_conversion_bills(relay_client, claude,
                                                                                          stream):
    await prices(CLAUDE, ratio=1.5, completion=5)
    claude.upstream.then(answer="cached")
    answer = await ask_natively(relay_client, claude, CLAUDE, stream=stream)
    assert answer == anthropic_fixture("cached_stream.sse" if stream else "cached.json")  # untouched
    # The same bill as the converted request's above: message_start's split, message_delta's output.
    await logged(prompt=23050, completion=300, cached=20000, written=3000, written_1h=2000, reasoning=0,
                 quota=13200, content_has=("cache read ratio 0.1", "1-hour cache write ratio 2"))


# --- OpenAI: cached_tokens and reasoning_tokens in the details, passed through as sent ---------------------

OPENAI_DETAILS = {"prompt_tokens_details": {"cached_tokens": 1536, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 512, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


@pytest.fixture
def openai(transactional_db, upstream):
    return new_world(upstream, username="alice", type=1, name="openai", models="o3")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_openai_cached_and_reasoning_tokens(relay_client, openai, stream):
    await prices("o3", ratio=1, completion=4)
    openai.upstream.then(prompt_tokens=2000, completion_tokens=800, usage_extra=OPENAI_DETAILS)
    usage = await ask(relay_client, openai, "o3", stream=stream)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 1536
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 512
    # 464 + 1536 x 0.25 + 800 x 4 (reasoning is output, already in the 800) = 4048
    await logged(prompt=2000, completion=800, cached=1536, written=0, written_1h=0, reasoning=512, quota=4048,
                 content_has=("cache read ratio 0.25",))


async def test_a_prompt_without_cache_hits_is_logged_as_before(relay_client, openai):
    await prices("o3", ratio=1, completion=4)
    openai.upstream.then(prompt_tokens=2000, completion_tokens=800)
    await ask(relay_client, openai, "o3", stream=False)
    log = await logged(prompt=2000, completion=800, cached=0, written=0, written_1h=0, reasoning=0, quota=5200)
    assert log.content == "model ratio 1 x group ratio 1 x completion ratio 4"


# --- DeepSeek: prompt_cache_hit_tokens, given to clients as OpenAI's detail ---------------------------------

@pytest.fixture
def deepseek(transactional_db, upstream):
    return new_world(upstream, username="alice", type=36, name="deepseek", models="deepseek-chat")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_deepseek_cache_hits_are_billed_and_shown_as_cached_tokens(relay_client, deepseek, stream):
    await prices("deepseek-chat", ratio=0.5, completion=2)
    deepseek.upstream.then(prompt_tokens=1000, completion_tokens=100,
                           usage_extra={"prompt_cache_hit_tokens": 800, "prompt_cache_miss_tokens": 200})
    usage = await ask(relay_client, deepseek, "deepseek-chat", stream=stream)
    assert usage["prompt_cache_hit_tokens"] == 800  # the vendor's own field kept
    assert usage["prompt_tokens_details"] == {"cached_tokens": 800}
    # (200 + 800 x 0.1 + 100 x 2) x 0.5 = 240
    await logged(prompt=1000, completion=100, cached=800, written=0, written_1h=0, reasoning=0, quota=240)


# --- Baidu: ERNIE's cached_tokens beside the counts (v1), the same field on Qianfan v2's OpenAI shape -----------

ERNIE = "ERNIE-4.0-Turbo-8K"


@pytest.fixture
def ernie(transactional_db, baidu_server):
    baidu._tokens.clear()
    return new_world(baidu_server, username="alice", type=15, name="baidu", key="bdApiKey123|bdSecretKey456",
                     models=ERNIE)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_ernie_cache_hits_are_billed_at_baidus_cache_price(relay_client, ernie, stream):
    await prices(ERNIE, ratio=1, completion=2)
    ernie.upstream.then(fixture="stream_cached.sse" if stream else "chat_cached.json")
    usage = await ask(relay_client, ernie, ERNIE, stream=stream)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (1200, 40)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1000}
    # 200 + 1000 x 0.4 + 40 x 2 = 680 (at the full input price it would be 1280)
    await logged(prompt=1200, completion=40, cached=1000, written=0, written_1h=0, reasoning=0, quota=680,
                 content_has=("cache read ratio 0.4",))


@pytest.fixture
def qianfan(transactional_db, upstream):
    return new_world(upstream, username="alice", type=47, name="qianfan", models="ernie-4.0-turbo-8k")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_qianfan_v2_cache_hits_are_billed_at_baidus_cache_price(relay_client, qianfan, stream):
    await prices("ernie-4.0-turbo-8k", ratio=1, completion=2)
    qianfan.upstream.then(prompt_tokens=1200, completion_tokens=40, usage_extra={"cached_tokens": 1000})
    usage = await ask(relay_client, qianfan, "ernie-4.0-turbo-8k", stream=stream)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1000}
    await logged(prompt=1200, completion=40, cached=1000, written=0, written_1h=0, reasoning=0, quota=680)


# --- Tencent Hunyuan: Usage.PromptTokensDetails.CachedTokens, a string in Tencent's schema -------------------

@pytest.fixture
def hunyuan(transactional_db, tencent_server):
    return new_world(tencent_server, username="alice", type=23, name="hunyuan",
                     key=f"1300000000|{SECRET_ID}|{SECRET_KEY}", models="hunyuan-turbos-latest")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_hunyuan_cache_hits_are_billed_at_the_cache_ratio(relay_client, hunyuan, stream):
    await prices("hunyuan-turbos-latest", ratio=1, completion=2)
    await sync_to_async(option_set)(key="CacheRatio", value={"hunyuan-turbos-latest": 0.4})
    hunyuan.upstream.then(fixture="stream_cached.sse" if stream else "chat_cached.json")
    usage = await ask(relay_client, hunyuan, "hunyuan-turbos-latest", stream=stream)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (1200, 40)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1000}
    # 200 + 1000 x 0.4 + 40 x 2 = 680
    await logged(prompt=1200, completion=40, cached=1000, written=0, written_1h=0, reasoning=0, quota=680,
                 content_has=("cache read ratio 0.4",))


# --- Cohere: usage.cached_tokens beside the actual and billed counts (a float in its v2 schema) ------------------

@pytest.fixture
def command(transactional_db, cohere_server):
    return new_world(cohere_server, username="alice", type=35, name="cohere", key="co-test-secret-key",
                     models="command-a-03-2025")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_cohere_cache_hits_are_billed_at_the_cache_ratio(relay_client, command, stream):
    await prices("command-a-03-2025", ratio=1, completion=2)
    await sync_to_async(option_set)(key="CacheRatio", value={"command-a-03-2025": 0.5})
    command.upstream.then(fixture="stream_cached.sse" if stream else "chat_cached.json")
    usage = await ask(relay_client, command, "command-a-03-2025", stream=stream)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (1200, 40)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1000}
    # 200 + 1000 x 0.5 + 40 x 2 = 780
    await logged(prompt=1200, completion=40, cached=1000, written=0, written_1h=0, reasoning=0, quota=780,
                 content_has=("cache read ratio 0.5",))


# --- Alibaba (Qwen): reads as cached_tokens, an explicit cache's writes as cache_creation_input_tokens -----------

QWEN_WRITE = {"text_tokens": 1200, "cached_tokens": 0, "cache_type": "ephemeral",
              "cache_creation": {"ephemeral_5m_input_tokens": 1000}, "cache_creation_input_tokens": 1000}


@pytest.fixture
def bailian(transactional_db, upstream):
    return new_world(upstream, username="alice", type=49, name="bailian", key="sk-bailian", models="qwen-plus")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize(("details", "cached", "written", "quota"), [
    # 200 + 1000 x 0.2 (Qwen's implicit cache) + 40 x 2 = 480
    ({"cached_tokens": 1000}, 1000, 0, 480),
    # 200 + 1000 x 1.25 (an explicit cache's writes) + 40 x 2 = 1530
    (QWEN_WRITE, 0, 1000, 1530),
], ids=["read", "written"])
async def test_bailian_compatible_mode_cache_reads_and_writes(relay_client, bailian, stream, details, cached,
                                                              written, quota):
    await prices("qwen-plus", ratio=1, completion=2)
    bailian.upstream.then(prompt_tokens=1200, completion_tokens=40, usage_extra={"prompt_tokens_details": details})
    usage = await ask(relay_client, bailian, "qwen-plus", stream=stream)
    assert usage["prompt_tokens_details"] == details  # the vendor's own usage, passed through
    await logged(prompt=1200, completion=40, cached=cached, written=written, written_1h=0, reasoning=0,
                 quota=quota)


@pytest.fixture
def dashscope(transactional_db, ali_server):
    return new_world(ali_server, username="alice", type=17, name="ali", key="sk-dashscope-mock-key",
                     models="qwen-plus")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_dashscope_explicit_cache_writes_are_billed_at_the_create_cache_ratio(relay_client, dashscope, stream):
    await prices("qwen-plus", ratio=1, completion=2)
    dashscope.upstream.then(fixture="stream_cache_write.sse" if stream else "chat_cache_write.json")
    usage = await ask(relay_client, dashscope, "qwen-plus", stream=stream)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (1200, 40)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 1000}
    await logged(prompt=1200, completion=40, cached=0, written=1000, written_1h=0, reasoning=0, quota=1530,
                 content_has=("cache write ratio 1.25",))


# --- Zhipu (GLM): OpenAI's prompt_tokens_details.cached_tokens, the stream's in its last chunk ----------------

@pytest.fixture
def glm(transactional_db, zhipu_server):
    zhipu._tokens.clear()
    return new_world(zhipu_server, username="alice", type=16, name="zhipu", key="zkeyid.zsecretvalue",
                     models="glm-4-plus")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_zhipu_cache_hits_are_billed_at_the_cache_ratio(relay_client, glm, stream):
    await prices("glm-4-plus", ratio=1, completion=2)
    await sync_to_async(option_set)(key="CacheRatio", value={"glm-4-plus": 0.5})
    glm.upstream.then(fixture="stream_cached.sse" if stream else "chat_cached.json")
    usage = await ask(relay_client, glm, "glm-4-plus", stream=stream)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1000}
    # 200 + 1000 x 0.5 + 40 x 2 = 780
    await logged(prompt=1200, completion=40, cached=1000, written=0, written_1h=0, reasoning=0, quota=780,
                 content_has=("cache read ratio 0.5",))


# --- Gemini: cachedContentTokenCount inside the prompt; thoughts billed as output ---------------------------

@pytest.fixture
def gemini(transactional_db, gemini_server):
    return new_world(gemini_server, username="alice", type=24, name="gemini", key="AIzaSy-test-key-1234567890",
                     models="gemini-2.5-flash")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_gemini_cached_content_and_thoughts(relay_client, gemini, stream):
    await prices("gemini-2.5-flash", ratio=0.15, completion=8)
    gemini.upstream.then(fixture="chat_cached_stream.sse" if stream else "chat_cached.json")
    usage = await ask(relay_client, gemini, "gemini-2.5-flash", stream=stream)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (1200, 200)  # 40 answered + 160 thought
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1000}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 160}
    # (200 + 1000 x 0.1 + 200 x 8) x 0.15 = 285
    await logged(prompt=1200, completion=200, cached=1000, written=0, written_1h=0, reasoning=160, quota=285)


# --- Bedrock (Claude through InvokeModel): Anthropic's usage, and the invocation metrics of a stream --------

BEDROCK_CLAUDE = "claude-3-5-sonnet-20241022"


@pytest.fixture
def bedrock(transactional_db, bedrock_server):
    return new_world(bedrock_server, username="alice", type=33, name="bedrock", key=AK, models=BEDROCK_CLAUDE,
                     config={"region": REGION, "ak": AK, "sk": SK})


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_bedrock_claude_cache_reads_and_writes(relay_client, bedrock, stream):
    await prices(BEDROCK_CLAUDE, ratio=1.5, completion=5)
    bedrock.upstream.then(answer="cached")
    usage = await ask(relay_client, bedrock, BEDROCK_CLAUDE, stream=stream)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (23050, 300)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 20000, "cache_write_tokens": 3000}
    # The stream's metrics do not split the writes by lifetime; Claude's message_start does, and is kept.
    await logged(prompt=23050, completion=300, cached=20000, written=3000, written_1h=2000, reasoning=0,
                 quota=13200)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_claude_client_passed_through_to_bedrock_pays_what_the_conversion_bills(relay_client, bedrock,
                                                                                        stream):
    await prices(BEDROCK_CLAUDE, ratio=1.5, completion=5)
    bedrock.upstream.then(answer="cached")
    answer = await ask_natively(relay_client, bedrock, BEDROCK_CLAUDE, stream=stream)
    assert b'"cache_read_input_tokens":20000' in answer.replace(b" ", b"")
    # The stream is billed by the invocation metrics, their writes split by message_start's 1-hour count.
    await logged(prompt=23050, completion=300, cached=20000, written=3000, written_1h=2000, reasoning=0,
                 quota=13200)


async def test_bedrock_converse_cache_details_split_the_writes(relay_client):
    from providers.adapters.anthropic import usage_from
    from providers.adapters.bedrock.converse import anthropic_usage

    converse = {"inputTokens": 40, "outputTokens": 9, "totalTokens": 1649, "cacheReadInputTokens": 1200,
                "cacheWriteInputTokens": 400,
                "cacheDetails": [{"inputTokens": 300, "ttl": "1h"}, {"inputTokens": 100, "ttl": "5m"}]}
    usage = usage_from(orjson.loads(orjson.dumps(anthropic_usage(converse))))
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.cache_write_1h_tokens) == \
        (1640, 1200, 400, 300)
