import pytest
from asgiref.sync import sync_to_async

from accounts.models import Token, User
from accounts.services.tokens import token_update
from oneapi_site.lib import changes
from oneapi_site.lib.timeutil import now_ts
from tests.factories import TokenFactory

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def post(client, token, body=CHAT, **headers):
    return await client.post("/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer sk-{token.key}", **headers})


@pytest.mark.parametrize("fields, status, code", [
    ({"status": Token.Status.DISABLED}, 401, "token_disabled"),
    ({"status": Token.Status.EXPIRED}, 401, "token_expired"),
    ({"expired_time": 1_000}, 401, "token_expired"),
    ({"status": Token.Status.EXHAUSTED}, 401, "token_quota_exhausted"),
    ({"remain_quota": 0}, 401, "token_quota_exhausted"),
    ({"models": "gpt-4o"}, 403, "model_not_allowed"),
    ({"subnet": "10.0.0.0/8"}, 403, "ip_not_allowed"),
])
async def test_token_rules_refuse_with_clear_errors(client, world, fields, status, code):
    token = await sync_to_async(TokenFactory)(user=world.user, **fields)
    response = await post(client, token)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert world.upstream.requests == []


async def test_token_allowed_from_its_subnet_and_model_list(client, world):
    token = await sync_to_async(TokenFactory)(user=world.user, subnet="127.0.0.0/8", models="gpt-4o-mini")
    assert (await post(client, token)).status_code == 200


async def test_disabled_user_is_refused(client, world):
    await sync_to_async(User.objects.filter(pk=world.user.pk).update)(status=User.Status.DISABLED)
    response = await post(client, world.token)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "user_disabled"


async def test_common_user_cannot_pin_a_channel(client, world):
    response = await client.post("/v1/chat/completions", json=CHAT,
                                 headers={"Authorization": f"Bearer sk-{world.token.key}-{world.channel.pk}"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "channel_pinning_forbidden"


async def test_admin_can_pin_a_channel(client, world):
    await sync_to_async(User.objects.filter(pk=world.user.pk).update)(role=User.Role.ADMIN)
    response = await client.post("/v1/chat/completions", json=CHAT,
                                 headers={"Authorization": f"Bearer sk-{world.token.key}-{world.channel.pk}"})
    assert response.status_code == 200, response.text


async def test_token_change_reaches_the_relay_by_the_next_request(client, world):
    assert (await post(client, world.token)).status_code == 200

    def disable():
        token = Token.objects.get(pk=world.token.pk)
        token_update(token=token, status=Token.Status.DISABLED)

    await sync_to_async(disable)()
    response = await post(client, world.token)
    assert response.status_code == 401


async def test_expiry_in_the_future_is_accepted(client, world):
    token = await sync_to_async(TokenFactory)(user=world.user, expired_time=now_ts() + 3600)
    assert (await post(client, token)).status_code == 200


async def test_insufficient_user_quota_is_refused_before_the_call(client, world):
    await sync_to_async(User.objects.filter(pk=world.user.pk).update)(quota=10)
    changes._notify_local("users")
    response = await post(client, world.token)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_user_quota"
    assert world.upstream.requests == []


async def test_the_reservation_grows_with_the_body_the_relay_was_sent(client, world):
    """The relay passes the body's size; pricing guesses the prompt from it: (500 + 30,070 / 3) x 0.075 is
    about 790 quota, more than this token has, while the short request's 40 or so fits."""
    token = await sync_to_async(TokenFactory)(user=world.user, remain_quota=100)
    assert (await post(client, token)).status_code == 200
    long = {**CHAT, "messages": [{"role": "user", "content": "x" * 30_000}]}
    response = await post(client, token, body=long)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "pre_consume_token_quota_failed"
    assert len(world.upstream.requests) == 1
