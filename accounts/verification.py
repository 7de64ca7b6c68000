"""E-mail verification codes and password-reset links, shared by the pages and /api.

Both live in the shared Django cache (Redis when REDIS_CONN_STRING is set), so the instance that
checks a code need not be the one that sent it. Each record carries its own expiry, checked against
`now_ts()`; the cache timeout is only the clean-up. one-api keeps both for 10 minutes.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

from accounts.models import User
from accounts.services.users import password_validate, user_password_set
from oneapi_site import options
from oneapi_site.lib.address import UNSET as UNSET_ADDRESS
from oneapi_site.lib.address import configured_address
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.keys import random_key, uuid_hex
from oneapi_site.lib.mail import SMTP_BACKEND, mail_send
from oneapi_site.lib.timeutil import now_ts

log = logging.getLogger(__name__)

CODE_LENGTH = 6
CODE_TTL = 10 * 60
CODE_MAX_ATTEMPTS = 5  # wrong guesses before the code is dropped: six digits must not be brute-forced
RESET_TTL = 10 * 60
RESET_PATH = "/user/reset/"  # one-api's link; the page of the same path lets the user choose a password


def _address_key(kind: str, email: str) -> str:
    """A cache key for an address as typed: hashed, so any length or character makes a valid key
    (a reset form can send a megabyte of control characters as its "e-mail")."""
    return f"oneapi:{kind}:{hashlib.sha256(email.encode('utf-8', 'surrogatepass')).hexdigest()}"


def _code_key(email: str) -> str:
    return _address_key("email-code", email)


def _attempts_key(email: str) -> str:
    """Wrong guesses at the live code, counted apart from it with the cache's atomic incr: a get-then-set
    inside the code's record would let parallel guesses each count from the same stale number."""
    return _address_key("email-code-attempts", email)


def _reset_key(email: str) -> str:
    return _address_key("reset-token", email)


def email_normalize(email: str) -> str:
    """Addresses are compared without case, as people type them."""
    return (email or "").strip().lower()


def email_check_format(email: str) -> str:
    email = email_normalize(email)
    if not email:
        raise ServiceError(_("Enter your e-mail address."), field="email")
    try:
        validate_email(email)
    except DjangoValidationError:
        raise ServiceError(_("Enter a valid e-mail address."), field="email") from None
    return email


def email_domain_allowed(email: str) -> bool:
    """EmailDomainWhitelist applies only while EmailDomainRestrictionEnabled is on (one-api)."""
    if not options.get("EmailDomainRestrictionEnabled"):
        return True
    domain = email_normalize(email).rpartition("@")[2]
    return domain in _whitelist()


def _whitelist() -> list[str]:
    return [d.strip().lower() for d in (options.get("EmailDomainWhitelist") or "").split(",") if d.strip()]


def email_in_use(email: str) -> bool:
    return User.objects.filter(email__iexact=email_normalize(email)).exists()


def mail_ready() -> bool:
    """Whether this server can send mail at all: the answer is the same for every address."""
    return settings.EMAIL_BACKEND != SMTP_BACKEND or bool(options.get("SMTPServer"))


def _site_name() -> str:
    return options.get("SystemName") or "One API"


# --- Verification codes ------------------------------------------------------------

def email_code_send(*, email: str) -> None:
    """Mail a 6-digit code for `email` (one-api's GET /api/verification); a new code replaces the old one."""
    email = email_check_format(email)
    if not email_domain_allowed(email):
        raise ServiceError(
            _("The administrator accepts only e-mail addresses at these domains: %(domains)s")
            % {"domains": ", ".join(_whitelist())}, field="email")
    if email_in_use(email):
        raise ServiceError(_("This e-mail address is already in use."), field="email")
    if not mail_ready():
        raise ServiceError(_("This server cannot send e-mail; ask the administrator to set up SMTP."),
                              field="email")
    code = "".join(secrets.choice("0123456789") for _i in range(CODE_LENGTH))
    cache.set(_attempts_key(email), 0, CODE_TTL + 60)
    cache.set(_code_key(email), {"code": code, "expires": now_ts() + CODE_TTL}, CODE_TTL + 60)
    site = _site_name()
    sent = mail_send(
        to=[email],
        subject=_("%(site)s e-mail verification") % {"site": site},
        body=_("Hello,\n\nyour verification code for %(site)s is: %(code)s\n\n"
               "It is valid for %(minutes)d minutes. If you did not ask for it, ignore this e-mail.\n")
        % {"site": site, "code": code, "minutes": CODE_TTL // 60})
    if not sent:
        cache.delete(_code_key(email))
        raise ServiceError(_("The e-mail could not be sent; try again later."), field="email")


def _code_error() -> ServiceError:
    return ServiceError(_("The verification code is wrong or has expired; ask for a new one."),
                           field="verification_code")


def email_code_check(*, email: str, code: str) -> None:
    """Raise unless `code` is the live code of `email`. A wrong guess counts; the fifth drops the code.

    Each guess takes its number from the atomic counter before it is compared, so parallel guesses
    cannot all be compared against the code before any of them has been counted.
    """
    email = email_normalize(email)
    key, attempts_key = _code_key(email), _attempts_key(email)
    record = cache.get(key)
    if not record or record["expires"] < now_ts():
        raise _code_error()
    cache.add(attempts_key, 0, CODE_TTL + 60)  # there since the code was sent, unless evicted
    try:
        attempt = cache.incr(attempts_key)
    except ValueError:  # evicted between the two calls
        attempt = CODE_MAX_ATTEMPTS + 1
    if attempt > CODE_MAX_ATTEMPTS:
        cache.delete(key)
        raise _code_error()
    if secrets.compare_digest(record["code"], (code or "").strip()):
        try:
            cache.decr(attempts_key)  # the right code is no guess: checking it again (signup does) costs nothing
        except ValueError:
            pass
        return
    if attempt >= CODE_MAX_ATTEMPTS:
        cache.delete(key)
    raise _code_error()


def email_code_consume(*, email: str, code: str) -> None:
    """Check and remove the code: of two requests racing with it, one wins and the other is refused."""
    email_code_check(email=email, code=code)
    if not cache.delete(_code_key(email_normalize(email))):
        raise _code_error()


# --- Password reset ----------------------------------------------------------------

def password_reset_send(*, email: str, link_base: str = "") -> None:
    """Mail a single-use reset link when an enabled account has this address; say nothing either way.

    The caller answers the same whether or not the address is known, so the form cannot be used
    to find out who has an account. `link_base` is the site's address as the request gave it
    (oneapi_site.lib.address.mail_address); without one, ServerAddress.
    """
    email = email_check_format(email)
    if not mail_ready():
        raise ServiceError(_("This server cannot send e-mail; ask the administrator to set up SMTP."),
                              field="email")
    user = User.objects.filter(email__iexact=email, status=User.Status.ENABLED).order_by("id").first()
    if user is None:
        return
    token = uuid_hex()
    cache.set(_reset_key(email), {"token": token, "user_id": user.pk, "expires": now_ts() + RESET_TTL},
              RESET_TTL + 60)
    address = link_base.rstrip("/") or configured_address() or UNSET_ADDRESS
    link = f"{address}{RESET_PATH}?{urlencode({'email': email, 'token': token})}"
    site = _site_name()
    mail_send(
        wait=False,  # the answer must not take longer for a known address
        to=[user.email],
        subject=_("%(site)s password reset") % {"site": site},
        body=_("Hello %(username)s,\n\nopen this link to choose a new password for %(site)s:\n%(link)s\n\n"
               "The link works once and for %(minutes)d minutes. If you did not ask for it, ignore this e-mail; "
               "your password stays as it is.\n")
        % {"username": user.username, "site": site, "link": link, "minutes": RESET_TTL // 60})


def password_reset_user(*, email: str, token: str) -> User | None:
    """The enabled user a live reset link is for, or None; the link stays usable."""
    record = cache.get(_reset_key(email_normalize(email)))
    if not record or record["expires"] < now_ts() or not token:
        return None
    if not secrets.compare_digest(record["token"], token.strip()):
        return None
    return User.objects.filter(pk=record["user_id"], status=User.Status.ENABLED).first()


def password_reset_consume(*, email: str, token: str) -> User:
    """Take the link: the user it is for; refused when wrong, expired or already used."""
    user = password_reset_user(email=email, token=token)
    if user is None or not cache.delete(_reset_key(email_normalize(email))):
        raise ServiceError(_("This password reset link is invalid or has expired; ask for a new one."),
                              field="token")
    return user


NEW_PASSWORD_LENGTH = 12  # one-api's POST /api/user/reset answers with a random 12-character password


def password_reset_complete(*, email: str, token: str, password: str | None = None) -> str:
    """Use a reset link: set `password` (validated), or a random one for API clients; return it."""
    user = password_reset_user(email=email, token=token)
    if user is not None and password is not None:
        password_validate(password=password, user=user)  # before the link is used up: a weak choice can retry
    user = password_reset_consume(email=email, token=token)
    if password is None:
        password = random_key(NEW_PASSWORD_LENGTH)
    user_password_set(user=user, password=password, validate=False)
    return password
