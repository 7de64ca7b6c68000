"""Limits on guessing: one-api's "critical" limit per address, and a limit per account on wrong passwords.

Per address: 20 requests per 20 minutes (one-api's CriticalRateLimitNum/Duration) to sign-in, sign-up,
verification codes and password resets, counted in the shared cache and in one budget for the pages,
/api and the console, so switching between them gains nothing.

Per account: an attacker with many addresses (or a forged X-Forwarded-For) still gets 20 wrong passwords
per 20 minutes per account, whatever address they come from. The login is resolved to the account first
(a username or an e-mail, in any letter case, is the same account); a name nobody has counts under its
casefolded text, so unknown names are refused the same way and the lock tells nobody which names exist.
Only wrong passwords count, the lock ends with its 20-minute window (django-ratelimit's fixed windows), and
nothing refused while it holds extends it.

The lock must not become a way to keep the owner out: one address is enough to re-lock an account every
window, for as long as the attacker cares to. So it holds only for clients that have not shown they are the
owner's. These still get in, each limited by its own per-address budget:
- a browser or an address that signed in to the account in the last 30 days (a signed cookie, and a mark in
  the cache), as OWASP's "device cookies" do; the attacker has neither;
- a browser and address that completed a password reset from the account's mailbox, which is proof enough
  (the reset does not clear the count: that would hand the attacker 20 new guesses, and the owner would have
  to sign in before the attacker re-locked it);
- with Turnstile on, anyone who passes a fresh human check with that very request: a person per guess,
  which is what the lock is for.
"""

from __future__ import annotations

import functools
import hashlib

from django.core import signing
from django.core.cache import cache
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django_ratelimit.core import get_usage, is_ratelimited

from accounts import selectors, turnstile
from oneapi_site.lib.timeutil import now_ts

CRITICAL_RATE = "20/20m"
CRITICAL_GROUP = "oneapi-critical"
ACCOUNT_LIMIT = 20  # wrong passwords per account and window
ACCOUNT_RATE = f"{ACCOUNT_LIMIT}/20m"
ACCOUNT_GROUP = "oneapi-sign-in-account"
TRUSTED_TTL = 30 * 24 * 3600  # how long a browser or address that proved itself the owner's stays so
BROWSER_COOKIE = "oneapi_signed_in"
BROWSER_SALT = "accounts.limits.signed-in-browser"
BROWSER_MAX_ACCOUNTS = 5  # accounts one browser remembers (the newest)

LOCKED_MESSAGE = _("Too many wrong passwords were tried for this account. Wait up to 20 minutes, sign in from a "
                   "browser or address you used before, or reset your password by e-mail.")
LOCKED_CHECK_MESSAGE = _("Too many wrong passwords were tried for this account. Complete the human check "
                         "(Turnstile) to sign in.")


def critical_limited(request) -> bool:
    """Count this request; True once the address is over the limit."""
    return bool(is_ratelimited(request, group=CRITICAL_GROUP, key="ip", rate=CRITICAL_RATE, increment=True))


def limited_page(request, *, account: bool = False):
    """The 429 page: too many attempts from this address, or too many wrong passwords for this account."""
    return render(request, "accounts/rate_limited.html",
                  {"account": account, "human_check": account and turnstile.enabled()}, status=429)


def critical_page(view):
    """For pages: every POST counts; over the limit the visitor gets a 429 page instead of the form."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method == "POST" and critical_limited(request):
            return limited_page(request)
        return view(request, *args, **kwargs)

    return wrapped


# --- Per account --------------------------------------------------------------------------

def _accounts(request, login: str) -> tuple[str, ...]:
    """The accounts a sign-in as `login` aims at ("user:<id>"), or "name:<casefolded login>" for nobody's;
    looked up once per request."""
    text = (login or "").strip()[:256]
    if not text:
        return ()
    resolved = getattr(request, "_oneapi_sign_in_accounts", None)
    if resolved is None:
        resolved = request._oneapi_sign_in_accounts = {}
    if text not in resolved:
        ids = selectors.user_ids_by_login(login=text)
        resolved[text] = tuple(f"user:{pk}" for pk in ids) or (f"name:{text.casefold()}",)
    return resolved[text]


def _wrong_passwords(request, account: str, *, increment: bool) -> dict | None:
    return get_usage(request, group=ACCOUNT_GROUP, key=lambda _group, _request: account, rate=ACCOUNT_RATE,
                     increment=increment)


def _known_address_key(request, user_id: int | str) -> str:
    digest = hashlib.sha256(f"user:{user_id}\n{request.META.get('REMOTE_ADDR', '')}".encode()).hexdigest()
    return f"oneapi:sign-in-known:{digest}"


def _browser_accounts(request) -> dict[str, int]:
    """The accounts this browser signed in to lately ({user id: when}), from its signed cookie."""
    raw = request.COOKIES.get(BROWSER_COOKIE, "")
    if not raw:
        return {}
    try:
        accounts = signing.loads(raw, salt=BROWSER_SALT, max_age=TRUSTED_TTL)
    except signing.BadSignature:  # made up, altered or expired
        return {}
    if not isinstance(accounts, dict):
        return {}
    oldest = now_ts() - TRUSTED_TTL
    return {str(k): v for k, v in accounts.items() if isinstance(v, int) and v > oldest}


def _owner_client(request, account: str) -> bool:
    """Whether this browser or address has shown it is the owner's (see the module's doc)."""
    if not account.startswith("user:"):
        return False
    user_id = account.removeprefix("user:")
    return user_id in _browser_accounts(request) or bool(cache.get(_known_address_key(request, user_id)))


def account_locked(request, login: str) -> bool:
    """Whether a password sign-in as `login` is refused for now (see the module's doc); counts nothing."""
    for account in _accounts(request, login):
        if _owner_client(request, account):
            continue
        usage = _wrong_passwords(request, account, increment=False)
        if usage is not None and (usage["should_limit"] or usage["count"] >= ACCOUNT_LIMIT):
            return True
    return False


def human_check_lifts_lock(request, token: str) -> bool:
    """With Turnstile on, whether this very request passed a fresh human check (the lock then lets the password
    be tried). Off, or without a good token: False."""
    if not turnstile.enabled():
        return False
    try:
        turnstile.check_now(request, token)
    except turnstile.TurnstileError:
        return False
    return True


def account_failed(request, login: str) -> None:
    """A wrong password (or a disabled account) for `login`: it counts against every account it aimed at."""
    for account in _accounts(request, login):
        _wrong_passwords(request, account, increment=True)


def account_owner_proven(request, response, user) -> None:
    """This browser and address proved they are `user`'s (the right password, or a reset link from the mailbox):
    the lock does not apply to them for TRUSTED_TTL. The cookie goes on `response`."""
    cache.set(_known_address_key(request, user.pk), 1, TRUSTED_TTL)
    accounts = {**_browser_accounts(request), str(user.pk): now_ts()}
    newest = dict(sorted(accounts.items(), key=lambda item: item[1])[-BROWSER_MAX_ACCOUNTS:])
    response.set_cookie(BROWSER_COOKIE, signing.dumps(newest, salt=BROWSER_SALT), max_age=TRUSTED_TTL,
                        httponly=True, samesite="Lax")


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
            return limited_page(request, account=True)  # it links to the log-in page, which offers the check
        response = view(request, *args, **kwargs)
        if response.status_code == 302 and request.user.is_authenticated:
            account_owner_proven(request, response, request.user)
        elif request.POST.get("password"):
            account_failed(request, login)
        return response

    return wrapped
