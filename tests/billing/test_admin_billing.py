import csv
import io
import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from billing.admin import EstimatedCountPaginator
from billing.models import Log, Option, RedemptionCode
from oneapi_site import options
from tests.admin_fixtures import action
from tests.factories import RedemptionFactory

CODES = reverse("admin:billing_redemptioncode_changelist")
BATCH = reverse("admin:billing_redemptioncode_batch")
LOGS = reverse("admin:billing_log_changelist")
OPTIONS = reverse("admin:billing_option_changelist")


@pytest.fixture(autouse=True)
def _fresh_options(db):
    options.reload_from_db()
    yield
    options.reload_from_db()


# --- Redemption codes ------------------------------------------------------------

def test_codes_changelist_masks_keys(root_client):
    code = RedemptionFactory(name="card")
    response = root_client.get(CODES)
    assert response.status_code == 200
    assert code.key not in response.content.decode()
    assert root_client.get(CODES, {"status__exact": "1", "q": "card"}).status_code == 200
    assert code.key not in root_client.get(reverse("admin:billing_redemptioncode_change",
                                                   args=[code.pk])).content.decode()


def test_add_leads_to_the_batch_page(root_client):
    response = root_client.get(reverse("admin:billing_redemptioncode_add"))
    assert response.status_code == 302 and response["Location"] == BATCH
    assert root_client.get(BATCH).status_code == 200


def test_batch_create_shows_the_keys_once_and_exports_them(root_client, root):
    response = root_client.post(BATCH, {"name": "promo", "quota": "500000", "count": "3"})
    assert response.status_code == 200
    codes = list(RedemptionCode.objects.filter(name="promo"))
    assert len(codes) == 3 and all(c.user_id == root.pk and c.quota == 500_000 for c in codes)
    html = response.content.decode()
    for code in codes:
        assert code.key in html
    ids = re.findall(r'name="_selected_action" value="(\d+)"', html)
    assert sorted(map(int, ids)) == sorted(c.pk for c in codes)

    download = action(root_client, CODES, "export_csv", ids)
    assert download["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.content.decode())))
    assert rows[0] == ["name", "key", "quota", "status", "created"]
    assert {row[1] for row in rows[1:]} == {c.key for c in codes}
    assert all(row[0] == "promo" and row[2] == "500000" and row[3] == "enabled" for row in rows[1:])


def test_batch_create_rejects_bad_input(root_client):
    response = root_client.post(BATCH, {"name": "x", "quota": "0", "count": "500"})
    assert response.status_code == 200
    assert not RedemptionCode.objects.exists()


def test_export_selected_as_csv(root_client):
    codes = [RedemptionFactory(name=f"c{i}") for i in range(2)]
    response = action(root_client, CODES, "export_csv", [codes[0].pk])
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert [row[1] for row in rows[1:]] == [codes[0].key]


@pytest.mark.parametrize("selected", ["abc", "1.5", "-0.0", "9" * 30, "", "\u0661"])
def test_an_action_on_a_selection_that_is_no_code_id_exports_nothing(root_client, selected):
    code = RedemptionFactory(name="c0")
    response = action(root_client, CODES, "export_csv", [selected])
    assert response.status_code == 200 and code.key not in response.content.decode()


def test_an_empty_to_field_on_a_codes_delete_page_means_the_id(root_client):
    code = RedemptionFactory(name="c0")
    url = reverse("admin:billing_redemptioncode_delete", args=[code.pk])
    assert root_client.get(url, {"_to_field": ""}).status_code == 200
    assert root_client.post(url, {"post": "yes", "_to_field": ""}).status_code == 302
    assert not RedemptionCode.objects.filter(pk=code.pk).exists()


def test_the_code_list_filters_by_no_column_its_sidebar_does_not_offer(staff_client):
    code = RedemptionFactory(name="c0")
    assert staff_client.get(CODES, {"key__startswith": code.key[:3]}).status_code == 400
    assert staff_client.get(CODES, {"status__exact": "1"}).context["cl"].result_count == 1


# --- Logs ----------------------------------------------------------------------------

def _log(**fields):
    defaults = {"user_id": 1, "type": Log.Type.CONSUME, "content": "used", "username": "alice",
                "model_name": "gpt-4o", "quota": 1234, "channel_id": 7}
    return Log.objects.create(**{**defaults, **fields})


def test_logs_are_read_only(root_client, staff_client):
    entry = _log()
    response = root_client.get(LOGS)
    assert response.status_code == 200
    html = response.content.decode()
    assert "gpt-4o" in html
    assert reverse("admin:billing_log_add") not in html
    assert root_client.get(reverse("admin:billing_log_add")).status_code == 403
    change = root_client.post(reverse("admin:billing_log_change", args=[entry.pk]), {"content": "edited"})
    assert change.status_code == 403
    entry.refresh_from_db()
    assert entry.content == "used"
    # Only root prunes the ledger.
    assert staff_client.post(reverse("admin:billing_log_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403


@pytest.mark.parametrize("selected", ["abc", "1.5", "-0.0", "9" * 30, "", "\u0661"])
def test_deleting_a_selection_that_is_no_log_id_deletes_nothing(root_client, selected):
    entry = _log()
    assert action(root_client, LOGS, "delete_selected", [selected], post="yes").status_code == 200
    assert Log.objects.filter(pk=entry.pk).exists()


@pytest.mark.parametrize("language, title", [("en", "Log #{id}: consume at 2024-03-01 12:30:05"),
                                             ("zh-hans", "日志 #{id}：消费，2024-03-01 12:30:05")])
def test_a_logs_page_has_a_readable_title_and_shows_times_as_dates(root_client, settings, language, title):
    settings.TIME_ZONE = "UTC"
    created = int(datetime(2024, 3, 1, 12, 30, 5, tzinfo=UTC).timestamp())
    entry = _log(created_at=created, content="Redeemed a code for $0.002", elapsed_time=1500)
    response = root_client.get(reverse("admin:billing_log_change", args=[entry.pk]), HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Log object" not in html and str(created) not in html
    assert title.format(id=entry.pk) in html
    assert "2024-03-01 12:30:05" in html and "1.50 s" in html
    if language == "zh-hans":
        assert "使用兑换码充值 $0.002" in html   # the content in the reader's language, as in the list


def test_a_log_reads_as_its_kind_and_time(settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    entry = Log(pk=8, type=Log.Type.TOPUP, created_at=int(datetime(2024, 3, 1, 12, tzinfo=UTC).timestamp()))
    assert str(entry) == "Log #8: top-up at 2024-03-01 20:00:00"


def test_logs_newest_first_and_filters(root_client):
    old = _log(created_at=int(datetime(2024, 1, 1, 12, tzinfo=UTC).timestamp()), model_name="old-model")
    new = _log(created_at=int(datetime(2024, 3, 1, 12, tzinfo=UTC).timestamp()), model_name="new-model",
               channel_id=9, username="bob")
    html = root_client.get(LOGS).content.decode()
    assert html.index("new-model") < html.index("old-model")

    def listed(params):
        page = root_client.get(LOGS, params)
        assert page.status_code == 200
        return {name for name in ("old-model", "new-model") if f">{name}<" in page.content.decode()}

    assert listed({"created_from": "2024-02-01"}) == {"new-model"}
    assert listed({"created_to": "2024-01-01"}) == {"old-model"}
    assert listed({"created_from": "2024-01-01", "created_to": "2024-03-01"}) == {"old-model", "new-model"}
    assert listed({"model_name": "old-model"}) == {"old-model"}
    assert listed({"channel_id": "9"}) == {"new-model"}
    assert listed({"username": "bob"}) == {"new-model"}
    assert listed({"type__exact": str(Log.Type.CONSUME)}) == {"old-model", "new-model"}
    assert listed({"q": "bob"}) == {"new-model"}
    assert old.pk and new.pk


def test_log_paginator_stops_counting_at_its_cap(db):
    for _ in range(5):
        _log()

    class Small(EstimatedCountPaginator):
        cap = 3

    # Filtered: counting stops at the cap. Unfiltered: the cap, or MariaDB's table estimate if larger.
    assert Small(Log.objects.filter(username="alice").order_by("-id"), 2).count == 3
    assert Small(Log.objects.order_by("-id"), 2).count >= 3
    assert Small(Log.objects.filter(username="nobody").order_by("-id"), 2).count == 0
    assert EstimatedCountPaginator(Log.objects.order_by("-id"), 2).count == 5


# --- Options -----------------------------------------------------------------------------

def _options_post(client, **changes):
    form = client.get(OPTIONS).context["form"]
    data = {}
    for name in form.fields:
        value = form.initial.get(name)
        if name in options.BOOL_KEYS:
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = str(value)
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return client.post(OPTIONS, data)


def test_options_page_renders_grouped(root_client):
    response = root_client.get(OPTIONS)
    assert response.status_code == 200
    html = response.content.decode()
    for group in options.GROUPS:
        assert f'id="options-{group}"' in html
    assert 'name="ModelRatio"' in html and 'type="checkbox" name="LogConsumeEnabled"' in html


def test_options_reject_invalid_model_ratio_naming_the_key(root_client):
    response = _options_post(root_client, ModelRatio='{"gpt-4o": 2.5,}', SystemName="Not saved")
    assert response.status_code == 200
    assert "ModelRatio is not valid JSON" in response.content.decode()
    assert not Option.objects.filter(key="ModelRatio").exists()
    assert options.get("SystemName") == "One API"


@pytest.mark.parametrize("key", sorted(options.JSON_KEYS))
@pytest.mark.parametrize("typed", ['{"\\ud800": 1}', '{"\\ud800": 1e20}', '{"m\\udfff": -1}'])
def test_options_refuse_a_ratio_named_with_a_lone_surrogate(root_client, key, typed):
    # Python reads "\ud800" out of JSON; no page or UTF-8 column holds it (the error naming it was a 500).
    response = _options_post(root_client, **{key: typed})
    assert response.status_code == 200
    assert f"{key} holds a lone UTF-16 surrogate" in response.content.decode()
    assert not Option.objects.filter(key=key).exists()


def test_options_save_changed_values(root_client):
    response = _options_post(root_client, ModelRatio='{"gpt-4o": 2.5, "my-model": 1}', QuotaPerUnit="1000",
                             LogConsumeEnabled=None, SystemName="Acme")
    assert response.status_code == 302, response.content.decode()[:3000]
    assert options.get("ModelRatio") == {"gpt-4o": 2.5, "my-model": 1}
    assert options.get("QuotaPerUnit") == 1000
    assert options.get("LogConsumeEnabled") is False
    assert options.get("SystemName") == "Acme"
    # Unchanged keys are not written.
    assert not Option.objects.filter(key="CompletionRatio").exists()


def test_options_page_saves_a_tier_table_and_refuses_a_bad_one_naming_the_tier(root_client):
    table = ('{"gemini-2.5-pro": {"enabled": true, "basis": "prompt_tokens", "tiers": ['
             '{"min_tokens": 0, "max_tokens": 200000, "input_price": 1.25, "completion_price": 10}, '
             '{"min_tokens": 200000, "input_price": 2.5, "completion_price": 15}]}}')
    response = _options_post(root_client, ModelTierPricing=table)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert set(options.get("ModelTierPricing").tiers) == {"gemini-2.5-pro"}
    assert not Option.objects.filter(key="ModelPrice").exists()  # unchanged, not written
    gap = table.replace('"min_tokens": 200000', '"min_tokens": 200001')
    response = _options_post(root_client, ModelTierPricing=gap)
    assert response.status_code == 200
    assert "no gap, no overlap" in response.content.decode()
    assert options.get("ModelTierPricing").tiers["gemini-2.5-pro"][1].min_tokens == 200000


def test_secrets_are_write_only(root_client):
    from billing.services import option_set

    option_set(key="SMTPToken", value="smtp-password-do-not-show")
    html = root_client.get(OPTIONS).content.decode()
    assert "smtp-password-do-not-show" not in html
    _options_post(root_client, SMTPToken="")
    assert options.get("SMTPToken") == "smtp-password-do-not-show"
    _options_post(root_client, SMTPToken="a-new-one")
    assert options.get("SMTPToken") == "a-new-one"


def test_a_service_refusal_shows_on_the_key(root_client):
    response = _options_post(root_client, GitHubOAuthEnabled="on")
    assert response.status_code == 200
    assert "set GitHubClientId and GitHubClientSecret" in response.content.decode()
    assert options.get("GitHubOAuthEnabled") is False


def test_options_are_root_only(staff_client, common_client):
    assert staff_client.get(OPTIONS).status_code == 403
    assert common_client.get(OPTIONS).status_code == 302


def test_editing_a_code_goes_through_the_service(root_client):
    code = RedemptionFactory(name="card")
    url = reverse("admin:billing_redemptioncode_change", args=[code.pk])
    response = root_client.post(url, {"name": "renamed", "quota": "777", "status": "2"})
    assert response.status_code == 302, response.content.decode()[:2000]
    code.refresh_from_db()
    assert (code.name, code.quota, code.status) == ("renamed", 777, RedemptionCode.Status.DISABLED)

    RedemptionCode.objects.filter(pk=code.pk).update(status=RedemptionCode.Status.USED)
    response = root_client.post(url, {"name": "renamed", "quota": "999", "status": "3"})
    assert response.status_code == 200
    assert "its quota cannot change" in response.content.decode()
    code.refresh_from_db()
    assert code.quota == 777


def test_a_logs_token_counts_name_the_cache_and_reasoning_parts(root_client):
    entry = _log(prompt_tokens=23050, completion_tokens=300, cached_tokens=20000, cache_write_tokens=3000,
                 cache_write_1h_tokens=2000, reasoning_tokens=120)
    _log(prompt_tokens=10, completion_tokens=2, model_name="plain-model")
    html = root_client.get(LOGS).content.decode()
    assert "23050 + 300 (cached 20000, cache write 3000, reasoning 120)" in html
    assert "10 + 2<" in html
    page = root_client.get(reverse("admin:billing_log_change", args=[entry.pk])).content.decode()
    for label in ("Cached tokens", "Cache write tokens", "1-hour cache write tokens", "Reasoning tokens"):
        assert label in page, label


def test_cache_ratios_are_edited_beside_the_model_ratios(root_client):
    html = root_client.get(OPTIONS).content.decode()
    assert 'name="CacheRatio"' in html and 'name="CreateCacheRatio"' in html
    response = _options_post(root_client, CacheRatio='{"claude-opus-4-6": 0.2}', CreateCacheRatio='{"m": -1}')
    assert response.status_code == 200 and "CreateCacheRatio" in response.content.decode()
    assert not Option.objects.filter(key="CacheRatio").exists()  # one bad value saves nothing
    response = _options_post(root_client, CacheRatio='{"claude-opus-4-6": 0.2}')
    assert response.status_code == 302
    assert options.get("CacheRatio") == {"claude-opus-4-6": 0.2}


def test_the_log_list_names_the_protocol_its_client_spoke(root_client):
    _log(model_name="claude-sonnet-4-5", client_protocol="anthropic")
    _log(model_name="gpt-4o", client_protocol="responses")
    _log(model_name="older-model")
    html = root_client.get(LOGS).content.decode()
    assert 'claude-sonnet-4-5<div class="quiet client-protocol" title="client protocol">Anthropic</div>' in html
    assert ">Responses</div>" in html and html.count("client-protocol") == 2
    zh = root_client.get(LOGS, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'title="客户端协议">Responses 格式</div>' in zh


def test_save_as_new_on_a_code_leads_to_the_batch_page_and_makes_nothing(root_client):
    # Codes are made in batches with random keys; Django honours "_saveasnew" though no button posts it.
    code = RedemptionFactory(name="card", quota=100)
    url = reverse("admin:billing_redemptioncode_change", args=[code.pk])
    response = root_client.post(url, {"name": "copy", "quota": "777", "status": "1", "_saveasnew": "1"})
    assert response.status_code == 302 and response["Location"] == BATCH
    assert list(RedemptionCode.objects.values_list("name", "quota")) == [("card", 100)]
