import pytest


@pytest.fixture
def client(relay_client):
    """Relay tests talk HTTP to the ASGI app; `client` here is that, not Django's test client."""
    return relay_client

