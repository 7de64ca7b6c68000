"""The price forms through the relay: per-call prices, tiers by prompt size, audio and image tokens as the vendor
reports them, and the user's own ratio; what the consume log records (quota and its breakdown), what the user
and key pay, and what the client's usage says."""

import math
from decimal import Decimal as D

import pytest
from asgiref.sync import sync_to_async

from accounts.models import Token, User
from billing.services import option_set
from tests.helpers import consume_log, consume_logs
from tests.providers.mock_gemini import MockGemini
from tests.providers.vendor_harness import serve, stream_chunks
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = [{"role": "user", "content": "What is in the photo and the recording?"}]
QUOTA = 10_000_000

gemini_server = serve(MockGemini)


async def set_option(key, value):
    await sync_to_async(option_set)(key=key, value=value)


async def ask(client, world, model, *, stream=False, **extra):
    body = {"model": model, "messages": QUESTION, **extra}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    response = await client.post("/v1/chat/completions", json=body, headers=world.auth)
    assert response.status_code == 200, response.text
    if not stream:
        return response.json()["usage"]
    [usage] = [chunk["usage"] for chunk in stream_chunks(response.content) if chunk.get("usage")]
    return usage


async def paid(world) -> tuple[int, int]:
    """What the user and the key have paid so far."""
    user = await sync_to_async(User.objects.get)(pk=world.user.pk)
    token = await sync_to_async(Token.objects.get)(pk=world.token.pk)
    return QUOTA - user.quota, QUOTA // 2 - token.remain_quota


@pytest.fixture
def openai(transactional_db, upstream):
    return new_world(upstream, username="alice", quota=QUOTA, name="openai", type=1,
                     models="gpt-4o-mini,gpt-4o-audio-preview,vision-model,long-model,dall-e-2")


# --- ModelPrice -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_per_call_price_is_charged_whatever_the_tokens(relay_client, openai, stream):
    await set_option("ModelPrice", {"gpt-4o-mini": 0.003})
    openai.upstream.then(prompt_tokens=90000, completion_tokens=4000)
    await ask(relay_client, openai, "gpt-4o-mini", stream=stream)
    log = await consume_log()
    price = math.ceil(D("0.003") * 500000)  # 1500 quota, the tokens' 90000 + 4000 x 4 at ratio 0.075 aside
    assert (log.quota, log.prompt_tokens, log.completion_tokens) == (price, 90000, 4000)
    assert log.content == "price per call $0.003 x group ratio 1"
    assert await paid(openai) == (price, price)


async def test_a_per_call_image_price_is_paid_per_image(relay_client, openai):
    await set_option("ModelPrice", {"dall-e-2": 0.04})
    body = {"model": "dall-e-2", "prompt": "a lighthouse", "size": "512x512", "n": 2}
    response = await relay_client.post("/v1/images/generations", json=body, headers=openai.auth)
    assert response.status_code == 200, response.text
    log = await consume_log()
    assert log.quota == 2 * 0.04 * 500000  # per image; the size table is the ratios', not used
    assert log.content == "price per image $0.04 x group ratio 1"


# --- The user's ratio -------------------------------------------------------------------------------------------

async def test_the_users_ratio_lowers_every_charge(relay_client, openai):
    await sync_to_async(User.objects.filter(pk=openai.user.pk).update)(price_ratio=0.8)
    await set_option("GroupRatio", {"default": 1.5})
    openai.upstream.then(prompt_tokens=1000, completion_tokens=200)
    await ask(relay_client, openai, "gpt-4o-mini")
    log = await consume_log()
    expected = math.ceil((1000 + 200 * 4) * D("0.075") * D("1.5") * D("0.8"))
    assert log.quota == expected
    assert log.content == "model ratio 0.075 x group ratio 1.5 x completion ratio 4, user ratio 0.8"
    assert await paid(openai) == (expected, expected)


async def test_the_users_ratio_applies_to_a_per_call_price(relay_client, openai):
    await sync_to_async(User.objects.filter(pk=openai.user.pk).update)(price_ratio=0.5)
    await set_option("ModelPrice", {"gpt-4o-mini": 0.01})
    await ask(relay_client, openai, "gpt-4o-mini")
    log = await consume_log()
    assert log.quota == 0.01 * 500000 * 0.5
    assert log.content == "price per call $0.01 x group ratio 1, user ratio 0.5"


# --- Audio and image tokens in OpenAI's usage ---------------------------------------------------------------------

AUDIO_USAGE = {"prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 600},
               "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 300}}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_audio_tokens_are_billed_at_the_audio_ratios(relay_client, openai, stream):
    openai.upstream.then(prompt_tokens=1000, completion_tokens=500, usage_extra=AUDIO_USAGE)
    usage = await ask(relay_client, openai, "gpt-4o-audio-preview", stream=stream)
    assert usage["prompt_tokens_details"]["audio_tokens"] == 600
    assert usage["completion_tokens_details"]["audio_tokens"] == 300
    log = await consume_log()
    # The defaults (OpenAI's list prices): ratio 1.25, completion 4, audio in 16, audio out 16 x 2.
    expected = (400 + 600 * 16 + 200 * 4 + 300 * 16 * 2) * D("1.25")
    assert (log.quota, log.prompt_tokens, log.completion_tokens) == (expected, 1000, 500)
    assert log.content == ("model ratio 1.25 x group ratio 1 x completion ratio 4, "
                           "audio input ratio 16 (600 tokens), audio output ratio 32 (300 tokens)")


async def test_an_operators_audio_ratios_apply(relay_client, openai):
    await set_option("AudioRatio", {"gpt-4o-audio-preview": 10})
    await set_option("AudioCompletionRatio", {"gpt-4o-audio-preview": 3})
    openai.upstream.then(prompt_tokens=1000, completion_tokens=500, usage_extra=AUDIO_USAGE)
    await ask(relay_client, openai, "gpt-4o-audio-preview")
    assert (await consume_log()).quota == (400 + 600 * 10 + 200 * 4 + 300 * 10 * 3) * D("1.25")


async def test_image_input_tokens_are_billed_at_the_image_ratio(relay_client, openai):
    await set_option("ModelRatio", {"vision-model": 1})
    await set_option("CompletionRatio", {"vision-model": 2})
    await set_option("ImageRatio", {"vision-model": 3})
    openai.upstream.then(prompt_tokens=1000, completion_tokens=100,
                         usage_extra={"prompt_tokens_details": {"cached_tokens": 0, "image_tokens": 765}})
    usage = await ask(relay_client, openai, "vision-model")
    assert usage["prompt_tokens_details"]["image_tokens"] == 765
    log = await consume_log()
    assert log.quota == (235 + 765 * 3 + 100 * 2) * 1
    assert "image input ratio 3 (765 tokens)" in log.content


# --- Tiers by prompt size -----------------------------------------------------------------------------------------

TIERS = {"long-model": {"enabled": True, "basis": "prompt_tokens", "tiers": [
    {"min_tokens": 0, "max_tokens": 200000, "input_price": 1.25, "completion_price": 10, "cache_read_price": 0.125},
    {"min_tokens": 200000, "input_price": 2.5, "completion_price": 15, "cache_read_price": 0.25}]}}


async def test_a_prompt_past_the_tier_bound_is_billed_at_the_higher_tier(relay_client, openai):
    await set_option("ModelTierPricing", TIERS)
    openai.upstream.then(prompt_tokens=250000, completion_tokens=2000,
                         usage_extra={"prompt_tokens_details": {"cached_tokens": 100000}})
    openai.upstream.then(prompt_tokens=150000, completion_tokens=2000)
    await ask(relay_client, openai, "long-model")
    await ask(relay_client, openai, "long-model")
    long, short = await consume_logs()
    # US$ per 1M / 2 is the ratio: 150000 plain at 2.5, 100000 cached at 0.25, 2000 out at 15.
    assert long.quota == (150000 * D("2.5") + 100000 * D("0.25") + 2000 * 15) / 2
    assert long.content == ("model ratio 1.25 x group ratio 1 x completion ratio 6, prompt tier from 200000 tokens, "
                            "cache read ratio 0.1")
    assert short.quota == (150000 * D("1.25") + 2000 * 10) / 2
    assert short.content == "model ratio 0.625 x group ratio 1 x completion ratio 8, prompt tier 0 to 199999 tokens"
    assert (await paid(openai))[0] == long.quota + short.quota


async def test_a_tiered_models_reservation_is_released_when_the_call_fails(relay_client, openai):
    await set_option("ModelTierPricing", TIERS)
    openai.upstream.then(status=400)
    response = await relay_client.post("/v1/chat/completions", json={"model": "long-model", "messages": QUESTION},
                                       headers=openai.auth)
    assert response.status_code == 400
    assert await consume_logs() == [] and await paid(openai) == (0, 0)


# --- Gemini: usageMetadata's modalities -----------------------------------------------------------------------------

@pytest.fixture
def gemini(transactional_db, gemini_server):
    return new_world(gemini_server, username="alice", quota=QUOTA, type=24, name="gemini",
                     key="AIzaSy-test-key-1234567890", models="gemini-2.5-flash")


async def test_gemini_image_and_audio_prompt_tokens_are_read_by_modality_and_billed(relay_client, gemini):
    await set_option("ModelRatio", {"gemini-2.5-flash": 0.15})
    await set_option("CompletionRatio", {"gemini-2.5-flash": 8})
    await set_option("ImageRatio", {"gemini-2.5-flash": 1.5})
    gemini.upstream.then(fixture="chat_multimodal.json")
    usage = await ask(relay_client, gemini, "gemini-2.5-flash")
    assert usage["prompt_tokens_details"]["image_tokens"] == 258
    assert usage["prompt_tokens_details"]["audio_tokens"] == 960
    log = await consume_log()
    # 200 text + 258 image x 1.5 + 960 audio x the default 3.333 (US$1.00 over US$0.30) + 20 out x 8, at 0.15.
    expected = math.ceil((200 + 258 * D("1.5") + 960 * D("3.333") + 20 * 8) * D("0.15"))
    assert (log.quota, log.prompt_tokens, log.completion_tokens) == (expected, 1418, 20)
    assert "image input ratio 1.5 (258 tokens)" in log.content
    assert "audio input ratio 3.333 (960 tokens)" in log.content


async def test_the_models_page_shows_what_the_relay_charged(relay_client, openai):
    """The page and the relay share pricing.quote: a model priced per call is listed at the price the log shows."""
    await set_option("ModelPrice", {"gpt-4o-mini": 0.003})
    await set_option("DisplayInCurrencyEnabled", True)
    await ask(relay_client, openai, "gpt-4o-mini")
    from billing.pages.models import quoted_price

    listed = await sync_to_async(quoted_price)("gpt-4o-mini", group="default", user_ratio=1)
    assert listed.per_call_quota == (await consume_log()).quota
