"""An edit made while requests are settling never writes back a stale counter.

The ledger moves quota with relative UPDATEs (billing.services.charges_apply); an edit of a token, a user
or a channel reads the row, checks, and writes. A write of the whole row puts back the counters it read
(remain_quota, used_quota, quota, request_count, a channel's used_quota), and the charges settled in
between vanish from the balances while their consume logs stay.
"""

import threading
import time

import pytest
from django.db import close_old_connections, connection, transaction
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import selectors
from accounts.models import Token, User
from accounts.services.tokens import token_update
from accounts.services.users import user_access_token_reset, user_profile_update, user_update
from billing.ledger import Ledger
from billing.models import Log
from billing.services import Charge, charges_apply
from providers.models import Channel
from providers.services import channel_update
from tests.factories import ChannelFactory, TokenFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

USER_QUOTA = 10**9
TOKEN_QUOTA = 10**8


def charge(token: Token, quota: int, n: int, channel_id: int = 0) -> Charge:
    return Charge(user_id=token.user_id, username="u", token_id=token.pk, token_name=token.name, unlimited=False,
                  channel_id=channel_id, model_name="m", quota=quota, prompt_tokens=1, completion_tokens=1,
                  request_id=f"r{n}", elapsed_ms=1, is_stream=False, content="", created_at=0)


def settle(token: Token, quota: int, n: int = 0, channel_id: int = 0) -> None:
    """One request's charge, settled and written through a ledger of its own (no background writer)."""
    ledger = Ledger()
    ledger.settle(charge(token, quota, n, channel_id), reserved=0)
    assert ledger.flush() == 1


def spent(**lookup) -> int:
    return Log.objects.filter(type=Log.Type.CONSUME, **lookup).aggregate(s=Sum("quota"))["s"] or 0


def assert_counters_match_the_logs(token: Token) -> None:
    token = Token.objects.get(pk=token.pk)
    user = User.objects.get(pk=token.user_id)
    by_token, by_user = spent(token_id=token.pk), spent(user_id=user.pk)
    assert by_token > 0
    assert (token.remain_quota + token.used_quota, token.used_quota) == (TOKEN_QUOTA, by_token)
    assert (user.quota + user.used_quota, user.used_quota) == (USER_QUOTA, by_user)
    assert user.request_count == Log.objects.filter(type=Log.Type.CONSUME, user_id=user.pk).count()


@pytest.fixture
def owner(db):
    user = UserFactory(username="owner", quota=USER_QUOTA)
    user_access_token_reset(user=user, value="owner-access-token")
    return user


@pytest.fixture
def token(owner):
    return TokenFactory(user=owner, name="busy", remain_quota=TOKEN_QUOTA)


def owner_api() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="owner-access-token")
    return client


# --- Through /api/token/, with the ledger writing at the same time ----------------------------------


def test_renaming_and_toggling_a_token_while_its_charges_settle_loses_no_charge(token):
    """Runs on every database; on MariaDB the two threads really interleave row writes."""
    edits, charges = 150, 300
    errors: list[BaseException] = []
    done = threading.Event()

    def settle_charges():
        try:
            ledger = Ledger()
            for n in range(charges):
                ledger.settle(charge(token, 1 + n % 7, n), reserved=0)
                if n % 3 == 2:
                    ledger.flush()
            while ledger.flush():
                pass
        except BaseException as exc:  # a thread cannot fail the test itself: surfaced below
            errors.append(exc)
        finally:
            done.set()
            connection.close()

    def edit_token():
        client = owner_api()
        try:
            for n in range(edits):
                renamed = client.put("/api/token/", {"id": token.pk, "name": f"busy-{n}"}, format="json").json()
                status = 2 if n % 2 == 0 else 1
                toggled = client.put("/api/token/?status_only=1", {"id": token.pk, "status": status},
                                     format="json").json()
                assert renamed["success"] and toggled["success"], (renamed, toggled)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=settle_charges), threading.Thread(target=edit_token)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()
    assert not errors, errors
    assert Log.objects.filter(type=Log.Type.CONSUME).count() == charges
    assert_counters_match_the_logs(token)
    assert Token.objects.get(pk=token.pk).name == f"busy-{edits - 1}"


def test_a_charge_that_settles_between_the_apis_read_and_its_write_stays_charged(token, monkeypatch):
    """The same race, made certain: the charge lands right after the view has read the token."""
    read = selectors.token_of

    def read_then_settle(**kwargs):
        found = read(**kwargs)
        settle(token, 1234)
        return found

    monkeypatch.setattr(selectors, "token_of", read_then_settle)
    body = owner_api().put("/api/token/", {"id": token.pk, "name": "renamed"}, format="json").json()
    assert body["success"] and body["data"]["name"] == "renamed"
    assert_counters_match_the_logs(token)
    token.refresh_from_db()
    assert (token.name, token.used_quota) == ("renamed", 1234)


def blocked_on_the_user_row(*, within: float = 30.0) -> bool:
    """Whether another connection runs the rename's write or its lock of the owner row. While the batch holds
    that row either statement can only be waiting for it. Asked again until one shows, or `within` seconds
    pass: how long the other thread takes to get there is not what is tested."""
    deadline = time.monotonic() + within
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
                           "AND (INFO LIKE 'UPDATE `tokens`%%' OR INFO LIKE '%%FOR UPDATE%%')")
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.01)
    return False


@pytest.mark.skipif(connection.vendor != "mysql", reason="row locks and InnoDB's deadlock detector: MariaDB/MySQL")
def test_a_rename_that_meets_a_settling_batch_waits_for_it_instead_of_deadlocking(token):
    """charges_apply locks the user's row, then the token's. A rename rewrites the (user, name) index and so
    needs the user's row too: made to arrive while a batch holds it, it must wait without holding the token."""
    errors: list[BaseException] = []
    answers: list[dict] = []
    batch_holds_the_user = threading.Event()
    rename_is_waiting = threading.Event()

    def batch():
        try:
            with transaction.atomic():
                User.objects.filter(pk=token.user_id).update(request_count=0)  # the batch's first statement
                batch_holds_the_user.set()
                rename_is_waiting.wait(60)
                charges_apply([charge(token, 321, 1)])  # the rest of it: the token's row
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def rename():
        try:
            batch_holds_the_user.wait(60)
            answers.append(owner_api().put("/api/token/", {"id": token.pk, "name": "renamed"}, format="json").json())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=batch), threading.Thread(target=rename)]
    for thread in threads:
        thread.start()
    try:
        assert batch_holds_the_user.wait(60)
        assert blocked_on_the_user_row(), "the rename never reached the owner's row"
    finally:
        rename_is_waiting.set()
        for thread in threads:
            thread.join()
    close_old_connections()
    assert not errors, errors
    assert answers and answers[0]["success"], answers
    token.refresh_from_db()
    assert (token.name, token.used_quota, token.remain_quota) == ("renamed", 321, TOKEN_QUOTA - 321)


# --- Services holding a row read before a charge settled --------------------------------------------


def settles_after_the_services_read(row, token: Token, quota: int, channel_id: int = 0) -> list[int]:
    """Make `row` settle a charge right after the service re-reads it, before the service writes: the race
    at its narrowest, where a whole-row save would put back the counters just read. Returns a list that
    gets one entry when the charge settled, so a test can tell the service did read through the hook.

    The charge is applied as the ledger's flush applies it, minus the flush's connection check: that drops
    a connection found inside a transaction, and channel_update reads inside its own."""
    read, settled = row.refresh_from_db, []

    def read_then_settle(*args, **kwargs):
        read(*args, **kwargs)
        if not settled:
            charges_apply([charge(token, quota, 0, channel_id)])
            settled.append(1)

    row.refresh_from_db = read_then_settle
    return settled


def test_token_update_writes_only_what_it_changes_over_a_charge_settled_after_its_read(token):
    row = Token.objects.get(pk=token.pk)
    settled = settles_after_the_services_read(row, token, 500)
    token_update(token=row, name="renamed", status=Token.Status.DISABLED)
    assert settled
    assert_counters_match_the_logs(token)
    assert Token.objects.filter(pk=token.pk, name="renamed", status=Token.Status.DISABLED).exists()


def test_setting_remain_quota_explicitly_still_sets_it(token):
    row = Token.objects.get(pk=token.pk)
    settled = settles_after_the_services_read(row, token, 500)
    token_update(token=row, remain_quota=42)
    assert settled
    token.refresh_from_db()
    assert (token.remain_quota, token.used_quota) == (42, 500)


def test_user_edits_with_a_stale_user_write_back_no_quota(token, owner, root):
    stale_for_admin, stale_for_self = User.objects.get(pk=owner.pk), User.objects.get(pk=owner.pk)
    settle(token, 700)
    user_update(user=stale_for_admin, by=root, display_name="Owner", group="vip")
    user_profile_update(user=stale_for_self, display_name="Me")
    assert_counters_match_the_logs(token)
    assert User.objects.filter(pk=owner.pk, display_name="Me", group="vip").exists()


def test_channel_update_writes_back_no_used_quota_over_a_charge_settled_after_its_read(token):
    channel = ChannelFactory(name="busy-channel")
    row = Channel.objects.get(pk=channel.pk)
    settled = settles_after_the_services_read(row, token, 900, channel.pk)
    channel_update(channel=row, name="renamed", priority=3)
    assert settled
    channel.refresh_from_db()
    assert (channel.name, channel.priority, channel.used_quota) == ("renamed", 3, 900)


# --- The console: a form shown before a charge settled, posted after --------------------------------


def as_the_browser_posts(form, **changes) -> dict:
    """What a browser sends back for a rendered console form: each field as shown (a hidden `initial-`
    input too where the form keeps one), with the operator's `changes`."""
    shown = {name: form[name].value() for name in form.fields}
    data = {**shown, **changes}
    data.update({f"initial-{name}": shown[name] for name in form.fields if form.fields[name].show_hidden_initial})
    return {name: value for name, value in data.items() if value is not None}


def test_a_token_form_posted_after_a_charge_settled_keeps_the_charge(token, root):
    console = Client()
    console.force_login(root)
    url = reverse("admin:accounts_token_change", args=[token.pk])
    form = console.get(url).context["adminform"].form
    settle(token, 800)  # while the form is open in the operator's browser
    response = console.post(url, as_the_browser_posts(form, name="renamed", user=token.user_id, expired_time="",
                                                      models="", subnet=""))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert_counters_match_the_logs(token)
    assert Token.objects.get(pk=token.pk).name == "renamed"


def test_a_user_form_posted_after_a_charge_settled_keeps_the_charge(token, owner, root):
    console = Client()
    console.force_login(root)
    url = reverse("admin:accounts_user_change", args=[owner.pk])
    form = console.get(url).context["adminform"].form
    settle(token, 600)
    response = console.post(url, as_the_browser_posts(form, display_name="Owner", new_password=""))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert_counters_match_the_logs(token)
    assert not Log.objects.filter(type=Log.Type.MANAGE).exists()  # no balance edit was made
    assert User.objects.get(pk=owner.pk).display_name == "Owner"


def test_the_token_page_posted_after_a_charge_settled_keeps_the_charge(token, owner):
    page = Client()
    page.force_login(owner)
    url = f"/token/{token.pk}/"
    shown = page.get(url).context["form"]["quota"].value()
    settle(token, 700)  # while the page is open; the browser sends back the amount it showed, twice
    data = {"name": "renamed", "quota": shown, "initial-quota": shown, "never_expires": "on", "subnet": ""}
    response = page.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert_counters_match_the_logs(token)
    assert Token.objects.get(pk=token.pk).name == "renamed"


def test_the_token_page_carries_the_amount_it_showed(token, owner):
    page = Client()
    page.force_login(owner)
    assert 'name="initial-quota" value="200"' in page.get(f"/token/{token.pk}/").content.decode()  # US$200


def test_a_quota_typed_on_the_token_page_is_still_set(token, owner):
    page = Client()
    page.force_login(owner)
    url = f"/token/{token.pk}/"
    shown = page.get(url).context["form"]["quota"].value()
    settle(token, 700)
    page.post(url, {"name": "busy", "quota": "3", "initial-quota": shown, "never_expires": "on", "subnet": ""})
    token.refresh_from_db()
    assert (token.remain_quota, token.used_quota) == (1_500_000, 700)  # US$3 at 500,000 per US$
