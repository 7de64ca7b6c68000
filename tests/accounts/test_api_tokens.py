"""A user's relay tokens through /api/token/."""

import pytest

from accounts.models import Token
from tests.api_fixtures import envelope
from tests.factories import TokenFactory

pytestmark = pytest.mark.django_db


def test_token_create_returns_the_key(alice_api, alice):
    data = envelope(alice_api.post("/api/token/", {
        "name": "ci", "expired_time": -1, "remain_quota": 5000, "unlimited_quota": False,
        "models": "gpt-4o, gpt-4o-mini", "subnet": "10.0.0.0/8,192.168.1.1",
    }, format="json"))
    token = Token.objects.get(pk=data["id"])
    assert token.user == alice and data["key"] == token.key and len(token.key) == 48
    assert not data["key"].startswith("sk-")
    assert token.models == "gpt-4o,gpt-4o-mini" and data["models"] == "gpt-4o,gpt-4o-mini"
    assert token.subnet == "10.0.0.0/8,192.168.1.1"
    assert data["remain_quota"] == 5000 and data["expired_time"] == -1 and data["status"] == 1


def test_token_create_accepts_a_model_list(alice_api):
    data = envelope(alice_api.post("/api/token/", {"name": "l", "models": ["a", "b"]}, format="json"))
    assert data["models"] == "a,b"


@pytest.mark.parametrize("body,field", [
    ({"name": "x" * 31}, "name"),
    ({"name": "ok", "subnet": "10.0.0.0/99"}, "subnet"),
    ({"name": "ok", "expired_time": -5}, "expired_time"),
    ({"name": "ok", "remain_quota": "many"}, "remain_quota"),
    ({"name": "ok", "status": 9}, "status"),
])
def test_token_create_validation_names_the_field(alice_api, body, field):
    body = envelope(alice_api.post("/api/token/", body, format="json"), success=False)
    assert body["field"] == field
    assert not Token.objects.exists()


def test_token_list_is_own_tokens_newest_first_paginated(alice_api, alice, bob):
    mine = [TokenFactory(user=alice, name=f"t{i}") for i in range(11)]
    TokenFactory(user=bob, name="bobs")
    first = envelope(alice_api.get("/api/token/?p=0"))
    second = envelope(alice_api.get("/api/token/?p=1"))
    assert [t["id"] for t in first] == [t.pk for t in reversed(mine)][:10]
    assert [t["id"] for t in second] == [mine[0].pk]
    assert all(t["user_id"] == alice.pk for t in first + second)


def test_token_list_orders_by_remain_quota(alice_api, alice):
    TokenFactory(user=alice, name="small", remain_quota=1)
    TokenFactory(user=alice, name="big", remain_quota=10**9)
    TokenFactory(user=alice, name="mid", remain_quota=1000)
    names = [t["name"] for t in envelope(alice_api.get("/api/token/?order=remain_quota"))]
    assert names == ["big", "mid", "small"]


def test_token_search_is_by_name_prefix_and_own_only(alice_api, alice, bob):
    TokenFactory(user=alice, name="prod-a")
    TokenFactory(user=alice, name="dev")
    TokenFactory(user=bob, name="prod-bob")
    names = [t["name"] for t in envelope(alice_api.get("/api/token/search?keyword=prod"))]
    assert names == ["prod-a"]


def test_token_get_by_id(alice_api, alice_token):
    data = envelope(alice_api.get(f"/api/token/{alice_token.pk}"))
    assert data["name"] == "alice-key" and data["key"] == alice_token.key


def test_alice_cannot_read_update_or_delete_bobs_token(alice_api, bob):
    bobs = TokenFactory(user=bob, name="bobs", remain_quota=77)
    body = envelope(alice_api.get(f"/api/token/{bobs.pk}"), success=False)
    assert "data" not in body and bobs.key not in str(body)
    body = envelope(alice_api.put("/api/token/", {"id": bobs.pk, "name": "mine now", "remain_quota": 10**9},
                                  format="json"), success=False)
    assert "data" not in body
    envelope(alice_api.delete(f"/api/token/{bobs.pk}"), success=False)
    bobs.refresh_from_db()
    assert bobs.name == "bobs" and bobs.remain_quota == 77


def test_token_update_changes_fields(alice_api, alice_token):
    data = envelope(alice_api.put("/api/token/", {"id": alice_token.pk, "name": "renamed", "remain_quota": 42,
                                                  "unlimited_quota": True, "models": "", "subnet": ""},
                                  format="json"))
    alice_token.refresh_from_db()
    assert data["name"] == "renamed" == alice_token.name
    assert alice_token.remain_quota == 42 and alice_token.unlimited_quota


def test_token_update_status_only_ignores_other_fields(alice_api, alice_token):
    envelope(alice_api.put("/api/token/?status_only=1", {"id": alice_token.pk, "status": 2, "name": "ignored"},
                           format="json"))
    alice_token.refresh_from_db()
    assert alice_token.status == Token.Status.DISABLED and alice_token.name == "alice-key"


def test_reenabling_an_expired_token_is_refused(alice_api, alice):
    token = TokenFactory(user=alice, status=Token.Status.EXPIRED, expired_time=1000)
    body = envelope(alice_api.put("/api/token/?status_only=1", {"id": token.pk, "status": 1}, format="json"),
                    success=False)
    assert body["field"] == "expired_time"
    token.refresh_from_db()
    assert token.status == Token.Status.EXPIRED


def test_token_update_needs_an_id(alice_api):
    body = envelope(alice_api.put("/api/token/", {"name": "x"}, format="json"), success=False)
    assert body["field"] == "id"


def test_token_delete(alice_api, alice_token):
    envelope(alice_api.delete(f"/api/token/{alice_token.pk}"))
    assert not Token.objects.filter(pk=alice_token.pk).exists()


def test_token_routes_need_credentials(anon, alice_token):
    assert anon.get("/api/token/").status_code == 401
    assert anon.delete(f"/api/token/{alice_token.pk}").status_code == 401
    assert Token.objects.filter(pk=alice_token.pk).exists()


def test_a_page_past_the_databases_integers_is_empty_not_an_error(alice_api, alice):
    TokenFactory(user=alice)
    assert envelope(alice_api.get("/api/token/", {"p": "9" * 30})) == []
