"""Channels look after themselves: disabled on a dead key or repeated failures, back after a passing test."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.core import mail

from accounts.models import User
from billing import pricing
from billing.models import Log
from billing.services import option_set
from providers.models import Ability, Channel
from providers.services import channel_update_balance, channels_test_progress
from relay.probe import channel_test, channels_test_all
from tests.factories import ChannelFactory, UserFactory
from tests.helpers import channel_status

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
REVOKED = {"error": {"message": "Incorrect API key provided: sk-abc***", "type": "invalid_request_error",
                     "param": None, "code": "invalid_api_key"}}


@pytest.mark.django_db(transaction=True)
async def test_a_revoked_key_disables_the_channel_at_once_and_tells_root(relay_client, world):
    await sync_to_async(option_set)(key="AutomaticDisableChannelEnabled", value="true")
    await sync_to_async(UserFactory)(username="boss", role=User.Role.ROOT, email="root@example.com")
    world.upstream.default.status = 401
    world.upstream.default.error = REVOKED
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 401
    assert await channel_status(world.channel.pk, Channel.Status.AUTO_DISABLED) == Channel.Status.AUTO_DISABLED
    assert not await sync_to_async(Ability.objects.filter(channel_id=world.channel.pk, enabled=True).exists)()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.SYSTEM)
    assert "Incorrect API key" in log.content
    for _ in range(60):  # the mail goes out just after the status change commits
        if mail.outbox:
            break
        await asyncio.sleep(0.05)
    assert [m.to for m in mail.outbox] == [["root@example.com"]]
    # The next request finds no channel instead of hitting the dead key again.
    again = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert again.status_code == 503


@pytest.mark.django_db(transaction=True)
async def test_transient_failures_disable_only_after_the_configured_count(relay_client, world):
    await sync_to_async(option_set)(key="AutomaticDisableChannelEnabled", value="true")
    await sync_to_async(option_set)(key="ChannelDisableFailureCount", value="3")
    world.upstream.default.status = 503
    for _ in range(2):
        assert (await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 503
    assert await channel_status(world.channel.pk, Channel.Status.ENABLED, timeout=0.3) == Channel.Status.ENABLED
    # A success in between starts the count again.
    world.upstream.default.status = 200
    assert (await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    world.upstream.default.status = 503
    for _ in range(2):
        await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert await channel_status(world.channel.pk, Channel.Status.ENABLED, timeout=0.3) == Channel.Status.ENABLED
    await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert await channel_status(world.channel.pk, Channel.Status.AUTO_DISABLED) == Channel.Status.AUTO_DISABLED


@pytest.mark.django_db(transaction=True)
async def test_nothing_is_disabled_while_the_option_is_off(relay_client, world):
    world.upstream.default.status = 401
    world.upstream.default.error = REVOKED
    await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert await channel_status(world.channel.pk, Channel.Status.AUTO_DISABLED, timeout=0.3) == Channel.Status.ENABLED


@pytest.mark.django_db
def test_fixed_key_and_a_passing_test_bring_an_auto_disabled_channel_back(upstream):
    option_set(key="AutomaticEnableChannelEnabled", value="true")
    option_set(key="AutomaticDisableChannelEnabled", value="true")
    channel = ChannelFactory(base_url=upstream.url, models="gpt-4o")
    upstream.then(status=401, error=REVOKED)
    assert not channel_test(channel_id=channel.pk).success
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.AUTO_DISABLED
    assert channel_test(channel_id=channel.pk).success  # the operator fixed the key
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.ENABLED
    assert Ability.objects.filter(channel=channel, enabled=True).exists()
    disabled, enabled = Log.objects.filter(type=Log.Type.SYSTEM, channel_id=channel.pk).order_by("id") \
        .values_list("content", flat=True)
    assert "was disabled automatically: channel test: the vendor refused the key" in disabled
    assert "was enabled again automatically: it passed a channel test" in enabled


@pytest.mark.django_db
def test_a_manually_disabled_channel_stays_off_after_a_passing_test(upstream):
    option_set(key="AutomaticEnableChannelEnabled", value="true")
    channel = ChannelFactory(base_url=upstream.url, models="gpt-4o", status=Channel.Status.MANUALLY_DISABLED)
    assert channel_test(channel_id=channel.pk).success
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.MANUALLY_DISABLED


@pytest.mark.django_db
def test_test_all_runs_once_and_reports_progress(upstream):
    for _ in range(3):
        ChannelFactory(base_url=upstream.url, models="gpt-4o")
    ChannelFactory(base_url="http://127.0.0.1:9", models="gpt-4o")
    progress = channels_test_all(scope="all", background=False)
    assert progress["total"] == 4 and progress["done"] == 4
    assert (progress["passed"], progress["failed"]) == (3, 1)
    assert channels_test_progress()["running"] is False
    assert Log.objects.filter(type=Log.Type.TEST).count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize("type_id, expected", [
    (1, 100 - 12.34), (36, 110.5 / pricing.CNY_PER_USD), (44, 88.88), (20, 37.5)])  # DeepSeek's is in yuan
def test_balances_are_read_from_the_vendor(upstream, type_id, expected):
    base = upstream.url + ("/api" if type_id == 20 else "")
    channel = ChannelFactory(type=type_id, base_url=base, models="gpt-4o")
    assert channel_update_balance(channel_id=channel.pk) == pytest.approx(expected)
    channel.refresh_from_db()
    assert channel.balance == pytest.approx(expected) and channel.balance_updated_time > 0


@pytest.mark.django_db
def test_balance_of_a_vendor_without_one_is_a_clear_error(upstream):
    from oneapi_site.lib.errors import ServiceError

    channel = ChannelFactory(type=3, base_url=upstream.url, models="gpt-4o")
    with pytest.raises(ServiceError, match="no balance"):
        channel_update_balance(channel_id=channel.pk)


@pytest.mark.django_db
def test_api_starts_test_all_and_reads_balances(upstream, client, root):
    ChannelFactory(base_url=upstream.url, models="gpt-4o")
    auth = {"HTTP_AUTHORIZATION": root.access_token}
    started = client.get("/api/channel/test", {"scope": "all"}, **auth).json()
    assert started["success"] and started["data"]["total"] == 1
    channel = ChannelFactory(type=36, base_url=upstream.url, models="deepseek-chat")
    balance = client.get(f"/api/channel/update_balance/{channel.pk}", **auth).json()
    assert balance["success"] and balance["balance"] == pytest.approx(110.5 / pricing.CNY_PER_USD)


@pytest.mark.django_db
def test_admin_shows_test_progress_and_starts_a_run(upstream, client, root):
    ChannelFactory(base_url=upstream.url, models="gpt-4o")
    client.force_login(root)
    channels_test_all(scope="all", background=False)
    page = client.get("/admin/providers/channel/")
    assert page.status_code == 200 and b"1 of 1 tested, 1 passed" in page.content


@pytest.mark.django_db
def test_credentials_in_config_are_write_only(client, root):
    from providers.services import channel_update

    channel = ChannelFactory(type=33, base_url="http://127.0.0.1:9", models="claude-3-haiku-20240307",
                             config={"region": "us-east-1", "ak": "AKIDEXAMPLE", "sk": "wJalrXUtnFEMI-secret"})
    auth = {"HTTP_AUTHORIZATION": root.access_token}
    shown = client.get(f"/api/channel/{channel.pk}", **auth).json()["data"]["config"]
    assert "wJalrXUtnFEMI-secret" not in shown and "us-east-1" in shown
    client.force_login(root)
    page = client.get(f"/admin/providers/channel/{channel.pk}/change/").content.decode()
    assert "wJalrXUtnFEMI-secret" not in page
    channel_update(channel=channel, config={"region": "eu-west-1", "ak": "AKIDEXAMPLE", "sk": ""})
    channel.refresh_from_db()
    assert channel.config["sk"] == "wJalrXUtnFEMI-secret" and channel.config["region"] == "eu-west-1"


@pytest.mark.django_db
def test_an_openai_compatible_channels_balance_is_asked_beside_its_v1_base(upstream):
    """Type 50's base URL ends in /v1 (as an SDK's): the billing pair is /v1/dashboard/billing/..., not /v1/v1/."""
    channel = ChannelFactory(type=50, base_url=upstream.url + "/v1/", models="gpt-4o")
    assert channel_update_balance(channel_id=channel.pk) == pytest.approx(100 - 12.34)
    assert [r.path for r in upstream.requests] == ["/v1/dashboard/billing/subscription",
                                                   "/v1/dashboard/billing/usage"]
