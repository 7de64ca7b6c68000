import pytest

from billing.services import option_set
from tests.mock_turnstile import MockTurnstile


@pytest.fixture(scope="session")
def turnstile_server():
    server = MockTurnstile().start()
    yield server
    server.stop()


@pytest.fixture
def turnstile_on(turnstile_server, settings, db):
    """Turnstile switched on (TurnstileCheckEnabled) with the local mock's keys; the mock, fresh."""
    turnstile_server.reset()
    settings.TURNSTILE_VERIFY_URL = turnstile_server.url
    option_set(key="TurnstileSiteKey", value=turnstile_server.site_key)
    option_set(key="TurnstileSecretKey", value=turnstile_server.secret)
    option_set(key="TurnstileCheckEnabled", value="true")
    return turnstile_server
