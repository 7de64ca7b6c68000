"""The logs page: own records only, filters, totals over the filtered set, keyset pages."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.models import Log
from billing.selectors import LogFilter, log_keyset_page, logs_totals
from tests.factories import UserFactory

URL = "/log/"
T0 = 1_746_000_000   # 2025-04-30 08:00:00 UTC


def log(user, **fields):
    defaults = {"user_id": user.pk, "username": user.username, "type": Log.Type.CONSUME, "created_at": T0,
                "model_name": "gpt-4o", "token_name": "main", "quota": 100, "prompt_tokens": 10,
                "completion_tokens": 2, "content": "ratio 1 x 1 x 1"}
    return Log.objects.create(**{**defaults, **fields})


def ids(response) -> list[int]:
    return [int(i) for i in re.findall(r'data-log-id="(\d+)"', response.content.decode())]


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def many(alice, bob):
    """45 of alice's logs interleaved with bob's, one minute apart; newest last."""
    mine = []
    for i in range(45):
        mine.append(log(alice, created_at=T0 + 60 * i, quota=i + 1, model_name="gpt-4o" if i % 3 else "gpt-4o-mini",
                        token_name="main" if i % 2 else "side"))
        log(bob, created_at=T0 + 60 * i, quota=1_000_000, model_name="gpt-4o", content="bob's secret prompt")
    return mine


def test_url_is_named_logs():
    assert reverse("logs") == URL


def test_anonymous_visitor_is_sent_to_login(db):
    response = Client().get(URL)
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_keyset_pages_walk_all_45_logs_both_ways(alice_client, many):
    expected = [log.pk for log in reversed(many)]
    first = alice_client.get(URL)
    assert first.status_code == 200
    assert ids(first) == expected[:20]
    page = first.context["page"]
    assert page.newer is None and page.older == expected[19]
    assert 'id="page-newer"' not in first.content.decode()

    second = alice_client.get(URL, {"before": page.older})
    assert ids(second) == expected[20:40]
    third = alice_client.get(URL, {"before": second.context["page"].older})
    assert ids(third) == expected[40:]
    assert third.context["page"].older is None and 'id="page-older"' not in third.content.decode()

    back = alice_client.get(URL, {"after": third.context["page"].newer})
    assert ids(back) == expected[20:40]
    top = alice_client.get(URL, {"after": back.context["page"].newer})
    assert ids(top) == expected[:20] and top.context["page"].newer is None


def test_pager_links_keep_the_filters(alice_client, many):
    html = alice_client.get(URL, {"token_name": "main"}).content.decode()
    older = re.search(r'id="page-older" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert "token_name=main" in older and "before=" in older
    assert older.startswith("?")     # relative to the page itself
    nxt = alice_client.get(URL + older)
    assert nxt.status_code == 200
    assert {Log.objects.get(pk=i).token_name for i in ids(nxt)} == {"main"}


def test_no_count_of_the_table_and_no_offset(alice_client, many):
    with CaptureQueriesContext(connection) as queries:
        alice_client.get(URL, {"before": many[30].pk, "model_name": "gpt-4o"})
    log_queries = [q["sql"] for q in queries.captured_queries if '"logs"' in q["sql"] or "`logs`" in q["sql"]]
    assert log_queries
    assert not any("OFFSET" in sql.upper() for sql in log_queries)
    for sql in log_queries:
        # Every read of the log table is bounded by the user's id; COUNT only in the filtered totals.
        assert "user_id" in sql
    assert sum("COUNT(" in sql.upper() for sql in log_queries) == 1
    assert len(log_queries) <= 3   # the page, the neighbour probe, the totals


def test_totals_cover_the_filtered_set_in_one_query(alice, many):
    f = LogFilter(user_id=alice.pk, model_name="gpt-4o")
    mine = [log for log in many if log.model_name == "gpt-4o"]
    log(alice, type=Log.Type.TOPUP, quota=5000, model_name="gpt-4o", prompt_tokens=0, completion_tokens=0)
    with CaptureQueriesContext(connection) as queries:
        totals = logs_totals(f=f)
    assert len(queries.captured_queries) == 1
    assert totals == {"count": len(mine) + 1, "quota": sum(log.quota for log in mine), "topup_quota": 5000,
                      "prompt_tokens": 10 * len(mine), "completion_tokens": 2 * len(mine), "cached_tokens": 0}


def test_page_totals_follow_the_filters(alice_client, many, set_option):
    set_option("DisplayInCurrencyEnabled", False)
    response = alice_client.get(URL, {"model_name": "gpt-4o-mini"})
    minis = [log for log in many if log.model_name == "gpt-4o-mini"]
    assert response.context["totals"]["count"] == len(minis) == 15
    assert response.context["totals"]["quota"] == sum(log.quota for log in minis)
    html = response.content.decode()
    assert re.search(r'data-testid="total-count">.*?<div class="value">15</div>', html, re.DOTALL)
    assert set(ids(response)) == {log.pk for log in minis}


def test_filter_by_type_token_and_time(alice, alice_client, many):
    topup = log(alice, type=Log.Type.TOPUP, created_at=T0 + 60 * 100, model_name="", token_name="", quota=9000,
                content="Redeemed a code")
    assert ids(alice_client.get(URL, {"type": Log.Type.TOPUP})) == [topup.pk]
    html = alice_client.get(URL, {"type": Log.Type.TOPUP}).content.decode()
    assert "Top-up" in html

    sides = alice_client.get(URL, {"token_name": "side"})
    assert sides.context["totals"]["count"] == 23

    tz = timezone.get_current_timezone()
    start = dt.datetime.fromtimestamp(T0 + 60 * 10, tz).strftime("%Y-%m-%dT%H:%M")
    end = dt.datetime.fromtimestamp(T0 + 60 * 14, tz).strftime("%Y-%m-%dT%H:%M")
    window = alice_client.get(URL, {"start": start, "end": end})
    assert ids(window) == [log.pk for log in reversed(many[10:15])]   # the end minute is included


def test_a_date_alone_covers_the_whole_day(alice, alice_client, many):
    day = dt.datetime.fromtimestamp(T0, timezone.get_current_timezone()).date().isoformat()
    response = alice_client.get(URL, {"start": day, "end": day})
    assert response.context["totals"]["count"] == 45


def test_bad_filters_are_shown_and_list_nothing(alice_client, many):
    response = alice_client.get(URL, {"start": "2025-05-02T00:00", "end": "2025-05-01T00:00"})
    assert response.status_code == 200
    assert "The end must not be before the start." in response.content.decode()
    assert ids(response) == [] and response.context["totals"] is None
    assert "end" in alice_client.get(URL, {"end": "yesterday"}).context["form"].errors
    assert "type" in alice_client.get(URL, {"type": "99"}).context["form"].errors


def test_another_users_logs_never_show_even_when_asked(alice_client, bob, many):
    bobs = set(Log.objects.filter(user_id=bob.pk).values_list("pk", flat=True))
    for params in ({}, {"user_id": bob.pk}, {"username": "bob"}, {"user": bob.pk}, {"before": max(bobs) + 1},
                   {"after": 0}, {"channel": 0}, {"type": Log.Type.CONSUME, "user_id": bob.pk}):
        response = alice_client.get(URL, params)
        html = response.content.decode()
        assert not bobs & set(ids(response)), params
        assert "bob&#x27;s secret prompt" not in html and "bob's secret prompt" not in html
        assert response.context["totals"]["quota"] < 1_000_000


def test_bob_sees_only_his_own(bob, many):
    client = Client()
    client.force_login(bob)
    response = client.get(URL)
    assert {Log.objects.get(pk=i).user_id for i in ids(response)} == {bob.pk}


def test_columns_and_translated_type_labels(alice, alice_client):
    log(alice, type=Log.Type.CONSUME, model_name="gpt-4o", token_name="main", prompt_tokens=123,
        completion_tokens=45, quota=500_000, content="ratio 2.5 x 1 x 4")
    log(alice, type=Log.Type.SYSTEM, model_name="", token_name="", quota=100, content="Welcome gift")
    html = alice_client.get(URL).content.decode()
    for text in ("gpt-4o", "main", ">123<", ">45<", "$1<", "ratio 2.5 x 1 x 4", "Consume", "System", "Welcome gift"):
        assert text in html, text
    zh = alice_client.get(URL, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert zh.status_code == 200


def test_empty_result_says_so(alice_client):
    response = alice_client.get(URL)
    assert 'id="log-empty"' in response.content.decode()
    assert response.context["page"].older is None


def test_keyset_selector_with_a_stale_link_shows_the_top_page(alice, many):
    top = log_keyset_page(f=LogFilter(user_id=alice.pk), size=20)
    assert log_keyset_page(f=LogFilter(user_id=alice.pk), before=many[0].pk, size=20).logs == top.logs
    assert log_keyset_page(f=LogFilter(user_id=alice.pk), after=many[-1].pk + 1000, size=20).logs == top.logs


@pytest.mark.parametrize("query", ["before=%C2%B2", "after=%C2%B2", "before=1" + "0" * 30, "after=1" + "0" * 30,
                                   "before=" + "9" * 5000, "after=" + "9" * 5000],
                         ids=["before-superscript", "after-superscript", "before-31-digits", "after-31-digits",
                              "before-5000-digits", "after-5000-digits"])
def test_a_cursor_that_is_no_id_shows_the_top_page(alice_client, many, query):
    # "²" passes str.isdigit() but not int(); past BIGINT no database compares; int() refuses past 4,300
    # digits. None may be a 500.
    response = alice_client.get(f"/log/?{query}")
    assert response.status_code == 200
    assert response.context["page"].logs == alice_client.get("/log/").context["page"].logs


def test_the_cache_and_reasoning_parts_are_shown_under_the_counts(alice, alice_client):
    log(alice, prompt_tokens=23050, completion_tokens=300, cached_tokens=20000, cache_write_tokens=3000,
        cache_write_1h_tokens=2000, reasoning_tokens=120,
        content="model ratio 1.5 x group ratio 1 x completion ratio 5, cache read ratio 0.1, "
                "cache write ratio 1.25, 1-hour cache write ratio 2")
    log(alice, prompt_tokens=10, completion_tokens=2)
    html = alice_client.get(URL).content.decode()
    assert ">23050<" in html and ">300<" in html
    assert html.count('data-part="cached"') == 1 and "20000 from cache" in html
    assert "3000 written to cache (2000 for 1 hour)" in html and "120 reasoning" in html
    assert 'data-testid="total-cached"' in html
    zh = alice_client.get(URL, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "20000 来自缓存" in zh and "缓存读取倍率 0.1" in zh and "1 小时缓存写入倍率 2" in zh


def test_each_log_names_the_protocol_its_client_spoke(alice, alice_client):
    for protocol in ("openai", "anthropic", "responses", "gemini"):
        log(alice, client_protocol=protocol, model_name=f"model-{protocol}")
    log(alice, model_name="from-before-protocols")  # logs written before it was recorded have none
    html = alice_client.get(URL).content.decode()
    for protocol, label in (("openai", "OpenAI"), ("anthropic", "Anthropic"), ("responses", "Responses"),
                            ("gemini", "Gemini")):
        assert re.search(rf'data-protocol="{protocol}"[^>]*>{label}</span>', html), protocol
    assert html.count("data-protocol=") == 4
    zh = alice_client.get(URL, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert re.search(r'data-protocol="anthropic" title="客户端协议">Anthropic 格式</span>', zh)
