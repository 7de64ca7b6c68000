"""Cloudflare Turnstile on sign-in, sign-up, verification codes and password resets (TurnstileCheckEnabled).

The browser solves the challenge and hands us a one-use token: the pages' widget posts it as
`cf-turnstile-response`, one-api's front end sends it as `?turnstile=` on /api. We ask Cloudflare's siteverify
whether it is good (https://developers.cloudflare.com/turnstile/get-started/server-side-validation/). As in
one-api, a session that passed is not asked again. Anything but a clear yes is a refusal: a missing token, a
"no", and Cloudflare being unreachable or answering nonsense (fail closed; the message says which).
"""

from __future__ import annotations

import functools
import logging
from urllib.parse import urlencode

import httpx
from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

from oneapi_site import options

log = logging.getLogger(__name__)

SESSION_KEY = "oneapi_turnstile_passed"
PAGE_FIELD = "cf-turnstile-response"  # the widget's hidden input
API_PARAM = "turnstile"  # one-api's query parameter
CHECKED_ATTR = "_oneapi_turnstile_checked"  # on the request that passed a check
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class TurnstileError(Exception):
    """A refusal, with a message for the person at the form."""


def enabled() -> bool:
    return bool(options.get("TurnstileCheckEnabled"))


def required(request) -> bool:
    """Whether this request must carry a token: Turnstile is on and this session has not passed yet."""
    return enabled() and not request.session.get(SESSION_KEY)


def page_context(request) -> dict:
    """What a page template needs to show the widget (nothing once the session has passed)."""
    return {"turnstile_site_key": options.get("TurnstileSiteKey")} if required(request) else {}


def widget_context() -> dict:
    """What a page template needs to show the widget whether or not the session passed before."""
    return {"turnstile_site_key": options.get("TurnstileSiteKey")}


def check(request, token: str) -> None:
    """Pass, or raise TurnstileError; a pass is remembered in the session (one-api checks once per session)."""
    if not required(request):
        return
    check_now(request, token)


def check_now(request, token: str) -> None:
    """Pass a check on this very request, whatever the session passed before (a locked account asks for one:
    accounts/limits.py), or raise TurnstileError. A token works once, so a request that was checked already
    passes without asking Cloudflare again."""
    if getattr(request, CHECKED_ATTR, False):
        return
    verify(token=token, remote_ip=request.META.get("REMOTE_ADDR", ""))
    setattr(request, CHECKED_ATTR, True)
    request.session[SESSION_KEY] = True


def verify(*, token: str, remote_ip: str = "") -> None:
    """Ask siteverify about `token`; return only on a clear yes."""
    token = (token or "").strip()
    if not token:
        raise TurnstileError(_("Complete the human check (Turnstile) first."))
    secret = (options.get("TurnstileSecretKey") or "").strip()
    if not secret:
        log.warning("turnstile: TurnstileCheckEnabled is on but TurnstileSecretKey is empty")
        raise TurnstileError(_("The human check (Turnstile) is not set up correctly; tell the administrator."))
    form = {"secret": secret, "response": token}
    if remote_ip:
        form["remoteip"] = remote_ip
    url = settings.TURNSTILE_VERIFY_URL
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            response = client.post(url, data=form, headers={"Accept": "application/json"})
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        # Neither the secret nor the token goes in the log: the exception names only the URL and the failure.
        log.warning("turnstile: siteverify failed: %s (%s)", type(exc).__name__, url)
        raise TurnstileError(_("The human check (Turnstile) could not be verified right now; try again in a "
                               "moment.")) from None
    if not isinstance(body, dict) or response.status_code != 200:
        log.warning("turnstile: siteverify answered HTTP %s without a verdict", response.status_code)
        raise TurnstileError(_("The human check (Turnstile) could not be verified right now; try again in a "
                               "moment."))
    if body.get("success") is not True:
        codes = body.get("error-codes")
        codes = [str(c)[:40] for c in codes][:5] if isinstance(codes, list) else []
        if any(code in ("missing-input-secret", "invalid-input-secret") for code in codes):
            log.warning("turnstile: siteverify refused our secret key (%s)", ", ".join(codes))
            raise TurnstileError(_("The human check (Turnstile) is not set up correctly; tell the administrator."))
        log.info("turnstile: token refused (%s)", ", ".join(codes) or "no reason given")
        raise TurnstileError(_("The human check (Turnstile) failed or expired; try it again."))


def console_login(view):
    """The console's own login form has no widget: while Turnstile is asked, send people to the sign-in page."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if required(request) and not request.user.is_authenticated:
            next_url = request.GET.get("next") or reverse("admin:index")
            return redirect(f"{reverse('login')}?{urlencode({'next': next_url})}")
        return view(request, *args, **kwargs)

    return wrapped
