"""A client's deeply nested JSON, written again for the vendor by a real server process.

orjson before 3.11.6 could overrun its output buffer writing a deeply nested object ("sporadic crash
serializing deeply nested list of dict", fixed in 3.11.6): glibc then aborted the whole server on a
request of a few kB, an agent's tool schema nested about two hundred levels. Each request here is one the
OpenAI adapter writes again whole; the server must answer every one and still be running.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.servers import prepare_database, running_gateway

ACCESS_TOKEN = "deep-json-access-token-0123456789"


def schema(levels: int) -> dict:
    """An object schema whose property nests another, `levels` times (two JSON levels each)."""
    value: dict = {"type": "string"}
    for _ in range(levels):
        value = {"type": "object", "properties": {"a": value}}
    return value


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream_server):
    tmp = tmp_path_factory.mktemp("deep-json")
    with prepare_database(tmp, INITIAL_ROOT_ACCESS_TOKEN=ACCESS_TOKEN) as env, running_gateway(tmp, env) as gateway:
        admin = httpx.Client(base_url=gateway.url, headers={"Authorization": ACCESS_TOKEN}, timeout=30)
        created = admin.post("/api/channel/", json={"type": 1, "name": "mock", "key": "sk-upstream-deep",
                                                    "base_url": upstream_server.url, "models": "gpt-4o-mini"}).json()
        assert created["success"], created
        token = admin.post("/api/token/", json={"name": "deep", "unlimited_quota": True, "expired_time": -1}).json()
        assert token["success"], token
        gateway.auth = {"Authorization": "Bearer sk-" + token["data"]["key"]}
        yield gateway


def test_nested_tool_schemas_are_relayed_without_bringing_the_server_down(gateway, upstream_server):
    upstream_server.reset()
    answered = 0
    with httpx.Client(base_url=gateway.url, headers=gateway.auth, timeout=30) as client:
        for levels in (100, 110, 120):
            for pad in range(0, 2000, 20):  # message lengths that move the nesting across buffer boundaries
                body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * pad}],
                        "tools": [{"type": "function", "function": {"name": "f", "parameters": schema(levels)}}]}
                try:
                    response = client.post("/v1/chat/completions", content=json.dumps(body),
                                           headers={"Content-Type": "application/json"})
                except httpx.TransportError as exc:
                    pytest.fail(f"the server went away at {levels} levels, {pad} characters ({exc!r}):\n"
                                + gateway.log_text()[-2000:])
                assert response.status_code == 200, response.text
                answered += 1
    assert gateway.proc.poll() is None
    assert len(upstream_server.requests) == answered
