"""Sign-in by GitHub OAuth and OIDC, through the pages and /api/oauth/..., against a local identity provider."""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages import get_messages
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts import limits, oauth
from accounts.models import Token, User
from billing.models import Log, Option
from billing.services import option_set
from oneapi_site import options
from oneapi_site.lib.errors import ServiceError
from tests.api_fixtures import envelope
from tests.factories import UserFactory
from tests.mock_idp import MockIdP

pytestmark = pytest.mark.django_db

SERVER = "http://testserver"


@pytest.fixture(scope="session")
def idp_server():
    server = MockIdP().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _isolation(settings, monkeypatch):
    # The critical limit counts per IP in the shared cache; each test that counts it uses its own address.
    monkeypatch.setattr(limits, "CRITICAL_RATE", "100000/20m")
    oauth.discovery_cache_clear()


@pytest.fixture
def idp(idp_server, settings):
    idp_server.reset()
    settings.GITHUB_OAUTH_BASE = idp_server.url
    settings.GITHUB_API_BASE = idp_server.url
    return idp_server


@pytest.fixture
def github_on(idp):
    option_set(key="ServerAddress", value=SERVER)
    option_set(key="GitHubClientId", value=idp.github_client_id)
    option_set(key="GitHubClientSecret", value=idp.github_client_secret)
    option_set(key="GitHubOAuthEnabled", value="true")
    return idp


@pytest.fixture
def oidc_on(idp):
    option_set(key="ServerAddress", value=SERVER)
    option_set(key="OidcClientId", value=idp.oidc_client_id)
    option_set(key="OidcClientSecret", value=idp.oidc_client_secret)
    option_set(key="OidcWellKnown", value=idp.well_known_url)
    option_set(key="OidcEnabled", value="true")
    return idp


def start(client, provider, **params):
    response = client.get(f"/oauth/{provider}/", params)
    assert response.status_code == 302, response
    return response["Location"]


def at_idp(authorize_url: str) -> str:
    """The browser at the provider: it agrees and is sent back; returns the callback path with its query."""
    answer = httpx.get(authorize_url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    assert f"{back.scheme}://{back.netloc}" == SERVER
    return f"{back.path}?{back.query}"


def sign_in(client, provider, **params):
    """Start, agree at the provider, come back: the callback's response."""
    return client.get(at_idp(start(client, provider, **params)))


def messages_of(response) -> list[str]:
    """The messages this request added (earlier unread ones wait in the cookie too)."""
    storage = get_messages(response.wsgi_request)
    return [str(m) for m in storage._queued_messages]


def signed_in_id(client):
    return client.session.get("_auth_user_id")


def next_user_number() -> int:
    return (User.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1


# --- The buttons -----------------------------------------------------------------------------

def _buttons(*, github: bool, oidc: bool, user=None, query: str = "") -> str:
    request = RequestFactory().get("/login/" + query)
    request.user = user or AnonymousUser()
    return render_to_string("accounts/_oauth_buttons.html", {
        "site": {"github_oauth": github, "oidc": oidc}, "request": request, "user": request.user})


def test_buttons_show_only_the_enabled_providers(db):
    assert "oauth-github" not in _buttons(github=False, oidc=False)
    assert "oauth-buttons" not in _buttons(github=False, oidc=False)
    html = _buttons(github=True, oidc=False)
    assert 'data-testid="oauth-github"' in html and "Continue with GitHub" in html
    assert "oauth-oidc" not in html
    html = _buttons(github=True, oidc=True, query="?next=/token/")
    assert "Continue with OIDC" in html and 'href="/oauth/oidc/?next=/token/' in html


def test_buttons_offer_linking_to_a_signed_in_user(db):
    user = UserFactory(github_id="77")
    html = _buttons(github=True, oidc=True, user=user)
    assert 'data-testid="oauth-github-linked"' in html
    assert "Link OIDC account" in html and "Continue with" not in html


def test_the_login_page_shows_the_buttons_when_enabled(github_on):
    html = Client().get("/login/").content.decode()
    assert 'data-testid="oauth-github"' in html and 'data-testid="oauth-oidc"' not in html


def test_the_invite_link_carries_the_code_to_the_provider_sign_up(github_on, alice):
    html = Client().get("/register/", {"aff": alice.aff_code}).content.decode()
    assert f'href="/oauth/github/?next=&amp;aff={alice.aff_code}"' in html


def test_no_buttons_when_nothing_is_enabled(idp):
    assert 'data-testid="oauth-buttons"' not in Client().get("/login/").content.decode()


# --- Starting -----------------------------------------------------------------------------

def test_github_start_sends_the_browser_to_github_with_client_id_and_state(github_on):
    client = Client()
    url = urlsplit(start(client, "github"))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{github_on.url}/login/oauth/authorize"
    assert query["client_id"] == github_on.github_client_id
    assert query["scope"] == "user:email"
    assert query["redirect_uri"] == f"{SERVER}/oauth/github/callback/"
    assert len(query["state"]) == 12 and query["state"] in client.session[oauth.SESSION_KEY]
    assert github_on.github_client_secret not in url.geturl()


def test_oidc_start_discovers_the_endpoints_and_sends_a_pkce_challenge(oidc_on):
    client = Client()
    url = urlsplit(start(client, "oidc"))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{oidc_on.issuer}/authorize"
    assert query["client_id"] == oidc_on.oidc_client_id and query["response_type"] == "code"
    assert query["redirect_uri"] == f"{SERVER}/oauth/oidc/callback/"
    assert query["code_challenge_method"] == "S256"
    verifier = client.session[oauth.SESSION_KEY][query["state"]]["verifier"]
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert query["code_challenge"] == expected and verifier not in url.geturl()
    assert "openid" in query["scope"].split()


def test_a_provider_that_is_off_is_refused_at_start_and_at_callback(idp):
    client = Client()
    response = client.get("/oauth/github/")
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert messages_of(response) == ["GitHub sign-in is not enabled."]
    response = client.get("/oauth/oidc/callback/", {"code": "x", "state": "y"})
    assert messages_of(response) == ["OIDC sign-in is not enabled."]
    assert idp.requests == []


def test_an_unknown_provider_is_not_found(github_on):
    assert Client().get("/oauth/gitlab/").status_code == 404
    assert Client().get("/oauth/gitlab/callback/").status_code == 404


# --- Coming back ------------------------------------------------------------------------------

def test_a_callback_with_a_wrong_state_is_refused(github_on):
    client = Client()
    callback = at_idp(start(client, "github"))
    forged = callback.replace("state=", "state=X")
    users = User.objects.count()
    response = client.get(forged)
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert "expired" in messages_of(response)[0]
    assert User.objects.count() == users and signed_in_id(client) is None
    assert github_on.recorded("/login/oauth/access_token") == []


def test_a_callback_from_another_browser_is_refused(github_on):
    callback = at_idp(start(Client(), "github"))
    response = Client().get(callback)
    assert "expired" in messages_of(response)[0]
    assert github_on.recorded("/login/oauth/access_token") == []


def test_a_state_works_once(github_on):
    client = Client()
    callback = at_idp(start(client, "github"))
    assert client.get(callback)["Location"] == reverse("dashboard")
    response = client.get(callback)  # replayed: refused before the code goes to GitHub again
    assert "expired" in messages_of(response)[0]
    assert len(github_on.recorded("/login/oauth/access_token")) == 1


def test_github_sign_in_creates_a_user_with_the_signup_gifts_and_logs_in(github_on):
    option_set(key="QuotaForNewUser", value="1234")
    client = Client()
    n = next_user_number()
    response = sign_in(client, "github")
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    user = User.objects.get(github_id="4242")
    assert user.username == f"github_{n}"
    assert user.display_name == "The Octocat" and user.email == "octocat@github.example"
    assert user.quota == 1234 and not user.has_usable_password()
    assert Log.objects.filter(user_id=user.pk, type=Log.Type.SYSTEM, quota=1234).exists()
    assert Token.objects.filter(user=user, name="default", unlimited_quota=True).exists()
    assert signed_in_id(client) == str(user.pk)
    assert any("has been created" in m for m in messages_of(response))
    # What the gateway sent GitHub.
    (exchange,) = github_on.recorded("/login/oauth/access_token")
    assert exchange.form["client_id"] == github_on.github_client_id
    assert exchange.form["client_secret"] == github_on.github_client_secret
    assert exchange.form["redirect_uri"] == f"{SERVER}/oauth/github/callback/"
    assert "application/json" in exchange.headers["accept"]
    (me,) = github_on.recorded("/user")
    assert me.headers["authorization"].startswith("Bearer gho_")
    # The new session works.
    assert envelope(client.get("/api/user/self"))["id"] == user.pk


def test_the_second_sign_in_finds_the_same_user(github_on):
    first = Client()
    sign_in(first, "github")
    users = User.objects.count()
    second = Client()
    response = sign_in(second, "github")
    assert response["Location"] == reverse("dashboard")
    assert User.objects.count() == users
    assert signed_in_id(second) == signed_in_id(first)
    assert not any("has been created" in m for m in messages_of(response))


def test_without_a_public_email_the_primary_verified_one_is_kept(github_on):
    github_on.github_user["email"] = None
    sign_in(Client(), "github")
    assert User.objects.get(github_id="4242").email == "octo-primary@github.example"


def test_an_email_already_in_use_is_not_copied(github_on):
    UserFactory(email="octocat@github.example")
    sign_in(Client(), "github")
    assert User.objects.get(github_id="4242").email == ""


def test_an_email_in_use_in_other_letter_case_is_not_copied(github_on):
    # Resets and sign-up codes ignore case: two accounts must not share an address that way.
    UserFactory(email="Octocat@GitHub.example")
    sign_in(Client(), "github")
    assert User.objects.get(github_id="4242").email == ""


def test_with_registration_off_new_accounts_are_refused_but_linked_ones_sign_in(github_on):
    option_set(key="RegisterEnabled", value="false")
    client = Client()
    users = User.objects.count()
    response = sign_in(client, "github")
    assert response["Location"] == reverse("login")
    assert messages_of(response) == ["New registrations have been turned off by the administrator."]
    assert User.objects.count() == users and signed_in_id(client) is None
    linked = UserFactory(github_id="4242")
    response = sign_in(client, "github")
    assert response["Location"] == reverse("dashboard") and signed_in_id(client) == str(linked.pk)


def test_a_disabled_user_is_refused(github_on):
    UserFactory(github_id="4242", status=User.Status.DISABLED)
    client = Client()
    response = sign_in(client, "github")
    assert response["Location"] == reverse("login")
    assert messages_of(response) == ["This user has been disabled."]
    assert signed_in_id(client) is None


def test_the_refusal_shows_on_the_login_page(github_on):
    UserFactory(github_id="4242", status=User.Status.DISABLED)
    client = Client()
    response = client.get(at_idp(start(client, "github")), follow=True)
    assert response.status_code == 200
    assert "This user has been disabled." in response.content.decode()


def test_a_deleted_users_github_account_is_refused_and_makes_no_new_account(github_on):
    # one-api: the identity stays with the deleted account, as its e-mail address does; no fresh gifts.
    UserFactory(github_id="4242", status=User.Status.DELETED, username="deleted_x")
    users = User.objects.count()
    client = Client()
    response = sign_in(client, "github")
    assert messages_of(response) == ["This user has been disabled."]
    assert signed_in_id(client) is None and User.objects.count() == users


def test_a_deleted_users_github_account_cannot_be_linked_to_another_user(github_on, alice):
    UserFactory(github_id="4242", status=User.Status.DELETED, username="deleted_x")
    client = Client()
    client.force_login(alice)
    response = sign_in(client, "github")
    assert messages_of(response) == ["This GitHub account is already linked to another user."]
    alice.refresh_from_db()
    assert alice.github_id == ""


def test_the_link_service_refuses_an_identity_a_deleted_user_holds(alice):
    from accounts.services.oauth import user_oauth_link

    UserFactory(oidc_id="sub-1", status=User.Status.DELETED, username="deleted_y")
    with pytest.raises(ServiceError):
        user_oauth_link(user=alice, id_field="oidc_id", external_id="sub-1")


def test_a_signed_in_user_links_their_github_account(github_on, alice):
    client = Client()
    client.force_login(alice)
    users = User.objects.count()
    response = sign_in(client, "github")
    assert response["Location"] == reverse("settings")
    alice.refresh_from_db()
    assert alice.github_id == "4242" and User.objects.count() == users
    assert "now linked" in messages_of(response)[0]
    # Now the GitHub account signs in as alice.
    other = Client()
    sign_in(other, "github")
    assert signed_in_id(other) == str(alice.pk)


def test_linking_an_account_someone_else_has_is_refused(github_on, alice):
    bob = UserFactory(github_id="4242")
    client = Client()
    client.force_login(alice)
    response = sign_in(client, "github")
    assert response["Location"] == reverse("settings")
    assert messages_of(response) == ["This GitHub account is already linked to another user."]
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.github_id == "" and bob.github_id == "4242"


def test_the_invitation_code_given_at_start_rewards_the_inviter(github_on, alice):
    option_set(key="QuotaForInviter", value="700")
    option_set(key="QuotaForInvitee", value="300")
    before = alice.quota
    sign_in(Client(), "github", aff=alice.aff_code)
    user = User.objects.get(github_id="4242")
    alice.refresh_from_db()
    assert user.inviter_id == alice.pk and user.quota == 300 and alice.quota == before + 700


def test_next_is_followed_when_it_is_on_this_site(github_on):
    assert sign_in(Client(), "github", next="/token/")["Location"] == "/token/"
    assert sign_in(Client(), "github", next="https://evil.example/")["Location"] == reverse("dashboard")


def test_a_cancelled_sign_in_says_so(github_on):
    client = Client()
    state = parse_qs(urlsplit(start(client, "github")).query)["state"][0]
    response = client.get("/oauth/github/callback/", {"state": state, "error": "access_denied"})
    assert messages_of(response) == ["The sign-in was cancelled or refused at GitHub (access_denied)."]


# --- Provider failures ---------------------------------------------------------------------

def test_a_bad_code_at_github_is_a_clear_error_and_creates_nobody(github_on):
    client = Client()
    state = parse_qs(urlsplit(start(client, "github")).query)["state"][0]
    users = User.objects.count()
    response = client.get("/oauth/github/callback/", {"state": state, "code": "made-up"})
    assert messages_of(response) == ["GitHub refused the sign-in (bad_verification_code). Please try again."]
    assert User.objects.count() == users


def test_a_failing_token_endpoint_is_a_clear_error_and_creates_nobody(oidc_on):
    oidc_on.fail("/oidc/token", status=500, body=b"<html>upstream exploded</html>")
    client = Client()
    users = User.objects.count()
    response = sign_in(client, "oidc")
    assert response["Location"] == reverse("login")
    assert messages_of(response) == ["OIDC answered with an error (HTTP 500). Please try again later."]
    assert User.objects.count() == users and signed_in_id(client) is None
    assert oidc_on.recorded("/oidc/userinfo") == []


def test_an_unreachable_provider_is_a_clear_error(github_on, settings):
    client = Client()
    callback = at_idp(start(client, "github"))
    settings.GITHUB_OAUTH_BASE = "http://127.0.0.1:9"  # nothing listens there
    response = client.get(callback)
    assert messages_of(response) == ["Could not reach GitHub. Please try again later."]


def test_a_slow_provider_times_out_with_a_clear_error(oidc_on, monkeypatch):
    monkeypatch.setattr(oauth, "TIMEOUT", 0.3)
    oidc_on.fail("/oidc/userinfo", status=200, delay=1.0)
    response = sign_in(Client(), "oidc")
    assert messages_of(response) == ["OIDC did not answer in time. Please try again."]
    assert not User.objects.filter(oidc_id="oidc-subject-1").exists()


def test_a_userinfo_without_sub_is_refused(oidc_on):
    oidc_on.oidc_claims.pop("sub")
    response = sign_in(Client(), "oidc")
    assert messages_of(response) == ["OIDC did not return a user id."]


def test_an_unreachable_discovery_document_is_a_clear_error_at_start(oidc_on):
    option_set(key="OidcWellKnown", value="http://127.0.0.1:9/.well-known/openid-configuration")
    response = Client().get("/oauth/oidc/")
    assert response["Location"] == reverse("login")
    assert messages_of(response) == ["Could not reach OIDC. Please try again later."]


# --- OIDC ---------------------------------------------------------------------------------------

def test_oidc_sign_in_with_discovery_pkce_and_client_secret_post(oidc_on):
    client = Client()
    response = sign_in(client, "oidc")
    assert response["Location"] == reverse("dashboard")
    user = User.objects.get(oidc_id="oidc-subject-1")
    assert user.username == "dora" and user.display_name == "Dora Explorer" and user.email == "dora@idp.example"
    assert signed_in_id(client) == str(user.pk)
    (exchange,) = oidc_on.recorded("/oidc/token")
    assert exchange.form["client_id"] == oidc_on.oidc_client_id
    assert exchange.form["client_secret"] == oidc_on.oidc_client_secret
    assert exchange.form["grant_type"] == "authorization_code"
    assert exchange.form["redirect_uri"] == f"{SERVER}/oauth/oidc/callback/"
    assert len(exchange.form["code_verifier"]) >= 43
    (info,) = oidc_on.recorded("/oidc/userinfo")
    assert info.headers["authorization"].startswith("Bearer oidc_at_")


def test_the_discovery_document_is_fetched_once(oidc_on):
    sign_in(Client(), "oidc")
    sign_in(Client(), "oidc")
    assert len(oidc_on.recorded("/oidc/.well-known/openid-configuration")) == 1


def test_a_taken_preferred_username_becomes_oidc_n(oidc_on):
    UserFactory(username="dora")
    n = next_user_number()
    sign_in(Client(), "oidc")
    assert User.objects.get(oidc_id="oidc-subject-1").username == f"oidc_{n}"


def test_an_unverified_email_is_not_kept(oidc_on):
    oidc_on.oidc_claims["email_verified"] = False
    sign_in(Client(), "oidc")
    assert User.objects.get(oidc_id="oidc-subject-1").email == ""


def test_oidc_works_with_endpoints_set_by_hand(oidc_on):
    option_set(key="OidcWellKnown", value="")
    for key, path in (("OidcAuthorizationEndpoint", "authorize"), ("OidcTokenEndpoint", "token"),
                      ("OidcUserinfoEndpoint", "userinfo")):
        option_set(key=key, value=f"{oidc_on.issuer}/{path}")
    client = Client()
    assert sign_in(client, "oidc")["Location"] == reverse("dashboard")
    assert oidc_on.recorded("/oidc/.well-known/openid-configuration") == []


def test_a_verifier_that_does_not_match_is_refused_by_the_provider(oidc_on):
    client = Client()
    callback = at_idp(start(client, "oidc"))
    session = client.session
    for entry in session[oauth.SESSION_KEY].values():
        entry["verifier"] = "x" * 64
    session.save()
    client.cookies["session"] = session.session_key
    response = client.get(callback)
    assert messages_of(response) == ["OIDC refused the sign-in (invalid_grant). Please try again."]


# --- Secrets ------------------------------------------------------------------------------------

def test_secrets_and_provider_tokens_never_reach_the_browser_or_the_log(github_on, oidc_on, caplog):
    caplog.set_level(logging.DEBUG)
    client = Client()
    responses = [client.get("/oauth/github/"), sign_in(client, "github"), client.get("/api/status")]
    client.logout()
    responses += [client.get("/oauth/oidc/"), sign_in(client, "oidc"), client.get("/api/oauth/state?provider=oidc")]
    oidc_on.fail("/oidc/token", status=400, body={"error": "invalid_client"})
    responses.append(sign_in(Client(), "oidc"))
    responses.append(client.get("/login/"))
    secrets_ = [github_on.github_client_secret, oidc_on.oidc_client_secret]
    codes = [r.form["code"] for r in github_on.requests if r.form.get("code")]
    tokens = [r.headers["authorization"].split(" ")[-1] for r in github_on.requests if r.headers.get("authorization")]
    assert codes and tokens
    for response in responses:
        seen = response.content.decode() + str(response.headers) + str(response.cookies)
        for secret in secrets_ + codes + tokens:
            assert secret not in seen
    for secret in secrets_ + tokens:
        assert secret not in caplog.text
    # (The browser leg of this test logs the codes through httpx; the gateway's own records do not.)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("oneapi", "django")))
    assert ours and not any(code in ours for code in codes)


# --- Rate limit ---------------------------------------------------------------------------------

def test_callbacks_count_against_the_critical_limit(github_on, monkeypatch):
    monkeypatch.setattr(limits, "CRITICAL_RATE", "2/20m")
    client = Client(REMOTE_ADDR=f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7")
    for _ in range(2):
        client.get("/oauth/github/callback/", {"state": "nope", "code": "x"})
    response = client.get("/oauth/github/callback/", {"state": "nope", "code": "x"})
    assert messages_of(response) == ["Too many sign-in attempts. Please try again later."]


# --- /api/oauth/... -----------------------------------------------------------------------------

def test_api_state_is_12_characters_kept_in_the_session(github_on):
    client = Client()
    state = envelope(client.get("/api/oauth/state"))
    assert len(state) == 12 and state.isalnum()
    assert client.session[oauth.SESSION_KEY][state]["provider"] == ""


def test_api_github_sign_in_creates_and_logs_in(github_on):
    client = Client()
    state = envelope(client.get("/api/oauth/state"))
    code = github_on.issue_code(provider="github")
    n = next_user_number()
    data = envelope(client.get("/api/oauth/github", {"code": code, "state": state}))
    assert data["username"] == f"github_{n}" and data["display_name"] == "The Octocat"
    assert envelope(client.get("/api/user/self"))["username"] == f"github_{n}"
    # A client that built the URL itself sent GitHub no redirect_uri, so none goes with the code.
    (exchange,) = github_on.recorded("/login/oauth/access_token")
    assert "redirect_uri" not in exchange.form


def test_api_oidc_with_the_authorize_url_from_state(oidc_on):
    client = Client()
    body = client.get("/api/oauth/state", {"provider": "oidc"}).json()
    assert body["success"] and len(body["data"]) == 12
    assert "code_challenge=" in body["authorize_url"]
    callback = at_idp(body["authorize_url"])
    query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    data = envelope(client.get("/api/oauth/oidc", query))
    assert data["username"] == "dora"
    assert oidc_on.recorded("/oidc/token")[0].form["code_verifier"]


def test_api_oidc_with_a_bare_state_exchanges_without_pkce(oidc_on):
    client = Client()
    state = envelope(client.get("/api/oauth/state"))
    code = oidc_on.issue_code(provider="oidc", redirect_uri=f"{SERVER}/oauth/oidc/callback/")
    assert envelope(client.get("/api/oauth/oidc/", {"code": code, "state": state}))["username"] == "dora"
    assert "code_verifier" not in oidc_on.recorded("/oidc/token")[0].form


def test_api_refuses_a_wrong_state_and_a_disabled_user(github_on):
    client = Client()
    envelope(client.get("/api/oauth/state"))
    body = envelope(client.get("/api/oauth/github", {"code": "x", "state": "wrong-state!"}), success=False)
    assert "expired" in body["message"]
    UserFactory(github_id="4242", status=User.Status.DISABLED)
    state = envelope(client.get("/api/oauth/state"))
    code = github_on.issue_code(provider="github")
    body = envelope(client.get("/api/oauth/github", {"code": code, "state": state}), success=False)
    assert body["message"] == "This user has been disabled."
    assert signed_in_id(client) is None


def test_api_binds_for_a_signed_in_user_with_ones_message(github_on, alice):
    client = Client()
    client.force_login(alice)
    state = envelope(client.get("/api/oauth/state"))
    code = github_on.issue_code(provider="github")
    response = client.get("/api/oauth/github", {"code": code, "state": state})
    assert response.json() == {"success": True, "message": "bind", "data": None}
    alice.refresh_from_db()
    assert alice.github_id == "4242"


def test_api_refuses_an_unknown_or_disabled_provider(idp):
    client = Client()
    assert envelope(client.get("/api/oauth/state", {"provider": "gitlab"}), success=False)["field"] == "provider"
    assert "not enabled" in envelope(client.get("/api/oauth/state", {"provider": "github"}), success=False)["message"]
    assert "not enabled" in envelope(client.get("/api/oauth/oidc", {"code": "x", "state": "y"}),
                                     success=False)["message"]


def test_api_status_reports_the_switches(github_on, oidc_on):
    data = envelope(Client().get("/api/status"))
    assert data["github_oauth"] is True and data["oidc"] is True
    assert data["github_client_id"] == github_on.github_client_id
    assert github_on.github_client_secret not in str(data)


# --- Options: the switches need their credentials -------------------------------------------

def test_enabling_github_needs_its_credentials(db):
    with pytest.raises(ServiceError, match="GitHubClientId and GitHubClientSecret"):
        option_set(key="GitHubOAuthEnabled", value="true")
    option_set(key="GitHubClientId", value="id")
    with pytest.raises(ServiceError):
        option_set(key="GitHubOAuthEnabled", value="true")
    option_set(key="GitHubClientSecret", value="secret")
    option_set(key="GitHubOAuthEnabled", value="true")
    assert options.get("GitHubOAuthEnabled") is True
    option_set(key="GitHubOAuthEnabled", value="false")  # turning off needs nothing


def test_enabling_oidc_needs_client_and_endpoints(db):
    with pytest.raises(ServiceError, match="OidcClientId and OidcClientSecret") as exc:
        option_set(key="OidcEnabled", value="true")
    assert exc.value.field == "OidcEnabled"
    option_set(key="OidcClientId", value="id")
    option_set(key="OidcClientSecret", value="secret")
    with pytest.raises(ServiceError, match="OidcWellKnown"):
        option_set(key="OidcEnabled", value="true")
    option_set(key="OidcAuthorizationEndpoint", value="https://idp.example/auth")
    option_set(key="OidcTokenEndpoint", value="https://idp.example/token")
    with pytest.raises(ServiceError, match="OidcUserinfoEndpoint"):
        option_set(key="OidcEnabled", value="true")
    option_set(key="OidcUserinfoEndpoint", value="https://idp.example/userinfo")
    option_set(key="OidcEnabled", value="true")
    assert options.get("OidcEnabled") is True


def test_enabling_oidc_with_a_discovery_url_is_enough(db):
    for key, value in (("OidcClientId", "id"), ("OidcClientSecret", "s"),
                       ("OidcWellKnown", "https://idp.example/.well-known/openid-configuration")):
        option_set(key=key, value=value)
    option_set(key="OidcEnabled", value="true")
    assert options.get("OidcEnabled") is True


@pytest.fixture
def root_api(root):
    from rest_framework.test import APIClient

    from accounts.services.users import user_access_token_reset

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=root.access_token or user_access_token_reset(user=root))
    return client


def test_api_option_refuses_enabling_oidc_without_credentials(root_api):
    body = envelope(root_api.put("/api/option/", {"key": "OidcEnabled", "value": "true"}, format="json"),
                    success=False)
    assert body["field"] == "OidcEnabled" and "OidcClientId" in body["message"]
    assert not Option.objects.filter(key="OidcEnabled").exists()
    body = envelope(root_api.put("/api/option/", {"key": "GitHubOAuthEnabled", "value": True}, format="json"),
                    success=False)
    assert "GitHubClientSecret" in body["message"]


@pytest.fixture
def root_client(root):
    root.set_password("a-long-root-password")
    root.save()
    client = Client()
    client.force_login(root)
    return client


def _options_post(client, **changes):
    url = reverse("admin:billing_option_changelist")
    form = client.get(url).context["form"]
    data = {}
    for name in form.fields:
        value = form.initial.get(name)
        if name in options.BOOL_KEYS:
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = str(value)
    data.update(changes)
    return client.post(url, data)


def test_admin_options_refuse_enabling_oidc_without_endpoints_and_accept_it_with_them(root_client):
    options.reload_from_db()
    response = _options_post(root_client, OidcEnabled="on", OidcClientId="id", OidcClientSecret="secret")
    assert response.status_code == 200
    assert "before enabling OIDC login" in response.content.decode()
    assert options.get("OidcEnabled") is False
    assert not Option.objects.filter(key="OidcClientId").exists()  # the whole form is one transaction
    response = _options_post(root_client, OidcEnabled="on", OidcClientId="id", OidcClientSecret="secret",
                             OidcWellKnown="https://idp.example/.well-known/openid-configuration")
    assert response.status_code == 302
    assert options.get("OidcEnabled") is True and options.get("OidcClientSecret") == "secret"


def test_admin_options_accept_github_with_its_credentials_in_the_same_save(root_client):
    options.reload_from_db()
    response = _options_post(root_client, GitHubOAuthEnabled="on", GitHubClientId="gh-id",
                             GitHubClientSecret="gh-secret")
    assert response.status_code == 302
    assert options.get("GitHubOAuthEnabled") is True


def test_a_preferred_username_taken_in_another_case_becomes_oidc_n(oidc_on, root):
    oidc_on.oidc_claims["preferred_username"] = "ROOT"
    n = next_user_number()
    sign_in(Client(), "oidc")
    assert User.objects.get(oidc_id="oidc-subject-1").username == f"oidc_{n}"
