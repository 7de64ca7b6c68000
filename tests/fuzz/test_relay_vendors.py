"""Every vendor adapter under hostile bodies: a channel of each native type, at that vendor's mock, gets
the fuzzed OpenAI bodies the relay decoded, so each adapter's conversion meets them. Whatever the body,
the client gets an answer or OpenAI's error JSON, never a 500 or a traceback in the log."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from providers.adapters import vertex, zhipu
from tests.fuzz.checks import assert_anthropic_answer, assert_gemini_answer, assert_openai_answer
from tests.fuzz.relay_bodies import GEMINI_ROUTES, MESSAGES_ROUTES, ROUTES
from tests.fuzz.strategies import bodies, encode, json_values, strings
from tests.helpers import flush
from tests.mock_upstream import MockUpstream
from tests.providers.mock_ali import MockAli
from tests.providers.mock_anthropic import MockAnthropic
from tests.providers.mock_baidu import MockBaidu
from tests.providers.mock_bedrock import MockBedrock
from tests.providers.mock_cloudflare import ACCOUNT, MockCloudflare
from tests.providers.mock_cloudflare import KEY as CLOUDFLARE_KEY
from tests.providers.mock_cohere import MockCohere
from tests.providers.mock_coze import MockCoze
from tests.providers.mock_gemini import MockGemini
from tests.providers.mock_ollama import MockOllama
from tests.providers.mock_tencent import SECRET_ID, SECRET_KEY, MockTencent
from tests.providers.mock_vertex import MockVertex
from tests.providers.mock_xunfei import MockXunfei
from tests.providers.mock_xunfei_ws import MockXunfeiWS
from tests.providers.mock_zhipu import MockZhipu
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)


def forgiving(mock_class: type) -> type:
    """The vendor's mock, refusing with a 400 what its handler cannot read, as the vendor would, rather
    than failing (a mock's 500 would be forwarded to the client and blamed on the relay)."""

    class Forgiving(mock_class):
        async def _handle(self, request: web.Request) -> web.StreamResponse:
            try:
                return await super()._handle(request)
            except Exception as exc:  # noqa: BLE001 - whatever the mock cannot parse, the vendor would refuse
                return web.json_response({"error": {"message": f"mock refused the body: {type(exc).__name__}",
                                                    "type": "invalid_request_error", "code": "bad_body"}},
                                         status=400)

    Forgiving.__name__ = f"Forgiving{mock_class.__name__}"
    return Forgiving


_VERTEX_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
AWS = {"access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": "bedrock-test-secret/key+with/slashes",
       "region": "us-east-1"}
SPARK_WS = {"app_id": "app123", "secret": "secret456", "api_key": "key789"}


def _vertex_config(server: MockVertex) -> dict:
    pem = _VERTEX_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    adc = {"type": "service_account", "project_id": "demo-project", "private_key_id": "kid-1", "private_key": pem,
           "client_email": "relay@demo-project.iam.gserviceaccount.com", "token_uri": server.token_uri}
    return {"region": "us-central1", "vertex_ai_project_id": "demo-project", "vertex_ai_adc": json.dumps(adc)}


@dataclass
class Vendor:
    """A channel type, its mock, and the model it serves each route with."""

    type: int
    mock: object  # makes the (forgiving) mock
    key: str
    routes: dict[str, str]  # path -> model
    config: dict | object = field(default_factory=dict)  # or a function of the started mock
    base_path: str = ""


VENDORS = {
    "azure": Vendor(3, lambda: forgiving(MockUpstream)(), "azure-key",
                    {"/v1/chat/completions": "gpt-4o-mini", "/v1/embeddings": "text-embedding-3-small"},
                    {"api_version": "2024-10-21"}),
    "anthropic": Vendor(14, lambda: forgiving(MockAnthropic)(), "sk-ant-api03-upstream-secret",
                        {"/v1/chat/completions": "claude-sonnet-4-5-20250929"}, {"api_version": "2023-06-01"}),
    "baidu": Vendor(15, lambda: forgiving(MockBaidu)(keys={"bdApiKey123": "bdSecretKey456"}),
                    "bdApiKey123|bdSecretKey456",
                    {"/v1/chat/completions": "ERNIE-3.5-8K", "/v1/embeddings": "Embedding-V1"}),
    "zhipu": Vendor(16, lambda: forgiving(MockZhipu)(keys={"zkeyid": "zsecretvalue"}), "zkeyid.zsecretvalue",
                    {"/v1/chat/completions": "glm-4-plus", "/v1/embeddings": "embedding-3",
                     "/v1/images/generations": "cogview-4"}),
    "ali": Vendor(17, lambda: forgiving(MockAli)(keys={"sk-dashscope-mock-key"}), "sk-dashscope-mock-key",
                  {"/v1/chat/completions": "qwen-plus", "/v1/embeddings": "text-embedding-v3",
                   "/v1/images/generations": "wanx2.1-t2i-turbo", "/v1/audio/speech": "qwen-tts"}),
    "spark-ws": Vendor(18, lambda: forgiving(MockXunfeiWS)(SPARK_WS["api_key"], SPARK_WS["secret"]),
                       "{app_id}|{secret}|{api_key}".format(**SPARK_WS), {"/v1/chat/completions": "Spark-Max"}),
    "tencent": Vendor(23, lambda: forgiving(MockTencent)(), f"1300000000|{SECRET_ID}|{SECRET_KEY}",
                      {"/v1/chat/completions": "hunyuan-turbo", "/v1/embeddings": "hunyuan-embedding"},
                      {"region": "ap-guangzhou"}),
    "gemini": Vendor(24, lambda: forgiving(MockGemini)(), "AIzaSy-upstream-gemini-secret",
                     {"/v1/chat/completions": "gemini-2.5-flash", "/v1/embeddings": "gemini-embedding-001",
                      "/v1/images/generations": "imagen-4.0-generate-001",
                      "/v1/audio/speech": "gemini-2.5-flash-preview-tts"}),
    "ollama": Vendor(30, lambda: forgiving(MockOllama)(), "sk-ollama-proxy",
                     {"/v1/chat/completions": "llama3.2", "/v1/embeddings": "all-minilm"}),
    "bedrock": Vendor(33, lambda: forgiving(MockBedrock)(**AWS), AWS["access_key"],
                      {"/v1/chat/completions": "claude-3-5-sonnet-20241022"},
                      {"region": AWS["region"], "ak": AWS["access_key"], "sk": AWS["secret_key"]}),
    "bedrock-converse": Vendor(33, lambda: forgiving(MockBedrock)(**AWS), AWS["access_key"],
                               {"/v1/chat/completions": "llama3-8b-8192"},
                               {"region": AWS["region"], "ak": AWS["access_key"], "sk": AWS["secret_key"]}),
    "coze": Vendor(34, lambda: forgiving(MockCoze)(), "pat_upstream_coze_secret",
                   {"/v1/chat/completions": "bot-7379462189365198898"}, {"user_id": "u-1"}),
    "cohere": Vendor(35, lambda: forgiving(MockCohere)(), "co-test-secret-key",
                     {"/v1/chat/completions": "command-a-03-2025", "/v1/embeddings": "embed-v4.0",
                      "/v1/rerank": "rerank-v3.5"}),
    "cloudflare": Vendor(37, lambda: forgiving(MockCloudflare)(), CLOUDFLARE_KEY,
                         {"/v1/chat/completions": "@cf/meta/llama-3.1-8b-instruct",
                          "/v1/images/generations": "@cf/stabilityai/stable-diffusion-xl-base-1.0",
                          "/v1/audio/speech": "@cf/myshell-ai/melotts"}, {"user_id": ACCOUNT}),
    "vertex": Vendor(42, lambda: forgiving(MockVertex)().trust(_VERTEX_KEY.public_key()), "unused",
                     {"/v1/chat/completions": "gemini-2.5-flash", "/v1/embeddings": "text-embedding-005",
                      "/v1/images/generations": "imagen-3.0-generate-002"}, _vertex_config),
    "vertex-claude": Vendor(42, lambda: forgiving(MockVertex)().trust(_VERTEX_KEY.public_key()), "unused",
                            {"/v1/chat/completions": "claude-sonnet-4-5-20250929"}, _vertex_config),
    "spark-http": Vendor(48, lambda: forgiving(MockXunfei)("sparkApiPassword:abc123"), "sparkApiPassword:abc123",
                         {"/v1/chat/completions": "generalv3.5"}),
    "gemini-openai": Vendor(51, lambda: forgiving(MockUpstream)(), "AIzaSy-upstream-gemini-secret",
                            {"/v1/chat/completions": "gemini-2.5-flash"}, base_path="/v1beta/openai"),
}


@pytest.fixture(scope="module")
def vendor_servers():
    """Each vendor's mock, started when first asked for and stopped with the module."""
    started: dict[str, MockUpstream] = {}

    def server(name: str) -> MockUpstream:
        if name not in started:
            started[name] = VENDORS[name].mock().start()
        return started[name]

    yield server
    for mock in started.values():
        mock.stop()


@pytest.fixture(params=sorted(VENDORS))
def vendor_world(request, transactional_db, vendor_servers):
    yield from _world(request.param, vendor_servers)


# The vendors that speak Anthropic's Messages API: a Claude client's body goes to them as it is.
MESSAGES_VENDORS = ("anthropic", "bedrock", "vertex-claude")


@pytest.fixture(params=MESSAGES_VENDORS)
def messages_world(request, transactional_db, vendor_servers):
    yield from _world(request.param, vendor_servers)


# The vendors that speak Gemini's API: a Gemini client's body goes to them as it is.
GEMINI_VENDORS = ("gemini", "vertex")


@pytest.fixture(params=GEMINI_VENDORS)
def gemini_world(request, transactional_db, vendor_servers):
    yield from _world(request.param, vendor_servers)


def _world(name: str, vendor_servers):
    vendor = VENDORS[name]
    server = vendor_servers(name)
    zhipu._tokens.clear()
    vertex._tokens.clear()
    config = vendor.config(server) if callable(vendor.config) else vendor.config
    found = new_world(server, username="fuzzer", quota=10**15, type=vendor.type, name=name, key=vendor.key,
                      models=",".join(sorted(set(vendor.routes.values()))), config=config, base_path=vendor.base_path)
    from accounts.models import Token

    Token.objects.filter(pk=found.token.pk).update(unlimited_quota=True)
    yield vendor, found
    zhipu._tokens.clear()
    vertex._tokens.clear()


@given(data=st.data())
async def test_every_vendor_answers_any_body_or_refuses_with_openai_error_json(relay_client, vendor_world,
                                                                               log_watch, data):
    vendor, found = vendor_world
    path = data.draw(st.sampled_from(sorted(vendor.routes)), label="path")
    base, likely = ROUTES[path]
    model = vendor.routes[path]
    likely = {**likely, "model": st.one_of(st.just(model), strings, json_values)}
    body = data.draw(bodies({**base, "model": model}, likely), label="body")
    log_watch.clear()
    response = await relay_client.post(path, content=body.data,
                                       headers={**found.auth, "Content-Type": encode(body.content_type)})
    await flush()
    assert_openai_answer(response.status_code, response.headers.get("content-type", ""), response.content)
    log_watch.assert_quiet()


@given(data=st.data())
async def test_a_vendor_that_speaks_messages_takes_any_body_or_it_is_refused_in_anthropics_shape(
        relay_client, messages_world, log_watch, data):
    vendor, found = messages_world
    path = data.draw(st.sampled_from(sorted(MESSAGES_ROUTES)), label="path")
    base, likely = MESSAGES_ROUTES[path]
    model = vendor.routes["/v1/chat/completions"]
    likely = {**likely, "model": st.one_of(st.just(model), strings, json_values)}
    body = data.draw(bodies({**base, "model": model}, likely), label="body")
    log_watch.clear()
    response = await relay_client.post(path, content=body.data, headers={
        "x-api-key": f"sk-{found.token.key}", "anthropic-version": "2023-06-01",
        "Content-Type": encode(body.content_type)})
    await flush()
    assert_anthropic_answer(response.status_code, response.headers.get("content-type", ""), response.content)
    log_watch.assert_quiet()


@given(data=st.data())
async def test_a_vendor_that_speaks_gemini_takes_any_body_or_it_is_refused_in_googles_shape(
        relay_client, gemini_world, log_watch, data):
    vendor, found = gemini_world
    path = data.draw(st.sampled_from(sorted(GEMINI_ROUTES)), label="path")
    base, likely = GEMINI_ROUTES[path]
    # The routes name an OpenAI channel's models: this vendor's are asked for instead.
    sent = path.replace("gpt-4o-mini", vendor.routes["/v1/chat/completions"]).replace(
        "text-embedding-3-small", vendor.routes["/v1/embeddings"])
    body = data.draw(bodies(base, likely), label="body")
    log_watch.clear()
    response = await relay_client.post(sent, content=body.data, headers={
        "x-goog-api-key": f"sk-{found.token.key}", "Content-Type": encode(body.content_type)})
    await flush()
    assert_gemini_answer(response.status_code, response.headers.get("content-type", ""), response.content)
    log_watch.assert_quiet()
