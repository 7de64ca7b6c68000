"""Limits on guessing: one-api's "critical" limit per address, and a limit per account on wrong passwords.

Per address: 20 requests per 20 minutes (one-api's CriticalRateLimitNum/Duration) to sign-in, sign-up,
verification codes and password resets, counted in the shared cache and in one budget for the pages,
/api and the console, so switching between them gains nothing.

Per account: an attacker with many addresses (or a forged X-Forwarded-For) still gets 20 wrong passwords
per 20 minutes per account, counted on the username or e-mail typed, whatever address they come from.
The lock must not become a way to keep the owner out, so it is bounded three ways: only wrong passwords
count; it ends with its 20-minute window (django-ratelimit's fixed windows) and nothing extends it; and an
address that has signed in to the account in the last 30 days is not locked out by it (its own per-address
budget still holds). Unknown names count the same, so the lock tells nobody which names exist.
"""

from __future__ import annotations

import functools
import hashlib

from django.core.cache import cache
from django.shortcuts import render
from django_ratelimit.core import get_usage, is_ratelimited

CRITICAL_RATE = "20/20m"
CRITICAL_GROUP = "oneapi-critical"
ACCOUNT_LIMIT = 20  # wrong passwords per account and window
ACCOUNT_RATE = f"{ACCOUNT_LIMIT}/20m"
ACCOUNT_GROUP = "oneapi-sign-in-account"
KNOWN_ADDRESS_TTL = 30 * 24 * 3600


def critical_limited(request) -> bool:
    """Count this request; True once the address is over the limit."""
    return bool(is_ratelimited(request, group=CRITICAL_GROUP, key="ip", rate=CRITICAL_RATE, increment=True))


def limited_page(request, *, account: bool = False):
    """The 429 page: too many attempts from this address, or too many wrong passwords for this account."""
    return render(request, "accounts/rate_limited.html", {"account": account}, status=429)


def critical_page(view):
    """For pages: every POST counts; over the limit the visitor gets a 429 page instead of the form."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method == "POST" and critical_limited(request):
            return limited_page(request)
        return view(request, *args, **kwargs)

    return wrapped


# --- Per account --------------------------------------------------------------------------

def _account(login: str) -> str:
    """The account as typed, the way lookups match it: without surrounding spaces, in any case."""
    return (login or "").strip().casefold()[:256]


def _wrong_passwords(request, account: str, *, increment: bool) -> dict | None:
    return get_usage(request, group=ACCOUNT_GROUP, key=lambda _group, _request: account, rate=ACCOUNT_RATE,
                     increment=increment)


def _known_key(request, account: str) -> str:
    digest = hashlib.sha256(f"{account}\n{request.META.get('REMOTE_ADDR', '')}".encode()).hexdigest()
    return f"oneapi:sign-in-known:{digest}"


def account_locked(request, login: str) -> bool:
    """Whether a password sign-in to `login` is refused for now (see the module's doc); counts nothing."""
    account = _account(login)
    if not account or cache.get(_known_key(request, account)):
        return False
    usage = _wrong_passwords(request, account, increment=False)
    if usage is None:  # ratelimit switched off
        return False
    return usage["should_limit"] or usage["count"] >= ACCOUNT_LIMIT


def account_failed(request, login: str) -> None:
    """A wrong password (or a disabled account) for `login`."""
    account = _account(login)
    if account:
        _wrong_passwords(request, account, increment=True)


def account_signed_in(request, login: str) -> None:
    """The right password: this address may sign in to `login` even while strangers have it locked."""
    account = _account(login)
    if account:
        cache.set(_known_key(request, account), 1, KNOWN_ADDRESS_TTL)


def console_login(view):
    """The console's login (Django's AdminSite.login) under both limits; it answers 302 only on success."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        login = request.POST.get("username", "")
        if critical_limited(request):
            return limited_page(request)
        if account_locked(request, login):
            return limited_page(request, account=True)
        response = view(request, *args, **kwargs)
        if response.status_code == 302 and request.user.is_authenticated:
            account_signed_in(request, login)
        elif request.POST.get("password"):
            account_failed(request, login)
        return response

    return wrapped
