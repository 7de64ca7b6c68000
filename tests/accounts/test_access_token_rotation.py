"""GET /api/user/token rotates the management access token: a link on another site must not do it."""

import pytest

from accounts.models import User
from tests.api_fixtures import envelope
from tests.helpers import logged_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(alice):
    User.objects.filter(pk=alice.pk).update(access_token="alice-old-token")
    return logged_in(alice)


def _token(user) -> str:
    user.refresh_from_db()
    return user.access_token


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},                              # a sibling subdomain is another origin
    {"Origin": "https://evil.example"},
    {"Origin": "null"},                                           # a sandboxed frame or a redirect chain
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},  # Fetch Metadata is the browser's word
])
def test_a_cross_site_request_with_the_session_cookie_is_refused(session, alice, headers):
    body = envelope(session.get("/api/user/token", headers=headers), success=False, status=403)
    assert "another site" in body["message"]
    assert _token(alice) == "alice-old-token"


@pytest.mark.parametrize("headers", [
    {},                                                           # no Fetch Metadata: not a browser, or an old one
    {"Sec-Fetch-Site": "same-origin"},                           # one-api's own front end
    {"Sec-Fetch-Site": "none"},                                   # typed into the address bar
    {"Origin": "http://testserver"},
])
def test_the_site_itself_still_rotates_the_token(session, alice, headers):
    new = envelope(session.get("/api/user/token", headers=headers))
    assert len(new) == 32 and _token(alice) == new


def test_an_origin_listed_in_csrf_trusted_origins_is_this_site(session, alice, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://api.example.com"]
    envelope(session.get("/api/user/token", headers={"Origin": "https://api.example.com"}))


def test_the_refusal_speaks_the_users_language(session):
    body = envelope(session.get("/api/user/token", headers={"Sec-Fetch-Site": "cross-site",
                                                            "Accept-Language": "zh-hans"}),
                    success=False, status=403)
    assert "另一个网站" in body["message"]


def test_an_access_token_caller_is_no_browser_and_is_not_refused(alice_api, alice):
    old = _token(alice)
    new = envelope(alice_api.get("/api/user/token", HTTP_SEC_FETCH_SITE="cross-site"))
    assert new != old and _token(alice) == new
