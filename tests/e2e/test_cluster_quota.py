"""Two gateway processes on one database and one Redis spend one balance together, never more (issue 11).

Before billing/shared_quota.py each instance admitted against its own cached balance: 200 concurrent requests
on a key worth 10 passed 12 to 16 times. Here every request is reserved at exactly what it will cost (the mock
upstream's usage is fixed, and max_tokens is chosen so the reservation equals the charge), so admission is
exact: Redis's `bal - res` is always the balance left once every admitted request has settled, and never
negative. Hence exactly 10 requests succeed, however the 200 interleave across the two instances.

Runs on a real database server with REDIS_CONN_STRING (CI's second leg); it clears the quota keys of that
Redis, as the scratch database's ids start again from 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid

import httpx
import orjson
import pytest
import redis

from billing.pricing import BODY_BYTES_PER_PROMPT_TOKEN
from oneapi_site.config import parse_sql_dsn
from tests.e2e.servers import manage, prepare_database, running_gateway

REDIS = os.environ.get("REDIS_CONN_STRING", "")
pytestmark = pytest.mark.skipif(
    not REDIS or parse_sql_dsn(os.environ.get("SQL_DSN", "").strip(), sqlite_path="x").engine == "sqlite",
    reason="needs REDIS_CONN_STRING and a database server (SQL_DSN)")

MODEL = "cluster-quota-test"
PROMPT, COMPLETION = 11, 7  # the mock upstream's usage (tests/mock_upstream.py Behaviour)
COMPLETION_RATIO = 10
CHARGE = PROMPT + COMPLETION * COMPLETION_RATIO  # model ratio 1, group ratio 1
WAIT = 60  # seconds the ledgers may take to write; a bound, not a check

SETUP = """
import json
from accounts.models import Token
from accounts.services.tokens import token_create
from accounts.services.users import user_create
from billing.services import option_set
from providers.models import Channel
from providers.services import channel_create
args = json.loads({args!r})
option_set(key="PreConsumedQuota", value="0")
option_set(key="ModelRatio", value=json.dumps({{args["model"]: 1}}))
option_set(key="CompletionRatio", value=json.dumps({{args["model"]: args["completion_ratio"]}}))
if not Channel.objects.filter(name="mock").exists():
    channel_create(name="mock", type=1, key="sk-mock", base_url=args["upstream"], models=args["model"], group="default")
user = user_create(username=args["username"], password=None, quota=args["user_quota"])
token = token_create(user=user, name="shared", remain_quota=args["token_quota"] or 0,
                     unlimited_quota=args["token_quota"] is None)
Token.objects.filter(pk=token.pk).update(key=args["key"])
print(json.dumps({{"user": user.pk, "token": token.pk}}))
"""

READ = """
import json
from django.db.models import Sum
from accounts.models import Token, User
from billing.models import Log
logs = Log.objects.filter(type=Log.Type.CONSUME, user_id={user})
print(json.dumps({{
    "user": list(User.objects.filter(pk={user}).values_list("quota", "used_quota").get()),
    "token": list(Token.objects.filter(pk={token}).values_list("remain_quota", "used_quota").get()),
    "logs": logs.count(), "logged": logs.aggregate(s=Sum("quota"))["s"] or 0,
}}))
"""


def body() -> bytes:
    """A chat request whose reservation, prompt estimate x 1 + max_tokens x COMPLETION_RATIO, equals CHARGE."""
    max_tokens, content = COMPLETION - 2, "hi"
    raw = b""
    while len(raw) // BODY_BYTES_PER_PROMPT_TOKEN + max_tokens * COMPLETION_RATIO < CHARGE:
        raw = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": content}],
                            "max_tokens": max_tokens})
        content += "."
    assert len(raw) // BODY_BYTES_PER_PROMPT_TOKEN + max_tokens * COMPLETION_RATIO == CHARGE
    return raw


def clear_redis() -> None:
    client = redis.Redis.from_url(REDIS)
    # The quota and the journals of settled charges (billing/journal.py): the scratch database's ids start again.
    keys = [*client.scan_iter("oneapi:quota:*", count=1000), *client.scan_iter("oneapi:ledger:*", count=1000)]
    if keys:
        client.delete(*keys)
    client.close()


def setup(env: dict, upstream, *, user_quota: int, token_quota: int | None, key: str) -> dict:
    args = {"model": MODEL, "completion_ratio": COMPLETION_RATIO, "upstream": upstream.url,
            "user_quota": user_quota, "token_quota": token_quota, "key": key, "username": "u" + key[:10]}
    return json.loads(manage(env, "shell", "-v", "0", "-c", SETUP.format(args=json.dumps(args))).strip())


def read(env: dict, ids: dict) -> dict:
    return json.loads(manage(env, "shell", "-v", "0", "-c", READ.format(**ids)).strip())


def written(env: dict, ids: dict, successes: int) -> dict:
    """The database once both ledgers have written every charge (they write within moments of a request)."""
    deadline = time.monotonic() + WAIT
    while True:
        state = read(env, ids)
        if state["logs"] == successes and state["user"][1] == state["logged"] or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


@pytest.fixture(scope="module")
def two_gateways(tmp_path_factory, upstream_server):
    """Two instances on one database and one Redis; each test spends as a user of its own."""
    tmp = tmp_path_factory.mktemp("cluster")
    clear_redis()
    with prepare_database(tmp, REDIS_CONN_STRING=REDIS) as env, \
            running_gateway(tmp, env, name="a") as a, running_gateway(tmp, env, name="b") as b:
        yield env, a, b
    clear_redis()


async def send(url: str, key: str, raw: bytes) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(f"{url}/v1/chat/completions", content=raw,
                                 headers={"Authorization": f"Bearer sk-{key}", "Content-Type": "application/json"})


def test_two_instances_let_200_concurrent_requests_spend_a_tokens_10_exactly(two_gateways, upstream_server):
    env, a, b = two_gateways
    upstream = upstream_server
    upstream.reset()  # the mock's usage as Behaviour has it, whatever a test before changed
    key = uuid.uuid4().hex
    user_quota = 10**9
    ids = setup(env, upstream, user_quota=user_quota, token_quota=10 * CHARGE, key=key)
    raw = body()

    async def burst():
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            return await asyncio.gather(*[
                client.post(f"{(a, b)[i % 2].url}/v1/chat/completions", content=raw,
                            headers={"Authorization": f"Bearer sk-{key}", "Content-Type": "application/json"})
                for i in range(200)])

    answers = asyncio.run(burst())
    codes = [r.status_code for r in answers]
    successes = codes.count(200)
    refusals = {(r.status_code, r.json()["error"]["code"]) for r in answers if r.status_code != 200}
    assert successes == 10, codes
    assert refusals <= {(403, "pre_consume_token_quota_failed"), (401, "token_quota_exhausted")}, refusals

    state = written(env, ids, successes)
    assert state["logs"] == successes and state["logged"] == successes * CHARGE
    assert state["token"] == [10 * CHARGE - state["logged"], state["logged"]] == [0, 10 * CHARGE]
    assert state["user"] == [user_quota - state["logged"], state["logged"]]
    shared = redis.Redis.from_url(REDIS)
    held = shared.hgetall(f"oneapi:quota:t:{ids['token']}")
    assert int(held[b"bal"]) == state["token"][0] and int(held[b"res"]) == 0
    shared.close()
    for gateway in (a, b):
        assert "Traceback" not in gateway.log_text()


def test_forty_requests_one_at_a_time_across_two_instances_never_overdraw_a_user(two_gateways, upstream_server):
    env, a, b = two_gateways
    upstream = upstream_server
    upstream.reset()  # the mock's usage as Behaviour has it, whatever a test before changed
    key = uuid.uuid4().hex
    ids = setup(env, upstream, user_quota=10 * CHARGE, token_quota=None, key=key)
    raw = body()

    async def one_by_one():
        return [await send((a, b)[i % 2].url, key, raw) for i in range(40)]

    answers = asyncio.run(one_by_one())
    codes = [r.status_code for r in answers]
    assert codes == [200] * 10 + [403] * 30, codes
    assert {r.json()["error"]["code"] for r in answers[10:]} == {"insufficient_user_quota"}
    state = written(env, ids, 10)
    assert state["logs"] == 10 and state["logged"] == 10 * CHARGE
    assert state["user"] == [0, 10 * CHARGE]
