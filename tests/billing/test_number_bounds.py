"""Quota amounts for top-ups and redemption codes, and the numeric options, read by the bounded parser:
a named error rather than a 500, balances that stay integers within their column, options that cannot
break the site (saved or already stored), and money written by one Decimal formatter."""

import logging

import pytest
from django.urls import reverse

from accounts.models import User
from billing.models import Log, Option, RedemptionCode
from billing.money import log_amount
from billing.services import option_set
from oneapi_site import options
from tests.api_fixtures import envelope
from tests.factories import RedemptionFactory, TokenFactory

pytestmark = pytest.mark.django_db

BIGINT_MAX = 2**63 - 1


@pytest.fixture(autouse=True)
def _fresh_options(db):
    options.reload_from_db()
    yield
    options.reload_from_db()


# --- POST /api/topup -----------------------------------------------------------------------------------


@pytest.mark.parametrize("quota, message", [
    (BIGINT_MAX + 1, f"quota must be at most {BIGINT_MAX}"),
    (10**20, f"quota must be at most {BIGINT_MAX}"),
    ("1e5", "quota must be written in plain digits, without an exponent"),
    (-1000, "quota must be at least 1"),
    (0, "quota must be at least 1"),
])
def test_topup_refuses_an_amount_outside_what_a_balance_takes(root_api, alice, quota, message):
    response = root_api.post("/api/topup", {"user_id": alice.pk, "quota": quota}, format="json")
    result = envelope(response, success=False)
    assert result["field"] == "quota" and result["message"] == message
    alice.refresh_from_db()
    assert alice.quota == 1_000_000
    assert not Log.objects.filter(user_id=alice.pk).exists()


def test_topup_refuses_a_credit_the_balance_column_cannot_hold(root_api, alice):
    # On SQLite the sum became the float 9.223372036859775e+18 (and a later edit a 500); MySQL answered a 500.
    result = envelope(root_api.post("/api/topup", {"user_id": alice.pk, "quota": BIGINT_MAX}, format="json"),
                      success=False)
    assert result["field"] == "quota" and "cannot hold" in result["message"]
    alice.refresh_from_db()
    assert alice.quota == 1_000_000 and isinstance(alice.quota, int)
    assert not Log.objects.filter(user_id=alice.pk).exists()


def test_topup_fills_a_balance_exactly_to_the_columns_limit(root_api, alice):
    envelope(root_api.post("/api/topup", {"user_id": alice.pk, "quota": BIGINT_MAX - 1_000_000}, format="json"))
    alice.refresh_from_db()
    assert alice.quota == BIGINT_MAX and isinstance(alice.quota, int)
    envelope(root_api.put("/api/user/", {"id": alice.pk, "display_name": "Full"}, format="json"))


def test_topup_remark_is_bounded(root_api, alice):
    result = envelope(root_api.post("/api/topup", {"user_id": alice.pk, "quota": 5, "remark": "r" * 256},
                                    format="json"), success=False)
    assert result["field"] == "remark" and "at most 255 characters" in result["message"]
    envelope(root_api.post("/api/topup", {"user_id": alice.pk, "quota": 5, "remark": "r" * 255}, format="json"))


def test_topup_refuses_a_user_id_past_the_column(root_api):
    result = envelope(root_api.post("/api/topup", {"user_id": 10**20, "quota": 5}, format="json"), success=False)
    assert result["field"] == "user_id"


# --- Redemption codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body, field", [
    ({"quota": 10**25}, "quota"),
    ({"quota": BIGINT_MAX + 1}, "quota"),
    ({"count": 10**20}, "count"),
    ({"count": "2e1"}, "count"),
])
def test_redemption_api_refuses_out_of_range_numbers(staff_api, body, field):
    result = envelope(staff_api.post("/api/redemption/", {"name": "promo", "quota": 5, "count": 1, **body},
                                     format="json"), success=False)
    assert result["field"] == field
    assert not RedemptionCode.objects.exists()


def test_redemption_api_refuses_a_json_number_that_reads_as_infinity(staff_api):
    response = staff_api.generic("POST", "/api/redemption/", '{"name": "promo", "quota": 1e400, "count": 1}',
                                 content_type="application/json")
    result = envelope(response, success=False)
    assert result["field"] == "quota" and result["message"] == "quota must be a finite number"
    assert not RedemptionCode.objects.exists()


def test_redemption_api_edit_refuses_out_of_range_numbers(staff_api):
    code = RedemptionFactory()
    for body, field in (({"quota": 10**25}, "quota"), ({"status": 10**10}, "status"), ({"id": 10**30}, "id")):
        result = envelope(staff_api.put("/api/redemption/", {"id": code.pk, **body}, format="json"), success=False)
        assert result["field"] == field
    code.refresh_from_db()
    assert (code.quota, code.status) == (10_000, RedemptionCode.Status.ENABLED)


def test_console_batch_refuses_a_quota_past_the_column(root_client):
    # bulk_create raised OverflowError: the console showed "Server Error (500)".
    response = root_client.post(reverse("admin:billing_redemptioncode_batch"),
                                {"name": "promo", "quota": "9999999999999999999999999", "count": "2"})
    assert response.status_code == 200
    assert f"Quota must be at most {BIGINT_MAX}" in response.content.decode()
    assert not RedemptionCode.objects.exists()


def test_console_code_form_refuses_a_quota_past_the_column(root_client):
    code = RedemptionFactory(name="card")
    response = root_client.post(reverse("admin:billing_redemptioncode_change", args=[code.pk]),
                                {"name": "card", "quota": "1e30", "status": "1"})
    assert response.status_code == 200
    assert "Quota must be written in plain digits, without an exponent" in response.content.decode()
    code.refresh_from_db()
    assert code.quota == 10_000


def test_redeeming_a_code_the_balance_cannot_hold_is_refused_and_the_code_stays_unused(alice_api, alice):
    code = RedemptionFactory(quota=BIGINT_MAX)
    result = envelope(alice_api.post("/api/user/topup", {"key": code.key}, format="json"), success=False)
    assert "cannot hold" in result["message"]
    code.refresh_from_db()
    alice.refresh_from_db()
    assert code.status == RedemptionCode.Status.ENABLED and alice.quota == 1_000_000


def test_a_signup_gift_the_inviters_balance_cannot_hold_is_skipped(anon, alice):
    User.objects.filter(pk=alice.pk).update(quota=BIGINT_MAX - 10, aff_code="ALIC")
    option_set(key="QuotaForInviter", value=100)
    option_set(key="QuotaForInvitee", value=100)
    envelope(anon.post("/api/user/register", {"username": "newbie", "password": "pass-word-123",
                                              "aff_code": "ALIC"}, format="json"))
    alice.refresh_from_db()
    assert alice.quota == BIGINT_MAX - 10
    assert User.objects.get(username="newbie").quota == 100


# --- Options: refused when saved -----------------------------------------------------------------------


@pytest.mark.parametrize("key, value, message", [
    ("QuotaPerUnit", "-1", "QuotaPerUnit must be at least 0.000001"),
    ("QuotaPerUnit", "0", "QuotaPerUnit must be at least 0.000001"),
    ("QuotaPerUnit", "nan", "QuotaPerUnit must be a finite number"),
    ("QuotaPerUnit", "inf", "QuotaPerUnit must be a finite number"),
    ("QuotaPerUnit", "1e400", "QuotaPerUnit must be written in plain digits, without an exponent"),
    ("QuotaPerUnit", "0.0000001", "QuotaPerUnit may have at most 6 decimal places"),
    ("ModelRatio", '{"m": 1e400}', 'ModelRatio "m" must be a finite number'),
    ("ModelRatio", '{"m": -1}', 'ModelRatio "m" must be at least 0'),
    ("ModelRatio", '{"m": 20000}', 'ModelRatio "m" must be at most 10000'),
    pytest.param("ModelRatio", '{"m": ' + "1" * 5000 + "}", "ModelRatio must be a JSON object", id="5000-digits"),
    pytest.param("ModelRatio", '{"' + "m" * 300 + '": 1}', "a name may have at most 255 characters",
                 id="long-name"),
    ("CompletionRatio", '{"m": 1e309}', 'CompletionRatio "m" must be a finite number'),
    ("GroupRatio", '{"vip": -0.5}', 'GroupRatio "vip" must be at least 0'),
    ("RetryTimes", "-1", "RetryTimes must be at least 0"),
    ("RetryTimes", "101", "RetryTimes must be at most 100"),
    ("PreConsumedQuota", "-500", "PreConsumedQuota must be at least 0"),
    ("QuotaForNewUser", str(2**63), f"QuotaForNewUser must be at most {BIGINT_MAX}"),
    ("SMTPPort", "-25", "SMTPPort must be at least 1"),
    ("SMTPPort", "65536", "SMTPPort must be at most 65535"),
    pytest.param("SMTPPort", "1" * 5000, "SMTPPort has too many digits", id="SMTPPort-5000-digits"),
    ("ChannelDisableThreshold", "-5", "ChannelDisableThreshold must be at least 0"),
    ("ChannelDisableFailureCount", "0", "ChannelDisableFailureCount must be at least 1"),
    pytest.param("Notice", "n" * 65_536, "Notice may have at most 65535 characters", id="Notice-64K"),
])
def test_option_api_refuses_a_value_that_would_break_the_site(root_api, anon, key, value, message):
    result = envelope(root_api.put("/api/option/", {"key": key, "value": value}, format="json"), success=False)
    assert result["field"] == key and message in result["message"]
    assert not Option.objects.filter(key=key).exists()
    assert envelope(anon.get("/api/status"))["quota_per_unit"] == 500000


def test_option_api_refuses_a_json_number_that_reads_as_infinity(root_api):
    response = root_api.generic("PUT", "/api/option/", '{"key": "QuotaPerUnit", "value": 1e400}',
                                content_type="application/json")
    result = envelope(response, success=False)
    assert result["field"] == "value"  # DRF's JSONField: infinity is no JSON value
    assert not Option.objects.exists()


def test_option_api_takes_values_at_the_ends_of_their_ranges(root_api):
    for key, value in (("QuotaPerUnit", "0.000001"), ("QuotaPerUnit", "1000000000000"), ("SMTPPort", "65535"),
                       ("RetryTimes", "100"), ("ModelRatio", '{"m": 10000, "free": 0}'), ("QuotaPerUnit", "7.5")):
        envelope(root_api.put("/api/option/", {"key": key, "value": value}, format="json"))
    assert options.get("QuotaPerUnit") == 7.5 and options.get("SMTPPort") == 65535
    assert options.get("ModelRatio") == {"m": 10000, "free": 0}


def test_options_page_refuses_bad_numbers_on_their_fields(root_client):
    form = root_client.get(reverse("admin:billing_option_changelist")).context["form"]
    data = {name: str(form.initial[name]) for name in form.fields
            if name not in options.BOOL_KEYS and form.initial.get(name) is not None}
    data.update(QuotaPerUnit="0", RetryTimes="-3", ModelRatio='{"gpt-4o": 1e400}', SMTPPort="70000")
    response = root_client.post(reverse("admin:billing_option_changelist"), data)
    html = response.content.decode()
    assert response.status_code == 200
    for text in ("QuotaPerUnit must be at least 0.000001", "RetryTimes must be at least 0",
                 "ModelRatio &quot;gpt-4o&quot; must be a finite number", "SMTPPort must be at most 65535"):
        assert text in html
    assert not Option.objects.exists()


def test_options_page_shows_each_numbers_range(root_client):
    html = root_client.get(reverse("admin:billing_option_changelist")).content.decode()
    assert 'name="QuotaPerUnit" value="500000"' in html  # not 500000.0
    assert "From 1 to 65535." in html


# --- Options: already stored, by an older version or by hand ------------------------------------------


@pytest.mark.parametrize("key, stored", [
    ("QuotaPerUnit", "nan"), ("QuotaPerUnit", "inf"), ("QuotaPerUnit", "1e400"), ("QuotaPerUnit", "0"),
    ("QuotaPerUnit", "-1"), ("RetryTimes", "-2"), ("SMTPPort", "0"), ("ModelRatio", '{"gpt-4o": 1e400}'),
    pytest.param("ModelRatio", '{"gpt-4o": ' + "9" * 5000 + "}", id="ModelRatio-5000-digits"),
    ("PreConsumedQuota", "-1"),
])
def test_a_bad_stored_option_falls_back_to_its_default_with_a_warning(anon, caplog, key, stored):
    Option.objects.create(key=key, value=stored)
    with caplog.at_level(logging.WARNING, logger="oneapi"):
        options.reload_from_db()
    assert options.get(key) == options.parse(key, options.DEFAULTS[key])
    warnings = [r for r in caplog.records if r.name == "oneapi" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and key in warnings[0].getMessage()
    status = envelope(anon.get("/api/status"))
    assert status["quota_per_unit"] == 500000


def test_the_warning_names_the_key_but_never_the_stored_value(caplog):
    Option.objects.create(key="SMTPPort", value="hunter2-password-typed-in-the-wrong-row")
    with caplog.at_level(logging.WARNING, logger="oneapi"):
        options.reload_from_db()
    assert "SMTPPort" in caplog.text and "hunter2" not in caplog.text
    assert options.get("SMTPPort") == 587


def test_a_stored_nan_quota_per_unit_no_longer_breaks_the_public_status(anon):
    Option.objects.create(key="QuotaPerUnit", value="nan")
    options.snapshot.loaded_at = float("-inf")  # what a process sees after a restart: it reads the table
    response = anon.get("/api/status")
    assert response.status_code == 200 and response.json()["data"]["quota_per_unit"] == 500000


def test_a_bad_stored_quota_per_unit_leaves_balances_readable(alice_client, alice):
    Option.objects.create(key="QuotaPerUnit", value="-1")
    options.reload_from_db()
    html = alice_client.get("/dashboard/").content.decode()
    assert "$2<" in html  # 1,000,000 quota at the default 500,000 per US$, not -$1,000,000


# --- Money is written by one Decimal formatter ------------------------------------------------------


@pytest.mark.parametrize("quota, text", [
    (3, "$0.000006"), (1_234_567_890, "$2,469.13578"), (999_999_999_999_999_999, "$1,999,999,999,999.999998"),
    (-250_000, "-$0.5"),
])
def test_log_texts_write_money_as_the_pages_do(quota, text):
    assert log_amount(quota) == text


def test_money_is_exact_at_the_smallest_quota_per_unit(alice_client, alice):
    option_set(key="QuotaPerUnit", value="0.000001")
    User.objects.filter(pk=alice.pk).update(quota=10**17)
    html = alice_client.get("/dashboard/").content.decode()
    # US$10^23 to six places is 30 digits: past the 28 of Decimal's default context, where quantize fails.
    assert "$100,000,000,000,000,000,000,000<" in html


def test_money_in_the_console_matches_the_pages(root_client, alice):
    # 3 quota at 500,000 per US$ is $0.000006: the console printed a float's "$0.00".
    TokenFactory(user=alice, name="tiny", remain_quota=3, used_quota=1_234_567_890)
    html = root_client.get(reverse("admin:accounts_token_changelist")).content.decode()
    assert "3 ($0.000006)" in html
    assert "1,234,567,890 ($2,469.13578)" in html
    User.objects.filter(pk=alice.pk).update(quota=999_999_999_999_999_999)
    html = root_client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert "999,999,999,999,999,999 ($1,999,999,999,999.999998)" in html  # exact, not a float's nearest


def test_a_balance_change_too_large_for_the_manage_log_is_refused(root_api, alice):
    User.objects.filter(pk=alice.pk).update(quota=BIGINT_MAX)
    result = envelope(root_api.put("/api/user/", {"id": alice.pk, "quota": -(2**63)}, format="json"), success=False)
    assert result["field"] == "quota" and "two smaller steps" in result["message"]
    alice.refresh_from_db()
    assert alice.quota == BIGINT_MAX
    envelope(root_api.put("/api/user/", {"id": alice.pk, "quota": 0}, format="json"))
    envelope(root_api.put("/api/user/", {"id": alice.pk, "quota": -(2**63)}, format="json"))
    assert Log.objects.filter(user_id=alice.pk, type=Log.Type.MANAGE).count() == 2
