"""The self-service token pages and the dashboard with rate limits and budgets (issue 11).

A user sets their own token's limits and budget at or under their account's, sees them on the token list,
and sees their account's budget on the dashboard.
"""

import pytest

from accounts.models import Token, User
from billing.budget_status import reset_text
from billing.budgets import period_end, period_start
from billing.money import quota_text
from billing.services import option_set
from oneapi_site import options
from oneapi_site.lib.timeutil import now_ts
from tests.factories import TokenFactory

pytestmark = pytest.mark.django_db

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def form_data(**overrides):
    data = {"name": "limited", "quota": "1", "never_expires": "on", "subnet": "", "rpm_limit": "",
            "tpm_limit": "", "concurrency_limit": "", "rpd_limit": "", "budget": "", "budget_period": ""}
    data.update(overrides)
    return data


def field_errors(response, field: str) -> str:
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    assert f'data-testid="error-{field}"' in html, html[:3000]
    return html.split(f'data-testid="error-{field}"')[1].split("</ul>")[0]


@pytest.fixture
def limited(alice):
    """Alice's account: 60 requests a minute, 5 at once, US$10 a day."""
    User.objects.filter(pk=alice.pk).update(rpm_limit=60, concurrency_limit=5,
                                            budget_quota=10 * int(options.quota_per_unit()), budget_period="day")
    alice.refresh_from_db()
    return alice


def test_a_token_is_made_with_limits_and_a_budget_in_us_dollars(alice_client, alice):
    response = alice_client.post("/token/new/", form_data(rpm_limit="60", tpm_limit="100000",
                                                          concurrency_limit="5", rpd_limit="1000", budget="2.5",
                                                          budget_period="day"))
    assert response.status_code == 302
    token = Token.objects.get(user=alice, name="limited")
    assert (token.rpm_limit, token.tpm_limit, token.concurrency_limit, token.rpd_limit) == (60, 100_000, 5, 1000)
    assert token.budget_quota == int(options.quota_per_unit() * 5 / 2) and token.budget_period == "day"


def test_the_budget_is_in_quota_units_when_currency_display_is_off(alice_client, alice):
    option_set(key="DisplayInCurrencyEnabled", value=False)
    response = alice_client.post("/token/new/", form_data(budget="12345", budget_period="week"))
    assert response.status_code == 302
    assert Token.objects.get(user=alice).budget_quota == 12345


def test_the_new_token_form_starts_at_the_accounts_limits(alice_client, limited):
    html = alice_client.get("/token/new/").content.decode()
    assert 'name="rpm_limit" value="60"' in html and 'name="concurrency_limit" value="5"' in html
    assert "1 to 60: your account&#x27;s limit." in html
    assert "your account&#x27;s budget is $10 a day" in html


def test_a_token_may_lower_the_accounts_limits(alice_client, limited):
    response = alice_client.post("/token/new/", form_data(rpm_limit="10", concurrency_limit="5", tpm_limit="7",
                                                          budget="4", budget_period="day"))
    assert response.status_code == 302
    token = Token.objects.get(user=limited)
    assert (token.rpm_limit, token.concurrency_limit, token.tpm_limit) == (10, 5, 7)


@pytest.mark.parametrize("typed", ["61", "0", ""])
def test_a_token_may_not_exceed_or_drop_the_accounts_limit(alice_client, limited, typed):
    response = alice_client.post("/token/new/", form_data(rpm_limit=typed, concurrency_limit="5"))
    assert "The most allowed is 60, your account&#x27;s limit" in field_errors(response, "rpm_limit")
    assert not Token.objects.exists()


@pytest.mark.parametrize("typed", ["10.01", "0"])
def test_a_budget_of_the_accounts_period_is_at_most_the_accounts(alice_client, limited, typed):
    response = alice_client.post("/token/new/", form_data(rpm_limit="60", concurrency_limit="5", budget=typed,
                                                          budget_period="day"))
    assert "The most allowed is $10 a day, your account&#x27;s budget" in field_errors(response, "budget")
    assert not Token.objects.exists()


def test_a_budget_of_another_period_is_not_compared(alice_client, limited):
    response = alice_client.post("/token/new/", form_data(rpm_limit="60", concurrency_limit="5", budget="100",
                                                          budget_period="month"))
    assert response.status_code == 302


@pytest.mark.parametrize("overrides,field,message", [
    ({"rpm_limit": "-1"}, "rpm_limit", "at least 0"),
    ({"tpm_limit": "1.5"}, "tpm_limit", "whole number"),
    ({"rpd_limit": "2147483648"}, "rpd_limit", "at most 2147483647"),
    ({"concurrency_limit": "five"}, "concurrency_limit", "must be a number"),
    ({"budget": "-2", "budget_period": "day"}, "budget", "The budget must not be negative."),
    ({"budget": "1e9", "budget_period": "day"}, "budget", "without an exponent"),
    ({"budget": "lots", "budget_period": "day"}, "budget", "Enter a number."),
    # US$ that round to no quota would be no budget at all.
    ({"budget": "0.0000001", "budget_period": "day"}, "budget", "less than one quota unit"),
    ({"budget": "5"}, "budget_period", "Choose the period the budget is spent over."),
    ({"budget": "5", "budget_period": "year"}, "budget_period", "year"),
])
def test_bad_limits_and_budgets_are_refused_on_their_field(alice_client, alice, overrides, field, message):
    assert message in field_errors(alice_client.post("/token/new/", form_data(**overrides)), field)
    assert not Token.objects.exists()


def test_the_refusal_is_translated(alice_client, limited):
    response = alice_client.post("/token/new/", form_data(rpm_limit="61", concurrency_limit="5"), **ZH)
    errors = field_errors(response, "rpm_limit")
    assert "60" in errors and "most allowed" not in errors


def test_editing_lowers_a_limit(alice_client, limited):
    token = TokenFactory(user=limited, rpm_limit=60, concurrency_limit=5)
    response = alice_client.post(f"/token/{token.pk}/", form_data(name=token.name, rpm_limit="20",
                                                                  concurrency_limit="5"))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.rpm_limit == 20


def test_editing_other_fields_keeps_a_limit_the_account_has_since_lowered(alice_client, limited):
    token = TokenFactory(user=limited, rpm_limit=500, concurrency_limit=0)
    page = alice_client.get(f"/token/{token.pk}/").content.decode()
    assert 'name="rpm_limit" value="500"' in page
    response = alice_client.post(f"/token/{token.pk}/", form_data(name="renamed", rpm_limit="500",
                                                                  concurrency_limit=""))
    assert response.status_code == 302
    token.refresh_from_db()
    assert (token.name, token.rpm_limit, token.concurrency_limit) == ("renamed", 500, 0)
    response = alice_client.post(f"/token/{token.pk}/", form_data(name="renamed", rpm_limit="400"))
    assert "The most allowed is 60" in field_errors(response, "rpm_limit")


def test_the_token_list_and_edit_page_show_limits_and_the_budget(alice_client, alice):
    now = now_ts()
    token = TokenFactory(user=alice, rpm_limit=60, tpm_limit=100_000, budget_quota=5_000_000, budget_period="day",
                         budget_spent=1_600_000, budget_period_start=period_start("day", now))
    expected = (f"{quota_text(1_600_000)} of {quota_text(5_000_000)} spent today, "
                f"resets at {reset_text(period_end('day', now))}")
    listed = alice_client.get("/token/").content.decode()
    row = listed.split(f'data-testid="token-limits-{token.pk}"')[1].split("</td>")[0]
    assert "60 requests a minute, 100,000 tokens a minute" in row and expected in row
    assert expected.startswith("$3.2 of $10 spent today")
    assert expected in alice_client.get(f"/token/{token.pk}/").content.decode()


def test_spending_of_an_earlier_period_is_not_shown_as_this_ones(alice_client, alice):
    now = now_ts()
    token = TokenFactory(user=alice, budget_quota=1000, budget_period="day", budget_spent=900,
                         budget_period_start=period_start("day", now) - 86400)
    row = alice_client.get("/token/").content.decode().split(f'data-testid="token-budget-{token.pk}"')[1]
    assert row.split("</div>")[0].strip(">\n ").startswith(f"{quota_text(0)} of {quota_text(1000)}")


def test_a_token_without_limits_shows_none(alice_client, alice_token):
    assert f'data-testid="token-limits-{alice_token.pk}"' not in alice_client.get("/token/").content.decode()


def test_the_dashboard_shows_the_accounts_budget_and_limits(alice_client, limited):
    now = now_ts()
    User.objects.filter(pk=limited.pk).update(budget_spent=1_000_000, budget_period_start=period_start("day", now))
    html = alice_client.get("/dashboard/").content.decode()
    budget = html.split('data-testid="dashboard-budget"')[1].split("</p>")[0]
    assert f"$2 of $10 spent today, resets at {reset_text(period_end('day', now))}" in budget
    limits = html.split('data-testid="dashboard-limits"')[1].split("</p>")[0]
    assert "60 requests a minute, 5 at once" in limits


def test_the_dashboard_without_a_budget_shows_none(alice_client, alice):
    assert 'data-testid="account-limits"' not in alice_client.get("/dashboard/").content.decode()
