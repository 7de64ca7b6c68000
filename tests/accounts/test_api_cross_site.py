"""Cookie-authenticated writes on /api need no CSRF token; a browser that says another site sent one is refused.

The client enforces Django's CSRF checks throughout, as a browser's requests meet them.
"""

import json

import pytest
from django.test import Client

from accounts.models import Token, User
from accounts.services.users import user_access_token_reset
from oneapi_site.config import parse_trusted_proxies
from tests.api_fixtures import envelope
from tests.helpers import asgi_client, set_cookies

pytestmark = pytest.mark.django_db

PASSWORD = "password123"  # the factories' password

SAME_SITE = [
    {},                                                              # no browser: no victim's cookie rides on it
    {"Sec-Fetch-Site": "same-origin"},                               # one-api's front end, fetch()/axios
    {"Sec-Fetch-Site": "none"},                                      # the user's own doing (address bar, bookmark)
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
    {"Origin": "http://testserver"},                                 # a browser without Fetch Metadata
    {"Origin": "http://testserver:80"},                              # the default port, written out
    {"Origin": "HTTP://TestServer"},                                 # scheme and host are case-blind
    # Fetch Metadata is the browser's own word: an Origin that differs from the Host a reverse proxy rewrote
    # (proxy_pass http://127.0.0.1:3000) is still this site.
    {"Sec-Fetch-Site": "same-origin", "Origin": "https://api.example.com"},
]

CROSS_SITE = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},                                 # a sibling subdomain is another origin
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},  # Fetch Metadata wins
    {"Origin": "https://evil.example"},
    {"Origin": "null"},                                              # a sandboxed frame, a redirect chain
    {"Origin": "https://testserver"},                                # another scheme
    {"Origin": "http://testserver:8080"},                            # another port
    {"Origin": "http://testserver.evil.example"},
]


@pytest.fixture
def session(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


def _writes(alice_token):
    """(method, path, JSON body, what the write did when it went through) for each kind of write."""
    def created():
        return Token.objects.filter(name="fresh").exists()

    def renamed():
        return User.objects.get(username="alice").display_name == "Alice A."

    def deleted():
        return not Token.objects.filter(pk=alice_token.pk).exists()

    return {
        "POST": ("/api/token/", {"name": "fresh", "remain_quota": 0, "expired_time": -1,
                                 "unlimited_quota": True}, created),
        "PUT": ("/api/user/self", {"display_name": "Alice A."}, renamed),
        "DELETE": (f"/api/token/{alice_token.pk}", None, deleted),
    }


def _send(client, method: str, path: str, body, headers: dict, **extra):
    return client.generic(method, path, b"" if body is None else json.dumps(body),
                          content_type="application/json", headers=headers, **extra)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
@pytest.mark.parametrize("headers", SAME_SITE)
def test_a_same_site_cookie_write_needs_no_csrf_token(session, alice_token, method, headers):
    path, body, done = _writes(alice_token)[method]
    envelope(_send(session, method, path, body, headers))
    assert done()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_cross_site_cookie_write_without_a_token_is_refused_and_changes_nothing(session, alice_token, method,
                                                                                   headers):
    path, body, done = _writes(alice_token)[method]
    answer = envelope(_send(session, method, path, body, headers), success=False, status=403)
    assert answer["message"] == "This request came from another site. Open this site itself to do this."
    assert not done()


def test_the_refusal_speaks_the_users_language(session, alice_token):
    path, body, _ = _writes(alice_token)["POST"]
    answer = envelope(_send(session, "POST", path, body, {"Sec-Fetch-Site": "cross-site",
                                                          "Accept-Language": "zh-hans"}),
                      success=False, status=403)
    assert "另一个网站" in answer["message"]


def test_a_cross_site_read_with_the_cookie_still_answers(session):
    assert envelope(session.get("/api/user/self", headers={"Sec-Fetch-Site": "cross-site"}))["username"] == "alice"


def _csrf_token(client) -> str:
    client.get("/token/new/")  # a page with a form sets the CSRF cookie
    return client.cookies["csrftoken"].value


def test_a_cross_site_write_with_a_valid_csrf_token_meets_djangos_check_and_passes(session, alice_token):
    token = _csrf_token(session)
    path, body, done = _writes(alice_token)["POST"]
    envelope(_send(session, "POST", path, body, {"Sec-Fetch-Site": "cross-site", "X-CSRFToken": token}))
    assert done()


@pytest.mark.parametrize(("headers", "reason"), [
    ({"Sec-Fetch-Site": "cross-site", "X-CSRFToken": "x" * 32}, "HTTP header incorrect"),
    ({"Origin": "https://evil.example", "X-CSRFToken": "{token}"}, "Origin checking failed"),
])
def test_a_cross_site_write_with_a_bad_csrf_token_is_refused_by_djangos_check(session, alice_token, headers,
                                                                              reason):
    headers = {k: v.format(token=_csrf_token(session)) for k, v in headers.items()}
    path, body, done = _writes(alice_token)["POST"]
    answer = envelope(_send(session, "POST", path, body, headers), success=False, status=403)
    assert answer["message"].startswith("CSRF Failed") and reason in answer["message"]
    assert not done()


@pytest.mark.parametrize("trusted", ["https://console.example.com", "https://*.example.com"])
def test_an_origin_in_csrf_trusted_origins_is_this_site(session, alice_token, settings, trusted):
    settings.CSRF_TRUSTED_ORIGINS = [trusted]
    path, body, done = _writes(alice_token)["POST"]
    envelope(_send(session, "POST", path, body, {"Origin": "https://console.example.com"}))
    assert done()


def test_a_wildcard_trusted_origin_keeps_its_scheme(session, alice_token, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    path, body, done = _writes(alice_token)["POST"]
    envelope(_send(session, "POST", path, body, {"Origin": "http://console.example.com"}), success=False, status=403)
    assert not done()


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_an_access_token_write_is_no_browser_riding_on_a_cookie(alice, alice_token, headers):
    client = Client(enforce_csrf_checks=True)
    key = user_access_token_reset(user=alice)
    path, body, done = _writes(alice_token)["POST"]
    envelope(_send(client, "POST", path, body, {**headers, "Authorization": key}))
    assert done()


def test_the_pages_keep_djangos_csrf_token(session):
    """A page's form is no /api write: same-origin or not, it needs the token from the page."""
    response = session.post("/token/new/", {"name": "page-token"}, headers={"Sec-Fetch-Site": "same-origin",
                                                                            "Origin": "http://testserver"})
    assert response.status_code == 403
    assert not Token.objects.filter(name="page-token").exists()


# --- Login --------------------------------------------------------------------------------------------------

def _login(client, headers):
    return _send(client, "POST", "/api/user/login", {"username": "alice", "password": PASSWORD}, headers)


@pytest.mark.parametrize("headers", SAME_SITE)
def test_login_from_this_site_or_a_script_needs_no_csrf_token(alice, headers):
    client = Client(enforce_csrf_checks=True)
    assert envelope(_login(client, headers))["username"] == "alice"
    assert envelope(client.get("/api/user/self"))["id"] == alice.pk


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_login_from_another_site_is_refused_and_signs_no_one_in(alice, headers):
    """Another site's page must not sign a visitor in to an account of its choosing (login CSRF)."""
    client = Client(enforce_csrf_checks=True)
    envelope(_login(client, headers), success=False, status=403)
    assert "session" not in client.cookies
    assert client.get("/api/user/self").status_code == 401


# --- Behind a trusted proxy ---------------------------------------------------------------------------------

@pytest.fixture
def trusted_proxy(settings):
    settings.TRUSTED_PROXIES = parse_trusted_proxies("10.0.0.0/8")


async def _login_and_post(peer: str, origin: str) -> int:
    """Through the whole ASGI application from `peer`, which says the client spoke HTTPS: sign in, then create a
    token from `origin` with no Fetch Metadata (an older browser); the write's status."""
    https = {"X-Forwarded-Proto": "https"}
    async with asgi_client(peer=peer) as client:
        login = await client.post("/api/user/login", json={"username": "alice", "password": PASSWORD},
                                  headers=https)
        assert login.json()["success"] is True
        cookie = set_cookies(login)["session"].value
        write = await client.post("/api/token/", json={"name": "fresh", "unlimited_quota": True},
                                  headers={**https, "Origin": origin, "Cookie": f"session={cookie}"})
        return write.status_code


@pytest.mark.django_db(transaction=True)
async def test_behind_a_trusted_https_proxy_the_https_origin_is_this_site(alice, trusted_proxy):
    assert await _login_and_post("10.0.0.2", "https://testserver") == 200
    assert await _login_and_post("10.0.0.2", "http://testserver") == 403


@pytest.mark.django_db(transaction=True)
async def test_anyone_elses_forwarded_proto_does_not_make_an_https_origin_this_site(alice, trusted_proxy):
    assert await _login_and_post("203.0.113.9", "https://testserver") == 403
    assert await _login_and_post("203.0.113.9", "http://testserver") == 200


def test_a_patch_is_a_write_too(session):
    """No /api route takes PATCH; from another site it is refused before the route is even asked."""
    body = {"display_name": "Patched"}
    assert _send(session, "PATCH", "/api/user/self", body, {"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert _send(session, "PATCH", "/api/user/self", body, {"Sec-Fetch-Site": "same-origin"}).status_code == 405
