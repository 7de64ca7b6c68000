import pytest
from django.core.management import call_command

from accounts.models import Token, User


@pytest.mark.django_db
def test_first_migrate_creates_root_with_default_password():
    root = User.objects.get(username="root")
    assert root.role == User.Role.ROOT
    assert root.check_password("123456")


@pytest.mark.django_db
def test_seed_applies_initial_root_tokens_once():
    call_command("seed", root_token="sk-fixedkey123", root_access_token="access-123")
    call_command("seed", root_token="sk-fixedkey123", root_access_token="access-123")
    root = User.objects.get(username="root")
    assert root.access_token == "access-123"
    tokens = Token.objects.filter(key="fixedkey123")
    assert tokens.count() == 1
    assert tokens.get().user == root and tokens.get().unlimited_quota
