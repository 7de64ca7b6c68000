import pytest

from accounts.models import User
from tests.factories import ChannelFactory, TokenFactory, UserFactory


@pytest.fixture
def root(db):
    user = User.objects.filter(username="root").first()
    if user is None:
        user = UserFactory(username="root", role=User.Role.ROOT, quota=10**12)
    user.access_token = "root-access-token"
    user.save()
    return user


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", quota=1_000_000)


@pytest.fixture
def alice_token(alice):
    return TokenFactory(user=alice, name="alice-key", remain_quota=500_000)


@pytest.fixture
def openai_channel(db):
    return ChannelFactory(name="openai", base_url="http://127.0.0.1:9")
