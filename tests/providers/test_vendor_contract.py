"""What every vendor owes a client of the relay: one table of vendor cases, one test per scenario.

Each case is a channel of a native vendor type at that vendor's mock (tests/providers/mock_*.py), with
what the mock answers: its reply and the token counts it reports, and how to make it cut a stream,
garble an event, refuse or fail over. Every scenario runs for each case that can play it, through the
whole ASGI application, and checks what the client gets and what the ledger bills. A vendor's own test
file (test_<vendor>_relay.py) keeps only what is that vendor's: the request it is sent, its key and token
schemes, its own endpoints and answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from asgiref.sync import sync_to_async
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from billing.services import option_set
from providers.adapters import adapter_for, baidu, vertex
from tests.factories import ChannelFactory
from tests.helpers import consume_log, events_of
from tests.providers import mock_ali, mock_baidu, mock_cohere, mock_ollama, mock_tencent, mock_xunfei, mock_zhipu
from tests.providers.mock_anthropic import MockAnthropic
from tests.providers.mock_bedrock import MockBedrock
from tests.providers.mock_coze import MockCoze
from tests.providers.mock_gemini import MockGemini
from tests.providers.mock_vertex import MockVertex
from tests.providers.mock_xunfei_ws import MockXunfeiWS
from tests.providers.vendor_harness import (
    assert_interrupted,
    no_consume_log,
    sdk_chat_both_ways,
    stream_chunks,
    text_of,
)
from tests.world import World, new_world

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]


# --- the table ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """An answer the vendor refuses with, how to provoke it, and the OpenAI error the client must get."""

    id: str
    status: int
    message: str  # the vendor's own message, which the client's error message starts with
    script: dict | None = None  # the mock's next answer (`mock.then(**script)`) ...
    key: str | None = None  # ... or the channel's key, changed to this one
    secret: str | None = None  # the part of `key` that must never show
    fields: dict = field(default_factory=dict)  # fields of the error the client gets (type, code, vendor code)
    stream: bool = False  # asked for a stream
    backup: bool = False  # a backup channel is there, and the refusal is not one to fail over on
    reaches_vendor: bool = True  # False: refused before the vendor's chat endpoint was called


@dataclass(frozen=True)
class Stream:
    """A stream the mock sends (recorded, or with a garbled event), and what reaches the client."""

    id: str
    script: dict
    text: str
    billed: tuple[int, int] | None = None  # (prompt, completion); None: only the completion is known
    completion: int | None = None
    finish: str | None = None


@dataclass(frozen=True)
class Cut:
    """A stream the vendor breaks off: how, the text that arrived first, and what is billed for it."""

    script: dict
    text: str | None = None  # exactly what arrived before the error event
    billed: tuple[int, int] | None = None  # the vendor's running count; None: counted locally ...
    completion: int | None = None  # ... as this many tokens ...
    below: int | None = None  # ... or fewer than the whole answer would have cost


@dataclass(frozen=True)
class StreamError:
    """An error the vendor sends mid-stream, and the OpenAI error event that ends the client's stream."""

    script: dict
    message: str
    fields: dict = field(default_factory=dict)
    text: str | None = None  # what arrived before it
    billed: bool = False  # what arrived is billed


@dataclass(frozen=True)
class Embeddings:
    model: str
    script: dict = field(default_factory=dict)
    prompt_tokens: int | None = None  # the vendor's count; None: counted locally
    usage: dict | None = None  # the whole usage object, where the vendor's test pinned it
    input: tuple[str, ...] = ("a", "b")
    # The vectors the mock sends for `input`, in order; the first is also its answer to a single input.
    vectors: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class Vendor:
    """A channel of one vendor type at its mock, and what the mock answers."""

    id: str
    type: int
    mock: Callable[[], Any]  # makes the mock server (cases sharing it name the same function)
    key: str
    model: str
    reply: str
    usage: tuple[int, int]  # (prompt, completion), as the vendor reports them for `reply`
    secret: str = ""  # the part of `key` that must never show; the whole key by default
    answer_model: str = ""  # the model a plain answer names, when not the one asked
    config: dict | Callable[[Any], dict] = field(default_factory=dict)  # or a function of the started mock
    body: dict = field(default_factory=dict)  # more of the chat request
    usage_details: dict = field(default_factory=dict)  # what else the vendor's usage tells the client
    stream_script: dict = field(default_factory=dict)  # how the mock sends the plain stream
    forwards_garbage: bool = False  # an OpenAI-shaped vendor: an event that is not JSON is passed on as it is
    calls: Callable[[Any], list] = lambda mock: mock.requests  # the vendor calls that answer (no token fetches)
    cut: Cut | None = None
    garbled: tuple[Stream, ...] = ()
    recorded: tuple[Stream, ...] = ()
    stream_error: StreamError | None = None
    refusals: tuple[Refusal, ...] = ()
    failover: dict | None = None  # a script the relay retries on the next channel
    bad_key: str | None = None  # a key the adapter cannot read
    embeddings: Embeddings | None = None

    @property
    def chat(self) -> dict:
        return {"model": self.model, "messages": MESSAGES, **self.body}


def _ali():
    return mock_ali.MockAli(keys={"sk-dashscope-mock-key"})


def _baidu():
    return mock_baidu.MockBaidu(keys={"bdApiKey123": "bdSecretKey456"})


AWS_KEY, AWS_SECRET, AWS_REGION = "AKIAIOSFODNN7EXAMPLE", "bedrock-test-secret/key+with/slashes", "us-east-1"


def _bedrock():
    return MockBedrock(access_key=AWS_KEY, secret_key=AWS_SECRET, region=AWS_REGION)


SPARK_APP, SPARK_SECRET, SPARK_KEY = "app123", "secret456", "key789"


def _spark_ws():
    return MockXunfeiWS(SPARK_KEY, SPARK_SECRET)


def _spark_http():
    return mock_xunfei.MockXunfei("sparkApiPassword:abc123")


VERTEX_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
VERTEX_PEM = VERTEX_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()


def _vertex():
    return MockVertex().trust(VERTEX_KEY.public_key())


def _vertex_config(server) -> dict:
    adc = {"type": "service_account", "project_id": "demo-project", "private_key_id": "kid-1",
           "private_key": VERTEX_PEM, "client_email": "relay@demo-project.iam.gserviceaccount.com",
           "token_uri": server.token_uri}
    return {"region": "us-central1", "vertex_ai_project_id": "demo-project", "vertex_ai_adc": json.dumps(adc)}


def _zhipu():
    return mock_zhipu.MockZhipu(keys={"zkeyid": "zsecretvalue"})


CACHED_NONE = {"prompt_tokens_details": {"cached_tokens": 0}}  # Claude reports its prompt cache
WORDS = " ".join(["word"] * 50)  # a long answer to cut: 50 tokens when whole
HANZI = "一二三四五六七八九十"

VENDORS = [
    Vendor(
        "ali", 17, _ali, "sk-dashscope-mock-key", "qwen-plus", mock_ali.REPLY, (22, 12), config={"plugin": "pdf"},
        cut=Cut({"reply": HANZI * 3, "completion_tokens": 30, "cut_after": 4}, billed=(22, 12)),
        garbled=(Stream("malformed", {"malformed": True}, mock_ali.REPLY, (22, 12)),),
        refusals=(
            Refusal("wrong-key", 401, "Invalid API-key provided.", key="sk-wrong-key-777", secret="sk-wrong-key-777",
                    fields={"code": "invalid_api_key"}),
            Refusal("arrears", 400, "Access denied, please make sure your account is in good standing.",
                    script={"status": 400, "error": {"code": "Arrearage", "message": "Access denied, please make "
                                                     "sure your account is in good standing.", "request_id": "r2"}},
                    fields={"code": "insufficient_quota"}, backup=True),
        ),
        failover={"status": 429, "error": {"code": "Throttling.RateQuota", "message": "Requests rate limit exceeded",
                                           "request_id": "r1"}},
        embeddings=Embeddings("text-embedding-v3", {"prompt_tokens": 6}, 6, usage={"prompt_tokens": 6,
                                                                                 "total_tokens": 6},
                              vectors=((0.1, -0.2, 0.3), (0.2, -0.2, 0.3))),
    ),
    Vendor(
        "anthropic", 14, MockAnthropic, "sk-ant-api03-upstream-secret", "claude-sonnet-4-5-20250929",
        "Hello from Claude.", (12, 6), config={"api_version": "2023-06-01"},
        usage_details=CACHED_NONE,
        cut=Cut({"cut_after": 5}),
        garbled=(Stream("malformed", {"answer": "malformed"}, "Hello again.", (12, 4)),),
        stream_error=StreamError({"answer": "error"}, "Overloaded", {
            "message": "Overloaded", "type": "overloaded_error", "code": "overloaded_error", "param": None}),
        refusals=(
            Refusal("auth", 401, "invalid x-api-key", script={"status": 401, "error": "error_authentication"},
                    fields={"type": "authentication_error"}),
            Refusal("overloaded", 529, "Overloaded", script={"status": 529, "error": "error_overloaded"},
                    fields={"type": "overloaded_error"}),
        ),
        failover={"status": 529, "error": "error_overloaded"},
    ),
    Vendor(
        "baidu", 15, _baidu, "bdApiKey123|bdSecretKey456", "ERNIE-3.5-8K", mock_baidu.REPLY, (15, 9),
        secret="bdSecretKey456", calls=lambda mock: mock.chat_requests,
        cut=Cut({"reply": HANZI * 5, "cut_after": 3}, below=50),
        garbled=(Stream("malformed", {"malformed": True}, mock_baidu.REPLY, (15, 9)),),
        recorded=(Stream("stream.sse", {"fixture": "stream.sse"}, "你好！有什么我可以帮助你的吗？", (5, 11)),),
        refusals=(
            Refusal("wrong-secret", 401, "Baidu refused the channel's API key: Client authentication failed",
                    key="bdApiKey123|wrongSecret999", secret="wrongSecret999", reaches_vendor=False),
            Refusal("daily-limit", 429, "Open api daily request limit reached",
                    script={"baidu_error": {"error_code": 17, "error_msg": "Open api daily request limit reached"}},
                    fields={"code": "insufficient_quota", "baidu_code": 17}, backup=True),
        ),
        failover={"baidu_error": {"error_code": 18, "error_msg": "Open api qps request limit reached"}},
        bad_key="nopipesecret123",
        embeddings=Embeddings("Embedding-V1", {"prompt_tokens": 7}, 7, vectors=((0.1, -0.2, 0.3), (0.2, -0.2, 0.3))),
    ),
    Vendor(
        "bedrock", 33, _bedrock, AWS_KEY, "claude-3-5-sonnet-20241022", "Hello from Claude on Bedrock.", (14, 9),
        secret=AWS_SECRET, config={"region": AWS_REGION, "ak": AWS_KEY, "sk": AWS_SECRET},
        usage_details=CACHED_NONE,
        stream_script={"piece": 9},  # frames straddle reads
        cut=Cut({"cut_after": 4}, text="Hello from Claude"),
        garbled=(Stream("malformed", {"answer": "malformed", "piece": 5}, "Hello again.", (14, 4)),),
        stream_error=StreamError({"answer": "error"}, "", {"code": "ModelStreamErrorException"}, text="Hello"),
        refusals=(
            Refusal("throttling", 429, "Too many requests, please wait before trying again.",
                    script={"status": 429, "error": "error_throttling"},
                    fields={"type": "rate_limit_error", "code": "ThrottlingException"}),
            Refusal("access-denied", 403, "You don't have access to the model with the specified model ID.",
                    script={"status": 403, "error": "error_access_denied"},
                    fields={"code": "AccessDeniedException"}, backup=True),
            Refusal("validation", 400, "Malformed input request", script={"status": 400, "error": "error_validation"},
                    fields={"type": "invalid_request_error"}),
        ),
        failover={"status": 429, "error": "error_throttling"},
    ),
    Vendor(
        "bedrock-converse", 33, _bedrock, AWS_KEY, "llama3-8b-8192", "Hello from Llama on Bedrock.", (21, 8),
        secret=AWS_SECRET, config={"region": AWS_REGION, "ak": AWS_KEY, "sk": AWS_SECRET},
        usage_details=CACHED_NONE,
        stream_script={"piece": 11},
        cut=Cut({"cut_after": 4}),
        failover={"status": 429, "error": "error_throttling"},
    ),
    Vendor(
        "cohere", 35, mock_cohere.MockCohere, "co-test-secret-key", "command-a-03-2025", mock_cohere.REPLY, (21, 6),
        answer_model="cohere",  # Cohere v2 answers do not name the model; the adapter names the vendor
        cut=Cut({"reply": WORDS, "cut_after": 5}, below=50),
        garbled=(Stream("malformed", {"malformed": True}, mock_cohere.REPLY, (21, 6)),
                 Stream("malformed.sse", {"fixture": "malformed.sse"}, "Hello world", (70, 2), finish="length")),
        refusals=(
            Refusal("auth", 401, "invalid api token", script={"status": 401, "error": {"id": "x", "message":
                                                                                      "invalid api token"}},
                    fields={"type": "authentication_error"}),
        ),
        embeddings=Embeddings("embed-v4.0", {"prompt_tokens": 8}, 8, usage={"prompt_tokens": 8, "total_tokens": 8},
                              vectors=((0.01, -0.02, 0.03), (0.02, -0.02, 0.03))),
    ),
    Vendor(
        "coze", 34, MockCoze, "pat_upstream_coze_secret", "bot-7379462189365198898", "Hello from the Coze bot.",
        (614, 19), config={"user_id": "u-1"},
        cut=Cut({"cut_after": 4}, text="Hello from"),  # created, in_progress, two deltas
        garbled=(Stream("v3_stream_malformed.sse", {"fixture": "v3_stream_malformed.sse"}, "Still here.",
                        completion=4),),
        stream_error=StreamError({"fixture": "v3_stream_failed_midway.sse"}, "Internal error, please retry.",
                                 text="Partial answer", billed=True),
        refusals=(
            Refusal("auth", 401, "authentication is invalid", script={"error": "v3_error_auth.json"},
                    fields={"code": "invalid_api_key"}),
            Refusal("auth-streamed", 401, "authentication is invalid", script={"error": "v3_error_auth.json"},
                    fields={"code": "invalid_api_key"}, stream=True),
            Refusal("bot-not-found", 404,
                    "The requested bot does not exist or has not been published as an API service.",
                    script={"status": 404, "error": "v3_error_bot_not_found.json"}),
        ),
    ),
    Vendor(
        "gemini", 24, MockGemini, "AIzaSy-upstream-gemini-secret", "gemini-2.5-flash", "Hello from Gemini.", (9, 17),
        usage_details={"completion_tokens_details": {"reasoning_tokens": 12}},
        cut=Cut({"cut_after": 1}, text="Hello", completion=1),
        garbled=(Stream("malformed_stream.sse", {"fixture": "malformed_stream.sse"}, "Hello Gemini.", (9, 5)),),
        refusals=(
            Refusal("api-key", 400, "API key not valid. Please pass a valid API key.",
                    script={"status": 400, "error": "error_api_key.json"}, fields={"code": "invalid_api_key"}),
        ),
        embeddings=Embeddings("gemini-embedding-001", input=("hello world", "second"),  # fixture embeddings.json
                              vectors=((0.013168523, -0.008711934, -0.046782676, 0.00069968984),
                                       (-0.0125, 0.25, 0.5, -1.0))),
    ),
    # one-api's PaLM (11) routes through Gemini's API (providers/adapters/gemini/adapter.py, PaLMAdapter).
    Vendor(
        "palm", 11, MockGemini, "AIzaSy-upstream-palm-secret", "gemini-2.5-flash", "Hello from Gemini.", (9, 17),
        usage_details={"completion_tokens_details": {"reasoning_tokens": 12}},
        cut=Cut({"cut_after": 1}, text="Hello", completion=1),
        refusals=(
            Refusal("api-key", 400, "API key not valid. Please pass a valid API key.",
                    script={"status": 400, "error": "error_api_key.json"}, fields={"code": "invalid_api_key"}),
        ),
    ),
    Vendor(
        "ollama", 30, mock_ollama.MockOllama, "sk-ollama-proxy", "llama3.2", mock_ollama.REPLY, (26, 10),
        cut=Cut({"reply": WORDS, "cut_after": 5}, below=50),
        garbled=(Stream("malformed", {"malformed": True}, mock_ollama.REPLY, (26, 10)),
                 Stream("malformed.ndjson", {"fixture": "malformed.ndjson"}, "Hello world", (5, 2), finish="length")),
        stream_error=StreamError({"fixture": "stream_error.ndjson"}, "an error was encountered while running"),
        refusals=(
            Refusal("model-not-found", 404, "model 'llama3.2' not found, try pulling it first",
                    script={"status": 404, "error": {"error": "model 'llama3.2' not found, try pulling it first"}},
                    fields={"code": "model_not_found"}),
        ),
        embeddings=Embeddings("all-minilm", {"prompt_tokens": 8}, 8, usage={"prompt_tokens": 8, "total_tokens": 8},
                              vectors=((0.01, -0.02, 0.03), (0.02, -0.02, 0.03))),
    ),
    Vendor(
        "spark-http", 48, _spark_http, "sparkApiPassword:abc123", "generalv3.5", mock_xunfei.REPLY, (6, 8),
        cut=Cut({"reply": WORDS, "cut_after": 5}, below=50),
        refusals=(
            Refusal("content-filter", 400, "输入内容审核不通过",
                    script={"spark_error": {"code": 10013, "message": "输入内容审核不通过", "sid": "s2"}},
                    fields={"code": "content_filter"}, backup=True),
        ),
        failover={"spark_error": {"code": 11202, "message": "秒级流控超限", "sid": "s1"}},
    ),
    Vendor(
        "spark-ws", 18, _spark_ws, f"{SPARK_APP}|{SPARK_SECRET}|{SPARK_KEY}", "Spark-Max",
        "你好！我是讯飞星火认知大模型。", (5, 9), secret=SPARK_SECRET, body={"max_tokens": 100},
        cut=Cut({"drop_after": 2}, text="你好！我是讯飞星火认知大模型。"),
        garbled=(Stream("malformed.ndjson", {"fixture": "malformed.ndjson"}, "一二", (2, 2)),),
        refusals=(
            Refusal("auth-frame", 401, "AppIdNoAuthError:(11200)", script={"error": "error_auth.json"},
                    fields={"code": "invalid_api_key"}, stream=True),
            Refusal("wrong-secret", 401, "Xunfei Spark refused the signature",
                    key=f"{SPARK_APP}|wrong-secret|{SPARK_KEY}", secret="wrong-secret",
                    fields={"code": "invalid_api_key"}, reaches_vendor=False),
        ),
        failover={"error": "error_busy.json"},
    ),
    Vendor(
        "tencent", 23, mock_tencent.MockTencent, f"1300000000|{mock_tencent.SECRET_ID}|{mock_tencent.SECRET_KEY}",
        "hunyuan-turbo", mock_tencent.REPLY, (13, 8), secret=mock_tencent.SECRET_KEY, config={"region": "ap-guangzhou"},
        answer_model="hunyuan",  # Hunyuan answers do not name the model; the adapter names the vendor
        cut=Cut({"reply": WORDS, "completion_tokens": 50, "cut_after": 5}, billed=(13, 5)),  # the 5th event's count
        garbled=(Stream("malformed", {"malformed": True}, mock_tencent.REPLY, (13, 8)),
                 Stream("malformed.sse", {"fixture": "malformed.sse"}, "Hello world", (5, 2))),
        refusals=(
            Refusal("wrong-secret", 401, "The provided credentials could not be validated.",
                    key=f"1300000000|{mock_tencent.SECRET_ID}|another-secret", secret="another-secret",
                    fields={"code": "AuthFailure.SignatureFailure"}),
            Refusal("rate-limit", 429, "Your current request times exceeds the limit.",
                    script={"tencent_error": ("RequestLimitExceeded", "Your current request times exceeds the limit.")},
                    fields={"code": "RequestLimitExceeded", "type": "rate_limit_error"}),
        ),
        failover={"tencent_error": ("RequestLimitExceeded", "Your current request times exceeds the limit.")},
        embeddings=Embeddings("hunyuan-embedding", {"prompt_tokens": 4}, 4,
                              vectors=((0.01, -0.02, 0.03), (0.02, -0.02, 0.03))),
    ),
    Vendor(
        "vertex-gemini", 42, _vertex, "unused", "gemini-2.5-flash", "Hello from Gemini.", (9, 17),
        secret=VERTEX_PEM[40:80], config=_vertex_config,
        usage_details={"completion_tokens_details": {"reasoning_tokens": 12}},
        cut=Cut({"cut_after": 1}, text="Hello", completion=1),
        embeddings=Embeddings("text-embedding-005", prompt_tokens=3 + 4, input=("hello", "world"),
                              vectors=((0.1, 0.2), (0.2, 0.2))),
    ),
    Vendor(
        "vertex-claude", 42, _vertex, "unused", "claude-sonnet-4-5-20250929", "Hello from Claude.", (12, 6),
        secret=VERTEX_PEM[40:80], config=_vertex_config, usage_details=CACHED_NONE,
        cut=Cut({"cut_after": 5}),
    ),
    Vendor(
        "zhipu", 16, _zhipu, "zkeyid.zsecretvalue", "glm-4-plus", mock_zhipu.REPLY, (21, 13), secret="zsecretvalue",
        forwards_garbage=True,
        cut=Cut({"reply": HANZI * 5, "cut_after": 3}, below=50),
        garbled=(Stream("malformed", {"malformed": True}, mock_zhipu.REPLY, (21, 13)),),
        recorded=(Stream("stream.sse", {"fixture": "stream.sse"}, "你好！有什么可以帮你的吗？", (17, 9)),),
        refusals=(
            Refusal("wrong-secret", 401, "Authorization Token", key="zkeyid.wrongsecret", secret="wrongsecret",
                    fields={"code": "invalid_api_key"}),
            Refusal("arrears", 429, "余额不足或无可用资源包,请充值。",
                    script={"status": 429, "error": {"error": {"code": "1113",
                                                               "message": "余额不足或无可用资源包,请充值。"}}},
                    fields={"code": "insufficient_quota", "type": "insufficient_quota", "zhipu_code": "1113"},
                    backup=True),
        ),
        failover={"status": 429, "error": {"error": {"code": "1302", "message": "并发数过高"}}},
        bad_key="nodotsecret123",
        embeddings=Embeddings("embedding-3", {"prompt_tokens": 9}, 9, vectors=((0.1, -0.2, 0.3), (0.2, -0.2, 0.3))),
    ),
]


def cases(*, having: str | None = None) -> list:
    """The vendor cases that can play a scenario (those with `having` set), named by their id."""
    return [pytest.param(v, id=v.id) for v in VENDORS if having is None or getattr(v, having)]


def pairs(attribute: str) -> list:
    """(vendor, item) for each item of a vendor's tuple `attribute` (its refusals, its garbled streams)."""
    return [pytest.param(v, item, id=f"{v.id}-{item.id}") for v in VENDORS for item in getattr(v, attribute)]


# --- the worlds -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers():
    """Each vendor's mock, started when a case first needs it and stopped with the module."""
    started: dict[Callable, Any] = {}

    def server(vendor: Vendor):
        if vendor.mock not in started:
            started[vendor.mock] = vendor.mock().start()
        return started[vendor.mock]

    yield server
    for mock in started.values():
        mock.stop()


def _forget_access_tokens() -> None:
    """Baidu's and Vertex's access tokens are cached per process; each mock forgets those it issued."""
    baidu._tokens.clear()
    vertex._tokens.clear()


def _channel_fields(vendor: Vendor, server) -> dict:
    config = vendor.config(server) if callable(vendor.config) else vendor.config
    return {"type": vendor.type, "key": vendor.key, "config": config}


@pytest.fixture
def vendor_world(vendor, transactional_db, servers) -> World:
    """A caller with a key, and one channel of `vendor` at its mock serving the case's models."""
    server = servers(vendor)
    _forget_access_tokens()
    models = ",".join(filter(None, (vendor.model, vendor.embeddings and vendor.embeddings.model)))
    yield new_world(server, username="contract", quota=100_000_000, name=vendor.id, models=models,
                    **_channel_fields(vendor, server))
    _forget_access_tokens()


async def add_backup(vendor: Vendor, w: World):
    """A second channel like the first, tried after it, and one retry allowed."""
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    return await sync_to_async(ChannelFactory)(name=f"{vendor.id}-backup", base_url=w.upstream.url,
                                               models=vendor.model, priority=-1,
                                               **_channel_fields(vendor, w.upstream))


def usage_of(prompt: int, completion: int, details: dict | None = None) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            **(details or {})}


async def post_chat(relay_client, vendor: Vendor, w: World, **more):
    return await relay_client.post("/v1/chat/completions", json={**vendor.chat, **more}, headers=w.auth)


def answer_chunks(raw: bytes, vendor: Vendor) -> list[dict]:
    """The chunks of a relayed stream; an OpenAI-shaped vendor's garbage passes through, and is left out."""
    if not vendor.forwards_garbage:
        return stream_chunks(raw)
    events = events_of(raw)
    assert events[-1] == b"[DONE]"
    chunks = []
    for event in events[:-1]:
        try:
            chunks.append(orjson.loads(event))
        except orjson.JSONDecodeError:
            continue
    return chunks


# --- answers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", cases())
async def test_a_plain_chat_is_openais_answer_billed_with_the_vendors_counts(relay_client, vendor, vendor_world):
    response = await post_chat(relay_client, vendor, vendor_world)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert (answer["object"], answer["model"]) == ("chat.completion", vendor.answer_model or vendor.model)
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": vendor.reply}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == usage_of(*vendor.usage, vendor.usage_details)

    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (*vendor.usage, False)
    assert (log.model_name, log.channel_id) == (vendor.model, vendor_world.channel.pk) and log.quota > 0


@pytest.mark.parametrize("vendor", cases())
async def test_a_stream_is_openai_chunks_with_usage_hidden_unless_asked_and_billed(relay_client, vendor,
                                                                                    vendor_world):
    vendor_world.upstream.then(**vendor.stream_script)
    async with relay_client.stream("POST", "/v1/chat/completions", json={**vendor.chat, "stream": True},
                                   headers=vendor_world.auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    chunks = stream_chunks(raw)
    assert all(c["choices"] and "usage" not in c for c in chunks), "usage reaches only a client that asks"
    assert {c["model"] for c in chunks} == {vendor.model}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert text_of(chunks) == vendor.reply
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (*vendor.usage, True)
    assert (log.model_name, log.channel_id) == (vendor.model, vendor_world.channel.pk)


@pytest.mark.parametrize("vendor", cases())
async def test_a_stream_ends_with_the_usage_chunk_when_the_client_asks(relay_client, vendor, vendor_world):
    response = await post_chat(relay_client, vendor, vendor_world, stream=True,
                               stream_options={"include_usage": True})
    last = stream_chunks(response.content)[-1]
    assert last["choices"] == [] and last["usage"] == usage_of(*vendor.usage, vendor.usage_details)


@pytest.mark.parametrize("vendor", cases())
async def test_the_openai_sdk_chats_plain_and_streamed(relay_client, vendor, vendor_world):
    sdk = vendor_world.sdk(relay_client)
    answer, (text, usage, finish) = await sdk_chat_both_ways(sdk, vendor.model, vendor.chat["messages"])
    counts = (*vendor.usage, sum(vendor.usage))
    assert answer.choices[0].message.content == vendor.reply
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == counts
    assert (text, finish) == (vendor.reply, "stop")
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == counts


# --- streams that go wrong ------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", cases(having="cut"))
async def test_a_stream_cut_mid_way_ends_with_an_error_event_and_bills_what_arrived(relay_client, vendor,
                                                                                     vendor_world):
    cut = vendor.cut
    vendor_world.upstream.then(**cut.script)
    response = await post_chat(relay_client, vendor, vendor_world, stream=True)
    assert response.status_code == 200
    events = assert_interrupted(response.content)
    if cut.text is not None:
        assert text_of([orjson.loads(e) for e in events[:-2]]) == cut.text

    log = await consume_log()
    assert log.prompt_tokens > 0 and log.completion_tokens > 0
    if cut.billed:
        assert (log.prompt_tokens, log.completion_tokens) == cut.billed
    if cut.completion:
        assert log.completion_tokens == cut.completion
    if cut.below:
        assert log.completion_tokens < cut.below


async def _stream_reaches_the_client(relay_client, vendor: Vendor, w: World, stream: Stream) -> None:
    w.upstream.then(**stream.script)
    response = await post_chat(relay_client, vendor, w, stream=True)
    assert response.status_code == 200
    assert response.content.endswith(b"data: [DONE]\n\n")
    chunks = answer_chunks(response.content, vendor)
    assert text_of(chunks) == stream.text
    if stream.finish:
        assert chunks[-1]["choices"][0]["finish_reason"] == stream.finish
    log = await consume_log()
    if stream.billed:
        assert (log.prompt_tokens, log.completion_tokens) == stream.billed
    if stream.completion:
        assert log.completion_tokens == stream.completion


@pytest.mark.parametrize("vendor, stream", pairs("garbled"))
async def test_a_garbled_event_does_not_break_the_stream(relay_client, vendor, vendor_world, stream):
    await _stream_reaches_the_client(relay_client, vendor, vendor_world, stream)


@pytest.mark.parametrize("vendor, stream", pairs("recorded"))
async def test_a_recorded_stream_reaches_the_client_and_is_billed_its_usage(relay_client, vendor, vendor_world,
                                                                           stream):
    await _stream_reaches_the_client(relay_client, vendor, vendor_world, stream)


@pytest.mark.parametrize("vendor", cases(having="stream_error"))
async def test_an_error_the_vendor_sends_mid_stream_ends_the_stream_as_an_openai_error(relay_client, vendor,
                                                                                        vendor_world):
    failure = vendor.stream_error
    vendor_world.upstream.then(**failure.script)
    response = await post_chat(relay_client, vendor, vendor_world, stream=True)
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    error = orjson.loads(events[-2])["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["message"].startswith(failure.message)
    assert {name: error[name] for name in failure.fields} == failure.fields
    if failure.text is not None:
        assert text_of([orjson.loads(e) for e in events[:-2]]) == failure.text
    if failure.billed:
        assert (await consume_log()).completion_tokens > 0


# --- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor, refusal", pairs("refusals"))
async def test_a_vendor_refusal_keeps_its_message_costs_nothing_and_never_shows_the_key(relay_client, vendor,
                                                                                         vendor_world, refusal):
    if refusal.backup:
        await add_backup(vendor, vendor_world)
    if refusal.key:
        await vendor_world.set_key(refusal.key)
    if refusal.script is not None:
        vendor_world.upstream.then(**refusal.script)
    response = await post_chat(relay_client, vendor, vendor_world, stream=refusal.stream)
    assert response.status_code == refusal.status, response.text
    error = response.json()["error"]
    assert error["message"].startswith(refusal.message)
    assert {name: error[name] for name in refusal.fields} == refusal.fields
    assert (vendor.secret or vendor.key) not in response.text
    assert refusal.secret is None or refusal.secret not in response.text
    assert await no_consume_log()
    if refusal.backup:
        assert len(vendor.calls(vendor_world.upstream)) == 1, "not failed over"
    if not refusal.reaches_vendor:
        assert vendor.calls(vendor_world.upstream) == []


@pytest.mark.parametrize("vendor", cases(having="failover"))
async def test_a_retryable_refusal_fails_over_to_the_next_channel(relay_client, vendor, vendor_world):
    backup = await add_backup(vendor, vendor_world)
    vendor_world.upstream.then(**vendor.failover)
    response = await post_chat(relay_client, vendor, vendor_world)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == vendor.reply
    assert len(vendor.calls(vendor_world.upstream)) == 2
    assert (await consume_log()).channel_id == backup.pk


@pytest.mark.parametrize("vendor", cases(having="bad_key"))
async def test_a_key_the_adapter_cannot_read_is_refused_before_the_vendor_without_showing_it(relay_client, vendor,
                                                                                              vendor_world):
    await vendor_world.set_key(vendor.bad_key)
    response = await post_chat(relay_client, vendor, vendor_world)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "invalid_channel_key"
    assert vendor.bad_key not in response.text
    assert vendor_world.upstream.requests == []


# --- embeddings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", cases(having="embeddings"))
async def test_embeddings_are_openais_list_billed_with_the_vendors_count(relay_client, vendor, vendor_world):
    asked = vendor.embeddings
    vendor_world.upstream.then(**asked.script)
    response = await relay_client.post("/v1/embeddings", json={"model": asked.model, "input": list(asked.input)},
                                       headers=vendor_world.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "list" and [d["index"] for d in answer["data"]] == list(range(len(asked.input)))
    assert [d["embedding"] for d in answer["data"]] == [list(v) for v in asked.vectors]
    prompt = answer["usage"]["prompt_tokens"]
    if asked.prompt_tokens is None:
        assert prompt > 0
    else:
        assert prompt == asked.prompt_tokens
    if asked.usage:
        assert answer["usage"] == asked.usage
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.model_name) == (prompt, 0, asked.model)


@pytest.mark.parametrize("vendor", cases(having="embeddings"))
async def test_the_openai_sdk_embeds(relay_client, vendor, vendor_world):
    asked = vendor.embeddings
    vendor_world.upstream.then(**asked.script)
    vectors = await vendor_world.sdk(relay_client).embeddings.create(model=asked.model, input="hi")
    assert len(vectors.data) == 1
    # The SDK asks for base64 unless told otherwise, and reads what comes back as float32.
    assert vectors.data[0].embedding == pytest.approx(asked.vectors[0], rel=1e-6)


@pytest.mark.parametrize("vendor", [c for c in cases() if "embeddings" not in adapter_for(c.values[0].type).modes])
async def test_embeddings_from_a_vendor_without_them_are_refused_without_calling_it(relay_client, vendor,
                                                                                    vendor_world):
    response = await relay_client.post("/v1/embeddings", json={"model": vendor.model, "input": "x"},
                                       headers=vendor_world.auth)
    # The router skips channels whose adapter lacks the mode (503, no channel); a channel reached anyway
    # (pinned) is refused by the adapter itself (400). Either way the vendor is never called.
    assert response.status_code in (400, 503)
    assert response.json()["error"]["message"]
    assert vendor_world.upstream.requests == []
