"""Who may act on whom, through every door: /api, the console and the top-up API (accounts/permissions.py).

Root acts on everyone. An admin acts on users below them, on those users' tokens and on their own tokens;
never on root's balance or tokens, never on another admin, and not on their own account through an admin
route. A common user has no admin route at all.
"""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import permissions
from accounts.models import Token, User
from accounts.services.users import user_access_token_reset
from billing.models import Log
from tests.factories import TokenFactory, UserFactory
from tests.helpers import logged_in

pytestmark = pytest.mark.django_db

ACTORS = ("common", "admin", "root")
TARGETS = ("common", "admin", "root", "self")


@pytest.fixture
def cast(root):
    """Actors and targets, each target a different account from the actor unless it is "self"."""
    actors = {"common": UserFactory(username="carl", role=User.Role.COMMON),
              "admin": UserFactory(username="adam", role=User.Role.ADMIN),
              "root": root}
    targets = {"common": UserFactory(username="cora", role=User.Role.COMMON),
               "admin": UserFactory(username="ada", role=User.Role.ADMIN),
               "root": root}
    return actors, targets


def _pick(cast, actor: str, target: str) -> tuple[User, User]:
    actors, targets = cast
    who = actors[actor]
    return who, who if target == "self" else targets[target]


def may_manage_user(actor: str, target: str) -> bool:
    """The rule, written out per case (not computed the way accounts.permissions computes it)."""
    return {
        ("root", "common"): True, ("root", "admin"): True, ("root", "root"): True, ("root", "self"): True,
        ("admin", "common"): True,
    }.get((actor, target), False)


def may_manage_token(actor: str, target: str) -> bool:
    return may_manage_user(actor, target) or target == "self"


def _api(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=user.access_token or user_access_token_reset(user=user))
    return client


def _succeeded(response) -> bool:
    return response.status_code == 200 and response.json()["success"] is True


# --- The rule itself --------------------------------------------------------------------------

@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("target", TARGETS)
def test_the_rule_answers_the_matrix(cast, actor, target):
    who, whom = _pick(cast, actor, target)
    token = TokenFactory(user=whom)
    assert permissions.user_can_manage(who, whom) is may_manage_user(actor, target)
    assert permissions.token_can_manage(who, token) is may_manage_token(actor, target)
    assert permissions.token_can_give(who, whom) is may_manage_token(actor, target)
    assert (whom in permissions.users_managed_by(who)) is may_manage_user(actor, target)
    assert (token in permissions.tokens_managed_by(who)) is may_manage_token(actor, target)


def test_nobody_gives_root_and_admins_give_nothing_above_common(cast):
    actors, _ = cast
    assert permissions.roles_givable(actors["root"]) == [User.Role.COMMON, User.Role.ADMIN]
    assert permissions.roles_givable(actors["admin"]) == [User.Role.COMMON]
    assert permissions.roles_givable(actors["common"]) == []


def test_a_disabled_admin_acts_on_nobody(cast):
    actors, targets = cast
    admin = actors["admin"]
    admin.status = User.Status.DISABLED
    assert not permissions.user_can_manage(admin, targets["common"])
    assert not permissions.users_managed_by(admin).exists()


# --- /api ------------------------------------------------------------------------------------

@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("target", TARGETS)
def test_api_user_edit_and_read_follow_the_rule(cast, actor, target):
    who, whom = _pick(cast, actor, target)
    client = _api(who)
    edited = client.put("/api/user/", {"id": whom.pk, "display_name": "changed"}, format="json")
    read = client.get(f"/api/user/{whom.pk}")
    whom.refresh_from_db()
    allowed = may_manage_user(actor, target)
    assert _succeeded(edited) is allowed and (whom.display_name == "changed") is allowed
    assert _succeeded(read) is allowed
    if not allowed:
        assert "data" not in read.json()


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("target", TARGETS)
def test_api_topup_follows_the_rule(cast, actor, target):
    who, whom = _pick(cast, actor, target)
    before = whom.quota
    # A positive amount: top-ups never deduct (tests/billing/test_number_bounds.py), so only the role decides.
    response = _api(who).post("/api/topup", {"user_id": whom.pk, "quota": 1000}, format="json")
    whom.refresh_from_db()
    allowed = may_manage_user(actor, target)
    assert _succeeded(response) is allowed
    assert whom.quota == (before + 1000 if allowed else before)
    assert Log.objects.filter(user_id=whom.pk, type=Log.Type.TOPUP).exists() is allowed
    if not allowed and actor != "common":
        assert response.json()["field"] == "user_id"


def test_an_admin_cannot_take_from_roots_balance(cast):
    """The reported case: PUT /api/user/ refused it, POST /api/topup did not."""
    actors, targets = cast
    root = targets["root"]
    before = root.quota
    taken = _api(actors["admin"]).post("/api/topup", {"user_id": root.pk, "quota": -1000}, format="json").json()
    given = _api(actors["admin"]).post("/api/topup", {"user_id": root.pk, "quota": 1000}, format="json").json()
    root.refresh_from_db()
    assert taken["success"] is False  # top-ups never deduct, whoever asks
    assert given["success"] is False and "role" in given["message"]
    assert root.quota == before


@pytest.mark.parametrize("actor", ("admin", "root"))
@pytest.mark.parametrize("target", TARGETS)
def test_api_delete_follows_the_rule(cast, actor, target):
    who, whom = _pick(cast, actor, target)
    response = _api(who).delete(f"/api/user/{whom.pk}")
    whom.refresh_from_db()
    # Root itself is never deleted, whoever asks.
    allowed = may_manage_user(actor, target) and not whom.is_root
    assert _succeeded(response) is allowed
    assert (whom.status == User.Status.DELETED) is allowed


# --- The console -------------------------------------------------------------------------------

def _user_edit(user: User, **overrides) -> dict:
    data = {"display_name": user.display_name, "email": user.email, "role": str(user.role),
            "status": str(user.status), "group": user.group, "quota": str(user.quota), "new_password": ""}
    return {**data, **overrides}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("target", TARGETS)
def test_console_user_edit_follows_the_rule(cast, actor, target):
    who, whom = _pick(cast, actor, target)
    client = logged_in(who)
    url = reverse("admin:accounts_user_change", args=[whom.pk])
    page = client.get(url)
    response = client.post(url, _user_edit(whom, display_name="changed", quota="5"))
    whom.refresh_from_db()
    allowed = may_manage_user(actor, target)
    assert (whom.display_name == "changed") is allowed and (whom.quota == 5) is allowed
    if allowed:
        assert page.status_code == 200 and response.status_code == 302
    elif actor == "common":
        assert page.status_code == 302 and "/admin/login/" in page["Location"]
    elif target == "self":
        # Their own page reads, and changes nothing (it was a 500).
        assert page.status_code == 200 and 'name="display_name"' not in page.content.decode()
        assert response.status_code == 403
    else:
        # Out of their reach, as if it did not exist (it was a 500 for root).
        assert page.status_code == 302 and page["Location"] == reverse("admin:index")


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("target", TARGETS)
def test_console_token_creation_for_an_owner_follows_the_rule(cast, actor, target):
    who, whom = _pick(cast, actor, target)
    response = logged_in(who).post(reverse("admin:accounts_token_add"), {
        "user": str(whom.pk), "name": "made-here", "remain_quota": "1000", "expired_time": "", "models": "",
        "subnet": ""})
    created = Token.objects.filter(name="made-here", user=whom).exists()
    assert created is (may_manage_token(actor, target) and actor != "common")
    if not created and actor != "common":
        assert response.status_code == 200 and "errors field-user" in response.content.decode()


@pytest.mark.parametrize("actor", ("admin", "root"))
@pytest.mark.parametrize("target", TARGETS)
def test_console_token_edit_and_delete_follow_the_rule(cast, actor, target):
    who, whom = _pick(cast, actor, target)
    token = TokenFactory(user=whom, name="theirs")
    client = logged_in(who)
    client.post(reverse("admin:accounts_token_change", args=[token.pk]), {
        "name": "theirs", "remain_quota": str(token.remain_quota), "expired_time": "", "models": "",
        "subnet": "", "status": str(Token.Status.DISABLED)})
    token.refresh_from_db()
    allowed = may_manage_token(actor, target)
    assert (token.status == Token.Status.DISABLED) is allowed
    client.post(reverse("admin:accounts_token_delete", args=[token.pk]), {"post": "yes"})
    assert Token.objects.filter(pk=token.pk).exists() is not allowed


@pytest.mark.parametrize("actor", ("admin", "root"))
def test_console_lists_only_what_is_within_reach(cast, actor):
    who, _ = _pick(cast, actor, "self")
    client = logged_in(who)
    tokens = {target: TokenFactory(user=_pick(cast, actor, target)[1], name=f"tok-{target}") for target in TARGETS}
    users_html = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    tokens_html = client.get(reverse("admin:accounts_token_changelist")).content.decode()
    for target in TARGETS:
        _, whom = _pick(cast, actor, target)
        change = reverse("admin:accounts_user_change", args=[whom.pk])
        assert (change in users_html) is (may_manage_user(actor, target) or target == "self")
        assert (f"tok-{target}<" in tokens_html) is may_manage_token(actor, target), target
    assert tokens  # all made


@pytest.mark.parametrize("actor", ("admin", "root"))
def test_console_owner_autocomplete_offers_only_allowed_owners(cast, actor):
    who, _ = _pick(cast, actor, "self")
    response = logged_in(who).get(reverse("admin:autocomplete"), {
        "term": "", "app_label": "accounts", "model_name": "token", "field_name": "user"})
    assert response.status_code == 200
    offered = {int(item["id"]) for item in response.json()["results"]}
    for target in TARGETS:
        _, whom = _pick(cast, actor, target)
        assert (whom.pk in offered) is may_manage_token(actor, target), target


def test_an_admins_root_owned_key_never_exists_to_spend_roots_quota(cast):
    """The reported case: an admin made a key owned by root in the console; it worked on /v1."""
    actors, targets = cast
    logged_in(actors["admin"]).post(reverse("admin:accounts_token_add"), {
        "user": str(targets["root"].pk), "name": "roots-now", "remain_quota": "0", "unlimited_quota": "on",
        "expired_time": "", "models": "", "subnet": ""})
    assert not Token.objects.filter(user=targets["root"]).exists()


def test_an_admin_can_still_make_a_token_for_themselves_and_a_user_below(cast):
    actors, targets = cast
    client = logged_in(actors["admin"])
    for owner in (actors["admin"], targets["common"]):
        response = client.post(reverse("admin:accounts_token_add"), {
            "user": str(owner.pk), "name": f"for-{owner.username}", "remain_quota": "10", "expired_time": "",
            "models": "", "subnet": ""})
        assert response.status_code == 302, response.content.decode()[:2000]
        assert Token.objects.filter(user=owner, name=f"for-{owner.username}").exists()
