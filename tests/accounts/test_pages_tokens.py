"""The Tokens pages: a user lists, creates, edits, toggles and deletes only their own tokens."""

import re
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Token, User
from billing.services import option_set
from oneapi_site.lib.timeutil import now_ts
from tests.factories import ChannelFactory, TokenFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def channel(db):
    return ChannelFactory(models="gpt-4o-mini,gpt-4o", group="default")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def bob_token(bob):
    return TokenFactory(user=bob, name="bob-key", remain_quota=700_000)


def form_data(**overrides):
    data = {"name": "my key", "quota": "1", "never_expires": "on", "subnet": ""}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def local_input(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M")


# --- list ------------------------------------------------------------------------------------------------


def test_list_shows_own_tokens_only(alice_client, alice_token, bob_token):
    response = alice_client.get("/token/")
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-testid="token-row-{alice_token.pk}"' in html
    assert alice_token.masked_key in html
    assert f'value="sk-{alice_token.key}"' in html  # the element the copy button reads
    assert f'data-testid="copy-key-{alice_token.pk}"' in html
    assert "bob-key" not in html
    assert bob_token.key not in html
    assert f"token-row-{bob_token.pk}" not in html


def test_list_shows_quota_status_expiry_and_models(alice_client, alice):
    limited = TokenFactory(user=alice, name="limited", remain_quota=1_000_000, used_quota=250_000,
                           models="gpt-4o,gpt-4o-mini,a,b,c")
    unlimited = TokenFactory(user=alice, name="free", unlimited_quota=True)
    expired = TokenFactory(user=alice, name="old", expired_time=now_ts() - 60)
    empty = TokenFactory(user=alice, name="empty", remain_quota=0)
    disabled = TokenFactory(user=alice, name="off", status=Token.Status.DISABLED)
    html = alice_client.get("/token/").content.decode()
    row = html.split(f'data-testid="token-row-{limited.pk}"')[1].split("</tr>")[0]
    assert "$2" in row and "$0.5" in row
    assert "Never" in row
    assert "gpt-4o, gpt-4o-mini, a" in row and "+2 more" in row
    assert "Unlimited" in html.split(f'data-testid="token-row-{unlimited.pk}"')[1].split("</tr>")[0]
    assert "All models" in html.split(f'data-testid="token-row-{unlimited.pk}"')[1].split("</tr>")[0]
    for token, state in ((limited, "enabled"), (expired, "expired"), (empty, "exhausted"), (disabled, "disabled")):
        assert f'data-testid="token-row-{token.pk}" data-state="{state}"' in html


def test_list_in_quota_units_when_currency_display_is_off(alice_client, alice):
    option_set(key="DisplayInCurrencyEnabled", value=False)
    token = TokenFactory(user=alice, name="units", remain_quota=1_234_567)
    html = alice_client.get("/token/").content.decode()
    assert "1,234,567" in html.split(f'data-testid="token-row-{token.pk}"')[1].split("</tr>")[0]


def test_list_pages_and_searches(alice_client, alice):
    for i in range(12):
        TokenFactory(user=alice, name=f"batch-{i:02d}")
    TokenFactory(user=alice, name="other")
    first = alice_client.get("/token/").content.decode()
    assert first.count('data-testid="token-row-') == 10
    assert 'data-testid="token-next"' in first and 'data-testid="token-prev"' not in first
    second = alice_client.get("/token/?p=2").content.decode()
    assert second.count('data-testid="token-row-') == 3
    assert 'data-testid="token-prev"' in second and 'data-testid="token-next"' not in second
    found = alice_client.get("/token/?keyword=batch-").content.decode()
    assert found.count('data-testid="token-row-') == 10 and ">other<" not in found
    assert alice_client.get("/token/?keyword=batch-&p=2").content.decode().count('data-testid="token-row-') == 2
    assert alice_client.get("/token/?keyword=zzz").content.decode().count('data-testid="token-row-') == 0
    assert alice_client.get("/token/?p=junk").status_code == 200
    # A page number past the database's integers is just a page with nothing on it, not a 500.
    assert alice_client.get("/token/?p=" + "9" * 30).status_code == 200
    assert alice_client.get("/token/?keyword=batch-&p=" + "9" * 30).status_code == 200


def test_search_does_not_find_other_users_tokens(alice_client, bob_token):
    html = alice_client.get("/token/?keyword=bob").content.decode()
    assert "bob-key" not in html


def test_anonymous_is_sent_to_login(client):
    response = client.get("/token/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_disabled_user_is_refused_at_once(alice_client, alice):
    User.objects.filter(pk=alice.pk).update(status=User.Status.DISABLED)
    response = alice_client.get("/token/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- create ----------------------------------------------------------------------------------------------


def test_create_form_offers_the_group_models(alice_client, channel):
    html = alice_client.get("/token/new/").content.decode()
    assert 'value="gpt-4o-mini"' in html and 'value="gpt-4o"' in html
    assert "Quota (US$)" in html


def test_create_valid_token(alice_client, alice, channel):
    response = alice_client.post("/token/new/", form_data(
        name="ci", quota="2.5", models=["gpt-4o-mini"], subnet="10.0.0.0/8\n192.168.1.1, 2001:db8::/32"))
    token = Token.objects.get(user=alice, name="ci")
    assert response.status_code == 302
    assert response["Location"] == f"/token/?created={token.pk}"
    assert token.remain_quota == 1_250_000  # US$2.5 at 500,000 per US$
    assert token.unlimited_quota is False
    assert token.expired_time == -1
    assert token.models == "gpt-4o-mini"
    assert token.subnet == "10.0.0.0/8,192.168.1.1,2001:db8::/32"
    assert token.status == Token.Status.ENABLED
    # The new row shows its whole key at once.
    html = alice_client.get(response["Location"]).content.decode()
    assert f'value="sk-{token.key}" aria-label="API key">' in html
    assert "created" in html


def test_create_follows_quota_per_unit(alice_client, alice):
    option_set(key="QuotaPerUnit", value=1000)
    alice_client.post("/token/new/", form_data(name="per-unit", quota="0.5"))
    assert Token.objects.get(user=alice, name="per-unit").remain_quota == 500


def test_create_in_quota_units_when_currency_display_is_off(alice_client, alice):
    option_set(key="DisplayInCurrencyEnabled", value=False)
    assert "Quota (US$)" not in alice_client.get("/token/new/").content.decode()
    alice_client.post("/token/new/", form_data(name="units", quota="12345"))
    assert Token.objects.get(user=alice, name="units").remain_quota == 12345
    response = alice_client.post("/token/new/", form_data(name="half", quota="1.5"))
    assert response.status_code == 200
    assert "whole number of quota units" in response.content.decode()
    assert not Token.objects.filter(name="half").exists()


def test_create_unlimited_token_needs_no_amount(alice_client, alice):
    response = alice_client.post("/token/new/", form_data(name="free", quota="", unlimited_quota="on"))
    assert response.status_code == 302
    token = Token.objects.get(user=alice, name="free")
    assert token.unlimited_quota is True and token.remain_quota == 0


def test_create_with_an_expiry_date(alice_client, alice):
    moment = timezone.now() + timedelta(days=3)
    alice_client.post("/token/new/", form_data(name="dated", never_expires=None, expires_at=local_input(moment)))
    token = Token.objects.get(user=alice, name="dated")
    assert abs(token.expired_time - int(moment.timestamp())) < 60


@pytest.mark.parametrize("overrides,field,message", [
    ({"subnet": "10.0.0.0/8\nnot-an-ip"}, "subnet", "Not an IP address or CIDR range: not-an-ip."),
    ({"never_expires": None, "expires_at": "2001-01-01T10:00"}, "expires_at", "The expiry must be in the future."),
    ({"never_expires": None, "expires_at": ""}, "expires_at", "Pick an expiry date"),
    ({"never_expires": None, "expires_at": "soon"}, "expires_at", "Enter a date and time"),
    ({"name": "x" * 31}, "name", "at most 30 characters"),
    ({"name": ""}, "name", "Give the token a name."),
    ({"quota": "-1"}, "quota", "The quota must not be negative."),
    ({"quota": "lots"}, "quota", "Enter a number."),
    ({"quota": ""}, "quota", "Enter a quota, or tick"),
    ({"models": ["gpt-4o-mini", "claude-3-opus"]}, "models", "claude-3-opus is not a model your group can use."),
])
def test_create_refuses_bad_input_on_the_field(alice_client, alice, channel, overrides, field, message):
    response = alice_client.post("/token/new/", form_data(**{"name": "bad", **overrides}))
    html = response.content.decode()
    assert response.status_code == 200
    errors = html.split(f'data-testid="error-{field}"')[1].split("</ul>")[0]
    assert message in errors
    assert not Token.objects.filter(user=alice).exists()


def test_create_refuses_a_model_when_the_group_has_none(alice_client, alice):
    response = alice_client.post("/token/new/", form_data(models=["gpt-4o"]))
    assert response.status_code == 200
    assert not Token.objects.filter(user=alice).exists()


# --- edit ------------------------------------------------------------------------------------------------


def test_edit_form_shows_current_values(alice_client, alice, channel):
    moment = timezone.now() + timedelta(days=10)
    token = TokenFactory(user=alice, name="edit-me", remain_quota=750_000, models="gpt-4o",
                         subnet="10.0.0.0/8,127.0.0.1", expired_time=int(moment.timestamp()))
    html = alice_client.get(f"/token/{token.pk}/").content.decode()
    assert 'value="edit-me"' in html
    assert 'name="quota" value="1.5"' in html
    assert f'value="{local_input(moment)}"' in html
    assert re.search(r'value="gpt-4o" id="id_models_\d+" checked', html)
    assert not re.search(r'value="gpt-4o-mini" id="id_models_\d+" checked', html)
    assert "10.0.0.0/8\n127.0.0.1" in html


@pytest.mark.parametrize("remain,shown", [(5_000_000, "10"), (0, "0"), (1, "0.000002"), (123_456_789, "246.913578")])
def test_edit_form_shows_round_dollar_amounts_plainly(alice_client, alice, remain, shown):
    token = TokenFactory(user=alice, remain_quota=remain)
    assert f'name="quota" value="{shown}"' in alice_client.get(f"/token/{token.pk}/").content.decode()


def test_edit_saves_changes(alice_client, alice, alice_token, channel):
    response = alice_client.post(f"/token/{alice_token.pk}/", form_data(
        name="renamed", quota="3", models=["gpt-4o"], subnet="127.0.0.1"))
    assert response.status_code == 302 and response["Location"] == "/token/"
    alice_token.refresh_from_db()
    assert (alice_token.name, alice_token.remain_quota, alice_token.models, alice_token.subnet) == (
        "renamed", 1_500_000, "gpt-4o", "127.0.0.1")


def test_edit_keeps_a_model_the_group_has_lost(alice_client, alice, channel):
    token = TokenFactory(user=alice, name="legacy", models="gpt-4o,retired-model")
    response = alice_client.post(f"/token/{token.pk}/", form_data(name="legacy2", models=["gpt-4o", "retired-model"]))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.models == "gpt-4o,retired-model"


def test_edit_refuses_emptying_an_enabled_token(alice_client, alice_token):
    response = alice_client.post(f"/token/{alice_token.pk}/", form_data(name="alice-key", quota="0"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "no quota left" in html.split('data-testid="error-quota"')[1].split("</ul>")[0]
    alice_token.refresh_from_db()
    assert alice_token.remain_quota == 500_000


def test_edit_may_move_an_expired_token_s_date_forward(alice_client, alice):
    token = TokenFactory(user=alice, name="late", expired_time=now_ts() - 3600, status=Token.Status.EXPIRED)
    moment = timezone.now() + timedelta(days=1)
    response = alice_client.post(f"/token/{token.pk}/", form_data(name="late", never_expires=None,
                                                                  expires_at=local_input(moment)))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.expired_time > now_ts()
    assert token.status == Token.Status.EXPIRED  # enabling stays a separate, checked step


# --- enable / disable / delete ---------------------------------------------------------------------------


def test_disable_then_enable(alice_client, alice_token):
    response = alice_client.post(f"/token/{alice_token.pk}/status/", {"status": "2", "next": "/token/?p=1"})
    assert response.status_code == 302 and response["Location"] == "/token/?p=1"
    alice_token.refresh_from_db()
    assert alice_token.status == Token.Status.DISABLED
    alice_client.post(f"/token/{alice_token.pk}/status/", {"status": "1"})
    alice_token.refresh_from_db()
    assert alice_token.status == Token.Status.ENABLED


@pytest.mark.parametrize("target", ["https://evil.example/", "0", "logout"])
def test_status_and_delete_ignore_a_next_that_is_no_path_here(alice_client, alice_token, target):
    response = alice_client.post(f"/token/{alice_token.pk}/status/", {"status": "2", "next": target})
    assert response["Location"] == "/token/"
    response = alice_client.post(f"/token/{alice_token.pk}/delete/", {"next": target})
    assert response["Location"] == "/token/"


@pytest.mark.parametrize("fields,message", [
    ({"expired_time": 1, "status": Token.Status.EXPIRED}, "has expired"),
    ({"remain_quota": 0, "status": Token.Status.EXHAUSTED}, "no quota left"),
])
def test_enabling_an_expired_or_exhausted_token_is_refused(alice_client, alice, fields, message):
    token = TokenFactory(user=alice, name="stuck", **fields)
    response = alice_client.post(f"/token/{token.pk}/status/", {"status": "1"}, follow=True)
    assert message in response.content.decode()
    token.refresh_from_db()
    assert token.status == fields["status"]


def test_status_refuses_a_bad_value(alice_client, alice_token):
    response = alice_client.post(f"/token/{alice_token.pk}/status/", {"status": "4"}, follow=True)
    assert "Choose to enable or disable" in response.content.decode()
    alice_token.refresh_from_db()
    assert alice_token.status == Token.Status.ENABLED


def test_status_and_delete_need_post(alice_client, alice_token):
    assert alice_client.get(f"/token/{alice_token.pk}/status/").status_code == 405
    assert alice_client.get(f"/token/{alice_token.pk}/delete/").status_code == 200  # the confirmation
    assert Token.objects.filter(pk=alice_token.pk).exists()


def test_delete_after_confirmation(alice_client, alice_token):
    page = alice_client.get(f"/token/{alice_token.pk}/delete/").content.decode()
    assert "alice-key" in page and 'data-testid="confirm-delete"' in page
    response = alice_client.post(f"/token/{alice_token.pk}/delete/")
    assert response.status_code == 302
    assert not Token.objects.filter(pk=alice_token.pk).exists()


# --- other users' tokens and CSRF ------------------------------------------------------------------------


@pytest.mark.parametrize("method,path,data", [
    ("get", "/token/{id}/", None),
    ("post", "/token/{id}/", {"name": "stolen", "quota": "9", "never_expires": "on"}),
    ("post", "/token/{id}/status/", {"status": "2"}),
    ("get", "/token/{id}/delete/", None),
    ("post", "/token/{id}/delete/", {}),
])
def test_other_users_tokens_are_404(alice_client, bob_token, method, path, data):
    response = getattr(alice_client, method)(path.format(id=bob_token.pk), data)
    assert response.status_code == 404
    bob_token.refresh_from_db()
    assert (bob_token.name, bob_token.status, bob_token.remain_quota) == ("bob-key", Token.Status.ENABLED, 700_000)


def test_missing_token_is_404(alice_client):
    assert alice_client.get("/token/999999/").status_code == 404


def test_forms_need_the_csrf_token(alice, alice_token):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/token/new/", form_data(name="no-csrf")).status_code == 403
    assert client.post(f"/token/{alice_token.pk}/delete/").status_code == 403
    assert client.post(f"/token/{alice_token.pk}/status/", {"status": "2"}).status_code == 403
    assert not Token.objects.filter(name="no-csrf").exists()
    alice_token.refresh_from_db()
    assert alice_token.status == Token.Status.ENABLED
    # With the token from the page the same post goes through.
    client.get("/token/new/")
    csrf = client.cookies["csrftoken"].value
    response = client.post("/token/new/", {**form_data(name="with-csrf"), "csrfmiddlewaretoken": csrf})
    assert response.status_code == 302
    assert Token.objects.filter(user=alice, name="with-csrf").exists()
