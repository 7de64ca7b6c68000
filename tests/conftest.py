import functools

import httpx
import pytest
from django.conf import settings

from accounts.models import User
from billing.ledger import ledger
from billing.shared_quota import shared
from billing.usage_errors import errors as _usage_errors
from relay import keys, native_fallback
from relay.cache import cache
from relay.limits import limiter
from tests.factories import ChannelFactory, TokenFactory, UserFactory
from tests.helpers import logged_in
from tests.mock_upstream import MockUpstream
from tests.world import new_world

# No dead-key prober thread in the test process (relay/probe.start_key_prober, started with the ASGI app): it
# would query the database between and during tests; tests run its round (probe_keys) themselves.
settings.KEY_PROBE_INTERVAL = 0

# Shared fixtures live in these modules; test modules use them by name, without importing them.
pytest_plugins = ["tests.api_fixtures", "tests.admin_fixtures", "tests.billing.pages_fixtures"]

ROOT_TEST_PASSWORD = "root-pass-Secure1"


def _root_test_password_hash() -> str:
    """Hashed once per hasher setting: the real hasher takes a noticeable fraction of a second on purpose."""
    from django.conf import settings

    return _hash_with(tuple(settings.PASSWORD_HASHERS))


@functools.cache
def _hash_with(hashers: tuple[str, ...]) -> str:
    from django.contrib.auth.hashers import make_password

    return make_password(ROOT_TEST_PASSWORD)


@pytest.fixture
def root(db):
    user = User.objects.filter(username="root").first()
    if user is None:
        user = UserFactory(username="root", role=User.Role.ROOT, quota=10**12)
    user.access_token = "root-access-token"
    # Not the seeded 123456: DefaultPasswordMiddleware would send root to the change-password page.
    user.password = _root_test_password_hash()
    user.save()
    return user


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", quota=1_000_000)


@pytest.fixture
def staff(db):
    """An admin (role 10): manages users below them, never root or another admin."""
    return UserFactory(username="staff", role=User.Role.ADMIN)


@pytest.fixture
def alice_token(alice):
    return TokenFactory(user=alice, name="alice-key", remain_quota=500_000)


@pytest.fixture
def openai_channel(db):
    return ChannelFactory(name="openai", base_url="http://127.0.0.1:9")


@pytest.fixture(scope="session")
def upstream_server():
    server = MockUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(upstream_server):
    upstream_server.reset()
    return upstream_server


@pytest.fixture(autouse=True)
def fresh_relay_state():
    """The relay's caches and ledger are per process: start every test from nothing."""
    ledger.flush_all()
    cache.clear()
    native_fallback.forget_all()
    keys.ring.forget_all()
    ledger.__init__()
    _usage_errors.clear()
    shared.forget()
    shared_quota_clear()
    limiter.reset()
    yield
    ledger.flush_all()


def shared_quota_clear() -> None:
    """With Redis, the shared balances of the last test's users and tokens, whose ids the next test reuses."""
    from django.conf import settings

    if settings.REDIS_CONN_STRING:
        import redis

        client = redis.Redis.from_url(settings.REDIS_CONN_STRING)
        try:
            keys = [*client.scan_iter("oneapi:quota:*", count=1000), *client.scan_iter("oneapi:ledger:*", count=1000)]
            if keys:
                client.delete(*keys)
        except redis.RedisError:
            pass  # a test of Redis being down
        finally:
            client.close()


@pytest.fixture(autouse=True)
def isolation(settings):
    """What every test wants: no global rate limit to trip, a fast hasher, options as the test left none."""
    # The global limits count per IP in the shared cache; a suite of requests would trip them.
    settings.GLOBAL_WEB_RATE_LIMIT = 1_000_000
    settings.GLOBAL_API_RATE_LIMIT = 1_000_000
    # A fast hasher first: the suite makes many users. PBKDF2 stays to check the seeded root.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher",
                                 "django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    yield
    from django.utils import translation

    from oneapi_site import options

    # A request in another language leaves it active in this thread for whatever runs next.
    translation.deactivate()

    # Options live in a process snapshot that outlives the test's rolled-back transaction.
    options.snapshot.load({})


@pytest.fixture
def alice_client(alice):
    return logged_in(alice)


@pytest.fixture(autouse=True)
def fresh_shared_cache():
    """Rate-limit counters, e-mail codes and reset links live in Django's cache: none carries over."""
    from django.core.cache import cache as django_cache

    django_cache.clear()
    yield


@pytest.fixture
def asgi_app():
    from oneapi_site.asgi import application

    return application


@pytest.fixture
async def relay_client(asgi_app):
    """HTTP against the whole ASGI application (relay and Django), in process."""
    transport = httpx.ASGITransport(app=asgi_app, client=("127.0.0.1", 12345))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as c:
        yield c
    from relay import http

    await limiter.drain()  # requests' ends still on their way to Redis go before the test's loop closes
    await http.close()


@pytest.fixture
def world(transactional_db, upstream):
    """alice with a key (half her quota) and an OpenAI channel pointing at the mock upstream."""
    return new_world(upstream, username="alice", quota=10_000_000, name="mock-openai", key="sk-upstream-secret",
                     models="gpt-4o-mini,gpt-3.5-turbo,text-embedding-3-small,gpt-3.5-turbo-instruct")


@pytest.fixture(autouse=True)
def images_from_local_mocks(settings):
    """Test vendors serve images from 127.0.0.1, which production refuses to fetch."""
    settings.USER_CONTENT_ALLOW_PRIVATE = True
