"""Admin routes over redemption codes: /api/redemption/."""

import pytest

from billing.models import RedemptionCode
from tests.api_fixtures import envelope
from tests.factories import RedemptionFactory

pytestmark = pytest.mark.django_db


def test_create_returns_the_keys(staff_api, staff):
    keys = envelope(staff_api.post("/api/redemption/", {"name": "promo", "quota": 5000, "count": 3}, format="json"))
    assert len(keys) == 3 and len(set(keys)) == 3
    codes = RedemptionCode.objects.filter(key__in=keys)
    assert codes.count() == 3
    assert {(c.name, c.quota, c.user_id, c.status) for c in codes} == {("promo", 5000, staff.pk, 1)}


@pytest.mark.parametrize("body,field", [
    ({"name": "", "quota": 1, "count": 1}, "name"),
    ({"name": "x", "quota": 1, "count": 101}, "count"),
    ({"name": "x", "quota": 0, "count": 1}, "quota"),
    ({"name": "x", "quota": "a lot", "count": 1}, "quota"),
])
def test_create_validation_names_the_field(staff_api, body, field):
    assert envelope(staff_api.post("/api/redemption/", body, format="json"), success=False)["field"] == field
    assert not RedemptionCode.objects.exists()


def test_list_paginates_newest_first(staff_api):
    codes = [RedemptionFactory(name=f"c{i}") for i in range(12)]
    first = envelope(staff_api.get("/api/redemption/?p=0"))
    second = envelope(staff_api.get("/api/redemption/?p=1"))
    assert [c["id"] for c in first] == [c.pk for c in reversed(codes)][:10]
    assert [c["id"] for c in second] == [codes[1].pk, codes[0].pk]
    assert first[0]["key"] == codes[-1].key


def test_search_by_name_prefix_and_id(staff_api):
    spring = RedemptionFactory(name="spring-sale")
    RedemptionFactory(name="summer")
    assert [c["id"] for c in envelope(staff_api.get("/api/redemption/search?keyword=spr"))] == [spring.pk]
    assert [c["name"] for c in envelope(staff_api.get(f"/api/redemption/search?keyword={spring.pk}"))] == \
        ["spring-sale"]


def test_get_by_id(staff_api):
    code = RedemptionFactory(name="one", quota=99)
    data = envelope(staff_api.get(f"/api/redemption/{code.pk}"))
    assert data["quota"] == 99 and data["key"] == code.key
    envelope(staff_api.get("/api/redemption/999999"), success=False)


def test_update_name_and_quota(staff_api):
    code = RedemptionFactory(name="old", quota=10)
    data = envelope(staff_api.put("/api/redemption/", {"id": code.pk, "name": "new", "quota": 20}, format="json"))
    code.refresh_from_db()
    assert (code.name, code.quota) == ("new", 20) and data["quota"] == 20


def test_update_status_only(staff_api):
    code = RedemptionFactory(name="keep", quota=10)
    envelope(staff_api.put("/api/redemption/?status_only=1", {"id": code.pk, "status": 2, "name": "ignored"},
                           format="json"))
    code.refresh_from_db()
    assert code.status == RedemptionCode.Status.DISABLED and code.name == "keep"


def test_a_used_codes_status_cannot_change(staff_api, alice_api):
    code = RedemptionFactory(quota=10)
    envelope(alice_api.post("/api/user/topup", {"key": code.key}, format="json"))
    body = envelope(staff_api.put("/api/redemption/?status_only=1", {"id": code.pk, "status": 1}, format="json"),
                    success=False)
    assert body["field"] == "status"
    code.refresh_from_db()
    assert code.status == RedemptionCode.Status.USED


def test_a_disabled_code_cannot_be_redeemed(staff_api, alice_api, alice):
    code = RedemptionFactory(quota=10)
    envelope(staff_api.put("/api/redemption/?status_only=1", {"id": code.pk, "status": 2}, format="json"))
    envelope(alice_api.post("/api/user/topup", {"key": code.key}, format="json"), success=False)
    alice.refresh_from_db()
    assert alice.quota == 1_000_000


def test_delete(staff_api):
    code = RedemptionFactory()
    envelope(staff_api.delete(f"/api/redemption/{code.pk}"))
    assert not RedemptionCode.objects.filter(pk=code.pk).exists()
    envelope(staff_api.delete(f"/api/redemption/{code.pk}"), success=False)


def test_redemptions_are_admin_only(alice_api):
    code = RedemptionFactory()
    assert alice_api.get("/api/redemption/").status_code == 403
    assert alice_api.get(f"/api/redemption/{code.pk}").status_code == 403
    assert alice_api.post("/api/redemption/", {"name": "x", "quota": 1, "count": 1}, format="json").status_code == 403
