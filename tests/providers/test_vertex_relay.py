"""Vertex AI channels end to end: OpenAI requests through the ASGI app to a mock Vertex AI
(its OAuth token endpoint included), for Gemini and Claude models.

What every vendor owes (answers, streams, usage, cut streams, embeddings) is in
test_vendor_contract.py, for Gemini and Claude on Vertex; here is what is Vertex's own: the publisher
endpoints, the service account's access token, images and speech."""

import base64
import json

import pytest
from asgiref.sync import sync_to_async
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from billing.services import option_set
from providers.adapters import vertex, vertex_claude_count
from tests.helpers import consume_log, flush
from tests.providers.mock_gemini import MockGemini
from tests.providers.mock_vertex import MockVertex, fixture
from tests.providers.vendor_harness import no_consume_log, serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = PRIVATE_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
EMAIL = "relay@demo-project.iam.gserviceaccount.com"
GEMINI = "gemini-2.5-flash"
CLAUDE = "claude-sonnet-4-5-20250929"
IMAGEN = "imagen-3.0-generate-002"
CHAT = {"model": GEMINI, "messages": [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "Say hello"}]}
PREFIX = "/v1/projects/demo-project/locations/us-central1/publishers"


vertex_server = serve(lambda: MockVertex().trust(PRIVATE_KEY.public_key()))


@pytest.fixture
def gcp(transactional_db, vertex_server):
    vertex._tokens.clear()
    vertex_claude_count.forget_all()
    adc = {"type": "service_account", "project_id": "demo-project", "private_key_id": "kid-1",
           "private_key": PEM, "client_email": EMAIL, "token_uri": vertex_server.token_uri}
    yield new_world(vertex_server, username="alice", type=42, name="vertex", key="unused",
                    models=f"{GEMINI},{CLAUDE},text-embedding-005,{IMAGEN},gemini-2.5-flash-image,"
                       "gemini-2.5-flash-preview-tts",
                    config={"region": "us-central1", "vertex_ai_project_id": "demo-project",
                        "vertex_ai_adc": json.dumps(adc)})
    vertex._tokens.clear()


async def test_a_gemini_chat_goes_to_vertex_with_the_service_accounts_token(relay_client, gcp):
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=gcp.auth)
    assert response.status_code == 200, response.text
    sent = gcp.upstream.requests[-1]
    assert sent.path == f"{PREFIX}/google/models/{GEMINI}:generateContent"
    assert sent.headers["Authorization"] == "Bearer ya29.mock-1"
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Say hello"}]}]
    assert gcp.upstream.token_requests[0]["iss"] == EMAIL


async def test_a_gemini_stream_goes_to_stream_generate_content_as_sse(relay_client, gcp):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=gcp.auth)
    assert response.status_code == 200, response.text
    sent = gcp.upstream.requests[-1]
    assert (sent.path, sent.query) == (f"{PREFIX}/google/models/{GEMINI}:streamGenerateContent", "alt=sse")


async def test_a_claude_chat_through_vertex_uses_raw_predict(relay_client, gcp):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": CLAUDE}, headers=gcp.auth)
    assert response.status_code == 200, response.text
    sent = gcp.upstream.requests[-1]
    assert sent.path == f"{PREFIX}/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
    assert sent.body == {"anthropic_version": "vertex-2023-10-16", "max_tokens": 4096, "system": "Be brief.",
                         "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]}


async def test_a_claude_stream_through_vertex_uses_stream_raw_predict(relay_client, gcp):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": CLAUDE, "stream": True},
                                       headers=gcp.auth)
    assert response.status_code == 200, response.text
    sent = gcp.upstream.requests[-1]
    assert sent.path == f"{PREFIX}/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
    assert sent.body["stream"] is True


MESSAGE = {"model": CLAUDE, "max_tokens": 512, "thinking": {"type": "enabled", "budget_tokens": 256},
           "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
           "messages": [{"role": "user", "content": "Say hello"}]}


@pytest.mark.parametrize("stream", [False, True])
async def test_a_claude_message_passes_through_vertex_raw_predict(relay_client, gcp, stream):
    gcp.upstream.then(fixture="anthropic/thinking_stream.sse" if stream else "anthropic/thinking.json")
    headers = {"x-api-key": f"sk-{gcp.token.key}", "anthropic-version": "2023-06-01",
               "anthropic-beta": "interleaved-thinking-2025-05-14"}
    response = await relay_client.post("/v1/messages", json={**MESSAGE, "stream": stream}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.content == fixture("anthropic/thinking_stream.sse" if stream else "anthropic/thinking.json")
    sent = gcp.upstream.requests[-1]
    action = "streamRawPredict" if stream else "rawPredict"
    assert sent.path == f"{PREFIX}/anthropic/models/claude-sonnet-4-5@20250929:{action}"
    # Vertex's Messages body: the client's, without the model (it is in the URL), with Vertex's API version.
    expected = {k: v for k, v in MESSAGE.items() if k != "model"}
    assert sent.body == {**expected, "stream": stream, "anthropic_version": "vertex-2023-10-16"}
    assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert sent.headers["Authorization"] == "Bearer ya29.mock-1" and "anthropic-version" not in sent.headers
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.client_protocol) == (20 + 1500 + 8000, 30, "anthropic")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_claude_message_through_vertex_bills_its_cache_at_the_cache_ratios(relay_client, gcp, stream):
    await sync_to_async(option_set)(key="ModelRatio", value={CLAUDE: 1.5})
    await sync_to_async(option_set)(key="CompletionRatio", value={CLAUDE: 5})
    gcp.upstream.then(fixture="anthropic/cached_stream.sse" if stream else "anthropic/cached.json")
    response = await relay_client.post("/v1/messages", json={**MESSAGE, "stream": stream},
                                       headers={"x-api-key": f"sk-{gcp.token.key}"})
    assert response.status_code == 200, response.text
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.cached_tokens, log.cache_write_tokens,
            log.cache_write_1h_tokens) == (23050, 300, 20000, 3000, 2000)
    # (50 + 20000 x 0.1 + 1000 x 1.25 + 2000 x 2 + 300 x 5) x 1.5, as Anthropic's own channel bills it.
    assert log.quota == 13200


image_server = serve(MockGemini)  # it serves test images too


# --- Claude's count_tokens: Vertex's count-tokens endpoint where the model and region have it -------------------

COUNT = {"model": CLAUDE, "system": "Be brief.", "messages": [{"role": "user", "content": "Say hello"}]}
NO_COUNT = {404: {"error": {"code": 404, "status": "NOT_FOUND",
                            "message": "Publisher Model `count-tokens` was not found or your project does not have "
                                       "access to it."}},
            400: {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                            "message": "Token counting is not supported for this model in this region."}}}


async def count(client, world) -> int:
    response = await client.post("/v1/messages/count_tokens", json=COUNT,
                                 headers={"x-api-key": f"sk-{world.token.key}", "anthropic-version": "2023-06-01",
                                          "anthropic-beta": "token-counting-2024-11-01"})
    assert response.status_code == 200, response.text
    return response.json()["input_tokens"]


async def test_a_claude_count_goes_to_vertexs_count_tokens_and_costs_nothing(relay_client, gcp):
    assert await count(relay_client, gcp) == 2095  # Vertex's count, not the local one
    [sent] = [r for r in gcp.upstream.requests if r.path != "/token"]
    assert sent.path == f"{PREFIX}/anthropic/models/count-tokens:rawPredict"
    # The model is named in the body, in Vertex's spelling, with Vertex's API version beside it.
    assert sent.body == {**COUNT, "model": "claude-sonnet-4-5@20250929", "anthropic_version": "vertex-2023-10-16"}
    assert sent.headers["anthropic-beta"] == "token-counting-2024-11-01"
    assert sent.headers["Authorization"] == "Bearer ya29.mock-1" and "anthropic-version" not in sent.headers
    assert await no_consume_log()


@pytest.mark.parametrize("status", [404, 400])
async def test_a_model_without_vertexs_count_is_counted_locally_and_not_asked_again_for_a_while(
        relay_client, gcp, status, monkeypatch):
    gcp.upstream.then(status=status, error=NO_COUNT[status])
    local = await count(relay_client, gcp)
    assert 0 < local < 100  # the local count of a short prompt, not Vertex's refusal
    asked = [r for r in gcp.upstream.requests if r.path.endswith("count-tokens:rawPredict")]
    assert len(asked) == 1
    # Remembered for this channel and model: the next count is local without a round trip.
    assert await count(relay_client, gcp) == local
    assert len([r for r in gcp.upstream.requests if r.path.endswith("count-tokens:rawPredict")]) == 1
    # Until the memory lapses: then Vertex is asked again (a region may have gained the endpoint).
    later = vertex_claude_count.clock() + vertex_claude_count.REMEMBER_SECONDS + 1
    monkeypatch.setattr(vertex_claude_count, "clock", lambda: later)
    assert await count(relay_client, gcp) == 2095
    assert await no_consume_log()


async def test_a_refused_count_leaves_claude_messages_on_vertex_as_they_were(relay_client, gcp):
    gcp.upstream.then(status=404, error=NO_COUNT[404])
    await count(relay_client, gcp)
    response = await relay_client.post("/v1/messages", json={**MESSAGE, "thinking": {"type": "disabled"}},
                                       headers={"x-api-key": f"sk-{gcp.token.key}"})
    assert response.status_code == 200, response.text
    assert gcp.upstream.requests[-1].path == f"{PREFIX}/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"


async def test_a_claude_clients_url_image_is_fetched_and_sent_inline(relay_client, gcp, image_server):
    from tests.providers.mock_gemini import PNG

    image = {"type": "image", "source": {"type": "url", "url": f"{image_server.url}/images/cat.png"}}
    body = {**MESSAGE, "messages": [{"role": "user", "content": [image, {"type": "text", "text": "What is it?"}]}]}
    response = await relay_client.post("/v1/messages", json=body, headers={"x-api-key": f"sk-{gcp.token.key}"})
    assert response.status_code == 200, response.text
    [sent, text] = gcp.upstream.requests[-1].body["messages"][0]["content"]
    assert sent["source"] == {"type": "base64", "media_type": "image/png",
                              "data": base64.b64encode(PNG).decode()} and text == body["messages"][0]["content"][1]


async def test_a_gemini_model_on_vertex_takes_messages_through_the_conversion(relay_client, gcp):
    response = await relay_client.post("/v1/messages", json={**MESSAGE, "model": GEMINI},
                                       headers={"x-api-key": f"sk-{gcp.token.key}"})
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message" and response.json()["model"] == GEMINI
    assert gcp.upstream.requests[-1].path == f"{PREFIX}/google/models/{GEMINI}:generateContent"


async def test_access_token_is_fetched_once_and_reused(relay_client, gcp):
    for model in (GEMINI, CLAUDE, GEMINI):
        response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": model},
                                           headers=gcp.auth)
        assert response.status_code == 200, response.text
    assert len(gcp.upstream.token_requests) == 1
    assert {r.headers["Authorization"] for r in gcp.upstream.requests} == {"Bearer ya29.mock-1"}
    await flush()


async def test_revoked_token_is_an_auth_error_and_the_next_request_mints_a_new_one(relay_client, gcp):
    assert (await relay_client.post("/v1/chat/completions", json=CHAT, headers=gcp.auth)).status_code == 200
    gcp.upstream.revoke_all()
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=gcp.auth)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["message"].startswith("Request had invalid authentication credentials")
    assert PEM[40:80] not in response.text

    # The channel may have been taken out of rotation by the auth failure; re-enable it to check the cache.
    from asgiref.sync import sync_to_async

    from providers.models import Channel

    await sync_to_async(Channel.objects.filter(pk=gcp.channel.pk).update)(status=Channel.Status.ENABLED)
    from django.core.cache import cache

    await sync_to_async(cache.clear)()
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=gcp.auth)
    assert response.status_code == 200, response.text
    assert len(gcp.upstream.token_requests) == 2
    assert gcp.upstream.requests[-1].headers["Authorization"] == "Bearer ya29.mock-2"
    await flush()


async def test_a_refused_service_account_is_reported_without_the_key(relay_client, gcp):
    gcp.upstream.token_failure = (400, "vertex/token_invalid_grant.json")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=gcp.auth)
    assert response.status_code == 401
    error = response.json()["error"]
    assert "Invalid JWT Signature." in error["message"] and error["type"] == "authentication_error"
    assert "PRIVATE KEY" not in response.text and gcp.upstream.requests == []
    await flush()


async def test_embeddings_through_vertex_are_predict_with_the_dimensions_asked(relay_client, gcp):
    body = {"model": "text-embedding-005", "input": ["hello", "world"], "dimensions": 256}
    response = await relay_client.post("/v1/embeddings", json=body, headers=gcp.auth)
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["embedding"] == [0.1, 0.2]
    sent = gcp.upstream.requests[-1]
    assert sent.path.endswith("/publishers/google/models/text-embedding-005:predict")
    assert sent.body == {"instances": [{"content": "hello"}, {"content": "world"}],
                         "parameters": {"outputDimensionality": 256}}


# --- images and speech: Imagen's predict and Gemini's image and speech models, as on the Gemini API ------


async def test_imagen_through_vertex_is_predict_with_the_service_accounts_token(relay_client, gcp):
    from tests.providers.mock_gemini import PNG

    answer = await gcp.sdk(relay_client).images.generate(model=IMAGEN, prompt="a lighthouse", n=3,
                                                               size="1024x768")
    assert [base64.b64decode(image.b64_json) for image in answer.data] == [PNG] * 3
    sent = gcp.upstream.requests[-1]
    assert sent.path == f"{PREFIX}/google/models/{IMAGEN}:predict"
    assert sent.headers["Authorization"] == "Bearer ya29.mock-1"
    assert sent.body == {"instances": [{"prompt": "a lighthouse"}],
                         "parameters": {"sampleCount": 3, "includeRaiReason": True, "aspectRatio": "4:3"}}
    assert (await consume_log()).quota == 3 * 15 * 1000  # imagen-3.0-generate-002: US$0.03 an image


async def test_imagen_filtered_on_vertex_is_a_content_filter_error_and_costs_nothing(relay_client, gcp):
    gcp.upstream.then(fixture="gemini/imagen_filtered.json")
    response = await relay_client.post("/v1/images/generations", json={"model": IMAGEN, "prompt": "x"},
                                       headers=gcp.auth)
    assert response.status_code == 400 and response.json()["error"]["code"] == "content_filter"
    assert await no_consume_log()


async def test_gemini_images_and_speech_through_vertex_use_generate_content(relay_client, gcp):
    sdk = gcp.sdk(relay_client)
    image = await sdk.images.generate(model="gemini-2.5-flash-image", prompt="a lighthouse")
    assert image.data[0].b64_json
    assert gcp.upstream.requests[-1].path == f"{PREFIX}/google/models/gemini-2.5-flash-image:generateContent"

    audio = await sdk.audio.speech.create(model="gemini-2.5-flash-preview-tts", voice="onyx", input="Hello")
    assert audio.content[:4] == b"RIFF" and audio.response.headers["content-type"] == "audio/wav"
    sent = gcp.upstream.requests[-1]
    assert sent.path == f"{PREFIX}/google/models/gemini-2.5-flash-preview-tts:generateContent"
    assert sent.body["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"] == {
        "voiceName": "Algenib"}
    await flush()
