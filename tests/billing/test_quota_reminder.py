"""QuotaRemindThreshold: a user whose balance falls below it gets one e-mail per crossing (billing/reminders.py).

The ledger checks the users of each batch it writes; a credit back to the threshold or above arms the next
reminder. Mail goes through Django's mail (the locmem outbox here), and a mail that fails never fails a write.
"""

from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.core import mail

from accounts.models import Token, User
from billing import reminders
from billing.ledger import Ledger
from billing.models import Log
from billing.services import (
    Charge,
    option_set,
    redemption_create_batch,
    redemption_redeem,
    user_quota_set,
    user_topup,
)
from oneapi_site.lib import mail as site_mail
from tests.factories import TokenFactory, UserFactory
from tests.helpers import flush

pytestmark = pytest.mark.django_db(transaction=True)

THRESHOLD = 1000


@pytest.fixture(autouse=True)
def threshold(db):
    option_set(key="QuotaRemindThreshold", value=THRESHOLD)
    option_set(key="SystemName", value="Gateway")
    option_set(key="ServerAddress", value="https://gw.example.com/")


@pytest.fixture
def token(db):
    user = UserFactory(username="bob", email="bob@example.com", quota=5000)
    return TokenFactory(user=user, name="bob-key", remain_quota=10**6)


def spend(token: Token, *quotas: int) -> int:
    """Settle one charge per amount and write them, as the relay's ledger does; returns how many were written."""
    ledger = Ledger()
    for n, quota in enumerate(quotas):
        ledger.settle(Charge(user_id=token.user_id, username="bob", token_id=token.pk, token_name=token.name,
                             unlimited=False, channel_id=0, model_name="gpt-4o", quota=quota, prompt_tokens=1,
                             completion_tokens=1, request_id=f"r{n}", elapsed_ms=1, is_stream=False, content="",
                             created_at=0), reserved=0)
    return ledger.flush_all()


def balance(token: Token) -> int:
    return User.objects.get(pk=token.user_id).quota


def test_the_charge_that_crosses_the_threshold_mails_once_and_later_ones_do_not(token):
    spend(token, 3000)  # 2000 left: above
    assert mail.outbox == []
    spend(token, 1500)  # 500 left: below
    [message] = mail.outbox
    assert message.to == ["bob@example.com"]
    assert message.subject == "Gateway: your quota is running low"
    assert "Hello bob" in message.body and "https://gw.example.com/topup/" in message.body
    spend(token, 100, 100)
    spend(token, 300)  # used up: still the same crossing
    assert len(mail.outbox) == 1 and balance(token) == 0


def test_a_balance_used_up_in_one_go_is_told_so(token):
    spend(token, 5000)
    [message] = mail.outbox
    assert message.subject == "Gateway: your quota is used up"


def _topup(user_id: int, amount: int) -> None:
    user_topup(user_id=user_id, quota=amount)


def _redeem(user_id: int, amount: int) -> None:
    [key] = redemption_create_batch(creator=None, name="card", quota=amount)
    redemption_redeem(user_id=user_id, key=key)


def _edit(user_id: int, amount: int) -> None:
    user_quota_set(user_id=user_id, quota=User.objects.get(pk=user_id).quota + amount)


@pytest.mark.parametrize("credit", [_topup, _redeem, _edit], ids=["top-up", "redemption", "balance edit"])
def test_a_credit_back_above_the_threshold_lets_the_next_crossing_mail_again(token, credit):
    spend(token, 4500)  # 500
    credit(token.user_id, 9500)  # 10000
    spend(token, 100)
    assert len(mail.outbox) == 1
    spend(token, 9500)  # 400: a new crossing
    assert len(mail.outbox) == 2 and [m.to for m in mail.outbox] == [["bob@example.com"]] * 2


def test_a_credit_that_leaves_the_balance_below_the_threshold_does_not(token):
    spend(token, 4500)  # 500
    _topup(token.user_id, 200)  # 700: still below
    spend(token, 100)
    assert len(mail.outbox) == 1


def test_a_threshold_of_zero_turns_the_reminder_off(token):
    option_set(key="QuotaRemindThreshold", value=0)
    spend(token, 4999)
    spend(token, 1)
    assert mail.outbox == []
    assert User.objects.get(pk=token.user_id).quota_reminded_at == 0


def test_a_user_without_an_email_address_gets_nothing(token):
    User.objects.filter(pk=token.user_id).update(email="")
    spend(token, 4500)
    assert mail.outbox == []


def test_two_instances_writing_the_same_crossing_send_one_mail(token):
    """Both read the user as not yet reminded; the guarded UPDATE lets one of them send."""
    real_now = reminders.now_ts
    other_instance = []

    def now_then_the_other_instance():
        if not other_instance:  # this instance is about to claim the reminder: the other gets there first
            other_instance.append("running")
            other_instance.append(reminders.quota_reminders_send(user_ids=[token.user_id]))
        return real_now()

    with mock.patch.object(reminders, "now_ts", side_effect=now_then_the_other_instance):
        spend(token, 4500)
    assert other_instance == ["running", 1]
    assert len(mail.outbox) == 1


def test_an_smtp_server_that_refuses_never_stops_the_ledger(token, settings):
    settings.EMAIL_BACKEND = site_mail.SMTP_BACKEND
    option_set(key="SMTPServer", value="smtp.example.test")
    refusing = mock.Mock(send_messages=mock.Mock(side_effect=OSError("connection refused")))
    with mock.patch.object(site_mail, "get_connection", return_value=refusing):
        assert spend(token, 4500, 10) == 2
        site_mail._outbox.submit(lambda: None).result(10)  # the sender works in order: its attempt is done
    refusing.send_messages.assert_called_once()
    assert balance(token) == 490 and Log.objects.filter(type=Log.Type.CONSUME).count() == 2


def test_a_reminder_that_raises_is_logged_and_the_charges_still_count(token, caplog):
    with mock.patch.object(reminders, "mail_send", side_effect=RuntimeError("mail system broke")):
        assert spend(token, 4500) == 1
    assert balance(token) == 500
    assert any("low-balance mail" in r.getMessage() for r in caplog.records)


def test_without_smtp_nobody_is_marked_reminded(token, settings):
    settings.EMAIL_BACKEND = site_mail.SMTP_BACKEND
    spend(token, 4500)
    assert User.objects.get(pk=token.user_id).quota_reminded_at == 0


async def test_a_relayed_request_that_crosses_the_threshold_mails_its_user(relay_client, world):
    await sync_to_async(User.objects.filter(pk=world.user.pk).update)(quota=THRESHOLD + 2, email="alice@example.com")
    for _ in range(2):  # 3 quota each (tests/relay/test_chat.py)
        response = await relay_client.post("/v1/chat/completions", headers=world.auth,
                                     json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})
        assert response.status_code == 200, response.text
        await flush()
    [message] = mail.outbox
    assert message.to == ["alice@example.com"] and "running low" in message.subject


def test_the_mail_is_in_the_sites_language(token, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    spend(token, 4500)
    [message] = mail.outbox
    assert message.subject == "Gateway：你的额度即将用尽"
    assert "bob，你好" in message.body and "https://gw.example.com/topup/" in message.body
