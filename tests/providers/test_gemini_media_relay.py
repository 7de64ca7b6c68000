"""Images and speech through Gemini channels end to end: the official SDK through the ASGI app to a mock
Gemini API (Imagen's predict, generateContent for Gemini's image and speech models, images/generations on the
OpenAI-compatible endpoint), billed per image delivered and per character spoken. Google's error answers are
in test_gemini_relay.py, for every endpoint."""

import base64
import io
import math
import wave

import openai
import orjson
import pytest

from billing import pricing
from tests.helpers import consume_log
from tests.providers.mock_gemini import PNG, MockGemini
from tests.providers.mock_gemini import fixture as mock_fixture
from tests.providers.vendor_harness import no_consume_log, serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "AIzaSy-upstream-gemini-secret"
IMAGEN = "imagen-4.0-generate-001"
FLASH_IMAGE = "gemini-2.5-flash-image"
TTS = "gemini-2.5-flash-preview-tts"
PCM = base64.b64decode(orjson.loads(mock_fixture("speech.json"))["candidates"][0]["content"]["parts"][0]
                       ["inlineData"]["data"])


def per_image(model: str) -> int:
    return int(pricing.DEFAULT_MODEL_RATIO[model] * 1000)  # ratio x US$0.002, as billing/pricing.py prices images


gemini_server = serve(MockGemini)


@pytest.fixture
def gw(transactional_db, gemini_server):
    return new_world(gemini_server, username="gina", type=24, name="gemini", key=KEY,
                     models=f"{IMAGEN},{FLASH_IMAGE},{TTS},imagen-fast",
                     model_mapping={"imagen-fast": "imagen-4.0-fast-generate-001"})


# --- Imagen --------------------------------------------------------------------------------------------


async def test_imagen_through_the_sdk_sends_predict_and_bills_each_image(relay_client, gw):
    answer = await gw.sdk(relay_client).images.generate(model=IMAGEN, prompt="a lighthouse at dusk", n=2,
                                                        size="1792x1024")
    assert [base64.b64decode(image.b64_json) for image in answer.data] == [PNG, PNG]
    assert all(image.url is None for image in answer.data) and answer.created > 0

    sent = gw.upstream.requests[-1]
    assert (sent.method, sent.path, sent.query) == ("POST", f"/v1beta/models/{IMAGEN}:predict", "")
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body == {"instances": [{"prompt": "a lighthouse at dusk"}],
                         "parameters": {"sampleCount": 2, "includeRaiReason": True, "aspectRatio": "16:9"}}
    log = await consume_log()
    assert (log.model_name, log.quota, log.channel_id) == (IMAGEN, 2 * per_image(IMAGEN), gw.channel.pk)


async def test_a_mapped_imagen_model_is_sent_by_its_upstream_name_and_priced_by_the_asked_one(relay_client, gw):
    await gw.sdk(relay_client).images.generate(model="imagen-fast", prompt="a cat")
    assert gw.upstream.requests[-1].path == "/v1beta/models/imagen-4.0-fast-generate-001:predict"
    assert (await consume_log()).quota == per_image("imagen-4.0-fast-generate-001")


async def test_a_client_asking_for_a_url_gets_a_data_url(relay_client, gw):
    answer = await gw.sdk(relay_client).images.generate(model=IMAGEN, prompt="a cat", response_format="url")
    url = answer.data[0].url
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",", 1)[1]) == PNG
    assert answer.data[0].b64_json is None


@pytest.mark.parametrize("body, param", [
    ({"size": "1536x1024"}, "size"),
    ({"n": 5}, "n"),
])
async def test_image_requests_imagen_cannot_make_are_refused_before_anything_is_sent(relay_client, gw, body,
                                                                                     param):
    response = await relay_client.post("/v1/images/generations", json={"model": IMAGEN, "prompt": "x", **body},
                                       headers=gw.auth)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert gw.upstream.requests == []
    assert await no_consume_log()


async def test_images_the_filters_withheld_are_not_paid_for(relay_client, gw):
    gw.upstream.then(fixture="imagen_partly_filtered.json")
    answer = await gw.sdk(relay_client).images.generate(model=IMAGEN, prompt="two people", n=2)
    assert len(answer.data) == 1
    assert (await consume_log()).quota == per_image(IMAGEN)


async def test_all_images_filtered_is_a_content_filter_error_with_googles_reason_and_costs_nothing(relay_client,
                                                                                                  gw):
    gw.upstream.then(fixture="imagen_filtered.json")
    with pytest.raises(openai.BadRequestError) as refused:
        await gw.sdk(relay_client).images.generate(model=IMAGEN, prompt="something unsafe", n=2)
    error = refused.value.body
    assert error["code"] == "content_filter" and "Support codes: 39322892" in error["message"]
    assert await no_consume_log()


async def test_an_answer_without_images_is_a_502_and_costs_nothing(relay_client, gw):
    gw.upstream.then(fixture="imagen_empty.json")
    response = await relay_client.post("/v1/images/generations", json={"model": IMAGEN, "prompt": "x"},
                                       headers=gw.auth)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_response_body"
    assert await no_consume_log()


# --- Gemini's image models -------------------------------------------------------------------------------


async def test_gemini_image_model_draws_through_generate_content_and_logs_its_token_counts(relay_client, gw):
    answer = await gw.sdk(relay_client).images.generate(model=FLASH_IMAGE, prompt="a lighthouse", size="1536x1024")
    assert base64.b64decode(answer.data[0].b64_json) == PNG
    sent = gw.upstream.requests[-1]
    assert sent.path == f"/v1beta/models/{FLASH_IMAGE}:generateContent"
    assert sent.body["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"],
                                             "imageConfig": {"aspectRatio": "3:2"}}
    log = await consume_log()
    assert (log.quota, log.prompt_tokens, log.completion_tokens) == (per_image(FLASH_IMAGE), 7, 1290)


async def test_a_withheld_gemini_image_is_a_content_filter_error_and_costs_nothing(relay_client, gw):
    gw.upstream.then(fixture="image_safety.json")
    with pytest.raises(openai.BadRequestError) as refused:
        await gw.sdk(relay_client).images.generate(model=FLASH_IMAGE, prompt="something unsafe")
    assert refused.value.body["code"] == "content_filter" and "IMAGE_SAFETY" in refused.value.body["message"]
    assert await no_consume_log()


# --- Imagen on the OpenAI-compatible endpoint (type 51) ------------------------------------------------------


@pytest.fixture
def gw51(transactional_db, gemini_server):
    return new_world(gemini_server, username="gail", type=51, name="gemini-openai", key=KEY, models=IMAGEN,
                     base_path="/v1beta/openai")


async def test_imagen_through_the_openai_compatible_endpoint_is_passed_through_and_billed_per_image(relay_client,
                                                                                                    gw51):
    answer = await gw51.sdk(relay_client).images.generate(model=IMAGEN, prompt="a sheepadoodle in a cape", n=2,
                                                          response_format="b64_json")
    assert [base64.b64decode(image.b64_json) for image in answer.data] == [PNG, PNG]
    [sent] = gw51.upstream.requests
    assert (sent.method, sent.path) == ("POST", "/v1beta/openai/images/generations")
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"model": IMAGEN, "prompt": "a sheepadoodle in a cape", "n": 2, "response_format": "b64_json"}
    log = await consume_log()
    assert (log.model_name, log.quota, log.channel_id) == (IMAGEN, 2 * per_image(IMAGEN), gw51.channel.pk)


async def test_what_the_openai_compatible_endpoint_refuses_keeps_googles_message_and_costs_nothing(relay_client,
                                                                                                    gw51):
    with pytest.raises(openai.BadRequestError) as refused:
        await gw51.sdk(relay_client).images.generate(model=IMAGEN, prompt="a cat", n=5)
    error = refused.value.body
    assert error["message"].startswith("Number of images must be between 1 and 4.")
    assert error["code"] == "invalid_argument"
    assert len(gw51.upstream.requests) == 1
    assert await no_consume_log()


# --- speech -------------------------------------------------------------------------------------------------

TEXT = "Say cheerfully: Have a wonderful day!"


async def test_speech_through_the_sdk_is_a_wav_of_geminis_pcm_billed_by_characters(relay_client, gw):
    audio = await gw.sdk(relay_client).audio.speech.create(model=TTS, voice="coral", input=TEXT)
    assert audio.response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(audio.content)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.readframes(wav.getnframes()) == PCM

    sent = gw.upstream.requests[-1]
    assert (sent.path, sent.headers["x-goog-api-key"]) == (f"/v1beta/models/{TTS}:generateContent", KEY)
    assert sent.body == {"contents": [{"parts": [{"text": TEXT}]}],
                         "generationConfig": {"responseModalities": ["AUDIO"], "speechConfig": {
                             "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Aoede"}}}}}
    log = await consume_log()
    assert log.quota == math.ceil(len(TEXT) * pricing.DEFAULT_MODEL_RATIO[TTS])
    assert (log.model_name, log.prompt_tokens, log.completion_tokens) == (TTS, 8, 48)  # Gemini's own counts


async def test_pcm_is_geminis_audio_as_it_is_and_a_gemini_voice_passes_through(relay_client, gw):
    audio = await gw.sdk(relay_client).audio.speech.create(model=TTS, voice="Kore", input=TEXT,
                                                           response_format="pcm")
    assert audio.content == PCM and audio.response.headers["content-type"] == "audio/pcm"
    assert gw.upstream.requests[-1].body["generationConfig"]["speechConfig"]["voiceConfig"] == {
        "prebuiltVoiceConfig": {"voiceName": "Kore"}}


@pytest.mark.parametrize("extra, param", [
    ({"response_format": "mp3"}, "response_format"),
    ({"voice": "nobody"}, "voice"),
])
async def test_speech_gemini_cannot_give_is_refused_before_anything_is_sent(relay_client, gw, extra, param):
    body = {"model": TTS, "input": TEXT, "voice": "alloy", **extra}
    response = await relay_client.post("/v1/audio/speech", json=body, headers=gw.auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    if param == "response_format":
        assert "wav or pcm" in error["message"]
    assert gw.upstream.requests == []
    assert await no_consume_log()


async def test_an_answer_without_audio_is_a_502_that_says_what_gemini_said(relay_client, gw):
    gw.upstream.then(fixture="speech_no_audio.json")
    response = await relay_client.post("/v1/audio/speech", json={"model": TTS, "input": TEXT, "voice": "alloy"},
                                       headers=gw.auth)
    assert response.status_code == 502
    assert "I can only read the text aloud." in response.json()["error"]["message"]
    assert await no_consume_log()


async def test_a_speech_format_that_is_not_a_string_is_refused_before_the_vendor(relay_client, gw):
    body = {"model": TTS, "input": TEXT, "voice": "alloy", "response_format": {"type": "wav"}}
    response = await relay_client.post("/v1/audio/speech", json=body, headers=gw.auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "response_format"
    assert gw.upstream.requests == []
