"""The sign-in pages and their /api twins: home, login, logout, sign-up, password reset, root's forced change."""

import re
import types
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Token, User
from billing.models import Log
from billing.services import option_set
from oneapi_site.config import parse_trusted_proxies
from oneapi_site.lib.timeutil import now_ts
from tests.factories import UserFactory
from tests.helpers import asgi_client, browser_post, logged_in, set_cookies

pytestmark = pytest.mark.django_db

PASSWORD = "password123"  # UserFactory's


@pytest.fixture
def fixed_window():
    """django-ratelimit counts in fixed windows; hold the clock so a test never straddles two."""
    clock = types.SimpleNamespace(time=lambda: 1_700_000_000.0)
    with mock.patch("django_ratelimit.core.time", clock):
        yield


def text(response):
    return response.content.decode()


def form_errors(response):
    form = response.context["form"]
    return {field: " ".join(errors) for field, errors in form.errors.items()}


def six_digit_code():
    return re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)


def reset_link():
    return urlsplit(re.search(r"(\S+/user/reset/\?\S+)", mail.outbox[-1].body).group(1))


# --- Home ------------------------------------------------------------------------------

def test_home_welcomes_with_links_when_there_is_no_content(client):
    html = text(client.get("/"))
    assert 'id="home-welcome"' in html
    assert f'href="{reverse("login")}"' in html and f'href="{reverse("register")}"' in html


def test_home_offers_the_dashboard_to_a_signed_in_user(alice_client):
    html = text(alice_client.get("/"))
    assert 'id="home-dashboard"' in html and 'id="home-login"' not in html


def test_home_content_is_markdown_with_line_breaks_and_sanitised(client):
    option_set(key="HomePageContent", value="Hello <b>world</b>\nsecond **line**<script>alert(1)</script>")
    html = text(client.get("/"))
    assert "Hello <b>world</b><br>\nsecond <strong>line</strong>" in html
    assert "alert(1)" not in html and 'id="home-welcome"' not in html


def test_home_content_that_is_a_url_is_framed(client):
    option_set(key="HomePageContent", value="https://intro.example.com/page?a=1&b=2")
    html = text(client.get("/"))
    assert '<iframe id="home-frame"' in html
    assert 'src="https://intro.example.com/page?a=1&amp;b=2"' in html


def test_a_javascript_url_is_not_framed(client):
    option_set(key="HomePageContent", value="javascript:alert(1)")
    html = text(client.get("/"))
    assert "<iframe" not in html and "javascript:alert(1)" in html


def test_the_notice_is_rendered_as_html_like_the_footer(client):
    option_set(key="Notice", value="Maintenance <i>tonight</i>")
    html = text(client.get("/"))
    assert 'id="notice"' in html and "Maintenance <i>tonight</i>" in html


# --- Login ------------------------------------------------------------------------------

def test_login_page_renders_with_the_oauth_partial(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert "accounts/_oauth_buttons.html" in [t.name for t in response.templates]
    assert 'id="login-form"' in text(response) and "csrfmiddlewaretoken" in text(response)


def test_login_signs_in_and_goes_to_the_dashboard(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    assert int(client.session["_auth_user_id"]) == alice.pk


def test_login_accepts_an_email(client):
    carol = UserFactory(username="carol", email="carol@example.com")
    client.post(reverse("login"), {"username": "carol@example.com", "password": PASSWORD})
    assert int(client.session["_auth_user_id"]) == carol.pk


def test_a_username_that_looks_like_an_address_does_not_lock_its_owner_out(client):
    # Anyone may sign up as "c@qq.com" (12 characters fit); the address's owner still signs in with it.
    carol = UserFactory(username="carol", email="c@qq.com")
    squatter = UserFactory(username="c@qq.com", password="other-pass-1")
    client.post(reverse("login"), {"username": "c@qq.com", "password": PASSWORD})
    assert int(client.session["_auth_user_id"]) == carol.pk
    other = Client()
    other.post(reverse("login"), {"username": "c@qq.com", "password": "other-pass-1"})
    assert int(other.session["_auth_user_id"]) == squatter.pk


def test_a_wrong_password_and_an_unknown_user_get_the_same_message(client, alice):
    wrong = client.post(reverse("login"), {"username": "alice", "password": "not-it"})
    unknown = client.post(reverse("login"), {"username": "nobody", "password": "not-it"})
    assert wrong.status_code == unknown.status_code == 200
    assert form_errors(wrong) == form_errors(unknown) == {"__all__": "Wrong username or password."}
    assert "_auth_user_id" not in client.session


def test_login_refuses_a_disabled_user(client):
    UserFactory(username="dave", status=User.Status.DISABLED)
    response = client.post(reverse("login"), {"username": "dave", "password": PASSWORD})
    assert "disabled" in form_errors(response)["__all__"]
    assert "_auth_user_id" not in client.session


def test_login_is_refused_when_password_login_is_off(client, alice):
    option_set(key="PasswordLoginEnabled", value="false")
    assert 'id="password-login-off"' in text(client.get(reverse("login")))
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200 and "turned off" in text(response)
    assert "_auth_user_id" not in client.session


def test_login_follows_a_safe_next(client, alice):
    response = client.post(reverse("login") + "?next=/token/", {"username": "alice", "password": PASSWORD})
    assert response["Location"] == "/token/"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "http://testserver.evil.example/",
                                    "javascript:alert(1)"])
def test_login_ignores_a_next_that_leaves_the_site(client, alice, target):
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD, "next": target})
    assert response["Location"] == reverse("dashboard")


@pytest.mark.parametrize("target", ["0", "logout", "token"])
def test_login_ignores_a_next_that_is_no_path(client, alice, target):
    # redirect() reads such a word as a view name: "logout" sent the user there, "0" was a 500.
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD, "next": target})
    assert response["Location"] == reverse("dashboard")


def login_form_html(response):
    html = text(response)
    return html[html.index('id="login-form"'):html.index("</form>", html.index('id="login-form"'))]


def test_the_login_form_carries_a_safe_next_only(client):
    assert 'name="next" value="/log/"' in login_form_html(client.get(reverse("login") + "?next=/log/"))
    assert 'name="next"' not in login_form_html(client.get(reverse("login") + "?next=https://evil.example/"))


def test_a_signed_in_user_visiting_login_goes_on(alice_client):
    assert alice_client.get(reverse("login"))["Location"] == reverse("dashboard")


def test_login_needs_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    refused = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert refused.status_code == 403
    token = client.get(reverse("login")).context["csrf_token"]
    accepted = client.post(reverse("login"), {"username": "alice", "password": PASSWORD,
                                              "csrfmiddlewaretoken": str(token)})
    assert accepted.status_code == 302


def test_a_signed_in_user_who_gets_disabled_is_out_at_the_next_request(alice_client, alice):
    assert alice_client.get("/").wsgi_request.user == alice
    User.objects.filter(pk=alice.pk).update(status=User.Status.DISABLED)
    response = alice_client.get("/")
    assert not response.wsgi_request.user.is_authenticated
    assert 'id="home-login"' in text(response)
    assert alice_client.get(reverse("dashboard"))["Location"].startswith(reverse("login"))


# --- Logout -----------------------------------------------------------------------------

def test_logout_asks_on_get_and_logs_out_on_post(alice_client):
    page = alice_client.get(reverse("logout"))
    assert page.status_code == 200 and 'id="logout-form"' in text(page)
    assert "_auth_user_id" in alice_client.session
    response = alice_client.post(reverse("logout"))
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert "_auth_user_id" not in alice_client.session


def test_logout_needs_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("logout")).status_code == 403
    assert "_auth_user_id" in client.session


# --- Register ---------------------------------------------------------------------------

def register_data(**overrides):
    data = {"username": "erin", "password": "s3cret-pass", "password2": "s3cret-pass", "aff_code": ""}
    data.update(overrides)
    return data


def test_register_page_prefills_the_invitation_code(client):
    html = text(client.get(reverse("register") + "?aff=AbC1"))
    assert 'name="aff_code"' in html and 'value="AbC1"' in html
    assert 'name="email"' not in html  # no verification: no address asked


def test_register_creates_the_account_logs_in_and_goes_to_the_dashboard(client):
    option_set(key="QuotaForNewUser", value="5000")
    response = client.post(reverse("register"), register_data())
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    user = User.objects.get(username="erin")
    assert int(client.session["_auth_user_id"]) == user.pk
    assert user.quota == 5000 and Log.objects.filter(user_id=user.pk, type=Log.Type.SYSTEM, quota=5000).exists()
    assert Token.objects.filter(user=user, name="default").exists()


def test_register_with_an_invitation_rewards_both(client, alice):
    option_set(key="QuotaForInvitee", value="300")
    option_set(key="QuotaForInviter", value="700")
    client.post(reverse("register"), register_data(aff_code=alice.aff_code))
    erin = User.objects.get(username="erin")
    assert erin.inviter_id == alice.pk and erin.quota == 300
    assert Log.objects.filter(user_id=alice.pk, type=Log.Type.SYSTEM, quota=700).count() == 1


@pytest.mark.parametrize("overrides,field", [
    ({"password2": "other-pass"}, "password2"),
    ({"password": "password", "password2": "password"}, "password"),
    ({"username": "alice"}, "username"),
    ({"username": "a" * 13}, "username"),
])
def test_register_shows_errors_on_the_field(client, alice, overrides, field):
    response = client.post(reverse("register"), register_data(**overrides))
    assert response.status_code == 200
    assert field in form_errors(response)
    assert User.objects.count() == 2  # root and alice


@pytest.mark.parametrize("switch", ["RegisterEnabled", "PasswordRegisterEnabled"])
def test_register_is_closed_by_either_switch(client, switch):
    option_set(key=switch, value="false")
    assert 'id="register-closed"' in text(client.get(reverse("register")))
    assert client.post(reverse("register"), register_data()).status_code == 403
    assert not User.objects.filter(username="erin").exists()


def test_register_with_email_verification_sends_and_checks_the_code(client):
    option_set(key="EmailVerificationEnabled", value="true")
    html = text(client.get(reverse("register")))
    assert 'id="send-code"' in html and 'name="verification_code"' in html
    sent = client.post(reverse("register"), {**register_data(), "email": "erin@example.com", "send_code": "1"})
    assert sent.status_code == 200 and len(mail.outbox) == 1
    assert 'value="erin@example.com"' in text(sent) and 'value="erin"' in text(sent)
    assert "s3cret-pass" not in text(sent)
    code = six_digit_code()
    wrong = client.post(reverse("register"), {**register_data(), "email": "erin@example.com",
                                              "verification_code": "x" * 6})
    assert "verification_code" in form_errors(wrong)
    done = client.post(reverse("register"), {**register_data(), "email": "erin@example.com",
                                             "verification_code": code})
    assert done.status_code == 302
    assert User.objects.get(username="erin").email == "erin@example.com"


def test_register_send_code_enforces_the_domain_whitelist(client):
    option_set(key="EmailVerificationEnabled", value="true")
    option_set(key="EmailDomainRestrictionEnabled", value="true")
    option_set(key="EmailDomainWhitelist", value="good.example")
    response = client.post(reverse("register"), {**register_data(), "email": "erin@bad.example", "send_code": "1"})
    assert 'id="send-code-error"' in text(response) and "good.example" in text(response)
    assert mail.outbox == []


def test_register_needs_the_csrf_token(db):
    client = Client(enforce_csrf_checks=True)
    assert client.post(reverse("register"), register_data()).status_code == 403
    assert not User.objects.filter(username="erin").exists()


# --- Password reset ---------------------------------------------------------------------

@pytest.fixture
def alice_with_email(alice):
    alice.email = "alice@example.com"
    alice.save()
    return alice


def test_reset_does_not_tell_whether_an_address_has_an_account(client, alice_with_email):
    known = client.post(reverse("password_reset"), {"email": "alice@example.com"}, follow=True)
    unknown = client.post(reverse("password_reset"), {"email": "nobody@example.com"}, follow=True)
    assert known.redirect_chain == unknown.redirect_chain == [(reverse("login"), 302)]
    said = [[str(m) for m in r.context["messages"]] for r in (known, unknown)]
    assert said[0] == said[1] and "If an account uses this address" in said[0][0]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]


def test_the_reset_link_lets_the_user_choose_a_password_once(client, alice_with_email):
    option_set(key="ServerAddress", value="http://testserver")
    client.post(reverse("password_reset"), {"email": "alice@example.com"})
    link = reset_link()
    url = f"{link.path}?{link.query}"
    page = client.get(url)
    assert page.status_code == 200 and 'id="reset-confirm-form"' in text(page)
    query = dict(p.split("=", 1) for p in link.query.split("&"))
    data = {"email": "alice@example.com", "token": query["token"]}
    weak = client.post(reverse("password_reset_confirm"), {**data, "new_password1": "password",
                                                           "new_password2": "password"})
    assert "new_password1" in form_errors(weak)
    done = client.post(reverse("password_reset_confirm"), {**data, "new_password1": "brand-new-Pass1",
                                                           "new_password2": "brand-new-Pass1"})
    assert done.status_code == 302 and done["Location"] == reverse("login")
    alice_with_email.refresh_from_db()
    assert alice_with_email.check_password("brand-new-Pass1")
    again = client.get(url)
    assert 'id="reset-invalid"' in text(again)
    replay = client.post(reverse("password_reset_confirm"), {**data, "new_password1": "another-Pass22",
                                                             "new_password2": "another-Pass22"})
    assert 'id="reset-invalid"' in text(replay)
    alice_with_email.refresh_from_db()
    assert alice_with_email.check_password("brand-new-Pass1")


def test_the_reset_link_expires(client, alice_with_email):
    client.post(reverse("password_reset"), {"email": "alice@example.com"})
    link = reset_link()
    with mock.patch("accounts.verification.now_ts", return_value=now_ts() + 601):
        assert 'id="reset-invalid"' in text(client.get(f"{link.path}?{link.query}"))


def test_a_made_up_reset_link_is_refused(client, alice_with_email):
    response = client.get(reverse("password_reset_confirm"), {"email": "alice@example.com", "token": "f" * 32})
    assert 'id="reset-invalid"' in text(response)


def test_the_reset_page_rejects_a_malformed_address(client):
    response = client.post(reverse("password_reset"), {"email": "not-an-address"})
    assert "email" in form_errors(response)


# --- Root's default password ------------------------------------------------------------

@pytest.fixture
def default_root(root):
    root.set_password("123456")
    root.save()
    return root


@pytest.fixture
def default_root_client(default_root):
    return logged_in(default_root)


def test_root_logging_in_with_123456_must_change_it_first(client, default_root):
    response = client.post(reverse("login"), {"username": "root", "password": "123456"}, follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("password_change_required"))
    assert 'id="default-password-notice"' in text(response)


@pytest.mark.parametrize("path", ["/", "/dashboard/", "/token/", "/setting/", "/log/", "/admin/",
                                  "/admin/accounts/user/", "/register/"])
def test_every_page_and_the_admin_send_root_to_the_change_page(default_root_client, path):
    response = default_root_client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("password_change_required"))


def test_the_change_page_remembers_where_root_was_going(default_root_client):
    response = default_root_client.get("/admin/accounts/user/")
    assert response["Location"] == reverse("password_change_required") + "?next=%2Fadmin%2Faccounts%2Fuser%2F"


def test_what_root_may_still_reach(default_root_client):
    assert default_root_client.get(reverse("password_change_required")).status_code == 200
    assert default_root_client.get(reverse("logout")).status_code == 200
    assert default_root_client.get("/api/user/self").json()["data"]["username"] == "root"
    assert default_root_client.post("/i18n/setlang/", {"language": "en", "next": "/"}).status_code == 302
    assert default_root_client.post(reverse("logout")).status_code == 302


def test_root_with_another_password_is_not_redirected(root):
    client = Client()
    client.force_login(root)
    assert client.get("/admin/").status_code == 200


def test_other_users_are_never_redirected(db):
    admin = UserFactory(username="ops", role=User.Role.ADMIN)
    admin.set_password("123456")
    admin.save()
    client = Client()
    client.force_login(admin)
    assert client.get("/admin/").status_code == 200


def change(client, old="123456", new="brand-new-Pass1", again=None, **extra):
    return client.post(reverse("password_change_required"), {
        "old_password": old, "new_password1": new, "new_password2": new if again is None else again, **extra})


@pytest.mark.parametrize("kwargs,field", [
    ({"old": "wrong"}, "old_password"),
    ({"new": "123456"}, "new_password1"),
    ({"new": "password"}, "new_password1"),
    ({"again": "something-else"}, "new_password2"),
])
def test_the_change_page_refuses_bad_input(default_root_client, default_root, kwargs, field):
    response = change(default_root_client, **kwargs)
    assert response.status_code == 200 and field in form_errors(response)
    default_root.refresh_from_db()
    assert default_root.check_password("123456")


def test_changing_the_password_keeps_the_session_and_frees_the_pages(default_root_client, default_root):
    response = change(default_root_client, next="/admin/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    default_root.refresh_from_db()
    assert default_root.check_password("brand-new-Pass1")
    assert default_root_client.get("/admin/").status_code == 200
    assert default_root_client.get("/").status_code == 200


def test_the_change_page_needs_a_login(client):
    assert client.get(reverse("password_change_required"))["Location"].startswith(reverse("login"))


def test_the_change_page_needs_the_csrf_token(default_root):
    client = Client(enforce_csrf_checks=True)
    client.force_login(default_root)
    assert change(client).status_code == 403


# --- Rate limit -----------------------------------------------------------------------

def test_login_is_limited_to_20_posts_per_ip(client, fixed_window):
    for _ in range(20):
        assert client.post(reverse("login"), {"username": "x", "password": "y"}).status_code == 200
    limited = client.post(reverse("login"), {"username": "x", "password": "y"})
    assert limited.status_code == 429 and 'id="rate-limited"' in text(limited)
    assert client.get(reverse("login")).status_code == 200  # reading the form is not an attempt
    # Another address has its own budget (for another account: "x" has had its 20 wrong passwords, which
    # locks it whatever the address; see test_sign_in_limits.py).
    other = client.post(reverse("login"), {"username": "w", "password": "y"}, REMOTE_ADDR="198.51.100.9")
    assert other.status_code == 200


@pytest.mark.parametrize("path,data", [
    ("register", {"username": "z", "password": "s3cret-pass", "password2": "s3cret-pass"}),
    ("password_reset", {"email": "nobody@example.com"}),
    ("password_reset_confirm", {"email": "a@example.com", "token": "0" * 32}),
])
def test_the_other_sign_in_pages_share_the_budget(client, fixed_window, path, data):
    for _ in range(20):
        client.post(reverse("login"), {"username": "x", "password": "y"})
    assert client.post(reverse(path), data).status_code == 429


def test_current_password_checks_share_the_budget(alice_client, default_root_client, fixed_window):
    for _ in range(20):
        alice_client.post(reverse("login"), {"username": "x", "password": "y"})
    wrong = {"action": "password", "old_password": "guess", "new_password1": "n3w-Secret-pass",
             "new_password2": "n3w-Secret-pass"}
    assert alice_client.post(reverse("settings"), wrong).status_code == 429
    assert default_root_client.post(reverse("password_change_required"), {
        "old_password": "guess", "new_password1": "n3w-Secret-pass", "new_password2": "n3w-Secret-pass",
    }).status_code == 429


def test_the_console_login_shares_the_budget(client, fixed_window):
    for _ in range(20):
        client.post(reverse("login"), {"username": "x", "password": "y"})
    assert client.post("/admin/login/", {"username": "root", "password": "guess"}).status_code == 429
    assert client.get("/admin/login/").status_code == 200


@pytest.mark.parametrize("method,path,body", [
    ("post", "/api/user/login", {"username": "x", "password": "y"}),
    ("post", "/api/user/register", {"username": "z", "password": "s3cret-pass"}),
    ("get", "/api/verification?email=a@example.com", None),
    ("get", "/api/reset_password?email=a@example.com", None),
    ("post", "/api/user/reset", {"email": "a@example.com", "token": "x"}),
])
def test_the_api_routes_are_limited_in_the_same_budget(client, fixed_window, method, path, body):
    for _ in range(20):
        client.post(reverse("login"), {"username": "x", "password": "y"})
    api = APIClient()
    response = getattr(api, method)(path, body, format="json") if body else api.get(path)
    assert response.status_code == 429
    assert response.json()["success"] is False


# --- Cookies ---------------------------------------------------------------------------

PROXY = "10.0.0.2"  # in TRUSTED_PROXIES below
HTTPS = {"X-Forwarded-Proto": "https"}


@pytest.fixture
def trusted_proxy(settings):
    settings.TRUSTED_PROXIES = parse_trusted_proxies("10.0.0.0/8")


async def page_login(peer: str, *, origin: str, headers: dict):
    """The login form through the whole ASGI application, from `peer`: (the login page, the answer)."""
    async with asgi_client(peer=peer) as client:
        return await browser_post(client, reverse("login"), {"username": "alice", "password": PASSWORD},
                                  origin=origin, headers=headers)


@pytest.mark.django_db(transaction=True)
async def test_cookies_are_secure_behind_https_and_http_only(alice, trusted_proxy):
    login_page, response = await page_login(PROXY, origin="https://testserver", headers=HTTPS)
    assert response.status_code == 302
    session = set_cookies(response)["session"]
    assert session["secure"] is True and session["httponly"] is True
    csrf = set_cookies(login_page)["csrftoken"]
    assert csrf["secure"] is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("peer", ["203.0.113.9", "127.0.0.1"])
async def test_a_client_that_is_no_trusted_proxy_cannot_claim_https(alice, trusted_proxy, peer):
    """X-Forwarded-Proto from anyone but a trusted proxy is ignored: the cookies stay as plain HTTP has them."""
    login_page, response = await page_login(peer, origin="http://testserver", headers=HTTPS)
    assert response.status_code == 302
    assert not set_cookies(response)["session"]["secure"]
    assert not set_cookies(login_page)["csrftoken"]["secure"]


def test_the_forwarded_proto_header_alone_does_not_make_a_request_secure(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD},
                           HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 302
    assert not response.cookies["session"]["secure"]


def test_cookies_are_not_secure_over_plain_http(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert not response.cookies["session"]["secure"]
    assert response.cookies["session"]["httponly"] is True


# --- The /api twins --------------------------------------------------------------------

def test_api_verification_mails_a_code_that_api_register_takes(db):
    option_set(key="EmailVerificationEnabled", value="true")
    api = APIClient()
    assert api.get("/api/verification", {"email": "ivan@example.com"}).json()["success"] is True
    code = six_digit_code()
    body = {"username": "ivan", "password": "s3cret-pass", "email": "ivan@example.com"}
    wrong = api.post("/api/user/register", {**body, "verification_code": "nope"}, format="json").json()
    assert wrong["success"] is False and wrong["field"] == "verification_code"
    assert api.post("/api/user/register", {**body, "verification_code": code}, format="json").json()["success"]
    again = api.post("/api/user/register", {**body, "username": "ivan2", "verification_code": code},
                     format="json").json()
    assert again["success"] is False
    assert User.objects.get(username="ivan").email == "ivan@example.com"


def test_api_verification_refuses_a_domain_off_the_whitelist(db):
    option_set(key="EmailDomainRestrictionEnabled", value="true")
    body = APIClient().get("/api/verification", {"email": "ivan@elsewhere.example"}).json()
    assert body["success"] is False and body["field"] == "email"
    assert mail.outbox == []


def test_api_reset_password_answers_the_same_for_any_address(alice_with_email):
    api = APIClient()
    known = api.get("/api/reset_password", {"email": "alice@example.com"}).json()
    unknown = api.get("/api/reset_password", {"email": "nobody@example.com"}).json()
    assert known == unknown == {"success": True, "message": "", "data": None}
    assert len(mail.outbox) == 1


def test_api_user_reset_returns_a_new_random_password_once(alice_with_email):
    api = APIClient()
    api.get("/api/reset_password", {"email": "alice@example.com"})
    token = re.search(r"token=([0-9a-f]{32})", mail.outbox[-1].body).group(1)
    body = api.post("/api/user/reset", {"email": "alice@example.com", "token": token}, format="json").json()
    assert body["success"] is True and len(body["data"]) == 12
    login = api.post("/api/user/login", {"username": "alice", "password": body["data"]}, format="json").json()
    assert login["success"] is True
    replay = APIClient().post("/api/user/reset", {"email": "alice@example.com", "token": token},
                              format="json").json()
    assert replay["success"] is False


def test_api_register_applies_the_password_validators(db):
    body = APIClient().post("/api/user/register", {"username": "weak", "password": "12345678"},
                            format="json").json()
    assert body["success"] is False and body["field"] == "password"
