"""The user's own routes and the admin routes over users."""

import time

import pytest

from accounts.models import User
from billing.models import Log, RedemptionCode
from billing.services import Charge, charges_apply
from tests.api_fixtures import envelope
from tests.factories import ChannelFactory, RedemptionFactory, UserFactory

pytestmark = pytest.mark.django_db


# --- Self ----------------------------------------------------------------------

def test_self_hides_password_and_access_token(alice_api, alice):
    data = envelope(alice_api.get("/api/user/self"))
    assert data["id"] == alice.pk and data["quota"] == 1_000_000 and data["group"] == "default"
    assert "password" not in data and "access_token" not in data


def test_self_update_changes_display_name_and_keeps_password_when_empty(alice_api, alice):
    data = envelope(alice_api.put("/api/user/self", {"display_name": "Alice A.", "password": ""}, format="json"))
    assert data["display_name"] == "Alice A."
    alice.refresh_from_db()
    assert alice.display_name == "Alice A." and alice.check_password("password123")


def test_self_update_sets_a_new_password(alice_api, alice):
    envelope(alice_api.put("/api/user/self", {"password": "new-password-1"}, format="json"))
    alice.refresh_from_db()
    assert alice.check_password("new-password-1")


def test_self_update_names_the_bad_field(alice_api):
    body = envelope(alice_api.put("/api/user/self", {"display_name": "x" * 21}, format="json"), success=False)
    assert body["field"] == "display_name"


def test_self_delete_soft_deletes(alice_api, alice):
    envelope(alice_api.delete("/api/user/self"))
    alice.refresh_from_db()
    assert alice.status == User.Status.DELETED and alice.username.startswith("deleted_")


def test_root_cannot_delete_itself(root_api, root):
    envelope(root_api.delete("/api/user/self"), success=False)
    root.refresh_from_db()
    assert root.status == User.Status.ENABLED and root.username == "root"


def test_access_token_rotation_returns_a_working_new_token(alice_api, alice, anon):
    old = alice.access_token
    new = envelope(alice_api.get("/api/user/token"))
    assert len(new) == 32 and new != old
    anon.credentials(HTTP_AUTHORIZATION=new)
    assert envelope(anon.get("/api/user/self"))["id"] == alice.pk
    anon.credentials(HTTP_AUTHORIZATION=old)
    assert anon.get("/api/user/self").status_code == 401


def test_aff_returns_the_invitation_code(alice_api, alice):
    assert envelope(alice_api.get("/api/user/aff")) == alice.aff_code


def test_aff_makes_a_code_for_a_user_without_one(api_as):
    user = UserFactory(username="noaff", aff_code=None)
    code = envelope(api_as(user).get("/api/user/aff"))
    user.refresh_from_db()
    assert code and user.aff_code == code


def test_available_models_lists_enabled_models_of_the_group(alice_api):
    ChannelFactory(models="gpt-4o,gpt-4o-mini", group="default")
    ChannelFactory(models="gpt-4o,o3", group="default")
    ChannelFactory(models="claude-x", group="vip")
    ChannelFactory(models="disabled-model", group="default", status=2)
    assert envelope(alice_api.get("/api/user/available_models")) == ["gpt-4o", "gpt-4o-mini", "o3"]


def test_topup_redeems_once_and_logs(alice_api, alice, bob_api, bob):
    code = RedemptionFactory(quota=12_345)
    assert envelope(alice_api.post("/api/user/topup", {"key": code.key}, format="json")) == 12_345
    body = envelope(bob_api.post("/api/user/topup", {"key": code.key}, format="json"), success=False)
    assert body["field"] == "key"
    body = envelope(alice_api.post("/api/user/topup", {"key": code.key}, format="json"), success=False)
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.quota == 1_000_000 + 12_345 and bob.quota == 1_000_000
    assert Log.objects.filter(user_id=alice.pk, type=Log.Type.TOPUP, quota=12_345).count() == 1
    code.refresh_from_db()
    assert code.status == RedemptionCode.Status.USED and code.redeemed_by_id == alice.pk


def test_topup_with_an_unknown_code_fails(alice_api):
    body = envelope(alice_api.post("/api/user/topup", {"key": "nope"}, format="json"), success=False)
    assert body["field"] == "key"


def _charge(user, model, quota, created_at, prompt=10, completion=5):
    return Charge(user_id=user.pk, username=user.username, token_id=0, token_name="", unlimited=False,
                  channel_id=0, model_name=model, quota=quota, prompt_tokens=prompt, completion_tokens=completion,
                  request_id="", elapsed_ms=1, is_stream=False, content="", created_at=created_at)


def test_dashboard_groups_last_seven_days_by_day_and_model(alice_api, alice, bob):
    now = int(time.time())
    charges_apply([
        _charge(alice, "gpt-4o", 100, now - 10), _charge(alice, "gpt-4o", 50, now - 20),
        _charge(alice, "gpt-4o-mini", 7, now - 30), _charge(alice, "gpt-4o", 999, now - 9 * 86400),
        _charge(bob, "gpt-4o", 5, now - 10),
    ])
    rows = envelope(alice_api.get("/api/user/dashboard"))
    assert len(rows) in (2, 3)  # the two recent gpt-4o logs may straddle midnight
    gpt4o = [r for r in rows if r["ModelName"] == "gpt-4o"]
    assert sum(r["Quota"] for r in gpt4o) == 150 and sum(r["RequestCount"] for r in gpt4o) == 2
    assert sum(r["PromptTokens"] for r in gpt4o) == 20 and sum(r["CompletionTokens"] for r in gpt4o) == 10
    mini = [r for r in rows if r["ModelName"] == "gpt-4o-mini"]
    assert mini[0]["Quota"] == 7 and len(mini[0]["Day"]) == 10
    assert set(rows[0]) == {"Day", "ModelName", "RequestCount", "Quota", "PromptTokens", "CompletionTokens"}


# --- Admin -----------------------------------------------------------------------

def test_user_list_paginates_with_p(root_api, root):
    for i in range(12):
        UserFactory(username=f"page{i:02d}")
    first = envelope(root_api.get("/api/user/?p=0"))
    second = envelope(root_api.get("/api/user/?p=1"))
    assert len(first) == 10 and len(second) == 3
    assert first[0]["username"] == "page11"
    assert {u["id"] for u in first}.isdisjoint({u["id"] for u in second})
    assert "password" not in first[0] and "access_token" not in first[0]


def test_user_list_orders_by_quota_and_hides_deleted(root_api):
    UserFactory(username="rich", quota=10**13)
    UserFactory(username="gone", status=User.Status.DELETED, quota=10**14)
    names = [u["username"] for u in envelope(root_api.get("/api/user/?order=quota&size=50"))]
    assert names[0] == "root" and names[1] == "rich" and "gone" not in names


def test_user_search_matches_prefix_and_id(root_api, alice):
    UserFactory(username="alfred")
    UserFactory(username="zed")
    names = {u["username"] for u in envelope(root_api.get("/api/user/search?keyword=al"))}
    assert names == {"alice", "alfred"}
    assert [u["username"] for u in envelope(root_api.get(f"/api/user/search?keyword={alice.pk}"))] == ["alice"]


def test_admin_reads_lower_roles_only(staff_api, alice, root, staff):
    assert envelope(staff_api.get(f"/api/user/{alice.pk}"))["username"] == "alice"
    body = envelope(staff_api.get(f"/api/user/{root.pk}"), success=False)
    assert "data" not in body
    envelope(staff_api.get(f"/api/user/{staff.pk}"), success=False)


def test_root_reads_anyone(root_api, staff):
    assert envelope(root_api.get(f"/api/user/{staff.pk}"))["role"] == 10


def test_admin_creates_a_user(staff_api):
    data = envelope(staff_api.post("/api/user/", {"username": "newbie", "password": "password-1",
                                                  "display_name": "Newbie"}, format="json"))
    user = User.objects.get(username="newbie")
    assert data["id"] == user.pk and user.role == User.Role.COMMON and user.check_password("password-1")


def test_admin_cannot_create_an_admin(staff_api):
    body = envelope(staff_api.post("/api/user/", {"username": "peer", "password": "password-1", "role": 10},
                                   format="json"), success=False)
    assert body["field"] == "role"
    assert not User.objects.filter(username="peer").exists()


def test_quota_edit_writes_a_manage_log(root_api, alice):
    data = envelope(root_api.put("/api/user/", {"id": alice.pk, "username": "alice", "display_name": "alice",
                                                "password": "", "quota": 2_500_000, "group": "vip"},
                                 format="json"))
    assert data["quota"] == 2_500_000 and data["group"] == "vip"
    alice.refresh_from_db()
    assert alice.quota == 2_500_000 and alice.check_password("password123")
    log = Log.objects.get(user_id=alice.pk, type=Log.Type.MANAGE)
    assert log.quota == 1_500_000


def test_update_without_quota_change_writes_no_log(root_api, alice):
    envelope(root_api.put("/api/user/", {"id": alice.pk, "display_name": "Al", "quota": 1_000_000}, format="json"))
    assert not Log.objects.filter(user_id=alice.pk).exists()


def test_admin_cannot_raise_a_role_to_their_own(staff_api, alice):
    body = envelope(staff_api.put("/api/user/", {"id": alice.pk, "role": 10}, format="json"), success=False)
    assert body["field"] == "role"
    alice.refresh_from_db()
    assert alice.role == User.Role.COMMON


def test_admin_cannot_edit_root(staff_api, root):
    envelope(staff_api.put("/api/user/", {"id": root.pk, "quota": 1}, format="json"), success=False)
    root.refresh_from_db()
    assert root.quota != 1


def test_admin_update_validates_fields(root_api, alice):
    body = envelope(root_api.put("/api/user/", {"id": alice.pk, "quota": "lots"}, format="json"), success=False)
    assert body["field"] == "quota"
    body = envelope(root_api.put("/api/user/", {"id": alice.pk, "password": "short"}, format="json"), success=False)
    assert body["field"] == "password"


def test_delete_user_is_soft(root_api, alice):
    envelope(root_api.delete(f"/api/user/{alice.pk}"))
    alice.refresh_from_db()
    assert alice.status == User.Status.DELETED and alice.username.startswith("deleted_")
    assert len(alice.username) == len("deleted_") + 32
    envelope(root_api.get(f"/api/user/{alice.pk}"), success=False)


def test_root_cannot_be_deleted(root_api, staff_api, root):
    envelope(root_api.delete(f"/api/user/{root.pk}"), success=False)
    envelope(staff_api.delete(f"/api/user/{root.pk}"), success=False)
    root.refresh_from_db()
    assert root.status == User.Status.ENABLED


@pytest.mark.parametrize("action,role,status", [("disable", 1, 2), ("promote", 10, 1)])
def test_manage_actions_return_role_and_status(root_api, alice, action, role, status):
    data = envelope(root_api.post("/api/user/manage", {"username": "alice", "action": action}, format="json"))
    assert data == {"role": role, "status": status}
    alice.refresh_from_db()
    assert (alice.role, alice.status) == (role, status)


def test_manage_by_id_enables_and_demotes(root_api):
    user = UserFactory(username="mgr", role=User.Role.ADMIN, status=User.Status.DISABLED)
    assert envelope(root_api.post("/api/user/manage", {"id": user.pk, "action": "enable"}, format="json")) == \
        {"role": 10, "status": 1}
    assert envelope(root_api.post("/api/user/manage", {"id": user.pk, "action": "demote"}, format="json")) == \
        {"role": 1, "status": 1}


def test_manage_delete_soft_deletes(root_api, alice):
    data = envelope(root_api.post("/api/user/manage", {"username": "alice", "action": "delete"}, format="json"))
    assert data["status"] == User.Status.DELETED


def test_promote_is_root_only(staff_api, alice):
    envelope(staff_api.post("/api/user/manage", {"username": "alice", "action": "promote"}, format="json"),
             success=False)
    alice.refresh_from_db()
    assert alice.role == User.Role.COMMON


@pytest.mark.parametrize("action", ["disable", "delete", "demote"])
def test_root_cannot_be_disabled_deleted_or_demoted(root_api, root, action):
    envelope(root_api.post("/api/user/manage", {"username": "root", "action": action}, format="json"),
             success=False)
    root.refresh_from_db()
    assert root.role == User.Role.ROOT and root.status == User.Status.ENABLED and root.username == "root"


def test_manage_rejects_an_unknown_action(root_api, alice):
    body = envelope(root_api.post("/api/user/manage", {"username": "alice", "action": "explode"}, format="json"),
                    success=False)
    assert body["field"] == "action"


def test_admin_topup_credits_and_logs(staff_api, alice):
    envelope(staff_api.post("/api/topup", {"user_id": alice.pk, "quota": 4000, "remark": "invoice 7"},
                            format="json"))
    alice.refresh_from_db()
    assert alice.quota == 1_004_000
    log = Log.objects.get(user_id=alice.pk, type=Log.Type.TOPUP)
    assert log.quota == 4000 and "invoice 7" in log.content


def test_admin_topup_is_admin_only(alice_api, alice):
    assert alice_api.post("/api/topup", {"user_id": alice.pk, "quota": 4000}, format="json").status_code == 403
