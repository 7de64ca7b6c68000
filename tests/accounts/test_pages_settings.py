"""Personal settings: profile, password, management access token, invite link."""

import pytest
from django.test import Client

from accounts.models import User
from accounts.services.users import user_access_token_reset
from billing.services import option_set
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "n3w-Secret-pass"


def error_of(html: str, field: str) -> str:
    assert f'data-testid="error-{field}"' in html, f"no error on {field}"
    return html.split(f'data-testid="error-{field}"')[1].split("</ul>")[0]


def test_page_shows_the_account(alice_client, alice):
    User.objects.filter(pk=alice.pk).update(email="alice@example.com", group="vip", role=User.Role.ADMIN)
    html = alice_client.get("/setting/").content.decode()
    assert "alice@example.com" in html
    assert 'data-testid="settings-group">vip<' in html
    assert 'data-testid="settings-role">Administrator<' in html
    assert 'value="alice"' in html


def test_anonymous_is_sent_to_login(client):
    response = client.get("/setting/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- profile ---------------------------------------------------------------------------------------------


def test_profile_changes_display_name_and_username(alice_client, alice):
    response = alice_client.post("/setting/", {"action": "profile", "username": "alice2", "display_name": "Alice W"})
    assert response.status_code == 302 and response["Location"] == "/setting/"
    alice.refresh_from_db()
    assert (alice.username, alice.display_name) == ("alice2", "Alice W")
    assert alice_client.get("/setting/").status_code == 200  # still signed in


def test_profile_empty_display_name_falls_back_to_username(alice_client, alice):
    alice_client.post("/setting/", {"action": "profile", "username": "alice", "display_name": "  "})
    alice.refresh_from_db()
    assert alice.display_name == "alice"


@pytest.mark.parametrize("data,field,message", [
    ({"username": "alice", "display_name": "d" * 21}, "display_name", "at most 20 characters"),
    ({"username": "a" * 13, "display_name": "x"}, "username", "at most 12 characters"),
    ({"username": "taken", "display_name": "x"}, "username", "This username is taken."),
    ({"username": "   ", "display_name": "x"}, "username", "Enter a username."),
])
def test_profile_refuses_bad_input(alice_client, alice, data, field, message):
    UserFactory(username="taken")
    response = alice_client.post("/setting/", {"action": "profile", **data})
    assert response.status_code == 200
    assert message in error_of(response.content.decode(), field)
    alice.refresh_from_db()
    assert (alice.username, alice.display_name) == ("alice", "alice")


# --- password --------------------------------------------------------------------------------------------


def test_password_change_keeps_the_session(alice_client, alice):
    response = alice_client.post("/setting/", {"action": "password", "old_password": "password123",
                                               "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert alice_client.get("/setting/").status_code == 200  # update_session_auth_hash kept this session


def test_password_change_ends_other_sessions(alice):
    here, elsewhere = Client(), Client()
    here.force_login(alice)
    elsewhere.force_login(alice)
    here.post("/setting/", {"action": "password", "old_password": "password123",
                            "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert elsewhere.get("/setting/").status_code == 302


@pytest.mark.parametrize("data,field,message", [
    ({"old_password": "wrong-one", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
     "old_password", "Your old password was entered incorrectly"),
    ({"old_password": "password123", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD + "x"},
     "new_password2", "didn’t match"),
    ({"old_password": "password123", "new_password1": "short", "new_password2": "short"},
     "new_password2", "too short"),
    ({"old_password": "password123", "new_password1": "password1", "new_password2": "password1"},
     "new_password2", "too common"),
    ({"old_password": "password123", "new_password1": "Very-long-password-123",
      "new_password2": "Very-long-password-123"},
     "new_password2", "8 to 20 characters"),
])
def test_password_change_refuses_bad_input(alice_client, alice, data, field, message):
    response = alice_client.post("/setting/", {"action": "password", **data})
    assert response.status_code == 200
    assert message in error_of(response.content.decode(), field)
    alice.refresh_from_db()
    assert alice.check_password("password123")


# --- access token ----------------------------------------------------------------------------------------


def test_access_token_reset_replaces_the_old_one(alice_client, alice):
    old = user_access_token_reset(user=alice)
    api = Client()
    assert api.get("/api/user/self", HTTP_AUTHORIZATION=old).status_code == 200
    response = alice_client.post("/setting/", {"action": "access_token"})
    html = response.content.decode()
    alice.refresh_from_db()
    assert response.status_code == 200
    assert alice.access_token and alice.access_token != old
    assert f'data-testid="access-token-value" value="{alice.access_token}"' in html
    assert api.get("/api/user/self", HTTP_AUTHORIZATION=old).status_code == 401
    new = api.get("/api/user/self", HTTP_AUTHORIZATION=alice.access_token)
    assert new.status_code == 200 and new.json()["data"]["username"] == "alice"
    # Shown once: the next visit does not show it again.
    assert alice.access_token not in alice_client.get("/setting/").content.decode()


def test_access_token_generated_when_there_was_none(alice_client, alice):
    assert "Generate access token" in alice_client.get("/setting/").content.decode()
    alice_client.post("/setting/", {"action": "access_token"})
    alice.refresh_from_db()
    assert alice.access_token
    assert "Reset access token" in alice_client.get("/setting/").content.decode()


def test_settings_forms_need_the_csrf_token(alice):
    old = user_access_token_reset(user=alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/setting/", {"action": "access_token"}).status_code == 403
    assert client.post("/setting/", {"action": "profile", "username": "x", "display_name": "x"}).status_code == 403
    alice.refresh_from_db()
    assert alice.access_token == old and alice.username == "alice"


def test_unknown_action_is_refused(alice_client, alice):
    response = alice_client.post("/setting/", {"action": "delete_everything"})
    assert response.status_code == 400


# --- invite link -----------------------------------------------------------------------------------------


def test_invite_link_uses_server_address_and_aff_code(alice_client, alice):
    option_set(key="ServerAddress", value="https://api.example.com/")
    html = alice_client.get("/setting/").content.decode()
    assert f'value="https://api.example.com/register/?aff={alice.aff_code}"' in html
    assert 'data-testid="copy-invite-link"' in html


def test_invite_link_makes_a_missing_aff_code(alice_client, alice):
    User.objects.filter(pk=alice.pk).update(aff_code=None)
    html = alice_client.get("/setting/").content.decode()
    alice.refresh_from_db()
    assert alice.aff_code
    assert f"/register/?aff={alice.aff_code}" in html


def test_invited_count(alice_client, alice):
    assert "You have invited 0 users." in alice_client.get("/setting/").content.decode()
    UserFactory(inviter_id=alice.pk)
    assert "You have invited 1 user." in alice_client.get("/setting/").content.decode()
    UserFactory(inviter_id=alice.pk)
    UserFactory(inviter_id=alice.pk + 1000)
    assert "You have invited 2 users." in alice_client.get("/setting/").content.decode()
