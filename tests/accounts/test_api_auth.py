"""Public routes, login, registration and how the management API authenticates."""

import pytest
from rest_framework.test import APIClient

from accounts.models import Token, User
from accounts.services.users import user_access_token_reset
from billing.models import Log
from billing.services import option_set
from oneapi_site import options
from tests.api_fixtures import envelope
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_status_is_public_and_reports_options(anon):
    option_set(key="SystemName", value="Acme AI")
    option_set(key="TopUpLink", value="https://pay.example.com")
    data = envelope(anon.get("/api/status"))
    assert data["system_name"] == "Acme AI"
    assert data["top_up_link"] == "https://pay.example.com"
    assert data["quota_per_unit"] == 500000
    assert data["display_in_currency"] is True
    assert data["email_verification"] is False
    assert data["github_oauth"] is False
    assert data["oidc"] is False
    assert data["server_address"] == "http://localhost:3000"
    assert isinstance(data["start_time"], int) and data["version"]


@pytest.mark.parametrize("path,key", [("/api/notice", "Notice"), ("/api/about", "About"),
                                      ("/api/home_page_content", "HomePageContent")])
def test_text_pages_return_their_option(anon, path, key):
    option_set(key=key, value=f"# {key} text")
    assert envelope(anon.get(path)) == f"# {key} text"


def test_no_credentials_is_401(anon):
    response = anon.get("/api/user/self")
    assert response.status_code == 401
    assert response.json()["success"] is False


def test_unknown_access_token_is_401(anon):
    anon.credentials(HTTP_AUTHORIZATION="not-a-real-token")
    assert anon.get("/api/user/self").status_code == 401


def test_access_token_authenticates(alice, api_as):
    data = envelope(api_as(alice).get("/api/user/self"))
    assert data["username"] == "alice"


def test_bearer_access_token_authenticates(alice, api_as):
    data = envelope(api_as(alice, bearer=True).get("/api/user/self"))
    assert data["id"] == alice.pk


def test_common_user_is_403_on_admin_routes(alice_api):
    for path in ("/api/user/", "/api/channel/", "/api/redemption/", "/api/log/", "/api/group/"):
        response = alice_api.get(path)
        assert response.status_code == 403, path
        assert response.json()["success"] is False


def test_admin_is_403_on_root_routes(staff_api):
    assert staff_api.get("/api/option/").status_code == 403


def test_disabled_user_access_token_is_refused(alice, api_as):
    client = api_as(alice)
    User.objects.filter(pk=alice.pk).update(status=User.Status.DISABLED)
    assert client.get("/api/user/self").status_code == 401


def test_malformed_json_is_400(alice_api):
    response = alice_api.generic("POST", "/api/token/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["success"] is False


def test_login_sets_a_session_that_authenticates(alice, anon):
    data = envelope(anon.post("/api/user/login", {"username": "alice", "password": "password123"}, format="json"))
    assert data == {"id": alice.pk, "username": "alice", "display_name": "alice", "role": 1, "status": 1,
                    "group": "default"}
    assert envelope(anon.get("/api/user/self"))["username"] == "alice"


def test_login_accepts_an_email_in_the_username_field(anon):
    UserFactory(username="carol", email="carol@example.com")
    data = envelope(anon.post("/api/user/login", {"username": "carol@example.com", "password": "password123"},
                              format="json"))
    assert data["username"] == "carol"


def test_login_with_a_wrong_password_fails(alice, anon):
    body = envelope(anon.post("/api/user/login", {"username": "alice", "password": "wrong-pass"}, format="json"),
                    success=False)
    assert "wrong username or password" in body["message"]
    assert anon.get("/api/user/self").status_code == 401


def test_login_refuses_a_disabled_user(anon):
    UserFactory(username="dave", status=User.Status.DISABLED)
    envelope(anon.post("/api/user/login", {"username": "dave", "password": "password123"}, format="json"),
             success=False)


def test_login_honours_password_login_enabled(alice, anon):
    option_set(key="PasswordLoginEnabled", value=False)
    body = envelope(anon.post("/api/user/login", {"username": "alice", "password": "password123"}, format="json"),
                    success=False)
    assert "turned off" in body["message"]


def test_login_and_session_writes_need_no_csrf_token_but_refuse_another_site(alice):
    """The whole rule is in test_api_cross_site.py; a script's cookie writes (no browser headers) go through."""
    client = APIClient(enforce_csrf_checks=True)
    envelope(client.post("/api/user/login", {"username": "alice", "password": "password123"}, format="json"))
    envelope(client.post("/api/token/", {"name": "x"}, format="json"))
    response = client.post("/api/token/", {"name": "y"}, format="json", HTTP_SEC_FETCH_SITE="cross-site")
    assert response.status_code == 403
    assert "another site" in response.json()["message"]
    assert list(Token.objects.filter(user=alice, name__in=["x", "y"]).values_list("name", flat=True)) == ["x"]


def test_access_token_writes_need_no_csrf_token(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION="Bearer " + user_access_token_reset(user=alice))
    envelope(client.post("/api/token/", {"name": "x"}, format="json"))


def test_logout_ends_the_session(alice, anon):
    envelope(anon.post("/api/user/login", {"username": "alice", "password": "password123"}, format="json"))
    envelope(anon.get("/api/user/logout"))
    assert anon.get("/api/user/self").status_code == 401


def test_register_creates_user_with_gift_log_and_default_token(anon):
    option_set(key="QuotaForNewUser", value="5000")
    envelope(anon.post("/api/user/register", {"username": "erin", "password": "s3cret-pass"}, format="json"))
    user = User.objects.get(username="erin")
    assert user.quota == 5000 and user.check_password("s3cret-pass")
    gift = Log.objects.get(user_id=user.pk)
    assert gift.type == Log.Type.SYSTEM and gift.quota == 5000
    token = Token.objects.get(user=user)
    assert token.name == "default" and token.unlimited_quota and token.expired_time == -1


def test_register_with_an_aff_code_rewards_both_sides(alice, anon):
    option_set(key="QuotaForInvitee", value="300")
    option_set(key="QuotaForInviter", value="700")
    envelope(anon.post("/api/user/register", {"username": "frank", "password": "s3cret-pass",
                                              "aff_code": alice.aff_code}, format="json"))
    frank = User.objects.get(username="frank")
    assert frank.inviter_id == alice.pk and frank.quota == 300
    alice.refresh_from_db()
    assert alice.quota == 1_000_000 + 700
    assert Log.objects.filter(user_id=alice.pk, type=Log.Type.SYSTEM, quota=700).count() == 1
    assert Log.objects.filter(user_id=frank.pk, type=Log.Type.SYSTEM, quota=300).count() == 1


def test_register_names_the_field_in_error(alice, anon):
    body = envelope(anon.post("/api/user/register", {"username": "alice", "password": "s3cret-pass"}, format="json"),
                    success=False)
    assert body["field"] == "username"
    body = envelope(anon.post("/api/user/register", {"username": "gina", "password": "short"}, format="json"),
                    success=False)
    assert body["field"] == "password"
    assert not User.objects.filter(username="gina").exists()


def test_register_is_refused_when_closed(anon):
    option_set(key="RegisterEnabled", value="false")
    envelope(anon.post("/api/user/register", {"username": "hank", "password": "s3cret-pass"}, format="json"),
             success=False)
    assert not User.objects.filter(username="hank").exists()


def test_register_requires_a_code_when_email_verification_is_on(anon):
    option_set(key="EmailVerificationEnabled", value="true")
    body = envelope(anon.post("/api/user/register", {"username": "ivan", "password": "s3cret-pass",
                                                     "email": "ivan@example.com"}, format="json"), success=False)
    assert body["field"] == "verification_code"
    assert not User.objects.filter(username="ivan").exists()
    assert options.get("EmailVerificationEnabled") is True


def test_an_unknown_api_path_is_a_json_404(anon):
    response = anon.get("/api/no/such/route")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (GET /api/no/such/route)"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_an_unknown_api_path_is_a_json_404_for_writes_too(method):
    # Django's CSRF check ran before the catch-all and answered its HTML 403 page to a POST on an unknown
    # /api path, a script's access token or not; one-api answers the same 404 as for a GET.
    client = APIClient(enforce_csrf_checks=True)
    response = getattr(client, method)("/api/channel/25/keys/abc/enable", HTTP_AUTHORIZATION="some-token")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"Invalid URL ({method.upper()} /api/channel/25/keys/abc/enable)"


def test_routes_answer_with_and_without_a_trailing_slash(root_api):
    assert envelope(root_api.get("/api/user")) == envelope(root_api.get("/api/user/"))
    envelope(root_api.get("/api/user/self/"))


def test_register_takes_the_body_one_apis_register_page_sends_without_an_invite(anon):
    """web/default's RegisterForm posts its inputs (password2 too) and `aff_code: null` when there is no invite."""
    envelope(anon.post("/api/user/register?turnstile=", {
        "username": "gina", "password": "s3cret-pass", "password2": "s3cret-pass", "email": "",
        "verification_code": "", "aff_code": None}, format="json"))
    gina = User.objects.get(username="gina")
    assert gina.inviter_id == 0 and gina.check_password("s3cret-pass")


def test_register_reads_every_optional_text_sent_as_null_as_empty(anon):
    envelope(anon.post("/api/user/register", {"username": "hank", "password": "s3cret-pass", "display_name": None,
                                              "email": None, "verification_code": None, "aff_code": None},
                       format="json"))
    hank = User.objects.get(username="hank")
    assert hank.email == "" and hank.display_name in ("", "hank")


def test_register_still_refuses_a_null_username(anon):
    body = envelope(anon.post("/api/user/register", {"username": None, "password": "s3cret-pass"}, format="json"),
                    success=False)
    assert body["field"] == "username"
    assert not User.objects.filter(username="").exists()


def test_a_bad_access_token_is_401_and_a_missing_role_403_each_with_the_envelope(anon, alice_api):
    anon.credentials(HTTP_AUTHORIZATION="not-a-real-token")
    assert envelope(anon.get("/api/user/self"), success=False, status=401)["message"] == "invalid access token"
    assert envelope(alice_api.get("/api/channel/"), success=False, status=403)["message"]
