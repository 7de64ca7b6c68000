"""Wrong passwords per account (accounts/limits.py): 20 per 20 minutes whatever the address, in one budget for
the pages, /api and the console; bounded so that it cannot keep the owner out."""

import types
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

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


@pytest.fixture
def victim(root):
    return root


def address(i: int) -> str:
    """A different client each time: the per-address budget never trips here."""
    return f"198.51.{i // 250}.{i % 250 + 1}"


def api_login(username: str, password: str, ip: str):
    return APIClient().post("/api/user/login", {"username": username, "password": password}, format="json",
                            REMOTE_ADDR=ip)


def page_login(username: str, password: str, ip: str):
    return Client().post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def console_login(username: str, password: str, ip: str):
    return Client().post("/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


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
    response = door("root", "root-pass-Secure1", "203.0.113.200")
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
    assert api_login("root", "root-pass-Secure1", "203.0.113.202").status_code == 429
    clock.value += 20 * 60 + 1  # the 20-minute window is over
    assert api_login("root", "root-pass-Secure1", "203.0.113.202").json()["success"] is True


def test_a_fresh_window_allows_20_more_before_locking_again(clock, victim):
    wrong_passwords("root", 25)
    clock.value += 20 * 60 + 1
    statuses = wrong_passwords("root", 21, first=100)
    assert 429 not in statuses[:20] and statuses[20] == 429


@pytest.mark.parametrize("door", DOORS)
def test_the_owners_usual_address_still_signs_in_while_strangers_have_it_locked(clock, victim, door):
    home = "203.0.113.50"
    first = door("root", "root-pass-Secure1", home)
    assert first.status_code in (200, 302) and first.status_code != 429
    wrong_passwords("root", 25)  # an attacker elsewhere
    response = door("root", "root-pass-Secure1", home)
    if door is api_login:
        assert response.json()["success"] is True
    else:
        assert response.status_code == 302
    # The stranger stays locked out.
    assert door("root", "root-pass-Secure1", "203.0.113.99").status_code == 429


def test_the_lock_message_speaks_the_users_language(clock, victim):
    wrong_passwords("root", 20)
    body = APIClient().post("/api/user/login", {"username": "root", "password": "x"}, format="json",
                            REMOTE_ADDR="203.0.113.7", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert "账户" in body["message"]
