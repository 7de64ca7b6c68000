"""DashScope transcription end to end: the official SDK's audio.transcriptions.create through the ASGI app to a
mock Paraformer real-time socket in the documented protocol; the answer in each response_format, billed by the
transcript's tokens at the model ratio; refusals, vendor failures and a stalled task, at no charge."""

import asyncio
import io
import wave

import openai
import pytest

from billing import pricing
from oneapi_site import options
from oneapi_site.lib import tokenizer
from providers.adapters.ali import asr as ali_asr
from tests.helpers import consume_log
from tests.providers.mock_ali_asr import MockAliASR
from tests.providers.vendor_harness import no_consume_log, serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-dashscope-asr-key"
MODEL = "paraformer-realtime-v2"
TEXT = "Hello, world.好，我知道了。"


def wav_bytes(rate: int = 16000, seconds: float = 0.5) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(int(rate * seconds) * 2))
    return out.getvalue()


WAV = wav_bytes()
asr_server = serve(lambda: MockAliASR(KEY))


@pytest.fixture
def asr(transactional_db, asr_server):
    return new_world(asr_server, username="paro", type=17, name="ali-asr", key=KEY, models=f"{MODEL},whisper-1",
                     model_mapping={"whisper-1": MODEL})


async def test_a_wav_through_the_sdk_is_streamed_in_the_documented_order_and_billed_by_its_transcript(
        relay_client, asr):
    transcript = await asr.sdk(relay_client).audio.transcriptions.create(model=MODEL, file=("talk.wav", WAV))
    assert transcript.text == TEXT
    seen = asr.upstream.requests[0]
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.order == ["run-task", "task-started", "audio", "finish-task"]
    assert seen.run_task["payload"] == {"task_group": "audio", "task": "asr", "function": "recognition",
                                        "model": MODEL, "parameters": {"format": "wav", "sample_rate": 16000},
                                        "input": {}}
    task_id = seen.run_task["header"]["task_id"]
    assert seen.finish_task == {"header": {"action": "finish-task", "task_id": task_id, "streaming": "duplex"},
                                "payload": {"input": {}}}
    assert seen.audio == WAV and seen.frames == 6  # 100 ms (3200 bytes) a frame
    log = await consume_log()
    tokens = tokenizer.count_text(TEXT, MODEL)
    ratio = pricing.model_ratio(MODEL, 17, options.get("ModelRatio"))
    assert ratio == pricing.DEFAULT_MODEL_RATIO[MODEL]
    assert (log.model_name, log.prompt_tokens) == (MODEL, tokens)
    assert log.quota == pricing.text_quota(prompt_tokens=tokens, completion_tokens=0, model_ratio=ratio,
                                           completion_ratio=1, group_ratio=1)


async def test_each_response_format_is_made_from_the_final_sentences(relay_client, asr):
    sdk = asr.sdk(relay_client).audio.transcriptions
    wav8k = wav_bytes(8000, 1.0)
    text = await sdk.create(model="whisper-1", file=("a.wav", wav8k), response_format="text", language="en")
    assert text == TEXT + "\n"
    run = asr.upstream.requests[-1].run_task["payload"]
    assert run["model"] == MODEL  # the channel's mapping
    assert run["parameters"] == {"format": "wav", "sample_rate": 8000, "language_hints": ["en"]}
    verbose = await sdk.create(model=MODEL, file=("a.wav", WAV), response_format="verbose_json")
    assert (verbose.text, verbose.duration) == (TEXT, 0.5)  # the WAV's own length
    assert [(s.start, s.end, s.text) for s in verbose.segments] == [(0.17, 1.02, "Hello, world."),
                                                                    (1.2, 2.05, "好，我知道了。")]
    assert [w.word for w in verbose.words] == ["Hello,", "world.", "好，", "我知道了。"]
    srt = await sdk.create(model=MODEL, file=("a.wav", WAV), response_format="srt")
    assert srt.startswith("1\n00:00:00,170 --> 00:00:01,020\nHello, world.\n\n2\n00:00:01,200 --> 00:00:02,050\n")
    vtt = await sdk.create(model=MODEL, file=("a.wav", WAV), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.170 --> 00:00:01.020\nHello, world.\n")
    response = await relay_client.post("/v1/audio/transcriptions", headers=asr.auth,
                                       data={"model": MODEL, "response_format": "srt"},
                                       files={"file": ("a.wav", WAV, "audio/wav")})
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


async def test_another_format_is_named_by_its_extension_at_the_rate_given_or_16k(relay_client, asr):
    sdk = asr.sdk(relay_client).audio.transcriptions
    mp3 = b"ID3" + bytes(10_000)
    assert (await sdk.create(model=MODEL, file=("a.mp3", mp3))).text == TEXT
    seen = asr.upstream.requests[-1]
    assert seen.run_task["payload"]["parameters"] == {"format": "mp3", "sample_rate": 16000}
    assert seen.audio == mp3 and seen.frames == 4
    await sdk.create(model=MODEL, file=("a.pcm", bytes(6400)), extra_body={"sample_rate": 8000})
    assert asr.upstream.requests[-1].run_task["payload"]["parameters"] == {"format": "pcm", "sample_rate": 8000}


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK marks translations so
async def test_what_paraformer_cannot_do_is_refused_before_anything_is_sent(relay_client, asr):
    sdk = asr.sdk(relay_client).audio
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.translations.create(model=MODEL, file=("a.wav", WAV))
    assert "does not translate" in refused.value.body["message"]
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.transcriptions.create(model=MODEL, file=("a.m4v", b"\x00" * 100))
    assert refused.value.body["param"] == "file" and "extension" in refused.value.body["message"]
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.transcriptions.create(model=MODEL, file=("a.wav", b"RIFF-not-really-a-wave"))
    assert "not a PCM WAV" in refused.value.body["message"]
    assert asr.upstream.requests == []
    assert await no_consume_log()


@pytest.mark.parametrize("fail_at", ["start", "finish"])
async def test_a_failed_task_keeps_dashscopes_message_and_costs_nothing(relay_client, asr, fail_at):
    asr.upstream.then(fail_at=fail_at)
    response = await relay_client.post("/v1/audio/transcriptions", headers=asr.auth, data={"model": MODEL},
                                       files={"file": ("a.wav", WAV, "audio/wav")})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("request timeout after 23 seconds.") and error["code"] == "CLIENT_ERROR"
    assert asr.upstream.requests[0].order[-1] == ("run-task" if fail_at == "start" else "finish-task")
    assert await no_consume_log()


async def test_a_refused_key_is_an_authentication_error(relay_client, asr):
    asr.upstream.then(refuse_handshake=401)
    with pytest.raises(openai.AuthenticationError) as refused:
        await asr.sdk(relay_client).audio.transcriptions.create(model=MODEL, file=("a.wav", WAV))
    assert "refused the API key" in refused.value.body["message"]
    assert await no_consume_log()


async def test_a_stalled_task_is_given_up_on_within_the_relay_timeout_and_its_socket_closed(
        relay_client, asr, settings):
    settings.RELAY_TIMEOUT = 1
    asr.upstream.then(stall=True)
    closed = asr.upstream.closed
    response = await relay_client.post("/v1/audio/transcriptions", headers=asr.auth, data={"model": MODEL},
                                       files={"file": ("a.wav", WAV, "audio/wav")})
    assert response.status_code == 504 and response.json()["error"]["code"] == "task_timeout"
    for _ in range(50):
        if asr.upstream.closed > closed:
            break
        await asyncio.sleep(0.02)
    assert asr.upstream.closed == closed + 1
    assert await no_consume_log()


def test_sentences_meet_with_a_space_only_between_ascii():
    assert ali_asr.joined(["Hello.", "World.", "你好。", "再见。", " ", "Bye."]) == "Hello. World.你好。再见。Bye."
