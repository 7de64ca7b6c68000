"""Hardening of the self-service pages that no single feature's tests own: caching of secrets,
what error reports may print, and the pages without JavaScript."""

import pytest
from django.urls import reverse

from tests.factories import TokenFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["tokens", "settings"])
def test_pages_that_show_keys_are_not_kept_by_any_cache(alice_client, alice, name):
    TokenFactory(user=alice)
    response = alice_client.get(reverse(name))
    assert response.status_code == 200
    cache_control = response["Cache-Control"]
    assert "no-store" in cache_control and "private" in cache_control


@pytest.mark.parametrize("name, fields", [
    ("settings", {"action": "password", "old_password": "password123", "new_password1": "n3w-Secret-pass",
                  "new_password2": "n3w-Secret-pass"}),
    ("topup", {"key": "a" * 32}),
])
def test_error_reports_never_print_passwords_or_redemption_codes(alice_client, name, fields):
    from django.views.debug import SafeExceptionReporterFilter

    response = alice_client.post(reverse(name), fields)
    shown = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    for field, value in fields.items():
        if field != "action":
            assert shown[field] != value, field


def test_without_javascript_every_key_on_the_token_page_can_be_read(alice_client, alice):
    token = TokenFactory(user=alice)
    html = alice_client.get(reverse("tokens")).content.decode()
    # The whole key is in the page, hidden behind a button that needs JavaScript; <noscript> shows it.
    assert f'value="sk-{token.key}"' in html
    noscript = html.split("<noscript>", 1)[1].split("</noscript>", 1)[0]
    assert ".key-full[hidden]" in noscript and "display: inline-block" in noscript


def test_pages_refuse_to_be_framed(client):
    assert client.get(reverse("login"))["X-Frame-Options"] == "DENY"


def test_a_deleted_user_cannot_sign_in_by_email_and_is_out_of_an_open_session(alice_client, alice):
    from django.test import Client

    from accounts.services.users import user_delete

    alice.email = "alice@example.com"
    alice.save(update_fields=["email"])
    user_delete(user=alice)
    assert alice_client.get(reverse("dashboard"))["Location"].startswith(reverse("login"))
    assert alice_client.get("/api/user/self").status_code == 401
    other = Client()
    response = other.post(reverse("login"), {"username": "alice@example.com", "password": "password123"})
    assert response.status_code == 200 and "_auth_user_id" not in other.session


def test_a_session_cookie_kept_from_before_logout_no_longer_signs_in(alice_client):
    from django.test import Client

    stolen = alice_client.cookies["session"].value
    assert alice_client.get(reverse("dashboard")).status_code == 200
    alice_client.post(reverse("logout"))
    replay = Client()
    replay.cookies["session"] = stolen
    response = replay.get(reverse("dashboard"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_daily_cleaner_drops_expired_sessions_and_keeps_live_ones(alice_client):
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from accounts.sessions import sessions_clear_expired

    live = alice_client.cookies["session"].value
    Session.objects.create(session_key="x" * 32, session_data="", expire_date=timezone.now() - timedelta(days=1))
    sessions_clear_expired()
    assert set(Session.objects.values_list("session_key", flat=True)) == {live}
    assert alice_client.get(reverse("dashboard")).status_code == 200
