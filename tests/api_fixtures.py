"""Fixtures for the management API tests: clients carrying an access token for each role.

A pytest plugin (tests/conftest.py's pytest_plugins): every test module has these fixtures.
"""

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services.users import user_access_token_reset
from tests.factories import UserFactory


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def api_as(db):
    """A client authenticated with the user's management access token, as `Authorization: <token>`."""

    def make(user: User, *, bearer: bool = False) -> APIClient:
        token = user.access_token or user_access_token_reset(user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}" if bearer else token)
        return client

    return make


@pytest.fixture
def root_api(root, api_as):
    return api_as(root)


@pytest.fixture
def staff_api(staff, api_as):
    return api_as(staff)


@pytest.fixture
def alice_api(alice, api_as):
    return api_as(alice)


@pytest.fixture
def bob(db):
    return UserFactory(username="bob", quota=1_000_000)


@pytest.fixture
def bob_api(bob, api_as):
    return api_as(bob)


def envelope(response, *, success: bool = True, status: int = 200):
    """Assert one-api's envelope and return its data (or the whole body on failure)."""
    assert response.status_code == status, (response.status_code, response.content)
    body = response.json()
    assert body["success"] is success, body
    assert isinstance(body["message"], str)
    if success:
        assert "data" in body
        return body["data"]
    return body
