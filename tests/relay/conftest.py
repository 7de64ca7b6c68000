import pytest
from asgiref.sync import sync_to_async

from billing.ledger import ledger


@pytest.fixture
def client(relay_client):
    """Relay tests talk HTTP to the ASGI app; `client` here is that, not Django's test client."""
    return relay_client


async def flush():
    await sync_to_async(ledger.flush_all, thread_sensitive=False)()
