"""What a request holds before its call covers what it may cost (relay/admission.py, billing/pricing.py), so
requests in flight together never spend more than the balance. Runs against this process's ledger and, when
REDIS_CONN_STRING is set, against Redis."""

import asyncio
import os

import pytest
from asgiref.sync import sync_to_async

from accounts.models import Token
from tests.conftest import shared_quota_clear
from tests.helpers import consume_logs
from tests.mock_upstream import Behaviour

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["process", "redis"])
def store(request, settings):
    if request.param == "redis":
        url = os.environ.get("REDIS_CONN_STRING", "")
        if not url:
            pytest.skip("needs REDIS_CONN_STRING")
        settings.REDIS_CONN_STRING = url
        shared_quota_clear()
    else:
        settings.REDIS_CONN_STRING = ""
    return request.param


async def test_requests_that_use_their_max_tokens_together_never_overdraw_the_key(client, world, store):
    # gpt-4o-mini's answer tokens cost 4 times its prompt tokens: held at the prompt's price, 400 quota would
    # admit three of these requests at once and be charged some 900.
    await sync_to_async(Token.objects.filter(pk=world.token.pk).update)(remain_quota=400)
    world.upstream.default = Behaviour(prompt_tokens=11, completion_tokens=1000, delay=0.3)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000}
    answers = await asyncio.gather(*[
        client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer sk-{world.token.key}"})
        for _ in range(3)])
    assert sorted(a.status_code for a in answers)[0] == 200
    charged = sum(log.quota for log in await consume_logs())
    assert charged == 301 * sum(a.status_code == 200 for a in answers)  # ceil((11 + 1000 x 4) x 0.075)
    assert charged <= 400
    await sync_to_async(world.token.refresh_from_db)()
    assert world.token.remain_quota == 400 - charged
