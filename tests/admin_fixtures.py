"""Fixtures for the admin tests: clients logged in as root, an admin and a common user."""

import pytest
from django.test import Client

from accounts.models import User
from tests.factories import UserFactory

# Test modules take these with `from tests.admin_fixtures import *`.
__all__ = ["_no_web_rate_limit", "root_client", "staff", "staff_client", "common_client", "action"]


@pytest.fixture(autouse=True)
def _no_web_rate_limit(settings):
    # The page limit counts per IP in the shared cache; a suite of admin requests would trip it.
    settings.GLOBAL_WEB_RATE_LIMIT = 1_000_000


@pytest.fixture
def root_client(root):
    client = Client()
    client.force_login(root)
    return client


@pytest.fixture
def staff(db):
    return UserFactory(username="staff", role=User.Role.ADMIN)


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def common_client(alice):
    client = Client()
    client.force_login(alice)
    return client


def action(client, url, name, ids, **extra):
    """POST a changelist action as the admin's action bar does."""
    return client.post(url, {"action": name, "index": 0, "select_across": 0,
                             "_selected_action": [str(i) for i in ids], **extra}, follow=True)
