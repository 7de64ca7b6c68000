"""Budget spending as the ledger writes it (billing/services.charges_apply) and counts it in process."""

import random
import threading

import pytest
from django.db import close_old_connections, connection

from accounts.models import Token, User
from accounts.services.tokens import token_update
from accounts.services.users import user_update
from billing.ledger import Ledger
from billing.services import Charge, charges_apply
from tests.factories import TokenFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

DAY1, DAY2 = 1_773_072_000, 1_773_158_400


def charge(token: Token, quota: int, *, token_period: int = 0, user_period: int = 0, n: int = 0,
           kind: str = "day") -> Charge:
    return Charge(user_id=token.user_id, username="u", token_id=token.pk, token_name=token.name, unlimited=False,
                  channel_id=0, model_name="m", quota=quota, prompt_tokens=1, completion_tokens=1,
                  request_id=f"r{n}", elapsed_ms=1, is_stream=False, content="", created_at=0,
                  token_period_start=token_period, user_period_start=user_period,
                  token_budget_period=kind if token_period else "", user_budget_period=kind if user_period else "")


def budget_of(model, pk):
    return tuple(model.objects.values_list("budget_spent", "budget_period_start").get(pk=pk))


def test_spending_adds_up_within_a_period_and_restarts_in_the_next():
    token = TokenFactory(user=UserFactory(quota=10**6, budget_period="day"), remain_quota=10**6,
                         budget_period="day")
    charges_apply([charge(token, 5, token_period=DAY1, user_period=DAY1),
                   charge(token, 7, token_period=DAY1, user_period=DAY1)])
    assert budget_of(Token, token.pk) == (12, DAY1)
    assert budget_of(User, token.user_id) == (12, DAY1)
    # One batch across midnight: the new day starts from its own charges.
    charges_apply([charge(token, 3, token_period=DAY1), charge(token, 4, token_period=DAY2),
                   charge(token, 6, token_period=DAY2)])
    assert budget_of(Token, token.pk) == (10, DAY2)
    assert budget_of(User, token.user_id) == (12, DAY1)  # no user period on these charges: untouched
    # A late charge of the day that is over counts nowhere; a charge without a budget period neither.
    charges_apply([charge(token, 100, token_period=DAY1), charge(token, 100)])
    assert budget_of(Token, token.pk) == (10, DAY2)


def test_concurrent_writers_count_every_charge_of_the_period():
    """Eight writers at once (as eight instances' ledgers), some charges still of the day before."""
    users = [UserFactory(quota=10**9, budget_period="day") for _ in range(2)]
    tokens = [TokenFactory(user=u, remain_quota=10**9, budget_period="day") for u in users for _ in range(2)]
    expected_token = {t.pk: 0 for t in tokens}
    expected_user = {u.pk: 0 for u in users}
    lock = threading.Lock()
    errors = []

    def writer(seed):
        rng = random.Random(seed)
        try:
            for _ in range(8):
                charges = []
                for i in range(15):
                    token = rng.choice(tokens)
                    quota = rng.randint(1, 500)
                    period = DAY2 if rng.random() < 0.8 else DAY1
                    charges.append(charge(token, quota, token_period=period, user_period=DAY2, n=i))
                    with lock:
                        if period == DAY2:
                            expected_token[token.pk] += quota
                        expected_user[token.user_id] += quota
                charges_apply(charges)
        except Exception as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connection.close()

    # Each row starts in the day before, so a DAY1 charge that lands first counts there until DAY2's arrives.
    Token.objects.update(budget_spent=999, budget_period_start=DAY1)
    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    close_old_connections()
    assert not errors, errors
    for token in tokens:
        assert budget_of(Token, token.pk) == (expected_token[token.pk], DAY2)
    for user in users:
        assert budget_of(User, user.pk) == (expected_user[user.pk], DAY2)


def test_a_new_kind_of_period_starts_afresh_and_ignores_charges_of_the_old_kind(root):
    token = TokenFactory(user=UserFactory(quota=10**6), remain_quota=10**6, budget_quota=100, budget_period="day")
    march_10 = DAY1
    charges_apply([charge(token, 40, token_period=march_10)])
    token_update(token=token, budget_period="month")
    assert budget_of(Token, token.pk) == (0, 0)
    march_1 = march_10 - 9 * 86400  # before the day's start: counted only because the row started afresh
    charges_apply([charge(token, 5, token_period=march_10),  # admitted as a daily budget before the change
                   charge(token, 7, token_period=march_1, kind="month")])
    assert budget_of(Token, token.pk) == (7, march_1)
    charges_apply([charge(token, 9, token_period=march_10)])  # settled late, of the old kind still
    assert budget_of(Token, token.pk) == (7, march_1)
    user = User.objects.get(pk=token.user_id)
    charges_apply([charge(token, 3, user_period=march_10)])  # the user has no budget period: not counted
    assert budget_of(User, user.pk) == (0, 0)
    user_update(user=user, by=root, budget_quota=10, budget_period="week")
    assert budget_of(User, user.pk) == (0, 0)


def test_the_ledger_refuses_past_a_budget_and_remembers_spending_until_written():
    token = TokenFactory(user=UserFactory(quota=10**6), remain_quota=10**6, budget_quota=100, budget_period="day")
    ledger = Ledger()
    budget = (100, DAY1, 30)  # 100 a day, 30 spent when the token was cached

    def reserve(amount, token_budget=budget):
        return ledger.reserve(user_id=token.user_id, user_quota=10**6, token_id=token.pk, token_quota=10**6,
                              amount=amount, token_budget=token_budget)

    assert reserve(71) == "token_budget"
    assert reserve(40) is None
    assert reserve(31) == "token_budget"  # the first one's reservation counts
    ledger.settle(charge(token, 35, token_period=DAY1), reserved=40)
    assert reserve(36) == "token_budget" and reserve(35) is None
    ledger.release(user_id=token.user_id, token_id=token.pk, amount=35, limited=True)
    # Cached again before the write: the database does not hold the 35 yet, the ledger still counts it.
    ledger.rebase_token(token.pk)
    assert reserve(36) == "token_budget"
    assert ledger.flush() == 1
    ledger.rebase_token(token.pk)  # cached again after the write: the database holds it now
    assert reserve(36, token_budget=(100, DAY1, 65)) == "token_budget"
    assert reserve(35, token_budget=(100, DAY1, 65)) is None
    assert reserve(1, token_budget=(100, DAY2, 0)) is None  # another day
    assert budget_of(Token, token.pk) == (35, DAY1)
