"""One set of rules for usernames and passwords, and one way accounts open, whichever door is used."""

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Token, User
from accounts.services.oauth import user_oauth_register
from accounts.services.signup import user_register, user_signup
from billing.models import Log
from billing.services import option_set
from tests.helpers import logged_in

pytestmark = pytest.mark.django_db

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
USERNAME_TOO_LONG = "用户名最多 12 个字符。"
PASSWORD_TOO_LONG = "密码长度须为 8 到 20 个字符。"
LONG_NAME = "n" * 13
LONG_PASSWORD = "Long-enough-but-21-ch"  # 21 characters, past one-api's 20


def api_message(response) -> str:
    body = response.json()
    assert body["success"] is False, body
    return body["message"]


def page_text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


# --- The same rule says the same thing at every door ---------------------------------------------


def test_a_long_username_is_refused_in_the_same_words_everywhere(alice, root):
    seen = {
        "sign-up page": page_text(Client().post(reverse("register"), {
            "username": LONG_NAME, "password": "s3cret-pass", "password2": "s3cret-pass", "aff_code": ""}, **ZH)),
        "sign-up api": api_message(APIClient().post("/api/user/register", {
            "username": LONG_NAME, "password": "s3cret-pass"}, format="json", **ZH)),
        "settings page": page_text(logged_in(alice).post("/setting/", {
            "action": "profile", "username": LONG_NAME, "display_name": "x"}, **ZH)),
        "own profile api": api_message(_api(alice).put("/api/user/self", {"username": LONG_NAME}, format="json",
                                                       **ZH)),
        "admin api, edit": api_message(_api(root).put("/api/user/", {"id": alice.pk, "username": LONG_NAME},
                                                      format="json", **ZH)),
        "admin api, create": api_message(_api(root).post("/api/user/", {
            "username": LONG_NAME, "password": "s3cret-pass"}, format="json", **ZH)),
    }
    assert {door: USERNAME_TOO_LONG in text for door, text in seen.items()} == dict.fromkeys(seen, True)
    assert not User.objects.filter(username=LONG_NAME).exists()


def test_a_long_password_is_refused_in_the_same_words_everywhere(alice, root):
    root_console = logged_in(root)
    seen = {
        "sign-up page": page_text(Client().post(reverse("register"), {
            "username": "erin", "password": LONG_PASSWORD, "password2": LONG_PASSWORD, "aff_code": ""}, **ZH)),
        "sign-up api": api_message(APIClient().post("/api/user/register", {
            "username": "erin", "password": LONG_PASSWORD}, format="json", **ZH)),
        "settings page": page_text(logged_in(alice).post("/setting/", {
            "action": "password", "old_password": "password123", "new_password1": LONG_PASSWORD,
            "new_password2": LONG_PASSWORD}, **ZH)),
        "own profile api": api_message(_api(alice).put("/api/user/self", {"password": LONG_PASSWORD},
                                                       format="json", **ZH)),
        "admin api, edit": api_message(_api(root).put("/api/user/", {"id": alice.pk, "password": LONG_PASSWORD},
                                                      format="json", **ZH)),
        "console, new user": page_text(root_console.post(reverse("admin:accounts_user_add"), {
            "username": "erin", "display_name": "", "email": "", "password1": LONG_PASSWORD,
            "password2": LONG_PASSWORD, "role": "1", "group": "default", "quota": "0"}, **ZH)),
        "console, edit": page_text(root_console.post(reverse("admin:accounts_user_change", args=[alice.pk]), {
            "display_name": alice.display_name, "email": "", "role": "1", "status": "1", "group": "default",
            "quota": str(alice.quota), "new_password": LONG_PASSWORD}, **ZH)),
    }
    assert {door: PASSWORD_TOO_LONG in text for door, text in seen.items()} == dict.fromkeys(seen, True)
    assert not User.objects.filter(username="erin").exists()
    alice.refresh_from_db()
    assert alice.check_password("password123")


def _api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- Every way in opens the same account ---------------------------------------------------------


WAYS_IN = {
    "password sign-up": lambda aff: user_signup(username="erin", password="s3cret-pass", aff_code=aff),
    "admin's POST /api/user/": lambda aff: user_register(username="erin", password="s3cret-pass", aff_code=aff),
    "GitHub": lambda aff: user_oauth_register(id_field="github_id", external_id="4242", username="github_9",
                                              aff_code=aff),
    "OIDC": lambda aff: user_oauth_register(id_field="oidc_id", external_id="sub-1", username="oidc_9",
                                            aff_code=aff),
}


@pytest.mark.parametrize("way", WAYS_IN)
def test_every_way_in_gives_the_gifts_the_invitation_rewards_and_a_default_token(way, alice):
    option_set(key="QuotaForNewUser", value="100")
    option_set(key="QuotaForInvitee", value="300")
    option_set(key="QuotaForInviter", value="700")
    before = alice.quota
    user = WAYS_IN[way](alice.aff_code)
    assert (user.inviter_id, user.quota) == (alice.pk, 400)
    assert User.objects.get(pk=user.pk).quota == 400
    assert sorted(Log.objects.filter(user_id=user.pk, type=Log.Type.SYSTEM).values_list("quota", flat=True)) == [
        100, 300]
    alice.refresh_from_db()
    assert alice.quota == before + 700
    assert list(Log.objects.filter(user_id=alice.pk, type=Log.Type.SYSTEM).values_list("quota", flat=True)) == [700]
    token = Token.objects.get(user=user)
    assert (token.name, token.unlimited_quota, token.expired_time) == ("default", True, -1)


@pytest.mark.parametrize("way", WAYS_IN)
def test_an_unknown_invitation_code_is_ignored_by_every_way_in(way):
    user = WAYS_IN[way]("nope")
    assert user.inviter_id == 0 and user.quota == 0
    assert not Log.objects.exists()
    assert Token.objects.filter(user=user, name="default").count() == 1
