"""Cloudflare Workers AI media, bytes in and out: what /ai/run is sent for images, speech and transcription,
and how its answers become OpenAI's."""

import base64

import orjson
import pytest

from providers.adapters import adapter_for, uploads
from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.multipart import FormError
from providers.adapters.uploads import Form, Upload
from tests.providers.mock_cloudflare import ACCOUNT, FIXTURES, JPEG, KEY, MP3, PNG
from tests.providers.vendor_harness import call_context

FLUX = "@cf/black-forest-labs/flux-1-schnell"
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"
WHISPER = "@cf/openai/whisper"
TURBO = "@cf/openai/whisper-large-v3-turbo"
MELOTTS = "@cf/myshell-ai/melotts"
RUN = f"https://api.cloudflare.com/client/v4/accounts/{ACCOUNT}/ai/run/"
AUDIO = b"ID3" + bytes(range(200))
adapter = adapter_for(37)


def ctx(mode, body, base_url=""):
    channel = ChannelInfo(id=1, type=37, name="cf", key=KEY, base_url=base_url, models=(), model_mapping={},
                          config={"user_id": ACCOUNT}, system_prompt="", priority=0, weight=0)
    return call_context(channel, mode=mode, body=body)


def envelope(result) -> bytes:
    return orjson.dumps({"result": result, "success": True, "errors": [], "messages": []})


def fixture(name) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- images ------------------------------------------------------------------------------------------


def test_flux_is_sent_its_documented_input_and_no_size():
    body = {"model": FLUX, "prompt": "a lighthouse", "n": 2, "size": "1024x1024", "quality": "hd",
            "response_format": "b64_json", "steps": 6, "seed": 7}
    request = adapter.build_request(ctx("images", body))
    assert (request.method, request.url) == ("POST", RUN + FLUX)
    assert request.headers == {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    assert orjson.loads(request.body) == {"prompt": "a lighthouse", "steps": 6, "seed": 7}


def test_stable_diffusion_gets_the_size_as_width_and_height():
    body = {"model": SDXL, "prompt": "a cat", "size": "768x1024", "num_steps": 12, "negative_prompt": "dogs",
            "steps": 3}
    assert orjson.loads(adapter.build_request(ctx("images", body)).body) == {
        "prompt": "a cat", "width": 768, "height": 1024, "num_steps": 12, "negative_prompt": "dogs"}
    assert orjson.loads(adapter.build_request(ctx("images", {"model": SDXL, "prompt": "a cat"})).body) == {
        "prompt": "a cat"}
    with pytest.raises(UpstreamError) as refused:
        adapter.build_request(ctx("images", {"model": SDXL, "prompt": "a cat", "size": "big"}))
    assert (refused.value.status, refused.value.param) == (400, "size")


def test_an_ai_gateway_base_runs_the_model_under_the_gateway():
    gateway = f"https://gateway.ai.cloudflare.com/v1/{ACCOUNT}/my-gateway/workers-ai"
    request = adapter.build_request(ctx("images", {"model": FLUX, "prompt": "x"}, base_url=gateway + "/"))
    assert request.url == f"{gateway}/{FLUX}"


def test_images_come_back_as_b64_json_or_as_a_data_url():
    flux = envelope({"image": base64.b64encode(JPEG).decode()})
    answer, usage = adapter.parse_response(ctx("images", {"model": FLUX, "prompt": "x"}), body=flux)
    assert usage is None
    assert orjson.loads(answer)["data"] == [{"b64_json": base64.b64encode(JPEG).decode()}]
    answer, _ = adapter.parse_response(ctx("images", {"model": SDXL, "prompt": "x", "response_format": "url"}),
                                       body=PNG)
    assert orjson.loads(answer)["data"] == [{"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}]


@pytest.mark.parametrize("body", [
    envelope({}), envelope({"image": "not base64!"}), envelope({"image": base64.b64encode(b"text").decode()}),
    b"<html>oops</html>", b"[1, 2]", b"",
])
def test_an_answer_without_an_image_is_a_clear_error(body):
    with pytest.raises(UpstreamError) as caught:
        adapter.parse_response(ctx("images", {"model": FLUX, "prompt": "x"}), body=body)
    err = caught.value
    assert (err.status, err.code, err.retryable) == (502, "bad_response_body", False)
    assert "Cloudflare Workers AI" in err.message


def test_a_refusal_inside_a_200_keeps_the_vendors_message():
    with pytest.raises(UpstreamError) as caught:
        adapter.parse_response(ctx("images", {"model": FLUX, "prompt": "x"}), body=fixture("error_input.json"))
    assert caught.value.message.startswith("AiError") and caught.value.code == "5006"
    assert not caught.value.retryable


# --- speech ------------------------------------------------------------------------------------------


def test_speech_sends_the_input_as_melottss_prompt_and_answers_mp3():
    speech = ctx("speech", {"model": MELOTTS, "input": "Bonjour", "voice": "alloy", "lang": "fr", "speed": 1})
    request = adapter.build_request(speech)
    assert request.url == RUN + MELOTTS
    assert orjson.loads(request.body) == {"prompt": "Bonjour", "lang": "fr"}
    assert adapter.parse_response(speech, body=envelope({"audio": base64.b64encode(MP3).decode()})) == (MP3, None)
    assert adapter.parse_response(speech, body=MP3) == (MP3, None)  # the documented binary answer
    assert adapter.answer_content_type(speech) == "audio/mpeg"
    with pytest.raises(UpstreamError) as caught:
        adapter.parse_response(speech, body=envelope({"audio": base64.b64encode(b"not audio").decode()}))
    assert caught.value.code == "bad_response_body"


@pytest.mark.parametrize("fmt", ["opus", "wav", "flac", "aac", "pcm"])
def test_speech_in_another_format_than_mp3_is_refused(fmt):
    with pytest.raises(UpstreamError) as caught:
        adapter.build_request(ctx("speech", {"model": MELOTTS, "input": "hi", "voice": "a", "response_format": fmt}))
    err = caught.value
    assert (err.status, err.param, err.retryable) == (400, "response_format", False) and "mp3" in err.message


# --- transcription -----------------------------------------------------------------------------------


def form(**fields) -> Form:
    return Form(fields, AUDIO, "speech.mp3", "audio/mpeg")


def test_whisper_is_sent_the_audios_bytes_and_turbo_base64_with_its_task():
    request = adapter.transcription_request(ctx("transcriptions", {"model": WHISPER, "language": "en"}), form())
    assert (request.url, request.body, request.headers["Content-Type"]) == (RUN + WHISPER, AUDIO, "audio/mpeg")
    body = {"model": TURBO, "language": "de", "prompt": "Namen: Jörg"}
    request = adapter.transcription_request(ctx("transcriptions", body), form(temperature="0"))
    assert request.url == RUN + TURBO and request.headers["Content-Type"] == "application/json"
    assert orjson.loads(request.body) == {"audio": base64.b64encode(AUDIO).decode(), "task": "transcribe",
                                          "language": "de", "initial_prompt": "Namen: Jörg"}
    late = adapter.transcription_request(ctx("translations", {"model": TURBO}), form(prompt="late field"))
    assert orjson.loads(late.body)["task"] == "translate"
    assert orjson.loads(late.body)["initial_prompt"] == "late field"  # a field sent after the file


def test_what_cannot_be_made_is_refused_before_the_upload_is_read():
    with pytest.raises(UpstreamError) as caught:
        adapter.transcript_format(ctx("translations", {"model": WHISPER}))
    assert caught.value.param == "model" and TURBO in caught.value.message
    with pytest.raises(UpstreamError) as caught:
        adapter.transcript_format(ctx("transcriptions", {"model": TURBO, "response_format": "diarized_json"}))
    assert caught.value.param == "response_format"


def transcribe(model, fixture_name, fmt=None, mode="transcriptions"):
    body = {"model": model} if fmt is None else {"model": model, "response_format": fmt}
    context = ctx(mode, body)
    answer, usage = adapter.parse_response(context, body=fixture(fixture_name))
    assert usage is None  # Workers AI counts no tokens: the relay counts the transcript
    return answer, adapter.answer_content_type(context)


def test_json_and_text_transcripts():
    answer, kind = transcribe(TURBO, "run_whisper_turbo.json")
    assert kind == "application/json"
    assert orjson.loads(answer) == {"text": "Hello from Workers AI. It transcribes.",
                                    "usage": {"type": "duration", "seconds": 4}}
    assert transcribe(WHISPER, "run_whisper.json") == (b'{"text":"Hello from Workers AI.","usage":'
                                                       b'{"type":"duration","seconds":2}}', "application/json")
    assert transcribe(WHISPER, "run_whisper.json", "text") == (b"Hello from Workers AI.\n",
                                                               "text/plain; charset=utf-8")


def test_verbose_json_carries_segments_words_language_and_duration():
    answer, _ = transcribe(TURBO, "run_whisper_turbo.json", "verbose_json", mode="translations")
    verbose = orjson.loads(answer)
    assert (verbose["task"], verbose["language"], verbose["duration"]) == ("translate", "en", 3.2)
    assert verbose["segments"][1] == {"id": 1, "start": 1.6, "end": 3.2, "text": " It transcribes.", "temperature": 0,
                                      "avg_logprob": -0.3, "compression_ratio": 0.8, "no_speech_prob": 0.02}
    assert [w["word"] for w in verbose["words"]] == ["Hello", "from", "Workers", "AI.", "It", "transcribes."]
    whisper = orjson.loads(transcribe(WHISPER, "run_whisper.json", "verbose_json")[0])
    assert (whisper["duration"], "segments" in whisper, len(whisper["words"])) == (1.6, False, 4)


def test_subtitles_from_segments_or_from_the_vendors_vtt():
    srt, kind = transcribe(TURBO, "run_whisper_turbo.json", "srt")
    assert kind == "text/plain; charset=utf-8"
    assert srt.decode() == ("1\n00:00:00,000 --> 00:00:01,600\nHello from Workers AI.\n\n"
                            "2\n00:00:01,600 --> 00:00:03,200\nIt transcribes.\n")
    vtt, _ = transcribe(TURBO, "run_whisper_turbo.json", "vtt")
    assert vtt.decode() == orjson.loads(fixture("run_whisper_turbo.json"))["result"]["vtt"]  # the vendor's own
    srt, _ = transcribe(WHISPER, "run_whisper.json", "srt")  # whisper times words only: its vtt's cues
    assert srt.decode().startswith("1\n00:00:00,000 --> 00:00:00,420\nHello\n\n2\n00:00:00,420 --> 00:00:00,700\n")


@pytest.mark.parametrize("body", [envelope({"words": []}), envelope({"text": 3}), b"not json", envelope(None)])
def test_an_answer_without_a_transcript_is_a_clear_error(body):
    with pytest.raises(UpstreamError) as caught:
        adapter.parse_response(ctx("transcriptions", {"model": TURBO}), body=body)
    assert (caught.value.status, caught.value.code) == (502, "bad_response_body")


# --- the upload, read whole --------------------------------------------------------------------------


def upload(parts: list[bytes], boundary="b0undary") -> Upload:
    body = b"".join(parts)
    head, rest = body[:40], [body[40 + i:40 + i + 7] for i in range(0, len(body) - 40, 7)]

    async def chunks():
        for chunk in rest:
            yield chunk

    return Upload(f"multipart/form-data; boundary={boundary}", head, {}, chunks())


def part(name, value: bytes, filename=None, kind=None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    headers = f"Content-Disposition: {disposition}\r\n" + (f"Content-Type: {kind}\r\n" if kind else "")
    return b"--b0undary\r\n" + headers.encode() + b"\r\n" + value + b"\r\n"


async def test_the_form_is_read_whole_with_fields_after_the_file():
    audio = b"ID3" + b"\r\n--b0und" + bytes(range(256))  # bytes that look almost like a delimiter
    parts = [part("model", b"whisper-1"), part("file", audio, "a.mp3", "audio/mpeg"), part("language", b"fr"),
             b"--b0undary--\r\n"]
    read = await uploads.read_form(upload(parts))
    assert read == Form({"model": "whisper-1", "language": "fr"}, audio, "a.mp3", "audio/mpeg")


async def test_the_file_is_found_however_its_filename_parameter_is_spelled():
    audio = bytes(range(256))
    file_part = b'--b0undary\r\nContent-Disposition: form-data; name="file"; FILENAME="a.wav"\r\n\r\n' + audio
    read = await uploads.read_form(upload([part("model", b"whisper-1"), file_part + b"\r\n", b"--b0undary--\r\n"]))
    assert read == Form({"model": "whisper-1"}, audio, "a.wav", "")


async def test_a_form_too_large_or_without_a_file_is_refused():
    parts = [part("file", bytes(5000), "a.wav"), b"--b0undary--\r\n"]
    with pytest.raises(FormError) as caught:
        await uploads.read_form(upload(parts), limit=4000)
    assert (caught.value.status, caught.value.code) == (413, "file_too_large")
    assert (await uploads.read_form(upload(parts), limit=6000)).file_type == ""
    with pytest.raises(FormError) as caught:
        await uploads.read_form(upload([part("model", b"whisper-1"), b"--b0undary--\r\n"]))
    assert (caught.value.status, caught.value.param) == (400, "file")
