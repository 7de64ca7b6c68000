"""DashScope speech end to end: the official SDK's audio.speech.create through the ASGI app to a mock
Qwen-TTS, whose answer links to a WAV the relay fetches and returns (as it is, or its samples for pcm), billed
by characters; and what Qwen-TTS cannot give or refuses, at no charge."""

import io
import math
import wave
from decimal import Decimal

import pytest

from billing import pricing
from tests.helpers import consume_log
from tests.providers.mock_ali import PCM, SPEECH_PATH, WAV, MockAli
from tests.providers.vendor_harness import no_consume_log, serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-dashscope-mock-key"
TTS = "qwen-tts"
TEXT = "那我来给大家推荐一款T恤，这款呢真的是超级好看。"

ali_tts_server = serve(lambda: MockAli(keys={KEY}))


@pytest.fixture
def sw(transactional_db, ali_tts_server):
    return new_world(ali_tts_server, username="sue", type=17, name="ali-tts", key=KEY,
                     models="qwen-tts,qwen3-tts-flash")


def speech(**extra) -> dict:
    return {"model": TTS, "input": TEXT, "voice": "alloy", **extra}


async def test_speech_through_the_sdk_is_qwens_wav_fetched_from_its_link_and_billed_by_characters(relay_client, sw):
    audio = await sw.sdk(relay_client).audio.speech.create(model=TTS, voice="alloy", input=TEXT)
    assert audio.content == WAV and audio.response.headers["content-type"] == "audio/wav"
    synthesis, fetch = sw.upstream.requests
    assert (synthesis.method, synthesis.path) == ("POST", SPEECH_PATH)
    assert synthesis.headers["Authorization"] == f"Bearer {KEY}"
    assert synthesis.body == {"model": TTS, "input": {"text": TEXT, "voice": "Cherry"}}
    assert (fetch.method, fetch.path) == ("GET", "/files/audio_0a1b2c3d-4e5f-6789-abcd-ef0123456789.wav")
    log = await consume_log()
    assert log.quota == math.ceil(len(TEXT) * Decimal(str(pricing.DEFAULT_MODEL_RATIO[TTS])))
    assert (log.model_name, log.prompt_tokens, log.completion_tokens) == (TTS, 14, 43)  # DashScope's own counts


async def test_pcm_is_the_wavs_samples_and_a_qwen_voice_passes_through(relay_client, sw):
    audio = await sw.sdk(relay_client).audio.speech.create(model="qwen3-tts-flash", voice="Dylan", input=TEXT,
                                                           response_format="pcm")
    assert audio.content == PCM and audio.response.headers["content-type"] == "audio/pcm"
    assert sw.upstream.requests[0].body["input"]["voice"] == "Dylan"
    with wave.open(io.BytesIO(WAV)) as wav:  # what was stripped is the header alone
        assert wav.getframerate() == 24000


@pytest.mark.parametrize("voice, qwen", [("nova", "Chelsie"), ("shimmer", "Serena"), ("onyx", "Ethan")])
async def test_openai_voices_are_qwens_by_their_character(relay_client, sw, voice, qwen):
    response = await relay_client.post("/v1/audio/speech", json=speech(voice=voice, response_format="wav"),
                                       headers=sw.auth)
    assert response.status_code == 200
    assert sw.upstream.requests[0].body["input"]["voice"] == qwen


async def test_a_format_qwen_cannot_give_is_refused_naming_those_it_can_before_anything_is_sent(relay_client, sw):
    response = await relay_client.post("/v1/audio/speech", json=speech(response_format="mp3"), headers=sw.auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "response_format" and "wav or pcm" in error["message"]
    assert sw.upstream.requests == []
    assert await no_consume_log()


async def test_a_refusal_keeps_dashscopes_message_and_costs_nothing(relay_client, sw):
    sw.upstream.then(status=400, error={"code": "DataInspectionFailed", "message": "Input data may contain "
                                        "inappropriate content.", "request_id": "req-tts-1"})
    response = await relay_client.post("/v1/audio/speech", json=speech(), headers=sw.auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "content_filter"
    assert error["message"].startswith("Input data may contain inappropriate content.")
    assert await no_consume_log()


async def test_an_answer_without_audio_is_a_clear_502_and_costs_nothing(relay_client, sw):
    sw.upstream.then(fixture="speech_no_audio.json")
    response = await relay_client.post("/v1/audio/speech", json=speech(), headers=sw.auth)
    assert response.status_code == 502
    assert response.json()["error"]["message"].startswith(
        "DashScope answered the speech request without audio (finish_reason stop).")
    assert len(sw.upstream.requests) == 1
    assert await no_consume_log()


async def test_a_link_that_is_not_audio_is_a_502_and_costs_nothing(relay_client, sw, monkeypatch):
    from providers.adapters.ali import speech as ali_audio

    monkeypatch.setattr(ali_audio, "audio_url", lambda output: f"{sw.upstream.url}/files/not-audio.png")
    response = await relay_client.post("/v1/audio/speech", json=speech(), headers=sw.auth)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "audio_fetch_failed" and "is not an audio" in error["message"]
    assert await no_consume_log()


def test_audio_that_is_not_wav_is_a_502_not_retried():
    from providers.adapters.ali import speech as ali_audio
    from providers.adapters.base import UpstreamError

    with pytest.raises(UpstreamError) as err:
        ali_audio.speech_answer(b"ID3" + bytes(64), {"response_format": "pcm"})
    assert (err.value.status, err.value.retryable) == (502, False) and "not WAV" in err.value.message


async def test_a_response_format_that_is_not_a_string_is_refused_before_the_vendor(relay_client, sw):
    response = await relay_client.post("/v1/audio/speech", json=speech(response_format=["wav"]), headers=sw.auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "response_format"
    assert sw.upstream.requests == []
