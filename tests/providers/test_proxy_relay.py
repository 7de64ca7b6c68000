"""one-api's raw pass-through (/v1/oneapi/proxy/{channel id}/{path}) to a Proxy (43) channel, end to end."""

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from asgiref.sync import sync_to_async

from accounts.models import Token
from providers.models import Channel
from relay.cache import cache
from tests.factories import ChannelFactory
from tests.providers.vendor_harness import no_consume_log
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "Basic cHJveHk6c2VjcmV0LXByb3h5LWtleQ=="


@pytest.fixture
def pw(transactional_db, upstream):
    return new_world(upstream, username="proxy-user", type=43, key=KEY, models="any-model", base_path="/service")


async def test_the_request_goes_to_the_base_url_as_it_came_with_the_channels_key(relay_client, pw):
    body = b'{"anything": ["the", "service", "reads"], "model": "gpt-4o-mini", "messages": []}'
    response = await relay_client.post(
        f"/v1/oneapi/proxy/{pw.channel.pk}/v1/chat/completions?trace=1",
        content=body, headers={**pw.auth, "Content-Type": "application/json", "X-Custom": "kept"})
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"  # the service's answer, as it sent it
    sent = pw.upstream.requests[-1]
    assert (sent.method, sent.path, sent.query) == ("POST", "/service/v1/chat/completions", "trace=1")
    headers = {name.lower(): value for name, value in sent.headers.items()}
    assert headers["authorization"] == KEY and headers["x-custom"] == "kept"
    assert pw.token.key not in str(headers)  # the gateway's credential stays here
    assert await no_consume_log()  # not billed, as in one-api


async def test_the_services_error_status_and_body_come_back_as_they_are(relay_client, pw):
    pw.upstream.then(status=418, error={"teapot": True})
    response = await relay_client.post(f"/v1/oneapi/proxy/{pw.channel.pk}/brew", json={}, headers=pw.auth)
    assert (response.status_code, response.json()) == (418, {"teapot": True})


async def test_a_channel_that_is_no_proxy_or_serves_another_group_is_not_found(relay_client, pw, upstream):
    openai_channel = await sync_to_async(ChannelFactory)(type=1, base_url=upstream.url, models="m")
    other_group = await sync_to_async(ChannelFactory)(type=43, base_url=upstream.url, models="m", group="vip")
    for channel_id in (openai_channel.pk, other_group.pk, 999999):
        response = await relay_client.post(f"/v1/oneapi/proxy/{channel_id}/v1/chat/completions", json={},
                                           headers=pw.auth)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "channel_not_found"
    assert upstream.requests == []


async def test_a_caller_without_a_valid_token_is_refused(relay_client, pw):
    response = await relay_client.post(f"/v1/oneapi/proxy/{pw.channel.pk}/v1/chat/completions", json={},
                                       headers={"Authorization": "Bearer sk-nope"})
    assert response.status_code == 401
    assert pw.upstream.requests == []


async def test_a_proxy_channel_without_a_base_url_says_so(relay_client, pw):
    await sync_to_async(Channel.objects.filter(pk=pw.channel.pk).update)(base_url="")
    cache.clear()
    response = await relay_client.post(f"/v1/oneapi/proxy/{pw.channel.pk}/v1/chat/completions", json={},
                                       headers=pw.auth)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "channel_base_url_missing"


async def test_the_gateways_cookies_stay_here(relay_client, pw):
    # A cookie sent to this host is this site's (a console session), never the service's.
    response = await relay_client.post(f"/v1/oneapi/proxy/{pw.channel.pk}/v1/chat/completions", json={},
                                       headers={**pw.auth, "Cookie": "sessionid=s3ssion-of-root; csrftoken=c"})
    assert response.status_code == 200, response.text
    headers = {name.lower(): value for name, value in pw.upstream.requests[-1].headers.items()}
    assert "cookie" not in headers and "s3ssion-of-root" not in str(headers)


async def test_the_service_sets_no_cookie_for_this_site(relay_client, pw):
    # A Set-Cookie passed on would be this host's: the service could fix the console's session or CSRF cookie.
    async def answer(request):
        return web.json_response({"ok": True}, headers={"Set-Cookie": "sessionid=fixed-by-the-service; Path=/",
                                                        "X-Service": "kept"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with TestServer(app, host="127.0.0.1") as server:
        await sync_to_async(Channel.objects.filter(pk=pw.channel.pk).update)(base_url=str(server.make_url("")))
        cache.clear()
        response = await relay_client.post(f"/v1/oneapi/proxy/{pw.channel.pk}/x", json={}, headers=pw.auth)
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert response.headers["x-service"] == "kept" and "set-cookie" not in response.headers


@pytest.mark.parametrize("path", ["%2e%2e/admin", "v1/%2e%2e/%2e%2e/admin", "./%2E%2E/admin"])
async def test_a_path_that_climbs_out_of_the_base_url_is_refused(relay_client, pw, path):
    # The channel's base URL may be one tenant's part of a service: dot segments would reach past it.
    response = await relay_client.post(f"/v1/oneapi/proxy/{pw.channel.pk}/{path}", json={}, headers=pw.auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert pw.upstream.requests == []


async def test_the_keys_rate_limit_counts_the_route_as_any_request(relay_client, pw):
    """Unbilled is no way around a limit: a key of 2 requests a minute gets its third proxied request refused."""
    await sync_to_async(Token.objects.filter(pk=pw.token.pk).update)(rpm_limit=2)
    cache.clear()
    url = f"/v1/oneapi/proxy/{pw.channel.pk}/v1/chat/completions"
    answers = [await relay_client.post(url, json={}, headers=pw.auth) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "2"
    assert answers[1].headers["x-ratelimit-remaining-requests"] == "0"
    assert int(answers[2].headers["retry-after"]) >= 1
    assert answers[2].json()["error"]["code"] == "rate_limit_exceeded"
    assert len(pw.upstream.requests) == 2
