"""Rate limits, budgets and the price ratio (issue 11) in /api bodies: tokens, users, channels.

one-api's bodies keep working without the new keys; bad values get the envelope naming the key, never a 500;
a user's own token stays at or under the user's own limits.
"""

import pytest

from accounts.models import Token, User
from billing.budgets import period_end, period_start
from oneapi_site.lib.timeutil import now_ts
from providers.models import Channel
from tests.api_fixtures import envelope
from tests.factories import ChannelFactory, TokenFactory, UserFactory

pytestmark = pytest.mark.django_db

LIMITS = {"rpm_limit": 60, "tpm_limit": 100_000, "concurrency_limit": 5, "rpd_limit": 1000}

BAD_LIMITS = [
    (-1, "must be at least 0"),
    (1.5, "whole number"),
    (2**31, "must be at most 2147483647"),
    (True, "must be a number"),
    ("sixty", "must be a number"),
]


def test_a_token_is_created_with_limits_and_a_budget(alice_api):
    data = envelope(alice_api.post("/api/token/", {"name": "ci", "remain_quota": 10, **LIMITS,
                                                   "budget_quota": 5_000_000, "budget_period": "day"},
                                   format="json"))
    token = Token.objects.get(pk=data["id"])
    assert (token.rpm_limit, token.tpm_limit, token.concurrency_limit, token.rpd_limit) == (60, 100_000, 5, 1000)
    assert (token.budget_quota, token.budget_period) == (5_000_000, "day")
    assert {k: data[k] for k in LIMITS} == LIMITS
    assert data["budget_quota"] == 5_000_000 and data["budget_period"] == "day" and data["budget_spent"] == 0
    assert data["budget_reset_time"] == period_end("day", now_ts())


def test_one_api_token_body_without_the_new_keys_makes_a_token_without_limits(alice_api):
    data = envelope(alice_api.post("/api/token/", {"name": "plain", "remain_quota": 10}, format="json"))
    assert all(data[k] == 0 for k in LIMITS) and data["budget_quota"] == 0 and data["budget_period"] == ""
    assert data["budget_reset_time"] == 0


def test_budget_spent_is_this_periods_only(alice_api, alice):
    now = now_ts()
    today = TokenFactory(user=alice, budget_quota=100, budget_period="day", budget_spent=40,
                         budget_period_start=period_start("day", now))
    yesterday = TokenFactory(user=alice, budget_quota=100, budget_period="day", budget_spent=40,
                             budget_period_start=period_start("day", now) - 86400)
    assert envelope(alice_api.get(f"/api/token/{today.pk}"))["budget_spent"] == 40
    assert envelope(alice_api.get(f"/api/token/{yesterday.pk}"))["budget_spent"] == 0


@pytest.mark.parametrize("field", list(LIMITS))
@pytest.mark.parametrize("value,message", BAD_LIMITS)
def test_a_bad_token_limit_is_refused_naming_it(alice_api, alice, field, value, message):
    token = TokenFactory(user=alice)
    for response in (alice_api.post("/api/token/", {"name": "x", field: value}, format="json"),
                     alice_api.put("/api/token/", {"id": token.pk, field: value}, format="json")):
        body = envelope(response, success=False)
        assert body["field"] == field and field in body["message"] and message in body["message"]
    assert Token.objects.count() == 1
    token.refresh_from_db()
    assert getattr(token, field) == 0


@pytest.mark.parametrize("body,field", [
    ({"budget_quota": -5, "budget_period": "day"}, "budget_quota"),
    ({"budget_quota": 2**63, "budget_period": "day"}, "budget_quota"),
    ({"budget_quota": "lots", "budget_period": "day"}, "budget_quota"),
    ({"budget_quota": 10, "budget_period": "year"}, "budget_period"),
    ({"budget_quota": 10, "budget_period": 7}, "budget_period"),
    ({"budget_quota": 10, "budget_period": None}, "budget_period"),
    ({"budget_quota": 10}, "budget_period"),
])
def test_a_bad_budget_is_refused_naming_the_field(alice_api, body, field):
    answer = envelope(alice_api.post("/api/token/", {"name": "b", **body}, format="json"), success=False)
    assert answer["field"] == field
    assert not Token.objects.exists()


# --- A user's own token stays under the user's limits ------------------------------------------

@pytest.fixture
def limited(alice):
    User.objects.filter(pk=alice.pk).update(rpm_limit=60, tpm_limit=0, budget_quota=1000, budget_period="day")
    alice.refresh_from_db()
    return alice


def test_own_token_may_lower_a_limit_below_the_users(alice_api, limited):
    data = envelope(alice_api.post("/api/token/", {"name": "low", "rpm_limit": 10, "tpm_limit": 999_999,
                                                   "budget_quota": 500, "budget_period": "day"}, format="json"))
    assert data["rpm_limit"] == 10 and data["tpm_limit"] == 999_999 and data["budget_quota"] == 500


@pytest.mark.parametrize("value", [61, 0])
def test_own_token_cannot_exceed_or_drop_the_users_limit(alice_api, limited, value):
    body = envelope(alice_api.post("/api/token/", {"name": "high", "rpm_limit": value}, format="json"),
                    success=False)
    assert body["field"] == "rpm_limit" and "the most allowed is 60" in body["message"]
    token = TokenFactory(user=limited, rpm_limit=30)
    body = envelope(alice_api.put("/api/token/", {"id": token.pk, "rpm_limit": value}, format="json"),
                    success=False)
    assert body["field"] == "rpm_limit" and "the most allowed is 60" in body["message"]
    token.refresh_from_db()
    assert token.rpm_limit == 30


def test_own_token_left_without_a_limit_gets_the_users(alice_api, limited):
    data = envelope(alice_api.post("/api/token/", {"name": "one-api body"}, format="json"))
    assert data["rpm_limit"] == 60 and data["tpm_limit"] == 0


@pytest.mark.parametrize("amount", [1001, 0])
def test_own_token_budget_of_the_users_period_is_at_most_the_users(alice_api, limited, amount):
    body = envelope(alice_api.post("/api/token/", {"name": "b", "budget_quota": amount, "budget_period": "day"},
                                   format="json"), success=False)
    assert body["field"] == "budget_quota" and "the most allowed is 1,000" in body["message"]


def test_own_token_budget_of_another_period_is_not_compared(alice_api, limited):
    data = envelope(alice_api.post("/api/token/", {"name": "b", "budget_quota": 50_000, "budget_period": "month"},
                                   format="json"))
    assert data["budget_quota"] == 50_000 and data["budget_period"] == "month"


def test_resending_a_stored_value_above_a_lowered_limit_passes(alice_api, limited):
    """one-api's pages PUT the whole token back: a limit the user did not change is not judged again."""
    token = TokenFactory(user=limited, rpm_limit=500, name="old")
    data = envelope(alice_api.put("/api/token/", {"id": token.pk, "name": "renamed", "rpm_limit": 500},
                                  format="json"))
    assert data["name"] == "renamed" and data["rpm_limit"] == 500


def test_an_admins_own_token_follows_the_admins_limits(staff, api_as):
    User.objects.filter(pk=staff.pk).update(concurrency_limit=3)
    body = envelope(api_as(staff).post("/api/token/", {"name": "s", "concurrency_limit": 4}, format="json"),
                    success=False)
    assert body["field"] == "concurrency_limit"


def test_root_sets_its_own_tokens_limits_freely(root_api, root):
    User.objects.filter(pk=root.pk).update(concurrency_limit=3)
    data = envelope(root_api.post("/api/token/", {"name": "r", "concurrency_limit": 40}, format="json"))
    assert data["concurrency_limit"] == 40


# --- Users ----------------------------------------------------------------------------------

def test_an_admin_sets_a_users_limits_budget_and_price_ratio(staff_api, alice):
    data = envelope(staff_api.put("/api/user/", {"id": alice.pk, **LIMITS, "budget_quota": 10_000_000,
                                                 "budget_period": "month", "price_ratio": 0.85}, format="json"))
    alice.refresh_from_db()
    assert (alice.rpm_limit, alice.tpm_limit, alice.concurrency_limit, alice.rpd_limit) == (60, 100_000, 5, 1000)
    assert (alice.budget_quota, alice.budget_period, alice.price_ratio) == (10_000_000, "month", 0.85)
    assert {k: data[k] for k in LIMITS} == LIMITS and data["price_ratio"] == 0.85
    assert data["budget_period"] == "month" and data["budget_reset_time"] == period_end("month", now_ts())
    listed = envelope(staff_api.get(f"/api/user/{alice.pk}"))
    assert listed["budget_quota"] == 10_000_000 and listed["price_ratio"] == 0.85


def test_one_api_user_body_keeps_the_limits(staff_api, alice):
    User.objects.filter(pk=alice.pk).update(rpm_limit=7, price_ratio=2)
    envelope(staff_api.put("/api/user/", {"id": alice.pk, "display_name": "Alice", "quota": 5}, format="json"))
    alice.refresh_from_db()
    assert alice.rpm_limit == 7 and alice.price_ratio == 2 and alice.display_name == "Alice"


@pytest.mark.parametrize("body,field", [
    ({"rpm_limit": -1}, "rpm_limit"),
    ({"tpm_limit": 2**31}, "tpm_limit"),
    ({"rpd_limit": False}, "rpd_limit"),
    ({"concurrency_limit": "5x"}, "concurrency_limit"),
    ({"budget_quota": 5}, "budget_period"),
    ({"budget_period": "fortnight"}, "budget_period"),
    ({"price_ratio": -0.5}, "price_ratio"),
    ({"price_ratio": 10_001}, "price_ratio"),
    ({"price_ratio": "cheap"}, "price_ratio"),
    ({"price_ratio": True}, "price_ratio"),
    ({"price_ratio": "1e3"}, "price_ratio"),
    ({"price_ratio": 0.1234567}, "price_ratio"),
])
def test_bad_user_values_are_refused_naming_the_field(staff_api, alice, body, field):
    answer = envelope(staff_api.put("/api/user/", {"id": alice.pk, **body}, format="json"), success=False)
    assert answer["field"] == field and field in answer["message"]
    alice.refresh_from_db()
    assert alice.rpm_limit == 0 and alice.budget_quota == 0 and alice.price_ratio == 1


def test_an_admin_cannot_set_another_admins_or_roots_limits(staff_api, root):
    other = UserFactory(role=User.Role.ADMIN)
    for target in (other, root):
        envelope(staff_api.put("/api/user/", {"id": target.pk, "rpm_limit": 1, "price_ratio": 0}, format="json"),
                 success=False)
        target.refresh_from_db()
        assert target.rpm_limit == 0 and target.price_ratio == 1


def test_a_common_user_cannot_set_user_limits(alice_api, alice):
    envelope(alice_api.put("/api/user/", {"id": alice.pk, "rpm_limit": 1000}, format="json"), success=False,
             status=403)
    alice.refresh_from_db()
    assert alice.rpm_limit == 0


# --- Channels -------------------------------------------------------------------------------

def test_channel_limits_through_create_and_update(staff_api):
    created = envelope(staff_api.post("/api/channel/", {"name": "c", "type": 1, "key": "sk-x", "models": "gpt-4o",
                                                        "group": "default", **LIMITS}, format="json"))
    channel = Channel.objects.get(pk=created[0]["id"])
    assert (channel.rpm_limit, channel.tpm_limit, channel.concurrency_limit, channel.rpd_limit) == (60, 100_000, 5,
                                                                                                     1000)
    assert {k: created[0][k] for k in LIMITS} == LIMITS
    envelope(staff_api.put("/api/channel/", {"id": channel.pk, "rpm_limit": 0, "tpm_limit": 7}, format="json"))
    channel.refresh_from_db()
    assert channel.rpm_limit == 0 and channel.tpm_limit == 7 and channel.concurrency_limit == 5


@pytest.mark.parametrize("field", list(LIMITS))
@pytest.mark.parametrize("value,message", BAD_LIMITS)
def test_a_bad_channel_limit_is_refused_naming_it(staff_api, field, value, message):
    channel = ChannelFactory()
    body = envelope(staff_api.put("/api/channel/", {"id": channel.pk, field: value}, format="json"), success=False)
    assert body["field"] == field and message in body["message"]
    channel.refresh_from_db()
    assert getattr(channel, field) == 0
