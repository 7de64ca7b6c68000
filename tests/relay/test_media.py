"""Images, speech, transcription, moderation and rerank: routed, streamed and billed."""

import math
import os

import pytest
from asgiref.sync import sync_to_async

from billing.services import option_set
from oneapi_site.lib import tokenizer
from providers import adapters
from providers.adapters.openai import OpenAIAdapter
from tests.factories import ChannelFactory
from tests.helpers import consume_log
from tests.mock_upstream import MockUpstream

pytestmark = pytest.mark.django_db(transaction=True)

MEDIA_MODELS = "dall-e-2,dall-e-3,tts-1,whisper-1,gpt-4o-transcribe,text-moderation-stable,rerank-1"


@pytest.fixture
def media(world):
    ChannelFactory(name="media", base_url=world.upstream.url, models=MEDIA_MODELS,
                   model_mapping={"gpt-4o-transcribe": "gpt-4o-transcribe-2025"})
    return world


async def test_images_are_priced_by_size_and_quality(client, media):
    body = {"model": "dall-e-3", "prompt": "a lighthouse", "size": "1024x1792", "quality": "hd"}
    response = await client.post("/v1/images/generations", json=body, headers=media.auth)
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["url"].startswith("https://images.example/")
    assert media.upstream.requests[-1].path == "/v1/images/generations"
    log = await consume_log()
    assert log.quota == int(20 * 2 * 1.5 * 1000)  # ratio x size (1792) x hd outside 1024x1024, per image


async def test_dall_e_2_charges_per_image(client, media):
    body = {"model": "dall-e-2", "prompt": "a cat", "size": "512x512", "n": 3}
    assert (await client.post("/v1/images/generations", json=body, headers=media.auth)).status_code == 200
    assert (await consume_log()).quota == int(8 * 1.125 * 1000) * 3


@pytest.mark.parametrize("body, param", [
    ({"model": "dall-e-3", "prompt": "x", "n": 2}, "n"),
    ({"model": "dall-e-3", "prompt": "x", "size": "512x512"}, "size"),
    ({"model": "dall-e-2"}, "prompt"),
    ({"model": "dall-e-2", "prompt": "x", "size": []}, "size"),
    ({"model": "tts-1", "prompt": "x", "size": {"w": 1}}, "size"),  # no DALL-E size table: priced by size too
])
async def test_image_requests_the_vendor_would_refuse_are_refused_first(client, media, body, param):
    response = await client.post("/v1/images/generations", json=body, headers=media.auth)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert media.upstream.requests == []


async def test_speech_streams_audio_and_is_priced_by_characters(client, media):
    text = "Hello there, gateway."
    response = await client.post("/v1/audio/speech", json={"model": "tts-1", "input": text, "voice": "alloy"},
                                 headers=media.auth)
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    assert response.content == MockUpstream.AUDIO
    assert (await consume_log()).quota == math.ceil(len(text) * 7.5)


async def test_transcription_upload_streams_through_and_bills_the_transcript(client, media):
    audio = os.urandom(300_000)
    response = await client.post("/v1/audio/transcriptions", headers=media.auth,
                                 data={"model": "whisper-1", "language": "en"},
                                 files={"file": ("speech.mp3", audio, "audio/mpeg")})
    assert response.status_code == 200, response.text
    assert response.json() == {"text": "Hello from the mock upstream."}
    sent = media.upstream.requests[-1].body
    assert sent["file"] == {"filename": "speech.mp3", "size": 300_000}
    assert (sent["model"], sent["language"]) == ("whisper-1", "en")
    tokens = tokenizer.count_text("Hello from the mock upstream.", "whisper-1")
    log = await consume_log()
    assert (log.prompt_tokens, log.quota) == (tokens, tokens * 15)


async def test_transcription_uses_the_vendor_usage_and_the_model_mapping(client, media):
    response = await client.post("/v1/audio/transcriptions", headers=media.auth,
                                 data={"model": "gpt-4o-transcribe"},
                                 files={"file": ("a.wav", b"RIFF" + bytes(1000), "audio/wav")})
    assert response.status_code == 200, response.text
    assert media.upstream.requests[-1].body["model"] == "gpt-4o-transcribe-2025"
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (11, 7)
    assert log.quota == math.ceil((11 + 7 * 1.67) * 3)


async def test_plain_text_transcripts_keep_their_content_type(client, media):
    response = await client.post("/v1/audio/translations", headers=media.auth,
                                 data={"model": "whisper-1", "response_format": "text"},
                                 files={"file": ("a.mp3", b"ID3" + bytes(100), "audio/mpeg")})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Hello from the mock upstream.\n"


async def test_upload_without_a_file_is_refused(client, media):
    response = await client.post("/v1/audio/transcriptions", headers=media.auth, data={"model": "whisper-1"},
                                 files={"other": (None, "x")})
    assert response.status_code == 400 and response.json()["error"]["param"] == "file"
    not_multipart = await client.post("/v1/audio/transcriptions", headers=media.auth, json={"model": "whisper-1"})
    assert not_multipart.status_code == 400


async def test_moderations_are_counted_locally(client, media):
    response = await client.post("/v1/moderations", json={"input": "is this fine?"}, headers=media.auth)
    assert response.status_code == 200 and response.json()["results"][0]["flagged"] is False
    assert media.upstream.requests[-1].body["model"] == "text-moderation-stable"
    log = await consume_log()
    assert log.prompt_tokens == tokenizer.count_input("is this fine?", "text-moderation-stable")


async def test_rerank_uses_the_vendor_usage(client, media):
    await sync_to_async(option_set)(key="ModelRatio", value='{"rerank-1": 0.5}')
    body = {"model": "rerank-1", "query": "capital of France", "documents": ["Paris", "Berlin", "Rome"]}
    response = await client.post("/v1/rerank", json=body, headers=media.auth)
    assert response.status_code == 200 and len(response.json()["results"]) == 3
    log = await consume_log()
    assert (log.prompt_tokens, log.quota) == (11, 6)


async def test_a_channel_whose_vendor_lacks_the_endpoint_is_skipped(client, world, monkeypatch):
    class ChatOnly(OpenAIAdapter):
        channel_type = 991
        label = "chat only"
        modes = ("chat",)

    monkeypatch.setitem(adapters.ADAPTERS, 991, ChatOnly)
    monkeypatch.setitem(adapters._instances, 991, ChatOnly())
    await sync_to_async(ChannelFactory)(type=991, base_url=world.upstream.url, models="dall-e-2")
    response = await client.post("/v1/images/generations", json={"model": "dall-e-2", "prompt": "x"},
                                 headers=world.auth)
    assert response.status_code == 503
    assert world.upstream.requests == []


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize("piece", [1, 7, 64, 4096])
async def test_upload_reader_parses_fields_across_chunks_and_replays_the_body_exactly(piece):
    import httpx

    from relay.media import read_upload

    request = httpx.Request("POST", "http://x/v1/audio/transcriptions",
                            data={"model": "whisper-1", "prompt": "names: Ada"},
                            files={"file": ("a.mp3", os.urandom(20_000), "audio/mpeg")})
    body = request.read()
    messages = [{"type": "http.request", "body": body[i:i + piece], "more_body": i + piece < len(body)}
                for i in range(0, len(body), piece)]

    async def receive():
        return messages.pop(0)

    upload = await read_upload(receive, request.headers["content-type"])
    assert upload.fields == {"model": "whisper-1", "prompt": "names: Ada"}
    assert len(upload.head) < 1024 or piece == 4096  # stopped reading at the file part
    replay = b"".join([chunk async for chunk in upload.chunks()])
    assert replay == body
    mapped = await read_upload(iter_receive(body), request.headers["content-type"])
    renamed = b"".join([chunk async for chunk in mapped.with_model("whisper-large").chunks()])
    assert renamed == body.replace(b"whisper-1", b"whisper-large", 1)


def iter_receive(body):
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0)

    return receive
