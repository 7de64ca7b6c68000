"""Links that leave the page (invitation, password reset, OAuth callback) carry the site's real address.

ServerAddress wins when the operator set it; until then (its default is one-api's http://localhost:3000)
a link shown on a page uses the address the page was opened at, and a mailed reset link uses it only when
ALLOWED_HOSTS names that host: the requester writes the Host header, the account holder gets the mail.
"""

import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.test import Client, RequestFactory

from accounts import limits, oauth
from billing.services import option_set
from oneapi_site.config import ConfigError, parse_allowed_hosts, parse_trusted_proxies
from oneapi_site.lib import address
from tests.factories import UserFactory
from tests.helpers import asgi_client, browser_post, logged_in, set_cookies

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_sign_in_limit(monkeypatch):
    monkeypatch.setattr(limits, "CRITICAL_RATE", "100000/20m")


@pytest.fixture
def alice_mail(db):
    return UserFactory(username="alice", email="alice@example.com")


def mailed_link():
    assert len(mail.outbox) == 1, [m.body for m in mail.outbox]
    return urlsplit(re.search(r"(\S+/user/reset/\?\S+)", mail.outbox[-1].body).group(1))


def invite_link(client, **headers) -> str:
    html = client.get("/setting/", **headers).content.decode()
    return re.search(r'id="invite-link" data-testid="invite-link" value="([^"]+)"', html).group(1)


# --- invitation (shown on the visitor's own settings page) ---------------------------------------------

def test_the_invite_link_uses_the_address_the_page_was_opened_at(alice_mail):
    client = logged_in(alice_mail)
    assert invite_link(client) == f"http://testserver/register/?aff={alice_mail.aff_code}"


PROXY = "10.0.0.2"  # in TRUSTED_PROXIES below
HTTPS = {"X-Forwarded-Proto": "https"}


@pytest.fixture
def trusted_proxy(settings):
    settings.TRUSTED_PROXIES = parse_trusted_proxies("10.0.0.0/8")


async def invite_link_via(peer: str, base_url: str, headers: dict) -> str:
    """The invite link of alice's settings page, opened through the whole ASGI application from `peer`."""
    async with asgi_client(peer=peer, base_url=base_url) as client:
        login = await client.post("/api/user/login", json={"username": "alice", "password": "password123"},
                                  headers=headers)
        session = set_cookies(login)["session"].value  # by hand: the client keeps a Secure one from http URLs
        html = (await client.get("/setting/", headers={**headers, "Cookie": f"session={session}"})).text
    return re.search(r'id="invite-link" data-testid="invite-link" value="([^"]+)"', html).group(1)


@pytest.mark.django_db(transaction=True)
async def test_the_invite_link_behind_a_trusted_https_proxy_is_https(alice_mail, trusted_proxy):
    behind_https = await invite_link_via(PROXY, "http://gw.example.com:8443", HTTPS)
    assert behind_https == f"https://gw.example.com:8443/register/?aff={alice_mail.aff_code}"


@pytest.mark.django_db(transaction=True)
async def test_a_client_that_is_no_trusted_proxy_cannot_make_links_https(alice_mail, trusted_proxy):
    link = await invite_link_via("203.0.113.9", "http://gw.example.com:8443", HTTPS)
    assert link == f"http://gw.example.com:8443/register/?aff={alice_mail.aff_code}"


@pytest.mark.parametrize("value", ["http://localhost:3000", "http://localhost:3000/", ""])
def test_the_default_or_empty_server_address_counts_as_unset(alice_mail, value):
    option_set(key="ServerAddress", value=value)
    assert invite_link(logged_in(alice_mail), HTTP_HOST="gw.example.com").startswith("http://gw.example.com/register/")


def test_a_server_address_the_operator_set_wins(alice_mail):
    option_set(key="ServerAddress", value="https://api.example.com/")
    assert invite_link(logged_in(alice_mail), HTTP_HOST="gw.example.com").startswith(
        "https://api.example.com/register/?aff=")


def test_a_host_outside_allowed_hosts_gets_a_400_not_a_link_and_no_traceback(alice_mail, settings, caplog):
    settings.ALLOWED_HOSTS = ["gw.example.com"]
    with caplog.at_level(logging.INFO):
        response = logged_in(alice_mail).get("/setting/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    refused, = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert "Invalid HTTP_HOST header: 'evil.example'" in refused.getMessage()
    assert refused.levelno == logging.WARNING and refused.exc_info is None and "Traceback" not in caplog.text


# --- password reset (mailed, in the background) -------------------------------------------------------

def ask_reset_on_the_page(host: str, **extra):
    return Client().post("/reset/", {"email": "alice@example.com"}, HTTP_HOST=host, **extra)


def ask_reset_on_the_api(host: str):
    return Client().get("/api/reset_password", {"email": "alice@example.com"}, HTTP_HOST=host)


@pytest.mark.parametrize("ask", [ask_reset_on_the_page, ask_reset_on_the_api])
def test_a_reset_link_uses_the_request_host_when_allowed_hosts_names_it(alice_mail, settings, ask):
    settings.ALLOWED_HOSTS = parse_allowed_hosts("gw.example.com")
    assert ask("gw.example.com").status_code in (200, 302)
    link = mailed_link()
    assert (link.scheme, link.netloc, link.path) == ("http", "gw.example.com", "/user/reset/")
    assert parse_qs(link.query)["email"] == ["alice@example.com"]


async def ask_reset_via(peer: str, origin: str, headers: dict):
    async with asgi_client(peer=peer, base_url="http://gw.example.com") as client:
        _page, response = await browser_post(client, "/reset/", {"email": "alice@example.com"}, origin=origin,
                                             headers=headers)
    assert response.status_code == 302


@pytest.mark.django_db(transaction=True)
async def test_a_reset_asked_over_https_links_over_https(alice_mail, settings, trusted_proxy):
    settings.ALLOWED_HOSTS = parse_allowed_hosts(".example.com")
    await ask_reset_via(PROXY, "https://gw.example.com", HTTPS)
    link = mailed_link()
    assert (link.scheme, link.netloc) == ("https", "gw.example.com")


@pytest.mark.django_db(transaction=True)
async def test_a_client_that_is_no_trusted_proxy_cannot_make_the_reset_link_https(alice_mail, settings,
                                                                                 trusted_proxy):
    """The scheme of a mailed link is the site's, never what the requester wrote in X-Forwarded-Proto."""
    settings.ALLOWED_HOSTS = parse_allowed_hosts(".example.com")
    await ask_reset_via("203.0.113.9", "http://gw.example.com", HTTPS)
    link = mailed_link()
    assert (link.scheme, link.netloc) == ("http", "gw.example.com")


def test_the_forwarded_proto_header_alone_does_not_change_the_scheme(alice_mail, settings):
    settings.ALLOWED_HOSTS = parse_allowed_hosts(".example.com")
    ask_reset_on_the_page("gw.example.com", HTTP_X_FORWARDED_PROTO="https")
    assert mailed_link().scheme == "http"


@pytest.mark.parametrize("ask", [ask_reset_on_the_page, ask_reset_on_the_api])
def test_a_forged_host_never_reaches_the_reset_mail(alice_mail, settings, ask):
    # ALLOWED_HOSTS named: Django refuses the forged host outright.
    settings.ALLOWED_HOSTS = parse_allowed_hosts("gw.example.com")
    assert ask("evil.example").status_code == 400
    assert mail.outbox == []


@pytest.mark.parametrize("ask", [ask_reset_on_the_page, ask_reset_on_the_api])
def test_with_any_host_allowed_the_reset_mail_ignores_the_host_header(alice_mail, settings, ask, caplog):
    settings.ALLOWED_HOSTS = ["*"]
    address._warned.clear()
    with caplog.at_level(logging.WARNING, logger="oneapi"):
        ask("evil.example")
    link = mailed_link()
    assert link.netloc == "localhost:3000" and "evil" not in mail.outbox[0].body
    assert "ALLOWED_HOSTS" in caplog.text and "ServerAddress" in caplog.text
    option_set(key="ServerAddress", value="https://api.example.com")
    mail.outbox.clear()
    ask("evil.example")
    assert mailed_link().netloc == "api.example.com"


def test_the_warning_is_logged_once(alice_mail, settings, caplog):
    settings.ALLOWED_HOSTS = ["*"]
    address._warned.clear()
    with caplog.at_level(logging.WARNING, logger="oneapi"):
        ask_reset_on_the_page("a.example")
        ask_reset_on_the_page("b.example")
    assert caplog.text.count("Password reset links point at") == 1


# --- OAuth callback -----------------------------------------------------------------------------------

def test_the_oauth_callback_uses_the_request_address_until_server_address_is_set(settings):
    settings.ALLOWED_HOSTS = parse_allowed_hosts("gw.example.com")
    option_set(key="GitHubClientId", value="client-id")
    option_set(key="GitHubClientSecret", value="client-secret")
    option_set(key="GitHubOAuthEnabled", value="true")
    location = Client().get("/oauth/github/", HTTP_HOST="gw.example.com")["Location"]
    assert parse_qs(urlsplit(location).query)["redirect_uri"] == ["http://gw.example.com/oauth/github/callback/"]
    option_set(key="ServerAddress", value="https://api.example.com")
    request = RequestFactory().get("/oauth/github/", HTTP_HOST="gw.example.com")
    assert oauth.redirect_uri_for(request, oauth.provider_get("github")) == (
        "https://api.example.com/oauth/github/callback/")


# --- ALLOWED_HOSTS --------------------------------------------------------------------------------------

def test_allowed_hosts_parsing():
    assert parse_allowed_hosts("") == ["*"] and parse_allowed_hosts("*, gw.example.com") == ["*"]
    hosts = parse_allowed_hosts("GW.example.com, .example.org")
    assert hosts[:2] == ["gw.example.com", ".example.org"]
    assert {"localhost", "127.0.0.1"} <= set(hosts)   # the container's health check calls 127.0.0.1
    for bad in ("https://gw.example.com", "gw.example.com:443", "gw.example.com/path"):
        with pytest.raises(ConfigError, match="ALLOWED_HOSTS"):
            parse_allowed_hosts(bad)
