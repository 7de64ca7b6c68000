import pytest
from asgiref.sync import sync_to_async

from billing.ledger import ledger
from tests.factories import ChannelFactory, TokenFactory, UserFactory


@pytest.fixture
def client(relay_client):
    """Relay tests talk HTTP to the ASGI app; `client` here is that, not Django's test client."""
    return relay_client


@pytest.fixture
def world(transactional_db, upstream):
    """A user with a token and an OpenAI channel pointing at the mock upstream."""
    user = UserFactory(username="alice", quota=10_000_000)
    token = TokenFactory(user=user, name="alice-key", remain_quota=5_000_000)
    channel = ChannelFactory(name="mock-openai", base_url=upstream.url, key="sk-upstream-secret",
                             models="gpt-4o-mini,gpt-3.5-turbo,text-embedding-3-small,gpt-3.5-turbo-instruct")
    return type("World", (), {"user": user, "token": token, "channel": channel, "upstream": upstream,
                              "auth": {"Authorization": f"Bearer sk-{token.key}"}})


async def flush():
    await sync_to_async(ledger.flush_all, thread_sensitive=False)()
