"""A username is taken in every letter case, on every database: nobody becomes "ROOT" beside root.

MariaDB's collation compared names case-insensitively; SQLite and PostgreSQL did not, so on them a user could
sign up as, or rename themselves to, "ROOT".
"""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import User
from tests.api_fixtures import envelope
from tests.helpers import logged_in

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "s3cret-pass"


def names_like(name: str) -> list[str]:
    return sorted(User.objects.filter(username__iexact=name).values_list("username", flat=True))


def test_page_sign_up_refuses_root_in_capitals(client, root):
    response = client.post(reverse("register"), {"username": "ROOT", "password": NEW_PASSWORD,
                                                  "password2": NEW_PASSWORD})
    assert response.status_code == 200
    assert "username" in response.context["form"].errors
    assert names_like("root") == ["root"]


def test_api_sign_up_refuses_root_in_capitals(root):
    body = envelope(APIClient().post("/api/user/register", {"username": "Root", "password": NEW_PASSWORD},
                                     format="json"), success=False)
    assert body["field"] == "username"
    assert names_like("root") == ["root"]


def test_page_rename_to_root_in_capitals_is_a_form_error(alice, root):
    client = logged_in(alice)
    response = client.post(reverse("settings"), {"action": "profile", "username": "ROOT", "display_name": ""})
    assert response.status_code == 200 and "username" in response.context["profile_form"].errors
    alice.refresh_from_db()
    assert alice.username == "alice"


def test_api_self_rename_to_root_in_capitals_is_refused(alice_api, alice, root):
    body = envelope(alice_api.put("/api/user/self", {"username": "rOoT"}, format="json"), success=False)
    assert body["field"] == "username"
    alice.refresh_from_db()
    assert alice.username == "alice"


def test_admin_api_rename_to_another_users_name_in_capitals_is_refused(root_api, alice, bob):
    body = envelope(root_api.put("/api/user/", {"id": bob.pk, "username": "ALICE"}, format="json"), success=False)
    assert body["field"] == "username"
    bob.refresh_from_db()
    assert bob.username == "bob"


def test_the_console_refuses_adding_root_in_capitals(root):
    response = logged_in(root).post(reverse("admin:accounts_user_add"), {
        "username": "Root", "display_name": "", "email": "", "password1": "correct-horse-9",
        "password2": "correct-horse-9", "role": "1", "group": "default", "quota": "0"})
    assert response.status_code == 200 and "This username is taken." in response.content.decode()
    assert names_like("root") == ["root"]


def test_a_user_may_change_the_case_of_their_own_name(alice_api, alice):
    envelope(alice_api.put("/api/user/self", {"username": "Alice"}, format="json"))
    alice.refresh_from_db()
    assert alice.username == "Alice"


def test_the_database_itself_refuses_a_twin_in_another_case(root):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="ROOT")


@pytest.mark.django_db(transaction=True)
def test_the_migration_renames_existing_twins_and_keeps_the_oldest():
    if connection.vendor == "mysql":
        pytest.skip("MariaDB's case-insensitive collation never let twins in")
    executor = MigrationExecutor(connection)
    before = [("accounts", "0004_verbose_names")]
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps.get_model("accounts", "User")
        first = old.objects.create(username="dora")
        twins = [old.objects.create(username=name) for name in ("DORA", "Dora")]
        other = old.objects.create(username="alice")
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert User.objects.get(pk=first.pk).username == "dora"
    assert User.objects.get(pk=other.pk).username == "alice"
    renamed = [User.objects.get(pk=t.pk).username for t in twins]
    assert renamed == [f"DORA_{twins[0].pk}", f"Dora_{twins[1].pk}"]
