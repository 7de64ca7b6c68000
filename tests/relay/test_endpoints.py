import pytest
from asgiref.sync import sync_to_async

from billing.models import Log
from tests.factories import TokenFactory
from tests.helpers import flush

pytestmark = pytest.mark.django_db(transaction=True)


async def test_embeddings_are_relayed_and_billed(client, world):
    response = await client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": ["a", "b"]},
                                 headers=world.auth)
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2
    assert world.upstream.requests[-1].path == "/v1/embeddings"
    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (11, 0, 1)  # ceil(11 x 0.01)


async def test_engine_path_supplies_the_embeddings_model(client, world):
    response = await client.post("/v1/engines/text-embedding-3-small/embeddings", json={"input": "a"},
                                 headers=world.auth)
    assert response.status_code == 200, response.text
    assert world.upstream.requests[-1].body["model"] == "text-embedding-3-small"


async def test_legacy_completions_are_relayed(client, world):
    response = await client.post("/v1/completions", json={"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"},
                                 headers=world.auth)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["text"] == "Hello from the mock upstream."


async def test_models_lists_what_the_group_reaches(client, world):
    response = await client.get("/v1/models", headers=world.auth)
    assert response.status_code == 200
    ids = {m["id"] for m in response.json()["data"]}
    assert ids == {"gpt-4o-mini", "gpt-3.5-turbo", "text-embedding-3-small", "gpt-3.5-turbo-instruct"}
    one = await client.get("/v1/models/gpt-4o-mini", headers=world.auth)
    assert one.status_code == 200 and one.json()["id"] == "gpt-4o-mini"
    missing = await client.get("/v1/models/nope", headers=world.auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    # A model id with a colon (Bedrock's) is OpenAI's to answer too, not taken for Gemini's models/{m}:method.
    colon = await client.get("/v1/models/amazon.nova-pro-v1:0", headers=world.auth)
    assert colon.status_code == 404 and colon.json()["error"]["code"] == "model_not_found"


async def test_models_respects_the_token_allow_list(client, world):
    token = await sync_to_async(TokenFactory)(user=world.user, models="gpt-4o-mini")
    response = await client.get("/v1/models", headers={"Authorization": f"Bearer sk-{token.key}"})
    assert [m["id"] for m in response.json()["data"]] == ["gpt-4o-mini"]


async def test_billing_endpoints_report_the_token(client, world):
    for path in ("/v1/dashboard/billing/subscription", "/dashboard/billing/subscription"):
        response = await client.get(path, headers=world.auth)
        assert response.status_code == 200
        assert response.json()["hard_limit_usd"] == pytest.approx(5_000_000 / 500_000)
    usage = await client.get("/v1/dashboard/billing/usage", headers=world.auth)
    assert usage.json() == {"object": "list", "total_usage": 0.0}


@pytest.mark.parametrize("method, path, status, code", [
    ("POST", "/v1/images/edits", 501, "api_not_implemented"),
    ("POST", "/v1/images/variations", 501, "api_not_implemented"),
    ("GET", "/v1/files", 501, "api_not_implemented"),
    ("POST", "/v1/whatever", 404, "unknown_url"),
    ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
])
async def test_other_routes_answer_clearly(client, world, method, path, status, code):
    response = await client.request(method, path, headers=world.auth)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.headers["x-oneapi-request-id"]


@pytest.mark.parametrize("body, param", [
    (b"not json", None),
    (b"[]", None),
    (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
    (b'{"model": "gpt-4o-mini"}', "messages"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}', "max_tokens"),
    # Parses (orjson reads 1024 levels) but could not be written out again for the upstream (254).
    pytest.param(b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "metadata": {"a": '
                 + b"[" * 300 + b"]" * 300 + b"}}", None, id="nested-300-deep"),
])
async def test_bad_bodies_get_400(client, world, body, param):
    response = await client.post("/v1/chat/completions", content=body,
                                 headers={**world.auth, "Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
