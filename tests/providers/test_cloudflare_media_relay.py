"""Cloudflare Workers AI media end to end: the official SDK's images, speech and transcription calls through
the ASGI app to a mock of /ai/run, billed as the relay bills each (per image, per character, per transcript
token at the model ratio), and the vendor's refusals and malformed answers."""

import base64
import math
from decimal import Decimal

import openai
import orjson
import pytest
from asgiref.sync import sync_to_async

from billing import pricing
from oneapi_site import options
from oneapi_site.lib import tokenizer
from providers.adapters import uploads
from tests.helpers import consume_log
from tests.providers.mock_cloudflare import ACCOUNT, FIXTURES, JPEG, KEY, MP3, PNG, MockCloudflare
from tests.providers.vendor_harness import no_consume_log, serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

FLUX = "@cf/black-forest-labs/flux-1-schnell"
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"
WHISPER = "@cf/openai/whisper"
TURBO = "@cf/openai/whisper-large-v3-turbo"
MELOTTS = "@cf/myshell-ai/melotts"
RUN = f"/client/v4/accounts/{ACCOUNT}/ai/run/"
AUDIO = b"ID3" + bytes(range(256)) * 40
TURBO_TEXT = "Hello from Workers AI. It transcribes."

cloudflare_server = serve(MockCloudflare)


@pytest.fixture
def cf(transactional_db, cloudflare_server):
    return new_world(cloudflare_server, username="cleo", type=37, name="cloudflare", key=KEY,
                     models=",".join((FLUX, SDXL, WHISPER, TURBO, MELOTTS, "whisper-1")),
                     model_mapping={"whisper-1": TURBO}, config={"user_id": ACCOUNT})


def ratio(model: str) -> Decimal:
    return Decimal(str(pricing.model_ratio(model, 37, options.get("ModelRatio"))))


def per_image(model: str) -> int:
    return int(ratio(model) * 1000)


# --- images ------------------------------------------------------------------------------------------


async def test_a_flux_image_through_the_sdk_is_sent_as_documented_and_billed_per_image(relay_client, cf):
    image = await cf.sdk(relay_client).images.generate(model=FLUX, prompt="a lighthouse at dusk", size="1024x1024",
                                                       extra_body={"steps": 6})
    assert base64.b64decode(image.data[0].b64_json) == JPEG and image.data[0].url is None and image.created > 0
    sent = cf.upstream.requests[-1]
    assert (sent.method, sent.path) == ("POST", RUN + FLUX)
    assert sent.headers["Authorization"] == f"Bearer {KEY}" and sent.headers["Content-Type"] == "application/json"
    assert sent.body == {"prompt": "a lighthouse at dusk", "steps": 6}
    log = await consume_log()
    assert (log.model_name, log.quota, log.channel_id) == (FLUX, per_image(FLUX), cf.channel.pk)


async def test_n_images_are_n_requests_and_a_url_is_a_data_url(relay_client, cf):
    image = await cf.sdk(relay_client).images.generate(model=SDXL, prompt="a cat", n=3, size="512x768",
                                                       response_format="url")
    assert [item.url for item in image.data] == ["data:image/png;base64," + base64.b64encode(PNG).decode()] * 3
    assert [r.body for r in cf.upstream.requests] == [{"prompt": "a cat", "width": 512, "height": 768}] * 3
    assert (await consume_log()).quota == per_image(SDXL) * 3


async def test_images_that_fail_are_left_out_and_not_billed(relay_client, cf):
    cf.upstream.then().then(status=500).then()
    image = await cf.sdk(relay_client).images.generate(model=FLUX, prompt="a cat", n=3)
    assert len(image.data) == 2 and len(cf.upstream.requests) == 3
    assert (await consume_log()).quota == per_image(FLUX) * 2


async def test_a_refused_prompt_is_an_openai_error_with_cloudflares_message_and_costs_nothing(relay_client, cf):
    refusal = orjson.loads((FIXTURES / "error_input.json").read_bytes())
    cf.upstream.then(status=400, error=refusal)
    with pytest.raises(openai.BadRequestError) as refused:
        await cf.sdk(relay_client).images.generate(model=FLUX, prompt="x")
    error = refused.value.body
    assert error["message"].startswith(refusal["errors"][0]["message"]) and error["code"] == "5006"
    assert await no_consume_log()


async def test_only_documented_fields_are_sent_and_the_vendor_judges_their_values(relay_client, cf):
    response = await relay_client.post("/v1/images/generations", headers=cf.auth,
                                       json={"model": FLUX, "prompt": "x", "num_steps": 4, "style": "vivid"})
    assert response.status_code == 200 and cf.upstream.requests[-1].body == {"prompt": "x"}
    response = await relay_client.post("/v1/images/generations", headers=cf.auth,
                                       json={"model": SDXL, "prompt": "x", "size": "128x128"})
    assert response.status_code == 400
    assert "'/width' must be between 256 and 2048" in response.json()["error"]["message"]


async def test_a_malformed_image_answer_is_a_clear_error_and_costs_nothing(relay_client, cf):
    cf.upstream.then(raw=b"<html>502 Bad Gateway</html>", raw_type="text/html")
    response = await relay_client.post("/v1/images/generations", headers=cf.auth, json={"model": FLUX, "prompt": "x"})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "bad_response_body" and "without an image" in error["message"]
    assert await no_consume_log()


async def test_a_revoked_token_gets_cloudflares_auth_error(relay_client, cf):
    await cf.set_key("cf-revoked")
    with pytest.raises(openai.AuthenticationError) as refused:
        await cf.sdk(relay_client).images.generate(model=FLUX, prompt="x")
    assert refused.value.body["message"].startswith("Authentication error")
    assert await no_consume_log()


# --- speech ------------------------------------------------------------------------------------------


async def test_speech_through_the_sdk_is_mp3_billed_by_characters(relay_client, cf):
    text = "Bonjour, passerelle."
    speech = await cf.sdk(relay_client).audio.speech.create(model=MELOTTS, voice="alloy", input=text,
                                                            extra_body={"lang": "fr"})
    assert speech.content == MP3 and speech.response.headers["content-type"] == "audio/mpeg"
    sent = cf.upstream.requests[-1]
    assert (sent.path, sent.body) == (RUN + MELOTTS, {"prompt": text, "lang": "fr"})
    assert (await consume_log()).quota == math.ceil(len(text) * ratio(MELOTTS))


async def test_speech_in_another_format_is_refused_naming_mp3_before_anything_is_sent(relay_client, cf):
    with pytest.raises(openai.BadRequestError) as refused:
        await cf.sdk(relay_client).audio.speech.create(model=MELOTTS, voice="alloy", input="hi",
                                                       response_format="wav")
    assert refused.value.body["param"] == "response_format" and "mp3" in refused.value.body["message"]
    assert not cf.upstream.requests
    assert await no_consume_log()


# --- transcription -----------------------------------------------------------------------------------


def transcript_quota(text: str, model: str) -> int:
    tokens = tokenizer.count_text(text, model)
    return pricing.text_quota(prompt_tokens=tokens, completion_tokens=0, model_ratio=float(ratio(model)),
                              completion_ratio=1, group_ratio=1)


async def test_a_transcription_through_the_sdk_reaches_turbo_as_base64_and_bills_the_transcript(relay_client, cf):
    transcript = await cf.sdk(relay_client).audio.transcriptions.create(
        model="whisper-1", file=("talk.mp3", AUDIO, "audio/mpeg"), language="en", prompt="Workers AI")
    assert transcript.text == TURBO_TEXT
    sent = cf.upstream.requests[-1]
    assert sent.path == RUN + TURBO  # whisper-1 mapped to the channel's model
    assert sent.body == {"audio": base64.b64encode(AUDIO).decode(), "task": "transcribe", "language": "en",
                         "initial_prompt": "Workers AI"}
    log = await consume_log()
    assert (log.model_name, log.prompt_tokens) == ("whisper-1", tokenizer.count_text(TURBO_TEXT, "whisper-1"))
    assert log.quota == transcript_quota(TURBO_TEXT, "whisper-1")


async def test_whisper_is_sent_the_file_itself_and_answers_each_format(relay_client, cf):
    sdk = cf.sdk(relay_client).audio.transcriptions
    text = await sdk.create(model=WHISPER, file=("a.wav", AUDIO, "audio/wav"), response_format="text")
    assert text == "Hello from Workers AI.\n"
    sent = cf.upstream.requests[-1]
    assert (sent.path, sent.body, sent.headers["Content-Type"]) == (RUN + WHISPER, AUDIO, "audio/wav")
    srt = await sdk.create(model=WHISPER, file=("a.wav", AUDIO, "audio/wav"), response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:00,420\nHello\n")
    vtt = await sdk.create(model=WHISPER, file=("a.wav", AUDIO, "audio/wav"), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00.000 --> 00:00.420\nHello")
    verbose = await sdk.create(model=WHISPER, file=("a.wav", AUDIO, "audio/wav"), response_format="verbose_json")
    assert (verbose.text, verbose.duration, verbose.words[3].word) == ("Hello from Workers AI.", 1.6, "AI.")


async def test_plain_text_keeps_its_content_type(relay_client, cf):
    response = await relay_client.post("/v1/audio/transcriptions", headers=cf.auth,
                                       data={"model": TURBO, "response_format": "srt"},
                                       files={"file": ("a.mp3", AUDIO, "audio/mpeg")})
    assert response.status_code == 200 and response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text.startswith("1\n00:00:00,000 --> 00:00:01,600\nHello from Workers AI.\n")


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK marks translations so
async def test_a_translation_asks_turbo_to_translate(relay_client, cf):
    translation = await cf.sdk(relay_client).audio.translations.create(model=TURBO, file=("a.mp3", AUDIO))
    assert translation.text == TURBO_TEXT
    assert cf.upstream.requests[-1].body["task"] == "translate"
    with pytest.raises(openai.BadRequestError) as refused:
        await cf.sdk(relay_client).audio.translations.create(model=WHISPER, file=("a.mp3", AUDIO))
    assert refused.value.body["param"] == "model" and len(cf.upstream.requests) == 1


async def test_an_upload_over_the_limit_is_refused_and_costs_nothing(relay_client, cf, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_AUDIO_FILE", 1000)
    response = await relay_client.post("/v1/audio/transcriptions", headers=cf.auth, data={"model": TURBO},
                                       files={"file": ("a.mp3", bytes(400_000), "audio/mpeg")})
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
    assert not cf.upstream.requests
    assert await no_consume_log()


async def test_a_transcription_error_keeps_cloudflares_message_and_costs_nothing(relay_client, cf):
    cf.upstream.then(status=429)
    with pytest.raises(openai.RateLimitError) as refused:
        await cf.sdk(relay_client).audio.transcriptions.create(model=TURBO, file=("a.mp3", AUDIO))
    assert refused.value.body["message"].startswith("Capacity temporarily exceeded")
    cf.upstream.then(raw=orjson.dumps({"result": {"word_count": 0}, "success": True, "errors": [], "messages": []}))
    response = await relay_client.post("/v1/audio/transcriptions", headers=cf.auth, data={"model": TURBO},
                                       files={"file": ("a.mp3", AUDIO, "audio/mpeg")})
    assert response.status_code == 502 and "without a transcript" in response.json()["error"]["message"]
    assert await no_consume_log()


async def test_media_without_an_account_id_is_a_clear_error(relay_client, cf):
    from providers.models import Channel
    from providers.services import channel_update

    await sync_to_async(lambda: channel_update(channel=Channel.objects.get(pk=cf.channel.pk), config={}))()
    response = await relay_client.post("/v1/images/generations", headers=cf.auth, json={"model": FLUX, "prompt": "x"})
    assert response.status_code == 500 and response.json()["error"]["code"] == "channel_misconfigured"
    assert not cf.upstream.requests
