"""Turnstile (TurnstileCheckEnabled) is checked with Cloudflare's siteverify, here a local mock, on sign-in,
sign-up, verification codes and password resets, for /api (`?turnstile=`) and the pages (the widget)."""

import logging

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import User
from billing.services import option_set
from oneapi_site import options
from tests.e2e.servers import closed_port_url
from tests.factories import UserFactory
from tests.helpers import logged_in
from tests.mock_turnstile import PATH

pytestmark = pytest.mark.django_db

PASSWORD = "password123"  # UserFactory's
LOGIN = {"username": "alice", "password": PASSWORD}
REGISTER = {"username": "erin", "password": "s3cret-pass"}


@pytest.fixture
def cf(turnstile_on, alice):
    """Turnstile switched on with the mock's keys; alice exists with a known password and address."""
    User.objects.filter(pk=alice.pk).update(email="alice@example.com")
    return turnstile_on


def envelope(response, *, status=200):
    assert response.status_code == status, (response.status_code, response.content)
    return response.json()


# --- /api ----------------------------------------------------------------------------------

API_ROUTES = [
    ("post", "/api/user/login", LOGIN),
    ("post", "/api/user/register", REGISTER),
    ("get", "/api/verification", {"email": "new@example.com"}),
    ("get", "/api/reset_password", {"email": "alice@example.com"}),
]


def call(client, method, path, body, token=None):
    """one-api's front end sends the token as `?turnstile=`, on GETs and POSTs alike."""
    query = {"turnstile": token} if token is not None else {}
    if method == "get":
        return client.get(path, {**body, **query})
    return client.post(f"{path}?turnstile={token}" if query else path, body, format="json")


@pytest.mark.parametrize("method,path,body", API_ROUTES)
def test_api_routes_refuse_without_a_token_and_do_nothing(cf, method, path, body):
    response = envelope(call(APIClient(), method, path, body), status=403)
    assert response["success"] is False and "Turnstile" in response["message"]
    assert not User.objects.filter(username="erin").exists() and mail.outbox == []
    assert cf.requests == []  # nothing to ask Cloudflare about


@pytest.mark.parametrize("method,path,body", API_ROUTES)
def test_api_routes_pass_with_a_good_token(cf, method, path, body):
    response = envelope(call(APIClient(), method, path, body, token=cf.issue()))
    assert response["success"] is True, response


@pytest.mark.parametrize("method,path,body", API_ROUTES)
def test_api_routes_refuse_a_made_up_token(cf, method, path, body):
    response = envelope(call(APIClient(), method, path, body, token="made-up"), status=403)
    assert "failed" in response["message"]
    assert not User.objects.filter(username="erin").exists() and mail.outbox == []


def test_what_is_sent_to_siteverify(cf):
    token = cf.issue()
    APIClient().post(f"/api/user/login?turnstile={token}", LOGIN, format="json", REMOTE_ADDR="198.51.100.23")
    [sent] = cf.requests
    assert sent.content_type.startswith("application/x-www-form-urlencoded")
    assert sent.form == {"secret": cf.secret, "response": token, "remoteip": "198.51.100.23"}


def test_a_token_is_good_once(cf):
    token = cf.issue()
    assert envelope(call(APIClient(), "post", "/api/user/login", LOGIN, token))["success"] is True
    again = envelope(call(APIClient(), "post", "/api/user/login", LOGIN, token), status=403)
    assert "failed" in again["message"]


def test_a_session_that_passed_is_not_asked_again(cf):
    """one-api verifies once per session."""
    api = APIClient()
    envelope(api.get("/api/verification", {"email": "new@example.com", "turnstile": cf.issue()}))
    assert envelope(api.post("/api/user/login", LOGIN, format="json"))["success"] is True
    assert len(cf.requests) == 1
    # Another client (no session) is asked.
    envelope(APIClient().post("/api/user/login", LOGIN, format="json"), status=403)


def test_turnstile_off_asks_nothing(cf):
    option_set(key="TurnstileCheckEnabled", value="false")
    assert envelope(APIClient().post("/api/user/login", LOGIN, format="json"))["success"] is True
    assert cf.requests == []


# --- Siteverify failing: refuse (fail closed), never a 500, never a secret in the log --------------------

@pytest.mark.parametrize("failure", ["unreachable", "http 500", "not json", "json but no verdict"])
def test_when_siteverify_fails_the_request_is_refused_clearly(cf, settings, caplog, failure):
    if failure == "unreachable":
        settings.TURNSTILE_VERIFY_URL = closed_port_url("http", "/turnstile/v0/siteverify")
    elif failure == "http 500":
        cf.fail(PATH, status=500, body=b'{"error": "internal"}')
    elif failure == "not json":
        cf.fail(PATH, status=200, body=b"<html>gateway timeout</html>")
    else:
        cf.fail(PATH, status=200, body=b'["what"]')
    token = cf.issue()
    with caplog.at_level(logging.DEBUG):
        response = envelope(call(APIClient(), "post", "/api/user/login", LOGIN, token), status=403)
    assert "could not be verified" in response["message"]
    assert "_auth_user_id" not in APIClient().session  # not signed in
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "turnstile" in logged and cf.secret not in logged and token not in logged
    assert not any(r.exc_info for r in caplog.records)


def test_a_wrong_secret_is_reported_as_a_setup_problem(cf):
    option_set(key="TurnstileSecretKey", value="not-the-secret")
    response = envelope(call(APIClient(), "post", "/api/user/login", LOGIN, cf.issue()), status=403)
    assert "administrator" in response["message"]


def test_the_refusal_speaks_the_users_language(cf):
    response = APIClient().post("/api/user/login", LOGIN, format="json", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert "人机验证" in response["message"]


# --- Options --------------------------------------------------------------------------------

def test_enabling_is_refused_until_site_key_and_secret_are_set(root, settings):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=root.access_token)
    body = api.put("/api/option/", {"key": "TurnstileCheckEnabled", "value": "true"}, format="json").json()
    assert body["success"] is False and "TurnstileSiteKey" in body["message"]
    assert options.get("TurnstileCheckEnabled") is False
    api.put("/api/option/", {"key": "TurnstileSiteKey", "value": "site"}, format="json")
    assert api.put("/api/option/", {"key": "TurnstileCheckEnabled", "value": "true"},
                   format="json").json()["success"] is False
    api.put("/api/option/", {"key": "TurnstileSecretKey", "value": "secret"}, format="json")
    assert api.put("/api/option/", {"key": "TurnstileCheckEnabled", "value": "true"},
                   format="json").json()["success"] is True
    # Clearing a key while it is on would refuse every sign-in, root's included.
    body = api.put("/api/option/", {"key": "TurnstileSecretKey", "value": ""}, format="json").json()
    assert body["success"] is False and options.get("TurnstileSecretKey") == "secret"


def test_the_console_refuses_enabling_it_without_keys(root):
    from tests.billing.test_admin_billing import _options_post

    response = _options_post(logged_in(root), TurnstileCheckEnabled="on")
    assert response.status_code == 200 and "TurnstileSecretKey" in response.content.decode()
    assert options.get("TurnstileCheckEnabled") is False


def test_status_announces_it_with_the_site_key(cf):
    data = APIClient().get("/api/status").json()["data"]
    assert data["turnstile_check"] is True and data["turnstile_site_key"] == cf.site_key


# --- Pages ----------------------------------------------------------------------------------

def widget_shown(response, cf) -> bool:
    html = response.content.decode()
    return (f'class="cf-turnstile" id="turnstile-widget" data-sitekey="{cf.site_key}"' in html
            and "challenges.cloudflare.com/turnstile/v0/api.js" in html)


@pytest.mark.parametrize("name", ["login", "register", "password_reset"])
def test_the_pages_show_the_widget(cf, client, name):
    assert widget_shown(client.get(reverse(name)), cf)
    option_set(key="TurnstileCheckEnabled", value="false")
    assert not widget_shown(client.get(reverse(name)), cf)


def test_page_login_without_the_widgets_token_is_refused(cf, client):
    response = client.post(reverse("login"), LOGIN)
    assert response.status_code == 200 and "Turnstile" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_page_login_with_the_widgets_token_signs_in_and_the_session_is_not_asked_again(cf, client):
    response = client.post(reverse("login"), {**LOGIN, "cf-turnstile-response": cf.issue()})
    assert response.status_code == 302 and "_auth_user_id" in client.session
    client.post(reverse("logout"))  # a new session: asked again
    assert widget_shown(client.get(reverse("login")), cf)
    good = cf.issue()
    client.post(reverse("password_reset"), {"email": "alice@example.com", "cf-turnstile-response": good})
    assert len(mail.outbox) == 1
    assert not widget_shown(client.get(reverse("login")), cf)  # passed in this session
    assert client.post(reverse("login"), LOGIN).status_code == 302


def test_page_register_needs_the_token(cf, client):
    data = {"username": "erin", "password": "s3cret-pass", "password2": "s3cret-pass"}
    refused = client.post(reverse("register"), {**data, "cf-turnstile-response": "made-up"})
    assert refused.status_code == 200 and "failed" in refused.content.decode()
    assert not User.objects.filter(username="erin").exists()
    done = client.post(reverse("register"), {**data, "cf-turnstile-response": cf.issue()})
    assert done.status_code == 302 and User.objects.filter(username="erin").exists()


def test_page_register_send_code_needs_the_token(cf, client):
    option_set(key="EmailVerificationEnabled", value="true")
    data = {"username": "erin", "password": "s3cret-pass", "password2": "s3cret-pass",
            "email": "erin@example.com", "send_code": "1"}
    refused = client.post(reverse("register"), data)
    assert 'id="send-code-error"' in refused.content.decode() and mail.outbox == []
    client.post(reverse("register"), {**data, "cf-turnstile-response": cf.issue()})
    assert len(mail.outbox) == 1


def test_page_reset_needs_the_token(cf, client):
    refused = client.post(reverse("password_reset"), {"email": "alice@example.com"})
    assert refused.status_code == 200 and "Turnstile" in refused.content.decode() and mail.outbox == []


def test_page_refuses_clearly_when_siteverify_is_unreachable(cf, client, settings):
    settings.TURNSTILE_VERIFY_URL = closed_port_url("http", "/turnstile/v0/siteverify")
    response = client.post(reverse("login"), {**LOGIN, "cf-turnstile-response": cf.issue()})
    assert response.status_code == 200 and "could not be verified" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_console_login_sends_people_to_the_page_with_the_widget(cf, root):
    client = Client()
    for response in (client.get("/admin/login/?next=/admin/accounts/user/"),
                     client.post("/admin/login/", {"username": "root", "password": "root-pass-Secure1"})):
        assert response.status_code == 302 and response["Location"].startswith(reverse("login") + "?next=")
    assert "_auth_user_id" not in client.session
    # Once the session passed on the page, the console is reachable.
    client.post(reverse("login"), {"username": "root", "password": "root-pass-Secure1",
                                   "cf-turnstile-response": cf.issue()})
    assert client.get("/admin/").status_code == 200


def test_a_disabled_user_with_a_good_token_still_gets_no_session(cf, client):
    UserFactory(username="dora", status=User.Status.DISABLED)
    client.post(reverse("login"), {"username": "dora", "password": PASSWORD, "cf-turnstile-response": cf.issue()})
    assert "_auth_user_id" not in client.session
