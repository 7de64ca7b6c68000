"""Rate limits, budgets and the price ratio in the operator console: users, tokens and channels."""

import pytest
from django.urls import reverse

from accounts.models import Token, User
from billing.budget_status import reset_text
from billing.budgets import period_end, period_start
from billing.money import quota_text
from oneapi_site import options
from oneapi_site.lib.timeutil import now_ts
from providers.models import Channel
from tests.factories import ChannelFactory, TokenFactory, UserFactory

pytestmark = pytest.mark.django_db

USERS = reverse("admin:accounts_user_changelist")
TOKENS = reverse("admin:accounts_token_changelist")
TOKEN_ADD = reverse("admin:accounts_token_add")
LIMITS = {"rpm_limit": "60", "tpm_limit": "100000", "concurrency_limit": "5", "rpd_limit": "1000"}


def user_url(user):
    return reverse("admin:accounts_user_change", args=[user.pk])


def token_url(token):
    return reverse("admin:accounts_token_change", args=[token.pk])


def user_data(user, **overrides):
    data = {"display_name": user.display_name, "email": user.email, "role": str(user.role),
            "status": str(user.status), "group": user.group, "quota": str(user.quota), "new_password": "",
            "rpm_limit": str(user.rpm_limit), "tpm_limit": str(user.tpm_limit),
            "concurrency_limit": str(user.concurrency_limit), "rpd_limit": str(user.rpd_limit),
            "budget_quota": str(user.budget_quota), "budget_period": user.budget_period,
            "price_ratio": str(user.price_ratio)}
    return {**data, **overrides}


def token_data(token, **overrides):
    data = {"name": token.name, "remain_quota": str(token.remain_quota), "expired_time": "",
            "models": token.models, "subnet": token.subnet, "status": str(token.status),
            "rpm_limit": str(token.rpm_limit), "tpm_limit": str(token.tpm_limit),
            "concurrency_limit": str(token.concurrency_limit), "rpd_limit": str(token.rpd_limit),
            "budget_quota": str(token.budget_quota), "budget_period": token.budget_period}
    return {**data, **overrides}


def form_errors(response) -> dict:
    assert response.status_code == 200, response.status_code
    return response.context["adminform"].form.errors


# --- Users ----------------------------------------------------------------------------------

def test_root_sets_a_users_limits_budget_and_price_ratio(root_client, alice):
    response = root_client.post(user_url(alice), user_data(alice, **LIMITS, budget_quota="$10",
                                                           budget_period="day", price_ratio="0.85"))
    assert response.status_code == 302, form_errors(response)
    alice.refresh_from_db()
    assert (alice.rpm_limit, alice.tpm_limit, alice.concurrency_limit, alice.rpd_limit) == (60, 100_000, 5, 1000)
    assert alice.budget_quota == 10 * int(options.quota_per_unit()) and alice.budget_period == "day"
    assert alice.price_ratio == 0.85
    assert alice.quota == 1_000_000  # untouched balance not rewritten


@pytest.mark.parametrize("typed,quota", [("5000", 5000), ("$0.5", None), ("2.5$", None), ("US$ 1", None),
                                         ("1,000,000", 1_000_000)])
def test_a_budget_is_typed_in_quota_units_or_us_dollars(root_client, alice, typed, quota):
    per_unit = int(options.quota_per_unit())
    expected = quota if quota is not None else {"$0.5": per_unit // 2, "2.5$": per_unit * 5 // 2,
                                                "US$ 1": per_unit}[typed]
    response = root_client.post(user_url(alice), user_data(alice, budget_quota=typed, budget_period="week"))
    assert response.status_code == 302, form_errors(response)
    alice.refresh_from_db()
    assert alice.budget_quota == expected and alice.budget_period == "week"


@pytest.mark.parametrize("field,typed", [
    ("rpm_limit", "-1"), ("tpm_limit", "1.5"), ("concurrency_limit", str(2**31)), ("rpd_limit", "many"),
    ("budget_quota", "-5"), ("budget_quota", "$-1"), ("budget_quota", "1e9"), ("budget_quota", "9" * 30),
    # Less than one quota unit: it rounded to 0, no budget at all (found in the console from a fresh clone).
    ("budget_quota", "$0.0000001"),
    ("budget_period", "year"), ("price_ratio", "10001"), ("price_ratio", "-1"), ("price_ratio", "cheap"),
    ("price_ratio", "nan"), ("price_ratio", "0.1234567"),
])
def test_bad_user_values_are_form_errors_on_their_field(root_client, alice, field, typed):
    overrides = {field: typed}
    if field == "budget_quota":
        overrides["budget_period"] = "day"
    errors = form_errors(root_client.post(user_url(alice), user_data(alice, **overrides)))
    assert field in errors
    alice.refresh_from_db()
    assert (alice.rpm_limit, alice.budget_quota, alice.price_ratio) == (0, 0, 1)


def test_a_budget_without_a_period_is_refused_on_the_period(root_client, alice):
    errors = form_errors(root_client.post(user_url(alice), user_data(alice, budget_quota="100")))
    assert "budget_period" in errors


def test_a_post_without_the_limit_inputs_keeps_them(root_client, alice):
    User.objects.filter(pk=alice.pk).update(rpm_limit=9, budget_quota=5, budget_period="day", price_ratio=2)
    data = {k: v for k, v in user_data(alice).items()
            if k not in ("rpm_limit", "tpm_limit", "concurrency_limit", "rpd_limit", "budget_quota",
                         "budget_period", "price_ratio")}
    response = root_client.post(user_url(alice), {**data, "display_name": "A"})
    assert response.status_code == 302, form_errors(response)
    alice.refresh_from_db()
    assert (alice.rpm_limit, alice.budget_quota, alice.budget_period, alice.price_ratio) == (9, 5, "day", 2)


def test_an_admin_cannot_change_another_admins_limits(staff_client):
    other = UserFactory(role=User.Role.ADMIN)
    response = staff_client.post(user_url(other), user_data(other, rpm_limit="1"))
    assert response.status_code in (302, 403)
    other.refresh_from_db()
    assert other.rpm_limit == 0


def test_the_user_pages_show_limits_and_budget_spent(root_client, alice):
    now = now_ts()
    User.objects.filter(pk=alice.pk).update(rpm_limit=60, budget_quota=2_000_000, budget_period="day",
                                            budget_spent=500_000, budget_period_start=period_start("day", now))
    listed = root_client.get(USERS).content.decode()
    spent, budget = quota_text(500_000), quota_text(2_000_000)
    assert "60 requests a minute" in listed and f"{spent} of {budget} today" in listed
    page = root_client.get(user_url(alice)).content.decode()
    assert f"{spent} of {budget} spent today, resets at {reset_text(period_end('day', now))}" in page


# --- Tokens ---------------------------------------------------------------------------------

def test_a_token_is_made_with_limits_and_a_budget(root_client, alice):
    response = root_client.post(TOKEN_ADD, {"user": str(alice.pk), "name": "ci", "remain_quota": "1000",
                                            "expired_time": "", "models": "", "subnet": "", **LIMITS,
                                            "budget_quota": "$3", "budget_period": "month"})
    assert response.status_code == 302, form_errors(response)
    token = Token.objects.get(name="ci")
    assert (token.rpm_limit, token.tpm_limit, token.concurrency_limit, token.rpd_limit) == (60, 100_000, 5, 1000)
    assert token.budget_quota == 3 * int(options.quota_per_unit()) and token.budget_period == "month"


def test_a_token_made_without_the_limit_inputs_has_none(root_client, alice):
    response = root_client.post(TOKEN_ADD, {"user": str(alice.pk), "name": "old", "remain_quota": "1000",
                                            "expired_time": "", "models": "", "subnet": ""})
    assert response.status_code == 302, form_errors(response)
    token = Token.objects.get(name="old")
    assert token.rpm_limit == 0 and token.budget_quota == 0 and token.budget_period == ""


def test_editing_a_tokens_limits_keeps_its_balance(root_client, alice_token):
    response = root_client.post(token_url(alice_token), token_data(alice_token, rpm_limit="7", budget_quota="900",
                                                                   budget_period="week"))
    assert response.status_code == 302, form_errors(response)
    alice_token.refresh_from_db()
    assert alice_token.rpm_limit == 7 and alice_token.budget_quota == 900 and alice_token.remain_quota == 500_000


@pytest.mark.parametrize("field,typed", [("rpm_limit", "-3"), ("concurrency_limit", "2147483648"),
                                         ("budget_quota", "abc"), ("budget_period", "hour")])
def test_bad_token_values_are_form_errors(root_client, alice_token, field, typed):
    overrides = {field: typed, **({"budget_period": "day"} if field == "budget_quota" else {})}
    assert field in form_errors(root_client.post(token_url(alice_token), token_data(alice_token, **overrides)))


def test_an_operator_sets_a_users_token_above_the_users_limits(root_client, alice):
    """The cap is the self-service rule: whoever manages the user sets any limit."""
    User.objects.filter(pk=alice.pk).update(rpm_limit=10)
    token = TokenFactory(user=alice)
    response = root_client.post(token_url(token), token_data(token, rpm_limit="500"))
    assert response.status_code == 302, form_errors(response)


def test_an_admins_own_token_stays_under_the_admins_limits(staff_client, staff):
    User.objects.filter(pk=staff.pk).update(rpm_limit=10)
    token = TokenFactory(user=staff, rpm_limit=5)
    errors = form_errors(staff_client.post(token_url(token), token_data(token, rpm_limit="11")))
    assert "the most allowed is 10" in str(errors["rpm_limit"])
    token.refresh_from_db()
    assert token.rpm_limit == 5


def test_the_token_pages_show_limits_and_budget(root_client, alice):
    now = now_ts()
    token = TokenFactory(user=alice, concurrency_limit=5, budget_quota=1_000, budget_period="week",
                         budget_spent=250, budget_period_start=period_start("week", now))
    listed = root_client.get(TOKENS).content.decode()
    spent, budget = quota_text(250), quota_text(1_000)
    assert "5 at once" in listed and f"{spent} of {budget} this week" in listed
    page = root_client.get(token_url(token)).content.decode()
    assert f"{spent} of {budget} spent this week, resets at {reset_text(period_end('week', now))}" in page


# --- Channels -------------------------------------------------------------------------------

def channel_data(**overrides):
    data = {"name": "capped", "type": "1", "status": "1", "key": "sk-upstream", "base_url": "",
            "models": "gpt-4o", "group": "default", "model_mapping": "", "priority": "0", "weight": "0",
            "config": "", "system_prompt": "", "config_api_version": ""}
    return {**data, **overrides}


def test_a_channels_cap_is_set_and_shown(root_client):
    channel = ChannelFactory(name="capped")
    url = reverse("admin:providers_channel_change", args=[channel.pk])
    response = root_client.post(url, channel_data(key="", **LIMITS))
    assert response.status_code == 302, form_errors(response)
    channel.refresh_from_db()
    assert (channel.rpm_limit, channel.tpm_limit, channel.concurrency_limit, channel.rpd_limit) == (60, 100_000, 5,
                                                                                                     1000)
    assert 'name="tpm_limit" value="100000"' in root_client.get(url).content.decode()
    response = root_client.post(url, channel_data(key="", rpm_limit=""))
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.rpm_limit == 0 and channel.tpm_limit == 100_000


@pytest.mark.parametrize("typed", ["-1", "0.5", "4294967296", "ten"])
def test_a_bad_channel_cap_is_a_form_error(root_client, typed):
    channel = ChannelFactory()
    url = reverse("admin:providers_channel_change", args=[channel.pk])
    assert "tpm_limit" in form_errors(root_client.post(url, channel_data(key="", tpm_limit=typed)))
    channel.refresh_from_db()
    assert channel.tpm_limit == 0
    assert Channel.objects.count() == 1


def test_an_admins_own_page_shows_their_limits_read_only(staff_client, staff):
    User.objects.filter(pk=staff.pk).update(rpm_limit=12, price_ratio=0.5)
    html = staff_client.get(user_url(staff)).content.decode()
    assert 'name="rpm_limit"' not in html and 'name="price_ratio"' not in html
    assert "12" in html.split("field-rpm_limit")[1][:400]
