"""param_override on vendors whose requests are signed over the body (Bedrock's SigV4, Tencent's TC3): the
override is applied before signing, so the vendor receives the edited body and accepts its signature."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from tests.providers.mock_bedrock import MockBedrock
from tests.providers.mock_tencent import SECRET_ID, SECRET_KEY, MockTencent
from tests.providers.vendor_harness import serve
from tests.relay.test_channel_overrides import configure
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

AK, SK, REGION = "AKIAIOSFODNN7EXAMPLE", "bedrock-test-secret/key+with/slashes", "us-east-1"
tencent_server = serve(MockTencent)
bedrock_server = serve(lambda: MockBedrock(access_key=AK, secret_key=SK, region=REGION))


async def test_tencent_gets_the_edited_body_under_a_valid_signature(transactional_db, relay_client, tencent_server):
    tw = await sync_to_async(new_world)(tencent_server, username="hunyuan-user", type=23,
                                        key=f"1300000000|{SECRET_ID}|{SECRET_KEY}", models="hunyuan-turbo")
    await configure(tw.channel.pk, param_override={"operations": [
        {"path": "EnableEnhancement", "mode": "set", "value": False},
        {"path": "Messages.0.Content", "mode": "append", "value": " Answer in English."}]},
        header_override={"X-Trace": "override"})
    response = await relay_client.post("/v1/chat/completions", headers=tw.auth, json={
        "model": "hunyuan-turbo", "messages": [{"role": "user", "content": "Hello"}]})
    assert response.status_code == 200, response.text
    assert tw.upstream.signature_failures == 0
    sent = tw.upstream.requests[-1]
    assert sent.body["EnableEnhancement"] is False
    assert sent.body["Messages"][0]["Content"] == "Hello Answer in English."
    assert sent.headers["X-Trace"] == "override"


async def test_bedrock_gets_the_edited_body_under_a_valid_signature(transactional_db, relay_client, bedrock_server):
    model = "claude-3-5-sonnet-20241022"
    bw = await sync_to_async(new_world)(bedrock_server, username="bedrock-user", type=33, key=AK, models=model,
                                        config={"region": REGION, "ak": AK, "sk": SK})
    await configure(bw.channel.pk, param_override={"operations": [{"path": "top_k", "mode": "set", "value": 5}]})
    response = await relay_client.post("/v1/chat/completions", headers=bw.auth, json={
        "model": model, "messages": [{"role": "user", "content": "Say hello"}]})
    assert response.status_code == 200, response.text
    sent = bw.upstream.requests[-1]
    assert sent.body["top_k"] == 5 and sent.body["anthropic_version"]
    assert sent.signature_ok is True  # botocore, a test requirement, recomputed it
