"""Google's images (Imagen's predict, Gemini's image models) and Gemini's speech: what the adapters send
and make of Google's answers, bytes in and bytes out (the relay tests are test_gemini_media_relay.py)."""

import base64
import io
import wave

import orjson
import pytest

from providers.adapters import adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.gemini import imagen, media
from tests.providers.mock_gemini import PNG, fixture
from tests.providers.vendor_harness import call_context

CHANNEL = ChannelInfo(id=1, type=24, name="gemini", key="AIza-key", base_url="", models=(), model_mapping={},
                      config={}, system_prompt="", priority=0, weight=0)
PCM = base64.b64decode(orjson.loads(fixture("speech.json"))["candidates"][0]["content"]["parts"][0]["inlineData"]
                       ["data"])


def build(mode: str, body: dict):
    return adapter_for(24).build_request(call_context(CHANNEL, mode, body))


def parse(mode: str, body: dict, answer: bytes):
    return adapter_for(24).parse_response(call_context(CHANNEL, mode, body), body=answer)


@pytest.mark.parametrize("size, ratio", [
    (None, None), ("auto", None), ("1024x1024", "1:1"), ("512x512", "1:1"), ("1792x1024", "16:9"),
    ("1024x1792", "9:16"), ("1024x768", "4:3"), ("768x1024", "3:4"), ("1280x720", "16:9"),
])
def test_openai_sizes_become_imagens_aspect_ratios(size, ratio):
    assert imagen.aspect_ratio(size, imagen.IMAGEN_RATIOS, "Imagen") == ratio


@pytest.mark.parametrize("size", ["1536x1024", "1024x1536", "big", "0x512", 1024])
def test_shapes_imagen_does_not_make_are_refused_not_bent(size):
    with pytest.raises(UpstreamError) as refused:
        imagen.aspect_ratio(size, imagen.IMAGEN_RATIOS, "Imagen")
    assert (refused.value.status, refused.value.param) == (400, "size")
    assert "1:1, 3:4, 4:3, 9:16, 16:9" in refused.value.message


def test_gemini_image_models_take_more_shapes_than_imagen():
    assert imagen.aspect_ratio("1536x1024", media.IMAGE_RATIOS, "Gemini") == "3:2"
    assert imagen.aspect_ratio("1024x1536", media.IMAGE_RATIOS, "Gemini") == "2:3"


def test_imagen_request_is_predict_with_the_key_in_a_header():
    request = build("images", {"model": "imagen-4.0-generate-001", "prompt": "a lighthouse", "n": 3,
                               "size": "1024x1792", "person_generation": "dont_allow", "quality": "hd"})
    assert request.url == "https://generativelanguage.googleapis.com/v1beta/models/imagen-4.0-generate-001:predict"
    assert request.headers["x-goog-api-key"] == "AIza-key" and "key=" not in request.url
    assert orjson.loads(request.body) == {
        "instances": [{"prompt": "a lighthouse"}],
        "parameters": {"sampleCount": 3, "includeRaiReason": True, "aspectRatio": "9:16",
                       "personGeneration": "dont_allow"}}


@pytest.mark.parametrize("body, param", [
    ({"n": 5}, "n"),
    ({"person_generation": "everyone"}, "person_generation"),
    ({"size": "1536x1024"}, "size"),
])
def test_imagen_requests_google_would_refuse_are_refused_before_sending(body, param):
    with pytest.raises(UpstreamError) as refused:
        build("images", {"model": "imagen-4.0-generate-001", "prompt": "x", **body})
    assert (refused.value.status, refused.value.param, refused.value.retryable) == (400, param, False)


def test_imagen_predictions_become_b64_json_with_the_revised_prompt():
    answer = {"predictions": [{"mimeType": "image/png", "bytesBase64Encoded": "aGVsbG8=", "prompt": "a tall one"},
                              {"mimeType": "image/jpeg", "bytesBase64Encoded": "d29ybGQ="}]}
    data, usage = parse("images", {"model": "imagen-3.0-generate-002", "prompt": "x"}, orjson.dumps(answer))
    assert orjson.loads(data)["data"] == [{"b64_json": "aGVsbG8=", "revised_prompt": "a tall one"},
                                          {"b64_json": "d29ybGQ="}]
    assert usage is None


def test_a_client_asking_for_urls_gets_data_urls():
    data, _ = parse("images", {"model": "imagen-3.0-generate-002", "prompt": "x", "response_format": "url"},
                    orjson.dumps({"predictions": [{"mimeType": "image/jpeg", "bytesBase64Encoded": "d29ybGQ="}]}))
    assert orjson.loads(data)["data"] == [{"url": "data:image/jpeg;base64,d29ybGQ="}]


def test_filtered_images_are_left_out_and_all_filtered_is_a_content_filter_error():
    data, _ = parse("images", {"model": "imagen-3.0-generate-002", "prompt": "x"},
                    fixture("imagen_partly_filtered.json"))
    assert [base64.b64decode(d["b64_json"]) for d in orjson.loads(data)["data"]] == [PNG]

    with pytest.raises(UpstreamError) as refused:
        parse("images", {"model": "imagen-3.0-generate-002", "prompt": "x"}, fixture("imagen_filtered.json"))
    reason = orjson.loads(fixture("imagen_filtered.json"))["predictions"][0]["raiFilteredReason"]
    assert (refused.value.status, refused.value.code, refused.value.retryable) == (400, "content_filter", False)
    assert refused.value.message.count(reason) == 1  # one reason per image filtered, said once


@pytest.mark.parametrize("answer", [b'{"predictions": []}', b'{"predictions": [{"mimeType": "image/png"}]}'])
def test_an_imagen_answer_without_images_or_reasons_is_a_bad_answer(answer):
    with pytest.raises(UpstreamError) as failed:
        parse("images", {"model": "imagen-3.0-generate-002", "prompt": "x"}, answer)
    assert (failed.value.status, failed.value.code, failed.value.retryable) == (502, "bad_response_body", False)


def test_a_body_without_predictions_is_no_imagen_answer_and_another_channel_may_try():
    with pytest.raises(UpstreamError) as failed:
        parse("images", {"model": "imagen-3.0-generate-002", "prompt": "x"}, b"{}")
    assert (failed.value.status, failed.value.code, failed.value.retryable) == (502, "bad_response_body", True)


def test_gemini_image_models_go_through_generate_content_with_the_image_modality():
    request = build("images", {"model": "gemini-2.5-flash-image", "prompt": "a lighthouse", "size": "1792x1024"})
    assert request.url.endswith("/v1beta/models/gemini-2.5-flash-image:generateContent")
    assert orjson.loads(request.body) == {
        "contents": [{"role": "user", "parts": [{"text": "a lighthouse"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "16:9"}}}
    with pytest.raises(UpstreamError) as refused:
        build("images", {"model": "gemini-2.5-flash-image", "prompt": "x", "n": 2})
    assert refused.value.param == "n"


def test_gemini_image_answers_keep_the_image_and_usage_and_skip_thought_images():
    answer = orjson.loads(fixture("image.json"))
    thought = {"inlineData": {"mimeType": "image/png", "data": "ZHJhZnQ="}, "thought": True}
    answer["candidates"][0]["content"]["parts"].insert(0, thought)
    data, usage = parse("images", {"model": "gemini-2.5-flash-image", "prompt": "x"}, orjson.dumps(answer))
    assert [base64.b64decode(d["b64_json"]) for d in orjson.loads(data)["data"]] == [PNG]
    assert (usage.prompt_tokens, usage.completion_tokens) == (7, 1290)


@pytest.mark.parametrize("name, status, code", [
    ("image_safety.json", 400, "content_filter"),
    ("blocked.json", 400, "content_filter"),
    ("chat.json", 502, "bad_response_body"),  # text only: the model drew nothing
])
def test_a_gemini_image_answer_without_an_image_says_why(name, status, code):
    with pytest.raises(UpstreamError) as failed:
        parse("images", {"model": "gemini-2.5-flash-image", "prompt": "x"}, fixture(name))
    assert (failed.value.status, failed.value.code) == (status, code)


def test_speech_request_maps_the_openai_voice_to_a_gemini_voice():
    request = build("speech", {"model": "gemini-2.5-flash-preview-tts", "input": "Have a wonderful day!",
                               "voice": "alloy", "speed": 1.5})
    assert request.url.endswith("/v1beta/models/gemini-2.5-flash-preview-tts:generateContent")
    assert orjson.loads(request.body) == {
        "contents": [{"parts": [{"text": "Have a wonderful day!"}]}],
        "generationConfig": {"responseModalities": ["AUDIO"],
                             "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Zephyr"}}}}}


def test_every_openai_voice_has_a_gemini_voice_and_gemini_names_pass_in_any_case():
    assert set(media.OPENAI_VOICES.values()) <= set(media.GEMINI_VOICES)
    assert len(media.GEMINI_VOICES) == len(set(media.GEMINI_VOICES)) == 30
    assert media.speech_voice("kore") == "Kore" and media.speech_voice(" Sulafat ") == "Sulafat"


@pytest.mark.parametrize("body, param", [
    ({"voice": "bogus"}, "voice"),
    ({"voice": {"id": "voice_123"}}, "voice"),
    ({"voice": "alloy", "response_format": "mp3"}, "response_format"),
    ({"voice": "alloy", "response_format": "opus"}, "response_format"),
])
def test_speech_gemini_cannot_give_is_refused_before_sending(body, param):
    with pytest.raises(UpstreamError) as refused:
        build("speech", {"model": "gemini-2.5-flash-preview-tts", "input": "hi", **body})
    assert (refused.value.status, refused.value.param) == (400, param)
    if param == "response_format":
        assert "wav or pcm" in refused.value.message


def test_speech_comes_back_as_a_wav_by_default_and_as_raw_pcm_when_asked():
    body = {"model": "gemini-2.5-flash-preview-tts", "input": "hi", "voice": "alloy"}
    audio, usage = parse("speech", body, fixture("speech.json"))
    with wave.open(io.BytesIO(audio)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.readframes(wav.getnframes()) == PCM
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"
    assert (usage.prompt_tokens, usage.completion_tokens) == (8, 48)
    assert adapter_for(24).answer_content_type(call_context(CHANNEL, "speech", body)) == "audio/wav"

    pcm_body = {**body, "response_format": "pcm"}
    assert parse("speech", pcm_body, fixture("speech.json"))[0] == PCM
    assert adapter_for(24).answer_content_type(call_context(CHANNEL, "speech", pcm_body)) == "audio/pcm"


def test_speech_without_audio_is_an_error_that_keeps_what_gemini_said():
    with pytest.raises(UpstreamError) as failed:
        parse("speech", {"model": "gemini-2.5-flash-preview-tts", "input": "hi", "voice": "alloy"},
              fixture("speech_no_audio.json"))
    assert failed.value.status == 502 and "I can only read the text aloud." in failed.value.message
    assert "finishReason OTHER" in failed.value.message
