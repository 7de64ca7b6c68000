"""Fixtures for the admin tests: clients logged in as root, an admin and a common user.

A pytest plugin (tests/conftest.py's pytest_plugins): every test module has these fixtures.
"""

import pytest

from tests.helpers import logged_in


@pytest.fixture
def root_client(root):
    return logged_in(root)


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
