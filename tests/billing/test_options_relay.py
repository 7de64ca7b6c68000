"""The relay never prices with, nor reports balances through, a bad stored option: it uses the default."""

import math

import pytest
from asgiref.sync import sync_to_async

from billing.models import Option
from oneapi_site import options
from tests.helpers import consume_log

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


async def test_a_stored_infinite_model_ratio_prices_at_the_default(relay_client, world):
    # json.loads reads 1e400 as infinity: ceil(Decimal("Infinity")) made every request of the model a 500.
    await sync_to_async(Option.objects.create)(key="ModelRatio", value='{"gpt-4o-mini": 1e400}')
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text
    log = await consume_log()
    assert log.quota == math.ceil((11 + 7 * 4) * 0.075)  # gpt-4o-mini's default ratios


@pytest.mark.parametrize("stored", ["-1", "0", "nan"])
async def test_a_stored_bad_quota_per_unit_leaves_the_billing_endpoints_sane(relay_client, world, stored):
    await sync_to_async(Option.objects.create)(key="QuotaPerUnit", value=stored)
    await sync_to_async(options.reload_from_db)()  # what the process does at its next sync
    response = await relay_client.get("/v1/dashboard/billing/subscription", headers=world.auth)
    assert response.status_code == 200
    assert response.json()["hard_limit_usd"] == pytest.approx(5_000_000 / 500_000)
