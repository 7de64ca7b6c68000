"""Balances of the resellers one-api reads (CloseAI, OpenAI-SB, AIProxy, API2GPT, AIGC2D), of Moonshot and
SiliconFlow (yuan on their .cn hosts, converted; US$ on the international ones) and of DeepSeek (in US$, its yuan
converted)."""

import orjson
import pytest

from billing import pricing
from oneapi_site.lib.errors import ServiceError
from providers.adapters import adapter_for
from providers.services import channel_update_balance
from tests.factories import ChannelFactory
from tests.providers.mock_balances import DEEPSEEK_CNY, DEEPSEEK_USD, KEY, MOONSHOT, SILICONFLOW, MockBalances
from tests.providers.vendor_harness import TEST_CHANNEL, serve

pytestmark = pytest.mark.django_db

balances_server = serve(MockBalances)


@pytest.fixture
def balances(balances_server):
    balances_server.reset()
    return balances_server


@pytest.mark.parametrize(("type_id", "expected", "path"), [
    (4, 12.5, "/dashboard/billing/credit_grants"),  # CloseAI: total_available
    (12, 11.25, "/dashboard/billing/credit_grants"),  # API2GPT: total_remaining
    (13, 12.5, "/dashboard/billing/credit_grants"),  # AIGC2D: total_available
    (5, 8.52, "/sb-api/user/status"),  # OpenAI-SB: data.credit, a string
    (10, 66.6, "/api/report/getUserOverview"),  # AIProxy: data.totalPoints
    (25, 49.58894, "/v1/users/me/balance"),  # Moonshot: data.available_balance (US$ off a .cn host)
    (44, 88.88, "/v1/user/info"),  # SiliconFlow: data.totalBalance, a string (US$ off a .cn host)
    (36, 12.5, "/user/balance"),  # DeepSeek: the USD entry's total_balance
])
def test_the_balance_is_read_from_the_vendors_account_api_and_stored(balances, type_id, expected, path):
    channel = ChannelFactory(type=type_id, base_url=balances.url, key=KEY, models="gpt-4o")
    assert channel_update_balance(channel_id=channel.pk) == pytest.approx(expected)
    channel.refresh_from_db()
    assert channel.balance == pytest.approx(expected) and channel.balance_updated_time > 0
    [sent] = balances.requests
    assert (sent.method, sent.path) == ("GET", path)


@pytest.mark.parametrize(("type_id", "message"), [
    (5, "OpenAI-SB refused the balance query: api_key 无效"),
    (10, "AIProxy refused the balance query: code 401, Invalid API Key"),
    (25, "Invalid Authentication"),
])
def test_a_refused_key_is_reported_with_the_vendors_message(balances, type_id, message):
    channel = ChannelFactory(type=type_id, base_url=balances.url, key="sk-wrong", models="gpt-4o")
    with pytest.raises(ServiceError, match=message):
        channel_update_balance(channel_id=channel.pk)
    channel.refresh_from_db()
    assert channel.balance_updated_time == 0


@pytest.mark.parametrize(("type_id", "url", "auth"), [
    (4, "https://api.closeai-proxy.xyz/dashboard/billing/credit_grants", ("Authorization", f"Bearer {KEY}")),
    (5, f"https://api.openai-sb.com/sb-api/user/status?api_key={KEY}", ("Authorization", f"Bearer {KEY}")),
    (10, "https://aiproxy.io/api/report/getUserOverview", ("Api-Key", KEY)),
    (12, "https://api.api2gpt.com/dashboard/billing/credit_grants", ("Authorization", f"Bearer {KEY}")),
    (13, "https://api.aigc2d.com/dashboard/billing/credit_grants", ("Authorization", f"Bearer {KEY}")),
    (25, "https://api.moonshot.cn/v1/users/me/balance", ("Authorization", f"Bearer {KEY}")),
    (36, "https://api.deepseek.com/user/balance", ("Authorization", f"Bearer {KEY}")),
    (44, "https://api.siliconflow.cn/v1/user/info", ("Authorization", f"Bearer {KEY}")),
])
def test_default_account_urls_are_one_apis(type_id, url, auth):
    import dataclasses

    [request] = adapter_for(type_id).balance_requests(dataclasses.replace(TEST_CHANNEL, type=type_id, key=KEY))
    assert (request.method, request.url) == ("GET", url)
    assert request.headers[auth[0]] == auth[1]


def test_aiproxy_accounts_are_read_on_the_site_host_even_with_the_api_host_as_base():
    import dataclasses

    channel = dataclasses.replace(TEST_CHANNEL, type=10, key=KEY, base_url="https://api.aiproxy.io")
    [request] = adapter_for(10).balance_requests(channel)
    assert request.url == "https://aiproxy.io/api/report/getUserOverview"


@pytest.mark.parametrize(("infos", "expected"), [
    ([DEEPSEEK_USD], 12.5),
    ([DEEPSEEK_CNY], 110 / pricing.CNY_PER_USD),  # yuan, at the rate yuan prices are converted at
    ([DEEPSEEK_CNY, DEEPSEEK_USD], 12.5),  # the US$ entry when the account holds both
    ([], 0.0),
])
def test_deepseeks_balance_is_in_us_dollars(infos, expected):
    body = orjson.dumps({"is_available": True, "balance_infos": infos})
    assert adapter_for(36).parse_balance([body]) == pytest.approx(expected)


def test_a_deepseek_balance_in_another_currency_is_not_understood():
    body = orjson.dumps({"is_available": True, "balance_infos": [{**DEEPSEEK_USD, "currency": "EUR"}]})
    with pytest.raises(ValueError, match="EUR"):
        adapter_for(36).parse_balance([body])


@pytest.mark.parametrize(("type_id", "answer", "base_url", "expected"), [
    (25, MOONSHOT, "", 49.58894 / pricing.CNY_PER_USD),  # the default host, api.moonshot.cn: yuan
    (25, MOONSHOT, "https://api.moonshot.cn", 49.58894 / pricing.CNY_PER_USD),
    (25, MOONSHOT, "https://api.moonshot.ai/", 49.58894),  # the international platform: US$
    (44, SILICONFLOW, "", 88.88 / pricing.CNY_PER_USD),
    (44, SILICONFLOW, "https://api.siliconflow.cn/v1", 88.88 / pricing.CNY_PER_USD),
    (44, SILICONFLOW, "https://api.siliconflow.com", 88.88),
])
def test_moonshot_and_siliconflow_balances_are_yuan_on_cn_hosts_and_us_dollars_elsewhere(type_id, answer, base_url,
                                                                                        expected):
    import dataclasses

    adapter = adapter_for(type_id)
    channel = dataclasses.replace(TEST_CHANNEL, type=type_id, key=KEY, base_url=base_url)
    assert adapter.balance_usd(channel, adapter.parse_balance([orjson.dumps(answer)])) == pytest.approx(expected)


def test_other_vendors_balances_are_taken_as_given_whatever_the_host():
    import dataclasses

    channel = dataclasses.replace(TEST_CHANNEL, type=4, base_url="https://proxy.example.cn")
    assert adapter_for(4).balance_usd(channel, 12.5) == 12.5
