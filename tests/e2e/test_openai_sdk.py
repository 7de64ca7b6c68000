"""The one-api walkthrough against a real server, with curl-like calls and the official openai SDK."""

import time

import httpx
import openai
import pytest


@pytest.fixture(scope="module")
def setup(gateway, upstream_server):
    upstream_server.reset()  # other tests share this mock and may have left a script behind
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": gateway.access_token}, timeout=10)
    created = admin.post("/api/channel/", json={
        "type": 1, "name": "mock-openai", "key": "sk-upstream-e2e", "base_url": upstream_server.url,
        "models": "gpt-4o-mini,text-embedding-3-small,whisper-1,tts-1,dall-e-3", "group": "default"}).json()
    assert created["success"], created
    token = admin.post("/api/token/", json={"name": "sdk", "remain_quota": 1_000_000, "expired_time": -1}).json()
    assert token["success"], token
    key = "sk-" + token["data"]["key"]
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    return type("Setup", (), {"admin": admin, "sdk": sdk, "key": key, "token_id": token["data"]["id"]})


def _consume_logs(admin, expected, token_name="sdk"):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = admin.get("/api/log/", params={"type": 2, "token_name": token_name}).json()["data"]
        items = logs["items"] if isinstance(logs, dict) else logs
        if len(items) >= expected:
            return items
        time.sleep(0.1)
    raise AssertionError(f"expected {expected} consume logs, got {items}")


def test_plain_chat_through_the_sdk(setup):
    answer = setup.sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content == "Hello from the mock upstream."
    assert answer.usage.prompt_tokens == 11 and answer.usage.completion_tokens == 7


def test_streamed_chat_through_the_sdk(setup):
    stream = setup.sdk.chat.completions.create(model="gpt-4o-mini", stream=True,
                                               messages=[{"role": "user", "content": "Hi"}],
                                               stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "Hello from the mock upstream."
    assert usage.completion_tokens == 7


def test_embeddings_and_models_through_the_sdk(setup):
    embedding = setup.sdk.embeddings.create(model="text-embedding-3-small", input="hello")
    assert embedding.data[0].embedding == [0.1, -0.2, 0.3]
    assert {m.id for m in setup.sdk.models.list()} == {"gpt-4o-mini", "text-embedding-3-small", "whisper-1",
                                                       "tts-1", "dall-e-3"}


def test_errors_arrive_as_sdk_exceptions(setup, gateway):
    bad = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.InternalServerError) as unavailable:
        setup.sdk.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert unavailable.value.status_code == 503 and "no-such-model" in str(unavailable.value)
    with pytest.raises(openai.NotFoundError):
        setup.sdk.models.retrieve("no-such-model")


def _settled_token(setup):
    """The token once earlier requests' charges have been written (they leave the request path)."""
    previous = None
    for _ in range(50):
        current = setup.admin.get(f"/api/token/{setup.token_id}").json()["data"]
        if previous is not None and current["used_quota"] == previous["used_quota"]:
            return current
        previous = current
        time.sleep(0.3)
    return previous


def test_quota_and_logs_match_the_formula(setup):
    before = _settled_token(setup)
    setup.sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "bill me"}])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = setup.admin.get(f"/api/token/{setup.token_id}").json()["data"]
        if after["used_quota"] > before["used_quota"]:
            break
        time.sleep(0.1)
    expected = -(-((11 + 7 * 4) * 0.075) // 1)  # ceil((prompt + completion x 4) x 0.075) for gpt-4o-mini
    assert after["used_quota"] - before["used_quota"] == expected
    assert before["remain_quota"] - after["remain_quota"] == expected
    logs = _consume_logs(setup.admin, 1)
    assert logs[0]["quota"] == expected and logs[0]["model_name"] == "gpt-4o-mini"


def test_exhausted_token_is_refused(setup, gateway):
    poor = setup.admin.post("/api/token/", json={"name": "poor", "remain_quota": 1, "expired_time": -1}).json()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-" + poor["data"]["key"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert "quota" in str(refused.value)


def test_redeemed_code_credits_the_user(setup):
    keys = setup.admin.post("/api/redemption/", json={"name": "card", "quota": 12345, "count": 1}).json()["data"]
    before = setup.admin.get("/api/user/self").json()["data"]["quota"]
    redeemed = setup.admin.post("/api/user/topup", json={"key": keys[0]}).json()
    assert redeemed["success"] and redeemed["data"] == 12345
    assert setup.admin.get("/api/user/self").json()["data"]["quota"] == before + 12345
    again = setup.admin.post("/api/user/topup", json={"key": keys[0]}).json()
    assert not again["success"]


def test_audio_and_images_through_the_sdk(setup, upstream_server, tmp_path):
    audio = tmp_path / "speech.mp3"
    audio.write_bytes(b"ID3" + bytes(range(256)) * 4000)  # ~1 MB, so Daphne delivers it in pieces
    with audio.open("rb") as handle:
        transcript = setup.sdk.audio.transcriptions.create(model="whisper-1", file=handle)
    assert transcript.text == "Hello from the mock upstream."
    assert upstream_server.requests[-1].body["file"]["size"] == audio.stat().st_size
    speech = setup.sdk.audio.speech.create(model="tts-1", voice="alloy", input="Hello")
    assert speech.content.startswith(b"ID3")
    image = setup.sdk.images.generate(model="dall-e-3", prompt="a lighthouse")
    assert image.data[0].url.startswith("https://images.example/")
