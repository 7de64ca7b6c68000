"""The top-up page: redeeming a code (once, even when raced), errors on the form, and TopUpLink."""

import threading
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import User
from billing.models import Log, RedemptionCode
from billing.pages.topup import top_up_url
from billing.services import redemption_redeem
from oneapi_site.lib.errors import ServiceError
from tests.factories import RedemptionFactory, UserFactory

URL = "/topup/"


def balance(user) -> int:
    return User.objects.get(pk=user.pk).quota


def test_url_is_named_topup():
    assert reverse("topup") == URL


def test_anonymous_visitor_is_sent_to_login(db):
    assert Client().get(URL).url.startswith(reverse("login"))
    code = RedemptionFactory()
    response = Client().post(URL, {"key": code.key})
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert RedemptionCode.objects.get(pk=code.pk).status == RedemptionCode.Status.ENABLED


def test_page_shows_the_balance_and_the_form(alice, alice_client, set_option):
    set_option("DisplayInCurrencyEnabled", False)
    html = alice_client.get(URL).content.decode()
    assert "1,000,000" in html
    assert 'id="redeem-form"' in html and 'name="key"' in html and "csrfmiddlewaretoken" in html
    assert 'id="topup-link"' not in html       # no TopUpLink by default


def test_a_valid_code_is_credited_once_with_a_message(alice, alice_client, set_option):
    set_option("DisplayInCurrencyEnabled", False)
    code = RedemptionFactory(quota=250_000)
    response = alice_client.post(URL, {"key": f"  {code.key} "}, follow=True)
    assert response.redirect_chain == [(URL, 302)]
    html = response.content.decode()
    assert "Redeemed 250,000. Your balance is now 1,250,000." in html
    assert balance(alice) == 1_250_000
    code.refresh_from_db()
    assert code.status == RedemptionCode.Status.USED and code.redeemed_by_id == alice.pk
    assert Log.objects.filter(user_id=alice.pk, type=Log.Type.TOPUP, quota=250_000).count() == 1

    again = alice_client.post(URL, {"key": code.key})
    assert again.status_code == 200
    assert "This redemption code has already been used." in again.content.decode()
    assert balance(alice) == 1_250_000


def test_the_message_is_in_us_dollars_when_so_configured(alice, alice_client, set_option):
    set_option("DisplayInCurrencyEnabled", True)
    code = RedemptionFactory(quota=500_000)
    html = alice_client.post(URL, {"key": code.key}, follow=True).content.decode()
    assert "Redeemed $1. Your balance is now $3." in html


@pytest.mark.parametrize("key,message", [
    ("", "Enter a redemption code."),
    ("   ", "Enter a redemption code."),
    ("no-such-code", "This redemption code does not exist."),
])
def test_bad_input_is_shown_on_the_form(alice, alice_client, key, message):
    response = alice_client.post(URL, {"key": key})
    assert response.status_code == 200
    assert message in response.context["form"].errors["key"]
    assert 'id="redeem-errors"' in response.content.decode()
    assert balance(alice) == 1_000_000


def test_a_disabled_code_is_refused(alice, alice_client):
    code = RedemptionFactory(status=RedemptionCode.Status.DISABLED)
    response = alice_client.post(URL, {"key": code.key})
    assert "This redemption code has been disabled." in response.context["form"].errors["key"]
    assert balance(alice) == 1_000_000
    assert RedemptionCode.objects.get(pk=code.pk).status == RedemptionCode.Status.DISABLED


def test_a_code_used_by_someone_else_is_refused(alice, alice_client):
    code = RedemptionFactory()
    redemption_redeem(user_id=UserFactory().pk, key=code.key)
    response = alice_client.post(URL, {"key": code.key})
    assert "This redemption code has already been used." in response.context["form"].errors["key"]
    assert balance(alice) == 1_000_000


def test_the_form_errors_follow_the_browser_language(alice, alice_client):
    response = alice_client.post(URL, {"key": "no-such-code"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    with translation.override("zh-hans"):
        expected = translation.gettext("This redemption code does not exist.")
    assert response.context["form"].errors["key"] == [expected]


def test_csrf_is_enforced(alice):
    code = RedemptionFactory()
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(URL, {"key": code.key}).status_code == 403
    assert balance(alice) == 1_000_000

    client.get(URL)
    token = client.cookies["csrftoken"].value
    response = client.post(URL, {"key": code.key, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert balance(alice) == 1_000_000 + code.quota


# --- TopUpLink -----------------------------------------------------------------

def test_top_up_link_carries_the_user_and_a_fresh_transaction_id(alice, alice_client, set_option):
    set_option("TopUpLink", "https://pay.example.com/buy?plan=a b&x=1")
    html = alice_client.get(URL).content.decode()
    assert 'id="topup-link"' in html
    first = alice_client.get(URL).context["top_up_url"]
    second = alice_client.get(URL).context["top_up_url"]
    parts = urlsplit(first)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "pay.example.com", "/buy")
    assert query == {"plan": ["a b"], "x": ["1"], "username": ["alice"], "user_id": [str(alice.pk)],
                     "transaction_id": query["transaction_id"]}
    assert UUID(query["transaction_id"][0]).version == 4
    assert parse_qs(urlsplit(second).query)["transaction_id"] != query["transaction_id"]


def test_top_up_link_urlencodes_the_username(db):
    user = UserFactory(username="a&b=c d")
    url = top_up_url("http://pay.example.com/", user=user)
    assert "username=a%26b%3Dc+d" in url
    assert parse_qs(urlsplit(url).query)["username"] == ["a&b=c d"]


@pytest.mark.parametrize("link", ["", "javascript:alert(1)", "pay.example.com", "ftp://x/"])
def test_only_http_links_are_offered(alice, link):
    assert top_up_url(link, user=alice) == ""


# --- concurrency ---------------------------------------------------------------------

def race(n, work):
    """Run `work(i)` in n threads released at once; return the results (exceptions included)."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:   # noqa: BLE001 - the caller inspects what each thread got
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_redemptions_of_one_code_credit_it_once():
    users = [UserFactory(quota=0) for _ in range(8)]
    code = RedemptionFactory(quota=7_000)
    results = race(8, lambda i: redemption_redeem(user_id=users[i].pk, key=code.key))
    assert sum(r == 7_000 for r in results) == 1, results
    assert all(isinstance(r, ServiceError) for r in results if r != 7_000), results
    assert sum(User.objects.filter(pk__in=[u.pk for u in users]).values_list("quota", flat=True)) == 7_000
    assert Log.objects.filter(type=Log.Type.TOPUP, quota=7_000).count() == 1
    winner = users[results.index(7_000)]
    assert RedemptionCode.objects.get(pk=code.pk).redeemed_by_id == winner.pk


@pytest.mark.django_db(transaction=True)
def test_two_browsers_redeeming_the_same_code_credit_it_once():
    user = UserFactory(quota=0)
    code = RedemptionFactory(quota=5_000)
    browsers = [Client(), Client()]
    for b in browsers:
        b.force_login(user)
    results = race(2, lambda i: browsers[i].post(URL, {"key": code.key}).status_code)
    assert sorted(results) == [200, 302], results     # one success redirect, one form with the error
    assert balance(user) == 5_000
    assert Log.objects.filter(user_id=user.pk, type=Log.Type.TOPUP).count() == 1
