import httpx
import pytest
from asgiref.sync import sync_to_async

from accounts import limits
from oneapi_site.config import DEFAULT_TRUSTED_PROXIES, parse_trusted_proxies
from oneapi_site.proxy import client_address
from oneapi_site.serve import daphne_args
from tests.factories import TokenFactory, UserFactory


@pytest.mark.django_db
def test_api_requests_over_the_global_limit_get_429(client, settings):
    settings.GLOBAL_API_RATE_LIMIT = 3
    ip = "203.0.113.77"
    statuses = [client.get("/api/status", REMOTE_ADDR=ip).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # Another address has its own budget.
    assert client.get("/api/status", REMOTE_ADDR="203.0.113.78").status_code == 200


# --- Which address the per-IP limits and token allow-lists see (oneapi_site/proxy.py) ---------------

# A proxy in 10.0.0.0/8, as an operator would set it; nothing is trusted by default (see below).
TRUSTED = parse_trusted_proxies("10.0.0.0/8")


@pytest.fixture
def proxy_in_10_8(settings):
    settings.TRUSTED_PROXIES = TRUSTED


def test_daphne_is_not_told_to_believe_every_clients_forwarded_headers():
    # Daphne's --proxy-headers takes the first X-Forwarded-For entry from anyone: one header dodges every limit.
    assert "--proxy-headers" not in daphne_args([])


@pytest.mark.parametrize("peer, forwarded, expected", [
    ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),                  # a client on the internet writes its own
    ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),                    # our proxy names the client
    ("10.0.0.2", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),           # what the client wrote before it is ignored
    ("10.0.0.2", ["6.6.6.6", "198.51.100.1, 10.0.0.3"], "198.51.100.1"),  # two proxies, two header lines
    ("10.0.0.2", ["10.0.0.3, 10.0.0.4"], "10.0.0.3"),                  # all trusted: the first one
    ("10.0.0.2", ["garbage, 198.51.100.1"], "198.51.100.1"),
    ("10.0.0.2", ["198.51.100.1, garbage"], "10.0.0.2"),               # our proxy wrote nonsense: keep it
    ("10.0.0.2", ["[2001:db8::1]:443"], "2001:db8::1"),
    ("::ffff:10.0.0.2", ["198.51.100.1:5555"], "198.51.100.1"),
])
def test_the_client_is_the_last_address_a_trusted_proxy_saw(peer, forwarded, expected):
    assert client_address(peer, forwarded, TRUSTED) == expected


def test_an_empty_trusted_proxies_believes_nobody():
    assert parse_trusted_proxies("") == ()
    assert client_address("127.0.0.1", ["198.51.100.1"], ()) == "127.0.0.1"


def test_a_bad_trusted_proxies_value_names_the_variable():
    from oneapi_site.config import ConfigError

    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        parse_trusted_proxies("10.0.0.0/8, proxy.local")


async def _login_statuses(asgi_app, peer: str, forwarded: list[str]) -> list[int]:
    transport = httpx.ASGITransport(app=asgi_app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        return [(await c.post("/api/user/login", json={"username": "x", "password": "y"},
                              headers={"X-Forwarded-For": f})).status_code for f in forwarded]


@pytest.mark.django_db(transaction=True)
async def test_a_spoofed_x_forwarded_for_does_not_dodge_the_sign_in_limit(asgi_app, monkeypatch, proxy_in_10_8):
    monkeypatch.setattr(limits, "CRITICAL_RATE", "3/20m")
    # Straight from the internet, and through our proxy with a made-up first entry: the real address counts.
    direct = await _login_statuses(asgi_app, "203.0.113.60", [f"198.51.100.{i}" for i in range(4)])
    proxied = await _login_statuses(asgi_app, "10.1.2.3", [f"198.51.100.{i}, 203.0.113.61" for i in range(4)])
    assert direct == [200, 200, 200, 429] and proxied == [200, 200, 200, 429]


@pytest.mark.django_db(transaction=True)
async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(asgi_app, monkeypatch, proxy_in_10_8):
    monkeypatch.setattr(limits, "CRITICAL_RATE", "2/20m")
    first = await _login_statuses(asgi_app, "10.1.2.3", ["198.51.100.70"] * 3)
    second = await _login_statuses(asgi_app, "10.1.2.3", ["198.51.100.71"])
    assert first[2] == 429 and second[0] != 429


@pytest.mark.django_db(transaction=True)
async def test_a_tokens_ip_allow_list_checks_the_client_behind_the_proxy(asgi_app, proxy_in_10_8):
    user = await sync_to_async(UserFactory)(quota=1000)
    token = await sync_to_async(TokenFactory)(user=user, subnet="198.51.100.0/24", remain_quota=1000)
    auth = {"Authorization": f"Bearer sk-{token.key}"}

    async def status(peer: str, forwarded: str) -> int:
        transport = httpx.ASGITransport(app=asgi_app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return (await c.get("/v1/dashboard/billing/subscription",
                                headers={**auth, "X-Forwarded-For": forwarded})).status_code

    assert await status("10.1.2.3", "198.51.100.9") == 200           # the allowed client, through our proxy
    assert await status("203.0.113.9", "198.51.100.9") == 403        # anyone else claiming to be it
    assert await status("10.1.2.3", "198.51.100.9, 203.0.113.9") == 403


# --- The default: no proxy is believed -----------------------------------------------------------------------

@pytest.fixture
def default_proxies(settings):
    """TRUSTED_PROXIES as an operator gets it without setting it."""
    settings.TRUSTED_PROXIES = parse_trusted_proxies(DEFAULT_TRUSTED_PROXIES)


def test_by_default_no_address_is_a_trusted_proxy():
    assert parse_trusted_proxies(DEFAULT_TRUSTED_PROXIES) == ()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("peer", ["192.168.1.5", "10.9.9.9", "127.0.0.1", "172.17.0.1"])
async def test_by_default_a_forged_header_does_not_pass_a_tokens_ip_allow_list(asgi_app, default_proxies, peer):
    """The reported case: a token limited to 10.0.0.0/8 answered 200 to a LAN client naming 10.0.0.1."""
    user = await sync_to_async(UserFactory)(quota=1000)
    token = await sync_to_async(TokenFactory)(user=user, subnet="10.0.0.0/24", remain_quota=1000)
    transport = httpx.ASGITransport(app=asgi_app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.get("/v1/dashboard/billing/subscription",
                               headers={"Authorization": f"Bearer sk-{token.key}", "X-Forwarded-For": "10.0.0.1"})
    assert response.status_code == 403


@pytest.mark.django_db(transaction=True)
async def test_by_default_forged_addresses_do_not_dodge_the_sign_in_limit(asgi_app, default_proxies):
    """The reported case: 25 wrong root passwords, each with another forged address, and no 429."""
    transport = httpx.ASGITransport(app=asgi_app, client=("192.168.1.5", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        # Another name each time, so only the per-address budget can stop them (not the per-account one).
        statuses = [(await c.post("/api/user/login", json={"username": f"root{i}", "password": "guess"},
                                  headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code for i in range(25)]
    assert statuses[:20] == [200] * 20 and statuses[20:] == [429] * 5
