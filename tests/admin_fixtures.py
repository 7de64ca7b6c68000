"""Fixtures for the admin tests: clients logged in as root, an admin and a common user."""

import pytest

from accounts.models import User
from tests.factories import UserFactory
from tests.helpers import logged_in

# Test modules take these with `from tests.admin_fixtures import *`.
__all__ = ["root_client", "staff", "staff_client", "common_client", "action"]


@pytest.fixture
def root_client(root):
    return logged_in(root)


@pytest.fixture
def staff(db):
    return UserFactory(username="staff", role=User.Role.ADMIN)


@pytest.fixture
def staff_client(staff):
    return logged_in(staff)


@pytest.fixture
def common_client(alice):
    return logged_in(alice)


def action(client, url, name, ids, **extra):
    """POST a changelist action as the admin's action bar does."""
    return client.post(url, {"action": name, "index": 0, "select_across": 0,
                             "_selected_action": [str(i) for i in ids], **extra}, follow=True)
