"""Audio uploads through a real server (Daphne hands the body over in pieces), as curl sends them: the file
first, the model after it. The model checked against the key's allow-list is the one the upstream gets."""

import httpx
import pytest


@pytest.fixture(scope="module")
def whisper_only(gateway, upstream_server):
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": gateway.access_token}, timeout=10)
    created = admin.post("/api/channel/", json={
        "type": 1, "name": "mock-audio", "key": "sk-upstream-e2e", "base_url": upstream_server.url,
        "models": "whisper-1,gpt-4o-transcribe", "group": "default"}).json()
    assert created["success"], created
    token = admin.post("/api/token/", json={"name": "whisper-only", "remain_quota": 1_000_000, "expired_time": -1,
                                            "models": "whisper-1"}).json()
    assert token["success"], token
    return {"Authorization": "Bearer sk-" + token["data"]["key"]}


def curl_style(model: str) -> list:
    # `curl -F file=@speech.mp3 -F model=...`, as OpenAI's documentation writes it: the file comes first.
    return [("file", ("speech.mp3", b"ID3" + bytes(range(256)) * 4000, "audio/mpeg")), ("model", (None, model))]


def test_a_model_after_the_file_cannot_slip_past_the_allow_list(gateway, upstream_server, whisper_only):
    upstream_server.reset()
    refused = httpx.post(gateway.url + "/v1/audio/transcriptions", headers=whisper_only,
                         files=curl_style("gpt-4o-transcribe"), timeout=30)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert upstream_server.requests == []
    allowed = httpx.post(gateway.url + "/v1/audio/transcriptions", headers=whisper_only,
                         files=curl_style("whisper-1"), timeout=30)
    assert allowed.status_code == 200, allowed.text
    sent = upstream_server.requests[-1].body
    assert sent["model"] == "whisper-1" and sent["file"]["size"] == 3 + 256 * 4000
