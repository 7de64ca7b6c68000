"""Numbers and lists sent for tokens and users are read by the bounded parser: a named 4xx or form error,
never a 500, never seconds of CPU, never a value the column cannot hold."""

import pytest
from django.urls import reverse

from accounts.models import Token, User
from billing.models import Log
from billing.services import option_set
from tests.api_fixtures import envelope
from tests.factories import ChannelFactory

pytestmark = pytest.mark.django_db

BIGINT_MAX = 2**63 - 1


@pytest.fixture(autouse=True)
def channel(db):
    return ChannelFactory(models="gpt-4o-mini,gpt-4o", group="default")


def page_error(response, field: str) -> str:
    html = response.content.decode()
    assert response.status_code == 200, html[:500]
    return html.split(f'data-testid="error-{field}"')[1].split("</ul>")[0]


# --- The token page's quota ----------------------------------------------------------------------------


@pytest.mark.parametrize("quota", ["1e500000", "1e999999", "-1E5", "2.5e-3"])
def test_token_page_refuses_an_exponent_before_any_arithmetic(alice_client, alice, quota):
    # 1e500000 took 11 s of CPU (int(Decimal) of half a million digits) while the process served nothing
    # else; 1e999999 times QuotaPerUnit raised decimal.Overflow (a 500). Now the text's shape refuses both.
    response = alice_client.post("/token/new/", {"name": "big", "quota": quota, "never_expires": "on"})
    assert "Quota (US$) must be written in plain digits, without an exponent" in page_error(response, "quota")
    assert not Token.objects.filter(user=alice).exists()


@pytest.mark.parametrize("quota, message", [
    pytest.param("9" * 5000, "Quota (US$) has too many digits", id="5000-digits"),
    ("18446744073709.552", "Quota (US$) must be at most 18446744073709.551614"),  # past BIGINT in quota
    ("NaN", "Enter a number."),
    ("-0.5", "The quota must not be negative."),
])
def test_token_page_refuses_what_the_column_cannot_hold(alice_client, alice, quota, message):
    response = alice_client.post("/token/new/", {"name": "big", "quota": quota, "never_expires": "on"})
    assert message in page_error(response, "quota")
    assert not Token.objects.filter(user=alice).exists()


def test_token_page_takes_the_largest_amount_the_column_holds(alice_client, alice):
    option_set(key="DisplayInCurrencyEnabled", value=False)
    response = alice_client.post("/token/new/", {"name": "max", "quota": str(BIGINT_MAX), "never_expires": "on"})
    assert response.status_code == 302
    assert Token.objects.get(user=alice, name="max").remain_quota == BIGINT_MAX
    assert alice_client.get("/token/").status_code == 200


def test_token_page_refuses_an_expiry_past_what_dates_can_show(alice_client, alice):
    response = alice_client.post("/token/new/", {"name": "late", "quota": "1", "expires_at": "9999-12-31T23:59"})
    assert "before the year 9999" in page_error(response, "expires_at")
    assert not Token.objects.filter(user=alice).exists()


def test_token_page_refuses_a_huge_subnet_list(alice_client, alice):
    response = alice_client.post("/token/new/", {"name": "net", "quota": "1", "never_expires": "on",
                                                 "subnet": "10.0.0.1," * 200_000})
    assert "at most 4096 characters" in page_error(response, "subnet")
    assert not Token.objects.filter(user=alice).exists()


# --- /api/token/ ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("body, field, message", [
    ({"expired_time": 10**20}, "expired_time", f"expired_time must be at most {BIGINT_MAX}"),
    ({"expired_time": 10**15}, "expired_time", "expired_time must be at most 253370764800"),
    ({"remain_quota": 2**63}, "remain_quota", f"remain_quota must be at most {BIGINT_MAX}"),
    ({"remain_quota": 1e20}, "remain_quota", f"remain_quota must be at most {BIGINT_MAX}"),
    ({"remain_quota": "1e5"}, "remain_quota", "remain_quota must be written in plain digits, without an exponent"),
    ({"remain_quota": 10**4000}, "remain_quota", "remain_quota has too many digits"),
    ({"remain_quota": True}, "remain_quota", "remain_quota must be a number"),
    ({"models": "m," * 750_000}, "models", "models may have at most 10000 characters"),
    ({"models": ["x" * 256]}, "models", "longer than 255 characters"),
    ({"subnet": "10.0.0.1," * 200_000}, "subnet", "subnet may have at most 4096 characters"),
])
def test_token_api_refuses_out_of_range_numbers_and_huge_lists(alice_api, body, field, message):
    response = alice_api.post("/api/token/", {"name": "ok", **body}, format="json")
    result = envelope(response, success=False)
    assert response.status_code == 200  # one-api's clients read the envelope
    assert result["field"] == field and message in result["message"]
    assert not Token.objects.exists()


def test_token_api_edit_refuses_an_out_of_range_quota(alice_api, alice_token):
    result = envelope(alice_api.put("/api/token/", {"id": alice_token.pk, "remain_quota": 2**64}, format="json"),
                      success=False)
    assert result["field"] == "remain_quota"
    alice_token.refresh_from_db()
    assert alice_token.remain_quota == 500_000


def test_token_api_takes_the_largest_values_the_columns_hold(alice_api):
    data = envelope(alice_api.post("/api/token/", {"name": "max", "remain_quota": BIGINT_MAX,
                                                   "expired_time": 253_370_764_800}, format="json"))
    assert data["remain_quota"] == BIGINT_MAX and data["expired_time"] == 253_370_764_800


def test_token_api_refuses_an_id_past_the_column(alice_api):
    result = envelope(alice_api.put("/api/token/", {"id": 10**20, "name": "x"}, format="json"), success=False)
    assert result["field"] == "id"


# --- The console's token and user forms ---------------------------------------------------------------


def test_console_token_form_refuses_a_quota_past_the_column(root_client, alice_token):
    url = reverse("admin:accounts_token_change", args=[alice_token.pk])
    response = root_client.post(url, {"name": alice_token.name, "remain_quota": "9" * 25, "expired_time": "",
                                      "models": "", "subnet": "", "status": "1"})
    assert response.status_code == 200
    assert "Remain quota must be at most 9223372036854775807" in response.content.decode()
    alice_token.refresh_from_db()
    assert alice_token.remain_quota == 500_000


def test_console_token_form_refuses_a_huge_model_list(root_client, alice_token):
    url = reverse("admin:accounts_token_change", args=[alice_token.pk])
    response = root_client.post(url, {"name": alice_token.name, "remain_quota": "1", "expired_time": "",
                                      "models": "m," * 100_000, "subnet": "", "status": "1"})
    assert response.status_code == 200
    assert "at most 10000 characters" in response.content.decode()
    alice_token.refresh_from_db()
    assert alice_token.models == ""


@pytest.mark.parametrize("quota, message", [
    ("9223372036854775808", "Quota must be at most 9223372036854775807"),
    ("1e30", "Quota must be written in plain digits, without an exponent"),
])
def test_console_user_form_refuses_a_balance_past_the_column(root_client, alice, quota, message):
    url = reverse("admin:accounts_user_change", args=[alice.pk])
    response = root_client.post(url, {"display_name": alice.display_name, "email": "", "role": "1", "status": "1",
                                      "group": "default", "quota": quota, "new_password": ""})
    assert response.status_code == 200
    assert message in response.content.decode()
    alice.refresh_from_db()
    assert alice.quota == 1_000_000


# --- PUT /api/user/ ------------------------------------------------------------------------------------


@pytest.mark.parametrize("body, field", [
    ({"quota": 2**63}, "quota"),
    ({"quota": -(2**63) - 1}, "quota"),
    ({"quota": "1e20"}, "quota"),
    ({"role": 10**20}, "role"),
    ({"status": 2**40}, "status"),
])
def test_user_api_edit_refuses_out_of_range_numbers(root_api, alice, body, field):
    result = envelope(root_api.put("/api/user/", {"id": alice.pk, **body}, format="json"), success=False)
    assert result["field"] == field
    alice.refresh_from_db()
    assert alice.quota == 1_000_000 and alice.role == User.Role.COMMON and alice.status == User.Status.ENABLED


def test_user_api_refuses_an_id_past_the_column(root_api):
    result = envelope(root_api.put("/api/user/", {"id": 10**20, "quota": 1}, format="json"), success=False)
    assert result["field"] == "id"


def test_user_api_sets_the_largest_balance_the_column_holds_as_an_integer(root_api, alice):
    envelope(root_api.put("/api/user/", {"id": alice.pk, "quota": BIGINT_MAX}, format="json"))
    alice.refresh_from_db()
    assert alice.quota == BIGINT_MAX and isinstance(alice.quota, int)
    assert Log.objects.get(user_id=alice.pk, type=Log.Type.MANAGE).quota == BIGINT_MAX - 1_000_000


# --- Searches ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["9" * 30, "²", pytest.param("1" * 5000, id="5000-digits")])
def test_searches_treat_an_impossible_id_as_no_match(root_api, alice_api, keyword):
    for client, url in ((root_api, "/api/user/search"), (root_api, "/api/redemption/search"),
                        (root_api, "/api/channel/search"), (root_api, "/api/log/search"),
                        (alice_api, "/api/log/self/search")):
        response = client.get(url, {"keyword": keyword})
        assert response.status_code == 200, (url, response.content[:300])
        assert envelope(response) == []


@pytest.mark.parametrize("value", ["9" * 30, "²", pytest.param("9" * 5000, id="5000-digits")])
def test_the_logs_page_treats_an_impossible_cursor_as_none(alice_client, value):
    for name in ("before", "after"):
        assert alice_client.get("/log/", {name: value}).status_code == 200


def test_api_query_numbers_are_read_by_the_parser(alice_api):
    for params, field in (({"p": "1e3"}, "p"), ({"type": "9" * 50}, "type"), ({"start_timestamp": "1_000"},
                                                                               "start_timestamp")):
        result = envelope(alice_api.get("/api/log/self", params), success=False)
        assert result["field"] == field
    assert envelope(alice_api.get("/api/log/self", {"p": "9" * 30})) == []  # a page past the end is empty
