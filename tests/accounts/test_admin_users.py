import logging

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from billing.models import Log
from tests.admin_fixtures import action
from tests.factories import UserFactory

CHANGELIST = reverse("admin:accounts_user_changelist")
ADD = reverse("admin:accounts_user_add")
BANNER = 'id="default-password-warning"'


def change_url(user):
    return reverse("admin:accounts_user_change", args=[user.pk])


def edit_data(user, **overrides):
    data = {"display_name": user.display_name, "email": user.email, "role": str(user.role),
            "status": str(user.status), "group": user.group, "quota": str(user.quota), "new_password": ""}
    data.update(overrides)
    return data


def test_changelist_lists_users(root_client, alice):
    response = root_client.get(CHANGELIST)
    assert response.status_code == 200
    assert "alice" in response.content.decode()
    assert root_client.get(CHANGELIST, {"q": "ali", "role__exact": "1", "status__exact": "1"}).status_code == 200


def test_quota_change_writes_a_manage_log(root_client, alice):
    response = root_client.post(change_url(alice), edit_data(alice, quota="2500000"))
    assert response.status_code == 302, response.content.decode()[:2000]
    alice.refresh_from_db()
    assert alice.quota == 2_500_000
    entry = Log.objects.get(user_id=alice.pk, type=Log.Type.MANAGE)
    assert entry.quota == 1_500_000
    assert "root" in entry.content


def test_other_edits_keep_quota_and_write_no_log(root_client, alice):
    response = root_client.post(change_url(alice), edit_data(alice, display_name="Alice A.", group="vip"))
    assert response.status_code == 302
    alice.refresh_from_db()
    assert (alice.display_name, alice.group, alice.quota) == ("Alice A.", "vip", 1_000_000)
    assert not Log.objects.filter(user_id=alice.pk).exists()


def test_a_new_password_can_be_set_and_empty_keeps_it(root_client, alice):
    root_client.post(change_url(alice), edit_data(alice))
    alice.refresh_from_db()
    assert alice.check_password("password123")
    root_client.post(change_url(alice), edit_data(alice, new_password="a-much-better-one"))
    alice.refresh_from_db()
    assert alice.check_password("a-much-better-one")


def test_the_edit_form_does_not_render_the_password_hash(root_client, alice):
    html = root_client.get(change_url(alice)).content.decode()
    assert alice.password not in html


def test_root_cannot_be_disabled_or_demoted(root_client, root):
    response = root_client.post(change_url(root), edit_data(root, status="2"))
    assert response.status_code == 200
    response = root_client.post(change_url(root), edit_data(root, role="10"))
    assert response.status_code == 200
    root.refresh_from_db()
    assert root.role == User.Role.ROOT and root.status == User.Status.ENABLED


def test_nobody_is_made_root(root_client, alice):
    response = root_client.post(change_url(alice), edit_data(alice, role="100"))
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.role == User.Role.COMMON


def test_root_promotes_to_admin(root_client, alice):
    root_client.post(change_url(alice), edit_data(alice, role="10"))
    alice.refresh_from_db()
    assert alice.role == User.Role.ADMIN


def test_an_admin_cannot_raise_a_role_to_their_own(staff_client, alice):
    response = staff_client.post(change_url(alice), edit_data(alice, role="10"))
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.role == User.Role.COMMON


def test_an_admin_cannot_edit_root_or_other_admins(staff_client, root):
    other = UserFactory(username="other-admin", role=User.Role.ADMIN)
    for target in (root, other):
        response = staff_client.post(change_url(target), edit_data(target, display_name="hacked"))
        # Out of an admin's reach, they are out of the admin's queryset: "no such user", back to the index.
        assert response.status_code == 302 and response["Location"] == reverse("admin:index")
        target.refresh_from_db()
        assert target.display_name != "hacked"


def test_an_admin_posting_to_their_own_user_page_gets_a_403_logged_as_one_line(staff_client, staff, caplog):
    """Their page is theirs to read, not to change. The refusal is the client's doing: a warning line,
    no traceback (one is for what failed, and every refused click would add one)."""
    with caplog.at_level(logging.INFO):
        response = staff_client.post(change_url(staff), edit_data(staff, role="100"))
    assert response.status_code == 403
    refused = [r for r in caplog.records if r.name == "django.request"]
    assert refused and all(r.levelno == logging.WARNING and not r.exc_info for r in refused)
    staff.refresh_from_db()
    assert staff.role == User.Role.ADMIN


@pytest.mark.parametrize("url, query, logger", [
    (CHANGELIST, {"_to_field": "password"}, "django.security.DisallowedModelAdminToField"),
    (reverse("admin:accounts_token_changelist"), {"user__password__startswith": "pbkdf2"},
     "django.security.DisallowedModelAdminLookup"),
], ids=["to_field", "lookup"])
def test_a_changelist_asked_for_a_field_it_does_not_offer_is_a_400_and_a_warning_line(root_client, caplog,
                                                                                       url, query, logger):
    with caplog.at_level(logging.INFO):
        response = root_client.get(url, query)
    assert response.status_code == 400
    refused = [r for r in caplog.records if r.name == logger]
    assert refused and all(r.levelno == logging.WARNING and not r.exc_info for r in refused)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("selected", ["abc", "1.5", "-0.0", "9" * 30, "", "\u0661"])
def test_deleting_a_selection_that_is_no_user_id_deletes_nothing(root_client, alice, selected):
    assert action(root_client, CHANGELIST, "delete_selected", [selected], post="yes").status_code == 200
    alice.refresh_from_db()
    assert alice.status == User.Status.ENABLED


def test_an_empty_to_field_on_a_user_page_means_the_id(root_client, alice):
    # ?_to_field= names the field an object page looks its id up by; empty, Django looked up a field named "".
    assert root_client.get(change_url(alice), {"_to_field": ""}).status_code == 200
    response = root_client.post(change_url(alice), {**edit_data(alice, display_name="Al"), "_to_field": ""})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.display_name == "Al"


@pytest.mark.parametrize("query", [{"password__startswith": "md5"}, {"access_token__isnull": "false"},
                                   {"quota__gt": "0"}], ids=str)
def test_the_user_list_filters_by_no_column_its_sidebar_does_not_offer(staff_client, alice, query):
    assert staff_client.get(CHANGELIST, query).status_code == 400
    assert staff_client.get(CHANGELIST, {"role__exact": "1", "status__exact": "1"}).context["cl"].result_count == 1


def test_add_user_with_password(root_client):
    response = root_client.post(ADD, {
        "username": "bob", "display_name": "", "email": "", "password1": "correct-horse-9",
        "password2": "correct-horse-9", "role": "1", "group": "default", "quota": "0"})
    assert response.status_code == 302, response.content.decode()[:3000]
    bob = User.objects.get(username="bob")
    assert bob.check_password("correct-horse-9")
    assert bob.display_name == "bob"


def test_add_user_refuses_a_taken_name(root_client, alice):
    response = root_client.post(ADD, {
        "username": "alice", "password1": "correct-horse-9", "password2": "correct-horse-9",
        "role": "1", "group": "default", "quota": "0"})
    assert response.status_code == 200
    assert User.objects.filter(username="alice").count() == 1


def test_a_common_user_cannot_reach_the_admin(common_client):
    response = common_client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert common_client.get(CHANGELIST).status_code == 302


def test_index_shows_options_to_root_only(root_client, staff_client):
    options_url = reverse("admin:billing_option_changelist")
    assert options_url in root_client.get(reverse("admin:index")).content.decode()
    assert options_url not in staff_client.get(reverse("admin:index")).content.decode()


# --- Default password warning and branding -----------------------------------

@pytest.mark.parametrize("url", ["admin:index", "admin:accounts_user_changelist", "admin:billing_log_changelist"])
def test_root_with_the_default_password_is_sent_to_change_it(root_client, root, url):
    root.set_password("123456")
    root.save()
    root_client.force_login(root)
    response = root_client.get(reverse(url))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("password_change_required"))


def test_the_default_password_banner_shows_for_root(rf, root):
    from accounts.templatetags.oneapi_admin import default_password_warning

    root.set_password("123456")
    request = rf.get("/admin/")
    request.user = root
    assert default_password_warning({"request": request}) == {"show": True}
    root.set_password("root-pass-Secure1")
    assert default_password_warning({"request": request}) == {"show": False}


def test_the_banner_goes_once_root_changes_the_password(root_client, root):
    root.set_password("123456")
    root.save()
    root_client.force_login(root)
    response = root_client.post(reverse("password_change_required"), {
        "old_password": "123456", "new_password1": "a-long-new-secret", "new_password2": "a-long-new-secret"})
    assert response.status_code == 302, response.content.decode()[:3000]
    page = root_client.get(reverse("admin:index"))
    assert page.status_code == 200
    assert BANNER not in page.content.decode()


def test_the_banner_is_not_shown_to_other_admins(staff_client, root):
    assert BANNER not in staff_client.get(reverse("admin:index")).content.decode()


def test_the_header_carries_the_system_name(root_client):
    from billing.services import option_set

    option_set(key="SystemName", value="Acme Gateway")
    html = root_client.get(reverse("admin:index")).content.decode()
    assert "Acme Gateway" in html


def test_login_page_renders(db):
    assert Client().get(reverse("admin:login")).status_code == 200


def test_delete_is_soft_and_root_cannot_be_deleted(root_client, root, alice, alice_token):
    response = root_client.post(reverse("admin:accounts_user_delete", args=[alice.pk]), {"post": "yes"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.status == User.Status.DELETED and alice.username.startswith("deleted_")
    assert root_client.post(reverse("admin:accounts_user_delete", args=[root.pk]), {"post": "yes"}).status_code == 403
    assert User.objects.filter(pk=root.pk, status=User.Status.ENABLED).exists()
