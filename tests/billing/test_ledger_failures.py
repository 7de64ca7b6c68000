"""A charge the database refuses never holds back the others (billing/ledger.py).

The ledger writes its queue in batches of one transaction each. A batch the database refuses for what it holds
(a value past its column, an integrity error) would fail the same way on every retry: it is written in parts,
every good charge once; a refused charge is written again with its log row cut to the columns, and only
one that fails even so is parked. A database that is down keeps every charge queued, in order.
"""

import logging
from unittest import mock

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.db import DataError, IntegrityError, OperationalError, connection
from django.db.models import Sum

from accounts.models import Token, User
from billing import ledger as ledger_module
from billing.ledger import Ledger
from billing.models import Log
from billing.services import Charge, charges_apply
from tests.factories import TokenFactory, UserFactory
from tests.helpers import flush
from tests.providers.mock_anthropic import MockAnthropic
from tests.providers.vendor_harness import serve, stream_chunks
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

USER_QUOTA = 10**9
TOKEN_QUOTA = 10**8
INT_MAX = 2**31 - 1
UNPAYABLE = 2**63  # no balance column moves by it: every database refuses the UPDATE (SQLite's driver first)


@pytest.fixture
def token(db):
    return TokenFactory(user=UserFactory(username="payer", quota=USER_QUOTA), name="key", remain_quota=TOKEN_QUOTA)


def charge(token: Token, n: int, *, quota: int = 0, **fields) -> Charge:
    values = dict(user_id=token.user_id, username="payer", token_id=token.pk, token_name=token.name, unlimited=False,
                  channel_id=0, model_name="gpt-4o", quota=quota or 10 + n, prompt_tokens=3, completion_tokens=4,
                  request_id=f"req-{n}", elapsed_ms=5, is_stream=False, content="", created_at=1_700_000_000)
    return Charge(**(values | fields))


def settled(ledger: Ledger, charges: list[Charge]) -> list[Charge]:
    for c in charges:
        ledger.settle(c, reserved=0)
    return charges


def logged_request_ids() -> list[str]:
    return list(Log.objects.filter(type=Log.Type.CONSUME).order_by("id").values_list("request_id", flat=True))


def assert_balances_are_the_written_charges(ledger: Ledger, token: Token) -> None:
    """The user's and the token's balances moved by what the logs hold, and the relay's view (the balance it
    cached before these charges, minus what the ledger counts as spent since) is the database's."""
    written = Log.objects.filter(type=Log.Type.CONSUME).aggregate(s=Sum("quota"))["s"] or 0
    user = User.objects.get(pk=token.user_id)
    remain = Token.objects.get(pk=token.pk).remain_quota
    assert (user.quota, remain) == (USER_QUOTA - written, TOKEN_QUOTA - written)
    assert user.request_count == Log.objects.filter(type=Log.Type.CONSUME).count()
    assert USER_QUOTA - ledger.user_spent(token.user_id) == user.quota
    assert TOKEN_QUOTA - ledger.token_spent(token.pk) == remain
    assert ledger.unflushed_user[token.user_id] == 0 and ledger.unflushed_token[token.pk] == 0


def parked_lines(caplog, request_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.ERROR and "parked" in r.getMessage()
            and repr(request_id) in r.getMessage()]


def test_a_charge_no_balance_can_take_is_parked_and_every_other_is_written_once(token, caplog):
    ledger = Ledger()
    charges = settled(ledger, [charge(token, n) for n in range(5)] + [charge(token, 5, quota=UNPAYABLE)]
                      + [charge(token, n) for n in range(6, 11)])
    ledger.flush_all()
    assert logged_request_ids() == [f"req-{n}" for n in range(11) if n != 5]
    assert_balances_are_the_written_charges(ledger, token)
    assert list(ledger.parked) == [charges[5]] and ledger.parked_count == 1 and ledger.pending == []
    [line] = parked_lines(caplog, "req-5")
    message = line.getMessage()
    assert f"user {token.user_id}" in message and "'gpt-4o'" in message and str(UNPAYABLE) in message
    # Later charges flow, and the parked one is neither retried nor logged again.
    settled(ledger, [charge(token, 11), charge(token, 12)])
    assert ledger.flush_all() == 2
    assert logged_request_ids()[-2:] == ["req-11", "req-12"]
    assert len(parked_lines(caplog, "req-5")) == 1 and ledger.parked_count == 1
    assert_balances_are_the_written_charges(ledger, token)


def test_a_log_row_past_its_columns_is_written_cut_to_fit_and_the_user_pays(token, caplog):
    """A count past the log's 32-bit column (2**63 fails on SQLite too) and a model name past its 255 characters:
    the request was answered, so the charge is written, its row fitted."""
    ledger = Ledger()
    long_model = "m" * 300
    settled(ledger, [charge(token, 0), charge(token, 1, prompt_tokens=2**63, model_name=long_model,
                                               request_id="r" * 100, quota=777), charge(token, 2)])
    assert ledger.flush_all() == 3
    assert logged_request_ids() == ["req-0", "r" * 64, "req-2"]
    row = Log.objects.get(quota=777)
    assert (row.prompt_tokens, row.model_name, row.completion_tokens) == (INT_MAX, long_model[:255], 4)
    assert ledger.parked_count == 0
    [line] = [r for r in caplog.records if "did not fit" in r.getMessage()]
    assert line.levelno == logging.ERROR and repr("r" * 80 + "…") in line.getMessage()
    assert_balances_are_the_written_charges(ledger, token)


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite stores any 64-bit count in an INTEGER column")
def test_an_anthropic_prompt_summed_past_int_is_written_with_the_count_clamped(token):
    """Anthropic's prompt is input + cache reads + cache writes, each under the vendor parser's 2**31 - 1 cap,
    so their sum can pass the log's INT column: MariaDB (strict) and PostgreSQL refuse the row."""
    ledger = Ledger()
    settled(ledger, [charge(token, 0, prompt_tokens=3 * INT_MAX, cached_tokens=INT_MAX, quota=9_000),
                     charge(token, 1)])
    assert ledger.flush_all() == 2
    assert Log.objects.get(request_id="req-0").prompt_tokens == INT_MAX
    assert_balances_are_the_written_charges(ledger, token)


anthropic_server = serve(MockAnthropic)


def claude_stream(usage: dict) -> bytes:
    events = [("message_start", {"type": "message_start", "message": {
                  "id": "msg_big", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5",
                  "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}}),
              ("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": "Read."}}),
              ("content_block_stop", {"type": "content_block_stop", "index": 0}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                 "usage": {**usage, "output_tokens": 2}}),
              ("message_stop", {"type": "message_stop"})]
    return b"".join(b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(data)) for name, data in events)


async def test_a_relayed_answer_whose_prompt_no_log_row_holds_is_counted_locally(relay_client, anthropic_server):
    """Through the relay: a Claude channel says it read 2 billion tokens and 2 billion more from its cache. Each
    count passes the vendor parser's cap, their sum (the prompt) does not fit the log's INT column: on MariaDB
    the charge was retried for ever, holding back every later one. The sum is junk as a single count past the cap
    is: the request is counted locally, billed, and the charges behind it are written."""
    world = await sync_to_async(new_world)(anthropic_server, username="reader", type=14, name="claude",
                                           key="sk-ant-test-key-123456", models="claude-sonnet-4-5", quota=10**12)
    usage = {"input_tokens": 2_000_000_000, "cache_read_input_tokens": 2_000_000_000}
    world.upstream.then(raw_stream=claude_stream(usage))
    response = await relay_client.post("/v1/chat/completions", headers=world.auth, json={
        "model": "claude-sonnet-4-5", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Read the corpus."}]})
    assert response.status_code == 200, response.text
    [reported] = [c["usage"] for c in stream_chunks(response.content) if c.get("usage")]
    assert reported["prompt_tokens"] == 0  # the vendor's junk is not passed on as a count
    world.upstream.then(answer="chat")
    later = await relay_client.post("/v1/chat/completions", headers=world.auth, json={
        "model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello"}]})
    assert later.status_code == 200, later.text
    await flush()
    big, small = await sync_to_async(lambda: list(Log.objects.filter(type=Log.Type.CONSUME).order_by("id")))()
    assert 0 < big.prompt_tokens < 100 and big.cached_tokens == 0  # "Read the corpus.", counted here
    assert 0 < big.quota < 10_000
    user = await sync_to_async(User.objects.get)(pk=world.user.pk)
    assert user.quota == 10**12 - big.quota - small.quota


def refusing(request_id: str, error=IntegrityError):
    """charges_apply, refusing every batch that holds the charge of `request_id`, fitted or not."""

    def write(charges):
        charges = list(charges)
        if any(c.request_id == request_id for c in charges):
            raise error("refused")
        return charges_apply(charges)

    return mock.patch.object(ledger_module, "charges_apply", side_effect=write)


@pytest.mark.parametrize("error", [IntegrityError, DataError, ValueError])
def test_a_charge_refused_even_fitted_is_parked_once(token, caplog, error):
    ledger = Ledger()
    settled(ledger, [charge(token, n) for n in range(7)])
    with refusing("req-3", error):
        assert ledger.flush_all() == 6
        assert ledger.flush_all() == 0
    assert logged_request_ids() == ["req-0", "req-1", "req-2", "req-4", "req-5", "req-6"]
    assert [c.request_id for c in ledger.parked] == ["req-3"] and ledger.pending == []
    assert len(parked_lines(caplog, "req-3")) == 1
    assert_balances_are_the_written_charges(ledger, token)


def test_several_refused_charges_in_a_full_batch_leave_every_good_one_written_once_in_order(token):
    ledger = Ledger()
    poison = {0, 17, 18, 63, ledger_module.MAX_BATCH - 1}
    settled(ledger, [charge(token, n, quota=UNPAYABLE if n in poison else 0)
                     for n in range(ledger_module.MAX_BATCH + 20)])
    ledger.flush_all()
    assert logged_request_ids() == [f"req-{n}" for n in range(ledger_module.MAX_BATCH + 20) if n not in poison]
    assert sorted(int(c.request_id[4:]) for c in ledger.parked) == sorted(poison)
    assert_balances_are_the_written_charges(ledger, token)


def test_a_database_that_goes_down_while_a_refused_batch_is_split_keeps_the_rest_queued_in_order(token, caplog):
    ledger = Ledger()
    charges = settled(ledger, [charge(token, n, quota=UNPAYABLE if n == 6 else 0) for n in range(8)])
    calls = []

    def write(batch):
        calls.append(len(batch))
        if len(calls) >= 3:  # the whole batch was refused, its first half written: then the database went
            raise OperationalError(2006, "MySQL server has gone away")
        return charges_apply(batch)

    with mock.patch.object(ledger_module, "charges_apply", side_effect=write):
        assert ledger.flush_all() == 4
    assert calls == [8, 4, 4, 4]  # the rest tried once more as a batch of its own, then left for later
    assert logged_request_ids() == ["req-0", "req-1", "req-2", "req-3"]
    assert ledger.pending == charges[4:] and ledger.parked_count == 0 and ledger.failures == 2
    ledger.flush_all()  # back up
    assert logged_request_ids() == [f"req-{n}" for n in range(8) if n != 6]
    assert [c.request_id for c in ledger.parked] == ["req-6"]
    assert_balances_are_the_written_charges(ledger, token)


def test_a_database_that_is_down_keeps_every_charge_queued_and_parks_none(token):
    ledger = Ledger()
    charges = settled(ledger, [charge(token, n) for n in range(5)])
    down = mock.patch.object(ledger_module, "charges_apply", side_effect=OperationalError(2003, "can't connect"))
    with down:
        assert ledger.flush_all() == 0
        assert ledger.flush_all() == 0
    assert ledger.pending == charges and ledger.parked_count == 0 and ledger.failures == 2
    assert logged_request_ids() == []
    assert ledger.flush_all() == 5
    assert_balances_are_the_written_charges(ledger, token)


def test_a_writer_that_refuses_every_charge_parks_a_few_and_keeps_the_rest_queued(token):
    """A refusal of everything is the writer's fault (a bug, a schema out of step), not the charges': after
    PARKED_IN_A_ROW_MAX parked with nothing written, the rest waits in the queue for the fix."""
    ledger = Ledger()
    charges = settled(ledger, [charge(token, n) for n in range(10)])
    with mock.patch.object(ledger_module, "charges_apply", side_effect=ValueError("a bug in the writer")):
        assert ledger.flush_all() == 0
    assert ledger.parked_count == ledger_module.PARKED_IN_A_ROW_MAX
    assert ledger.pending == charges[ledger_module.PARKED_IN_A_ROW_MAX:]
    assert ledger.flush_all() == 10 - ledger_module.PARKED_IN_A_ROW_MAX  # fixed: everything left is written
    assert_balances_are_the_written_charges(ledger, token)


def test_refused_charges_in_a_row_past_the_limit_still_let_the_good_ones_behind_them_through(token):
    ledger = Ledger()
    many = ledger_module.PARKED_IN_A_ROW_MAX + 2
    settled(ledger, [charge(token, n, quota=UNPAYABLE) for n in range(many)]
            + [charge(token, n) for n in range(many, many + 3)])
    ledger.flush_all()
    assert logged_request_ids() == [f"req-{n}" for n in range(many, many + 3)]
    assert ledger.parked_count == many and ledger.pending == []
    assert_balances_are_the_written_charges(ledger, token)
