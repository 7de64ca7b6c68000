"""Fixtures of the agent tests: the agents installed once per session (tests/e2e/agents/harness.py), a
management client of the session's gateway, and a key of its own for each test, whose consume logs are the
test's alone."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.agents.harness import CLAUDE_CODE, CODEX, GEMINI_CLI, Agent


@pytest.fixture(scope="session")
def claude_code() -> Agent:
    CLAUDE_CODE.installed()
    return CLAUDE_CODE


@pytest.fixture(scope="session")
def codex() -> Agent:
    CODEX.installed()
    return CODEX


@pytest.fixture(scope="session")
def gemini_cli() -> Agent:
    GEMINI_CLI.installed()
    return GEMINI_CLI


@pytest.fixture(scope="module")
def admin(gateway):
    with httpx.Client(base_url=gateway.url, headers={"Authorization": gateway.access_token}, timeout=10) as client:
        yield client


# The gateway serves the whole session, and other tests list its models: what a module adds, it takes away.
_added: list[int] = []


def add_channel(admin: httpx.Client, **fields) -> dict:
    created = admin.post("/api/channel/", json={"group": "default", "key": "sk-upstream-agents", **fields}).json()
    assert created["success"], created
    _added.extend(channel["id"] for channel in created["data"])
    return created


@pytest.fixture(scope="module", autouse=True)
def _channels_removed_after_the_module(admin):
    yield
    while _added:
        channel_id = _added.pop()
        assert admin.delete(f"/api/channel/{channel_id}").json()["success"]


def gpt_4o_mini_quota(prompt: int, completion: int) -> int:
    """What a gpt-4o-mini request costs on a fresh gateway: its ratios are 0.075 and completion x4."""
    return math.ceil((prompt + completion * 4) * 0.075)


@dataclass
class Key:
    """An API key of root's, made for one test: what the agent sends, and where its charges show."""

    admin: httpx.Client
    name: str
    id: int
    secret: str  # sk-...

    def used_quota(self) -> int:
        return self.admin.get(f"/api/token/{self.id}").json()["data"]["used_quota"]

    def consume_logs(self, expected: int) -> list[dict]:
        """The key's consume logs once `expected` are written and its charge has settled, oldest first."""
        deadline = time.monotonic() + 15
        items: list = []
        while time.monotonic() < deadline:
            data = self.admin.get("/api/log/", params={"type": 2, "token_name": self.name}).json()["data"]
            items = data["items"] if isinstance(data, dict) else data
            if len(items) >= expected and self.used_quota() == sum(log["quota"] for log in items):
                return sorted(items, key=lambda log: log["id"])
            time.sleep(0.2)
        raise AssertionError(f"expected {expected} consume logs settled on the key, got {items} "
                             f"and used quota {self.used_quota()}")


def assert_turns_billed(key: Key, vendor, model: str, protocol: str) -> None:
    """One consume log per vendor turn, with the tokens the vendor reported, priced as gpt-4o-mini (what the
    agents' models map to) and charged to the key."""
    logs = key.consume_logs(len(vendor.turns))
    assert len(logs) == len(vendor.turns) == len(vendor.requests)
    assert [(log["prompt_tokens"], log["completion_tokens"]) for log in logs] == [t.usage for t in vendor.turns]
    assert {(log["model_name"], log["client_protocol"]) for log in logs} == {(model, protocol)}
    assert [log["quota"] for log in logs] == [gpt_4o_mini_quota(*turn.usage) for turn in vendor.turns]
    assert key.used_quota() == sum(log["quota"] for log in logs)


@pytest.fixture
def key(admin) -> Key:
    name = "agent-" + uuid.uuid4().hex[:8]
    made = admin.post("/api/token/", json={"name": name, "remain_quota": 50_000_000, "expired_time": -1}).json()
    assert made["success"], made
    return Key(admin, name, made["data"]["id"], "sk-" + made["data"]["key"])
