"""The Prometheus series move as relay requests go through the ASGI app: requests by their labels, tokens
and quota, upstream latency and time to first token, the gateway's overhead, failovers, refusals, the
ledger's writes and the channels' health, all read from GET /metrics as a scraper reads them."""

import orjson
import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator

from accounts.models import Token
from billing import ledger as ledger_module
from billing.models import Log
from billing.services import option_set
from oneapi_site import metrics
from providers.models import Channel
from relay.cache import cache
from tests.factories import ChannelFactory
from tests.helpers import consume_log, flush
from tests.metrics_scrape import metrics_on, scrape  # noqa: F401 (fixture)
from tests.mock_upstream import MockUpstream
from tests.providers.vendor_harness import serve
from tests.relay.test_disconnect import scope as stream_scope

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("metrics_on")]

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}

backup_server = serve(MockUpstream)


@pytest.fixture
def backup(backup_server):
    backup_server.reset()
    return backup_server


async def test_an_answered_request_moves_requests_tokens_quota_and_latency(client, world):
    channel = str(world.channel.pk)
    before = await scrape(client)
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text
    log = await consume_log()
    after = await scrape(client)

    labels = {"model": "gpt-4o-mini", "channel": channel, "group": "default", "protocol": "openai"}
    assert after.value("oneapi_requests_total", **labels, status="2xx") - \
        before.value("oneapi_requests_total", **labels, status="2xx") == 1
    for kind, count in (("prompt", log.prompt_tokens), ("completion", log.completion_tokens)):
        assert after.value("oneapi_tokens_total", model="gpt-4o-mini", channel=channel, kind=kind) - \
            before.value("oneapi_tokens_total", model="gpt-4o-mini", channel=channel, kind=kind) == count
    assert after.value("oneapi_quota_charged_total", channel=channel) - \
        before.value("oneapi_quota_charged_total", channel=channel) == log.quota > 0
    assert after.value("oneapi_upstream_latency_seconds_count", channel=channel) - \
        before.value("oneapi_upstream_latency_seconds_count", channel=channel) == 1
    assert after.value("oneapi_gateway_overhead_seconds_count") - \
        before.value("oneapi_gateway_overhead_seconds_count") == 1
    assert after.value("oneapi_upstream_attempts_total", channel=channel, result="ok") - \
        before.value("oneapi_upstream_attempts_total", channel=channel, result="ok") == 1
    # The ledger wrote the charge (consume_log flushed it).
    assert after.value("oneapi_ledger_charges_written_total") > before.value("oneapi_ledger_charges_written_total")
    assert after.value("oneapi_ledger_flush_seconds_count") > before.value("oneapi_ledger_flush_seconds_count")


async def test_a_stream_records_its_time_to_first_token(client, world):
    channel = str(world.channel.pk)
    before = await scrape(client)
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=world.auth)
    assert response.status_code == 200
    after = await scrape(client)
    assert after.value("oneapi_time_to_first_token_seconds_count", channel=channel) - \
        before.value("oneapi_time_to_first_token_seconds_count", channel=channel) == 1


async def test_a_model_routing_does_not_know_is_labelled_other(client, world):
    before = await scrape(client)
    response = await client.post("/v1/chat/completions", json={**CHAT, "model": "made-up-model-7"},
                                 headers=world.auth)
    assert response.status_code == 503 or response.status_code // 100 == 4, response.text
    after = await scrape(client)
    status = f"{response.status_code // 100}xx"
    assert after.value("oneapi_requests_total", model="other", status=status) - \
        before.value("oneapi_requests_total", model="other", status=status) == 1
    assert all(labels["model"] != "made-up-model-7" for labels in after.labels("oneapi_requests_total"))


async def test_a_failover_is_counted_on_the_channel_that_failed(client, world, backup):
    for key, value in (("RetryTimes", "1"), ("AutomaticDisableChannelEnabled", "true"),
                       ("ChannelDisableFailureCount", "100")):
        await sync_to_async(option_set)(key=key, value=value)
    healthy = await sync_to_async(ChannelFactory)(name="healthy", base_url=backup.url, models="gpt-4o-mini",
                                                  priority=-1)
    world.upstream.then(status=500, error={"error": {"message": "down", "type": "server_error"}})
    before = await scrape(client)
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text
    after = await scrape(client)
    failed, answered = str(world.channel.pk), str(healthy.pk)
    assert after.value("oneapi_failovers_total", channel=failed) - \
        before.value("oneapi_failovers_total", channel=failed) == 1
    assert after.value("oneapi_upstream_attempts_total", channel=failed, result="retryable") - \
        before.value("oneapi_upstream_attempts_total", channel=failed, result="retryable") == 1
    # The request is counted once, on the channel that answered.
    assert after.value("oneapi_requests_total", channel=answered, status="2xx") - \
        before.value("oneapi_requests_total", channel=answered, status="2xx") == 1
    assert after.value("oneapi_requests_total", channel=failed) == before.value("oneapi_requests_total",
                                                                                channel=failed)
    assert after.value("oneapi_channel_consecutive_failures", channel=failed) == 1



async def test_failures_in_a_row_are_counted_with_automatic_disabling_off(client, world, backup):
    """AutomaticDisableChannelEnabled is off by default (as on one-api): a channel failing every request still
    shows its failures in a row on /metrics and the console's dashboard (they showed 0, found from a fresh
    clone with a dead channel), it is only never disabled for them."""
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    await sync_to_async(ChannelFactory)(name="healthy", base_url=backup.url, models="gpt-4o-mini", priority=-1)
    for _ in range(2):
        world.upstream.then(status=500, error={"error": {"message": "down", "type": "server_error"}})
        response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
        assert response.status_code == 200, response.text
    after = await scrape(client)
    assert after.value("oneapi_channel_consecutive_failures", channel=str(world.channel.pk)) == 2
    await world.channel.arefresh_from_db()
    assert world.channel.status == Channel.Status.ENABLED

async def test_a_rate_limit_refusal_is_counted_by_code_and_scope(client, world, settings):
    settings.REDIS_CONN_STRING = ""  # counted in this process
    await sync_to_async(Token.objects.filter(pk=world.token.pk).update)(rpm_limit=1)
    cache.clear()
    before = await scrape(client)
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limit_exceeded"
    after = await scrape(client)
    labels = {"code": "rate_limit_exceeded", "scope": "token"}
    assert after.value("oneapi_refusals_total", **labels) - before.value("oneapi_refusals_total", **labels) == 1
    assert after.value("oneapi_requests_total", model="gpt-4o-mini", status="4xx") - \
        before.value("oneapi_requests_total", model="gpt-4o-mini", status="4xx") == 1


async def test_a_spent_budget_is_counted_as_a_refusal_of_its_scope(client, world):
    await sync_to_async(Token.objects.filter(pk=world.token.pk).update)(budget_quota=1, budget_period="day",
                                                                        budget_spent=1)
    cache.clear()
    before = await scrape(client)
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 429 and response.json()["error"]["code"] == "budget_exceeded", response.text
    after = await scrape(client)
    labels = {"code": "budget_exceeded", "scope": "token_budget"}
    assert after.value("oneapi_refusals_total", **labels) - before.value("oneapi_refusals_total", **labels) == 1


async def test_channel_health_is_read_at_scrape_time(client, world):
    dead = await sync_to_async(ChannelFactory)(name="dead")
    await sync_to_async(Channel.objects.filter(pk=dead.pk).update)(
        status=Channel.Status.AUTO_DISABLED, balance=12.5, test_time=1_700_000_000)
    found = await scrape(client)
    assert found.value("oneapi_channel_enabled", channel=str(world.channel.pk)) == 1
    assert found.value("oneapi_channel_enabled", channel=str(dead.pk)) == 0
    assert found.value("oneapi_channel_auto_disabled", channel=str(dead.pk)) == 1
    assert found.value("oneapi_channel_balance", channel=str(dead.pk)) == 12.5
    assert found.value("oneapi_channel_last_test_timestamp_seconds", channel=str(dead.pk)) == 1_700_000_000


async def test_the_ledger_queue_and_its_write_failures_show(client, world, monkeypatch):
    # The database is down before the request: the ledger's own writer (it wakes 0.1 s after a charge) cannot
    # write the charge either, so it is still queued when scraped (CI once saw the writer get there first).
    def database_down(charges):
        raise ledger_module.OperationalError("the database went away")

    before = (await scrape(client)).value("oneapi_ledger_write_failures_total", kind="unreachable")
    monkeypatch.setattr(ledger_module, "charges_apply", database_down)
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200
    from relay import admission

    await admission.drain()
    await sync_to_async(ledger_module.ledger.flush, thread_sensitive=False)()
    after = await scrape(client)
    # This flush's failure at least (the writer's own tries count too).
    assert after.value("oneapi_ledger_write_failures_total", kind="unreachable") - before >= 1
    assert after.value("oneapi_ledger_queue_depth") >= 1  # still queued, to be retried
    monkeypatch.undo()
    await flush()
    assert (await scrape(client)).value("oneapi_ledger_queue_depth") == 0
    assert await sync_to_async(Log.objects.filter(type=Log.Type.CONSUME).count)() == 1


async def test_cache_loads_are_counted(client, world):
    before = await scrape(client)
    cache.clear()
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200
    after = await scrape(client)
    for kind in ("routes", "token", "user"):
        assert after.value("oneapi_cache_reloads_total", kind=kind, result="ok") > \
            before.value("oneapi_cache_reloads_total", kind=kind, result="ok"), kind


async def test_nothing_is_recorded_while_metrics_are_off(client, world, monkeypatch):
    before = await scrape(client)
    monkeypatch.setattr(metrics, "exposed", False)
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200
    monkeypatch.setattr(metrics, "exposed", True)
    after = await scrape(client)
    assert after.value("oneapi_requests_total") == before.value("oneapi_requests_total")


async def test_a_claude_client_is_counted_under_its_protocol(client, world):
    before = await scrape(client)
    response = await client.post("/v1/messages", headers={"x-api-key": f"sk-{world.token.key}"}, json={
        "model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "Say hello"}]})
    assert response.status_code == 200, response.text
    after = await scrape(client)
    labels = {"model": "gpt-4o-mini", "protocol": "anthropic", "status": "2xx"}
    assert after.value("oneapi_requests_total", **labels) - before.value("oneapi_requests_total", **labels) == 1


async def test_a_client_that_leaves_mid_stream_is_counted_as_cancelled_and_its_tokens_as_billed(
        client, asgi_app, world):
    world.upstream.then(reply=" ".join(f"word{i}" for i in range(200)), chunk_delay=0.02)
    body = {**CHAT, "stream": True}
    before = await scrape(client)
    app = ApplicationCommunicator(asgi_app, stream_scope(world.token.key))
    await app.send_input({"type": "http.request", "body": orjson.dumps(body), "more_body": False})
    assert (await app.receive_output(5))["status"] == 200
    received = b""
    while received.count(b"data: ") < 6:
        received += (await app.receive_output(5))["body"]
    await app.send_input({"type": "http.disconnect"})
    await app.wait(5)
    log = await consume_log()
    after = await scrape(client)
    channel = str(world.channel.pk)
    assert after.value("oneapi_requests_total", channel=channel, status="cancelled") - \
        before.value("oneapi_requests_total", channel=channel, status="cancelled") == 1
    assert after.value("oneapi_tokens_total", channel=channel, kind="completion") - \
        before.value("oneapi_tokens_total", channel=channel, kind="completion") == log.completion_tokens > 0
    assert after.value("oneapi_time_to_first_token_seconds_count", channel=channel) - \
        before.value("oneapi_time_to_first_token_seconds_count", channel=channel) == 1
