import httpx2
import pytest
from asgiref.sync import sync_to_async

from billing.services import option_set
from relay import http
from relay.limits import limiter


@pytest.fixture
def client(relay_client):
    """Relay tests talk HTTP to the ASGI app; `client` here is that, not Django's test client."""
    return relay_client


@pytest.fixture
async def sdk_http(asgi_app):
    """The vendor SDKs' own HTTP client (httpx2) against the ASGI application, in process."""
    transport = httpx2.ASGITransport(app=asgi_app, client=("127.0.0.1", 12345))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
        yield client
    await limiter.drain()  # requests' ends still on their way to Redis go before the test's loop closes
    await http.close()


@pytest.fixture
async def retries():
    """One retry, so a failing channel hands the request to the next one."""
    await sync_to_async(option_set)(key="RetryTimes", value="1")
