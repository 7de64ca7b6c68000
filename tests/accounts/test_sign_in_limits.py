"""Wrong passwords per account (accounts/limits.py): 20 per 20 minutes whatever the address, in one budget for
the pages, /api and the console; bounded so that it cannot keep the owner out."""

import re
import types
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import limits
from billing.services import option_set
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "password123"  # UserFactory's
START = 1_700_000_000.0


@pytest.fixture
def clock():
    """django-ratelimit counts in fixed windows of the clock; the test moves it."""
    now = types.SimpleNamespace(time=lambda: now.value, value=START)
    with mock.patch("django_ratelimit.core.time", now):
        yield now


ROOT_PASSWORD = "root-pass-Secure1"  # the root fixture's
ROOT_EMAIL = "root@example.com"


@pytest.fixture
def victim(root):
    root.email = ROOT_EMAIL
    root.save(update_fields=["email"])
    return root


def address(i: int) -> str:
    """A different client each time: the per-address budget never trips here."""
    return f"198.51.{i // 250}.{i % 250 + 1}"


def api_login(username: str, password: str, ip: str, browser=None):
    """POST /api/user/login; `browser` keeps its cookies from one call to the next (else a new one each time)."""
    return (browser or APIClient()).post("/api/user/login", {"username": username, "password": password},
                                         format="json", REMOTE_ADDR=ip)


def page_login(username: str, password: str, ip: str, browser=None):
    return (browser or Client()).post(reverse("login"), {"username": username, "password": password},
                                      REMOTE_ADDR=ip)


def console_login(username: str, password: str, ip: str, browser=None):
    return (browser or Client()).post("/admin/login/", {"username": username, "password": password},
                                      REMOTE_ADDR=ip)


def browser_for(door):
    return APIClient() if door is api_login else Client()


def signed_in(door, response) -> bool:
    if door is api_login:
        return response.status_code == 200 and response.json()["success"] is True
    return response.status_code == 302


DOORS = [api_login, page_login, console_login]


def wrong_passwords(username: str, count: int, *, first: int = 0) -> list[int]:
    """`count` wrong passwords for `username`, each from a new address, spread over the three doors."""
    return [DOORS[i % 3](username, f"guess-{i}", address(first + i)).status_code for i in range(count)]


def test_25_wrong_root_passwords_from_25_addresses_meet_a_429(clock, victim):
    """The reported case, without forged headers: every address is real and new."""
    statuses = wrong_passwords("root", 25)
    assert 429 not in statuses[:20]
    assert statuses[20:] == [429] * 5


@pytest.mark.parametrize("door", DOORS)
def test_a_locked_account_refuses_even_the_right_password_from_a_new_address(clock, victim, door):
    wrong_passwords("root", 20)
    response = door("root", ROOT_PASSWORD, "203.0.113.200")
    assert response.status_code == 429
    if door is api_login:
        body = response.json()
        assert body["success"] is False and "account" in body["message"]
    else:
        assert 'id="account-locked"' in response.content.decode()


def test_case_and_spaces_do_not_give_fresh_budgets(clock, victim):
    variants = ["root", "ROOT", " Root ", "rOOt"]
    statuses = [DOORS[i % 3](variants[i % 4], "guess", address(i)).status_code for i in range(21)]
    assert statuses[-1] == 429


def test_unknown_names_are_counted_the_same_so_the_lock_reveals_nothing(clock):
    assert wrong_passwords("nobody-here", 21)[-1] == 429


def test_another_account_is_not_affected(clock, victim):
    UserFactory(username="alice")
    wrong_passwords("root", 20)
    assert api_login("alice", PASSWORD, "203.0.113.201").json()["success"] is True


def test_right_passwords_do_not_use_up_the_budget(clock):
    UserFactory(username="alice")
    for i in range(25):
        assert api_login("alice", PASSWORD, address(i)).json()["success"] is True


def test_the_lock_ends_with_its_window_and_locked_attempts_do_not_extend_it(clock, victim):
    wrong_passwords("root", 20)
    wrong_passwords("root", 10, first=20)  # refused while locked; they must not count
    assert api_login("root", ROOT_PASSWORD, "203.0.113.202").status_code == 429
    clock.value += 20 * 60 + 1  # the 20-minute window is over
    assert api_login("root", ROOT_PASSWORD, "203.0.113.202").json()["success"] is True


def test_a_fresh_window_allows_20_more_before_locking_again(clock, victim):
    wrong_passwords("root", 25)
    clock.value += 20 * 60 + 1
    statuses = wrong_passwords("root", 21, first=100)
    assert 429 not in statuses[:20] and statuses[20] == 429


@pytest.mark.parametrize("door", DOORS)
def test_the_owners_usual_address_still_signs_in_while_strangers_have_it_locked(clock, victim, door):
    home = "203.0.113.50"
    first = door("root", ROOT_PASSWORD, home)
    assert first.status_code in (200, 302) and first.status_code != 429
    wrong_passwords("root", 25)  # an attacker elsewhere
    response = door("root", ROOT_PASSWORD, home)
    if door is api_login:
        assert response.json()["success"] is True
    else:
        assert response.status_code == 302
    # The stranger stays locked out.
    assert door("root", ROOT_PASSWORD, "203.0.113.99").status_code == 429


def test_the_lock_message_speaks_the_users_language(clock, victim):
    wrong_passwords("root", 20)
    body = APIClient().post("/api/user/login", {"username": "root", "password": "x"}, format="json",
                            REMOTE_ADDR="203.0.113.7", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert "账户" in body["message"]


# --- The account, not the text typed ------------------------------------------------------------------------

def test_the_username_and_the_email_are_one_account_with_one_budget(clock, victim):
    """A login resolves to the account: root's name and address, in any case, do not get 20 guesses each."""
    typed = ["root", ROOT_EMAIL, "ROOT@Example.com", " Root "]
    statuses = [DOORS[i % 3](typed[i % 4], f"guess-{i}", address(i)).status_code for i in range(21)]
    assert 429 not in statuses[:20] and statuses[20] == 429


@pytest.mark.parametrize("door", DOORS)
def test_wrong_passwords_through_the_email_lock_the_username_too(clock, victim, door):
    wrong_passwords(ROOT_EMAIL, 20)
    assert door("root", ROOT_PASSWORD, "203.0.113.210").status_code == 429


def test_unknown_addresses_are_counted_like_unknown_names(clock):
    assert wrong_passwords("nobody@example.com", 21)[-1] == 429


# --- The owner is never shut out ------------------------------------------------------------------------

@pytest.mark.parametrize("door", DOORS)
def test_a_browser_that_signed_in_before_gets_in_from_a_new_address(clock, victim, door):
    """The owner's laptop on a train: a new address, but the browser signed in before (a signed cookie)."""
    browser = browser_for(door)
    assert signed_in(door, door("root", ROOT_PASSWORD, "203.0.113.50", browser))
    wrong_passwords("root", 25)  # an attacker elsewhere
    assert signed_in(door, door("root", ROOT_PASSWORD, "198.18.0.9", browser))
    # A new browser at a new address stays locked out.
    assert door("root", ROOT_PASSWORD, "198.18.0.10").status_code == 429


def test_the_signed_in_cookie_is_http_only_and_lasts_30_days(clock, victim):
    response = page_login("root", ROOT_PASSWORD, "203.0.113.50")
    cookie = response.cookies[limits.BROWSER_COOKIE]
    assert cookie["httponly"] is True and cookie["max-age"] == limits.TRUSTED_TTL


@pytest.mark.parametrize("value", ["made-up", "eyJ1c2VyOjEiOjE3MDAwMDAwMDB9:1abc:forged"])
def test_a_made_up_cookie_does_not_lift_the_lock(clock, victim, value):
    wrong_passwords("root", 20)
    browser = Client()
    browser.cookies[limits.BROWSER_COOKIE] = value
    assert page_login("root", ROOT_PASSWORD, "198.18.0.9", browser).status_code == 429


def test_a_browser_that_signed_in_to_another_account_gets_no_pass_for_root(clock, victim):
    UserFactory(username="mallory")
    browser = Client()
    assert page_login("mallory", PASSWORD, "198.18.0.8", browser).status_code == 302
    wrong_passwords("root", 20)
    assert page_login("root", ROOT_PASSWORD, "198.18.0.9", browser).status_code == 429


NEW_ROOT_PASSWORD = "a-brand-new-Secret7"


def reset_by_email_on_the_page(browser: Client, ip: str) -> None:
    """Ask for a reset link and follow it, from `browser` at `ip`, choosing NEW_ROOT_PASSWORD."""
    assert browser.post(reverse("password_reset"), {"email": ROOT_EMAIL}, REMOTE_ADDR=ip).status_code == 302
    link = mailed_reset_link()
    done = browser.post(reverse("password_reset_confirm"), {
        **link, "new_password1": NEW_ROOT_PASSWORD, "new_password2": NEW_ROOT_PASSWORD}, REMOTE_ADDR=ip)
    assert done.status_code == 302


def reset_by_email_on_the_api(browser: APIClient, ip: str) -> str:
    """one-api's way: GET /api/reset_password, then POST /api/user/reset answers a new random password."""
    assert browser.get("/api/reset_password", {"email": ROOT_EMAIL}, REMOTE_ADDR=ip).json()["success"] is True
    body = browser.post("/api/user/reset", mailed_reset_link(), format="json", REMOTE_ADDR=ip).json()
    assert body["success"] is True
    return body["data"]


def mailed_reset_link() -> dict:
    assert len(mail.outbox) == 1
    query = parse_qs(urlsplit(re.search(r"(\S+/user/reset/\?\S+)", mail.outbox[0].body).group(1)).query)
    return {"email": query["email"][0], "token": query["token"][0]}


def test_a_reset_by_email_on_the_page_lets_the_owner_in_from_a_new_browser_and_address(clock, victim):
    wrong_passwords("root", 25)
    browser, ip = Client(), "198.18.0.20"  # a borrowed laptop in a hotel: never signed in to root
    assert page_login("root", ROOT_PASSWORD, ip, browser).status_code == 429
    reset_by_email_on_the_page(browser, ip)
    assert page_login("root", NEW_ROOT_PASSWORD, ip, browser).status_code == 302
    # Strangers, even with the new password, are still locked out.
    assert page_login("root", NEW_ROOT_PASSWORD, "198.18.0.21").status_code == 429


def test_a_reset_by_email_on_the_api_lets_the_owner_in_from_a_new_browser_and_address(clock, victim):
    wrong_passwords("root", 25)
    browser, ip = APIClient(), "198.18.0.30"
    assert api_login("root", ROOT_PASSWORD, ip, browser).status_code == 429
    password = reset_by_email_on_the_api(browser, ip)
    assert api_login("root", password, ip, browser).json()["success"] is True
    assert api_login("root", password, "198.18.0.31").status_code == 429


def test_the_locked_page_offers_the_reset(clock, victim):
    wrong_passwords("root", 20)
    page = console_login("root", ROOT_PASSWORD, "198.18.0.40").content.decode()
    assert f'href="{reverse("password_reset")}" id="locked-reset"' in page
    assert 'id="locked-human-check"' not in page  # Turnstile is off


# --- With Turnstile: a person per guess -------------------------------------------------------------------

def locked_then_turnstile_on() -> None:
    """Locked by an attacker while Turnstile was off (with it on, each of their new clients needs a check)."""
    wrong_passwords("root", 20)
    option_set(key="TurnstileCheckEnabled", value="true")


@pytest.fixture
def turnstile_later(turnstile_on):
    """Turnstile set up with the local mock, still off: the test turns it on once the account is locked."""
    option_set(key="TurnstileCheckEnabled", value="false")
    return turnstile_on


def test_with_turnstile_a_locked_account_takes_the_password_after_a_fresh_check_on_the_page(clock, victim,
                                                                                            turnstile_later):
    cf = turnstile_later
    browser, ip = Client(), "198.18.0.50"
    locked_then_turnstile_on()
    # The session passed Turnstile on an earlier page (one-api asks once per session) ...
    first = browser.post(reverse("login"), {"username": "nobody-here", "password": "x",
                                            "cf-turnstile-response": cf.issue()}, REMOTE_ADDR=ip)
    assert first.status_code == 200
    # ... yet the locked account asks again, and shows the widget.
    asked = page_login("root", ROOT_PASSWORD, ip, browser)
    assert asked.status_code == 429
    assert cf.site_key in asked.content.decode()
    assert "Complete the human check (Turnstile) to sign in." in asked.content.decode()
    done = browser.post(reverse("login"), {"username": "root", "password": ROOT_PASSWORD,
                                           "cf-turnstile-response": cf.issue()}, REMOTE_ADDR=ip)
    assert done.status_code == 302


def test_with_turnstile_a_locked_account_takes_the_password_after_a_fresh_check_on_the_api(clock, victim,
                                                                                           turnstile_later):
    cf = turnstile_later
    browser, ip = APIClient(), "198.18.0.60"
    locked_then_turnstile_on()
    assert browser.get("/api/verification", {"email": "new@example.com", "turnstile": cf.issue()},
                       REMOTE_ADDR=ip).json()["success"] is True  # the session has passed
    asked = api_login("root", ROOT_PASSWORD, ip, browser)
    assert asked.status_code == 429 and "human check" in asked.json()["message"]
    done = browser.post(f"/api/user/login?turnstile={cf.issue()}", {"username": "root", "password": ROOT_PASSWORD},
                        format="json", REMOTE_ADDR=ip)
    assert done.json()["success"] is True


def test_with_turnstile_each_guess_at_a_locked_account_needs_its_own_check(clock, victim, turnstile_later):
    cf = turnstile_later
    locked_then_turnstile_on()
    token = cf.issue()
    guess = APIClient()
    first = guess.post(f"/api/user/login?turnstile={token}", {"username": "root", "password": "guess-1"},
                       format="json", REMOTE_ADDR="198.18.0.70")
    assert first.status_code == 200 and first.json()["success"] is False  # checked, and wrong
    again = guess.post(f"/api/user/login?turnstile={token}", {"username": "root", "password": ROOT_PASSWORD},
                       format="json", REMOTE_ADDR="198.18.0.70")
    assert again.status_code == 429  # a used token is no check: the right password is not even tried
    console = console_login("root", ROOT_PASSWORD, "198.18.0.71", guess)
    assert 'id="locked-human-check"' in console.content.decode()
