"""Logs through /api/log/ (admin) and /api/log/self (own)."""

import pytest

from billing.models import Log
from tests.api_fixtures import envelope

pytestmark = pytest.mark.django_db

CONSUME, TOPUP, MANAGE = Log.Type.CONSUME, Log.Type.TOPUP, Log.Type.MANAGE


@pytest.fixture
def logs(alice, bob):
    def log(user, type, created_at, quota=0, model="", token="", channel=0, content=""):
        return Log.objects.create(user_id=user.pk, username=user.username, type=type, created_at=created_at,
                                  quota=quota, model_name=model, token_name=token, channel_id=channel,
                                  content=content or f"{user.username} {type}")

    return [
        log(alice, CONSUME, 1000, 100, "gpt-4o", "k1", 1),
        log(alice, CONSUME, 2000, 200, "gpt-4o-mini", "k1", 2),
        log(alice, TOPUP, 3000, 5000, content="Redeemed a code"),
        log(bob, CONSUME, 4000, 400, "gpt-4o", "bk", 1),
        log(bob, MANAGE, 5000, 7, content="Quota changed by root"),
    ]


def test_admin_list_is_newest_first_with_one_api_fields(root_api, logs):
    rows = envelope(root_api.get("/api/log/"))
    assert [r["id"] for r in rows] == [log.pk for log in reversed(logs)]
    assert rows[1]["channel"] == 1 and rows[1]["model_name"] == "gpt-4o" and rows[1]["username"] == "bob"
    assert "total" not in rows


def test_admin_list_paginates_with_p(root_api, alice):
    made = [Log.objects.create(user_id=alice.pk, type=CONSUME, created_at=i) for i in range(13)]
    assert [r["id"] for r in envelope(root_api.get("/api/log/?p=1"))] == [log.pk for log in made[2::-1]]
    assert len(envelope(root_api.get("/api/log/?p=0&size=5"))) == 5


@pytest.mark.parametrize("query,expected", [
    ("type=2", [0, 1, 3]),
    ("username=bob", [3, 4]),
    ("model_name=gpt-4o", [0, 3]),
    ("token_name=k1", [0, 1]),
    ("channel=2", [1]),
    ("start_timestamp=2000&end_timestamp=4000", [1, 2, 3]),
    ("type=2&username=alice&start_timestamp=1500", [1]),
])
def test_admin_list_filters(root_api, logs, query, expected):
    rows = envelope(root_api.get(f"/api/log/?{query}"))
    assert sorted(r["id"] for r in rows) == sorted(logs[i].pk for i in expected)


def test_admin_stat_sums_consume_logs_with_filters(root_api, logs):
    assert envelope(root_api.get("/api/log/stat")) == {"quota": 700}
    assert envelope(root_api.get("/api/log/stat?username=alice")) == {"quota": 300}
    assert envelope(root_api.get("/api/log/stat?model_name=gpt-4o&end_timestamp=3000")) == {"quota": 100}
    assert envelope(root_api.get("/api/log/stat?username=nobody")) == {"quota": 0}


def test_a_bad_filter_names_the_parameter(root_api, logs):
    body = envelope(root_api.get("/api/log/?start_timestamp=yesterday"), success=False)
    assert body["field"] == "start_timestamp"


def test_admin_search_matches_type_or_content_prefix(root_api, logs):
    assert {r["id"] for r in envelope(root_api.get("/api/log/search?keyword=3"))} == {logs[4].pk}
    assert {r["id"] for r in envelope(root_api.get("/api/log/search?keyword=Redeemed"))} == {logs[2].pk}


def test_admin_deletes_logs_older_than_a_time(root_api, logs):
    assert envelope(root_api.delete("/api/log/?target_timestamp=3000")) == 2
    assert set(Log.objects.values_list("pk", flat=True)) == {log.pk for log in logs[2:]}


def test_delete_needs_a_target_timestamp(root_api, logs):
    body = envelope(root_api.delete("/api/log/"), success=False)
    assert body["field"] == "target_timestamp"
    assert Log.objects.count() == 5


def test_self_sees_only_own_logs_and_ignores_username_and_channel(alice_api, logs):
    rows = envelope(alice_api.get("/api/log/self"))
    assert [r["id"] for r in rows] == [logs[2].pk, logs[1].pk, logs[0].pk]
    rows = envelope(alice_api.get("/api/log/self?username=bob&channel=1"))
    assert len(rows) == 3
    assert [r["id"] for r in envelope(alice_api.get("/api/log/self?model_name=gpt-4o-mini"))] == [logs[1].pk]


def test_self_stat_sums_own_consume_logs(alice_api, bob_api, logs):
    assert envelope(alice_api.get("/api/log/self/stat")) == {"quota": 300}
    assert envelope(alice_api.get("/api/log/self/stat?token_name=k1&start_timestamp=1500")) == {"quota": 200}
    assert envelope(bob_api.get("/api/log/self/stat")) == {"quota": 400}


def test_self_search_keyword_is_a_type(alice_api, logs):
    assert [r["id"] for r in envelope(alice_api.get("/api/log/self/search?keyword=1"))] == [logs[2].pk]
    assert envelope(alice_api.get("/api/log/self/search?keyword=3")) == []


def test_admin_log_routes_are_admin_only(alice_api, anon, logs):
    assert alice_api.get("/api/log/").status_code == 403
    assert alice_api.delete("/api/log/?target_timestamp=99999").status_code == 403
    assert alice_api.get("/api/log/stat").status_code == 403
    assert anon.get("/api/log/self").status_code == 401
    assert Log.objects.count() == 5


def test_a_log_says_which_protocol_its_client_spoke(alice_api, alice):
    Log.objects.create(user_id=alice.pk, username=alice.username, type=CONSUME, model_name="claude-x",
                       client_protocol="anthropic")
    [row] = envelope(alice_api.get("/api/log/self"))
    assert row["client_protocol"] == "anthropic"


def test_items_carry_the_cache_and_reasoning_breakdown(alice_api, alice):
    Log.objects.create(user_id=alice.pk, username=alice.username, type=CONSUME, model_name="claude-opus-4-6",
                       prompt_tokens=23050, completion_tokens=300, cached_tokens=20000, cache_write_tokens=3000,
                       cache_write_1h_tokens=2000, reasoning_tokens=120, quota=13200)
    [row] = envelope(alice_api.get("/api/log/self"))
    assert (row["prompt_tokens"], row["completion_tokens"]) == (23050, 300)  # one-api's fields as they were
    assert (row["cached_tokens"], row["cache_write_tokens"], row["cache_write_1h_tokens"],
            row["reasoning_tokens"]) == (20000, 3000, 2000, 120)
