"""Opening accounts: one path for every way in (a password, GitHub, OIDC, an admin's POST /api/user/).

Each new account gets what one-api's User.Insert gives: QuotaForNewUser, the invitation rewards, and an
unlimited "default" token.
"""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext

from accounts import verification
from accounts.models import User
from accounts.services.tokens import token_create
from accounts.services.users import (
    USERNAME_COLUMN_LENGTH,
    USERNAME_MAX_LENGTH,
    display_name_clean,
    email_clean,
    password_length_check,
    password_validate,
    user_create,
    username_clean,
)
from billing.services import user_signup_gifts
from oneapi_site import options
from oneapi_site.lib.errors import ServiceError


def _inviter_id(aff_code: str) -> int:
    """Whose invitation code this is; 0 for none or an unknown one, which is ignored, as in one-api."""
    aff_code = (aff_code or "").strip()
    if not aff_code:
        return 0
    return User.objects.filter(aff_code=aff_code).values_list("id", flat=True).first() or 0


@transaction.atomic
def account_open(*, username: str, password: str | None, display_name: str = "", email: str = "",
                 aff_code: str = "", role: int = User.Role.COMMON,
                 username_max_length: int = USERNAME_COLUMN_LENGTH, **identity: str) -> User:
    """The account, its gifts (each with a system log) and its default token, in one transaction.

    `password` None leaves no usable password (a provider's account signs in there until it sets one);
    `identity` is the provider's id column and value. The fields are checked by the caller's rules.
    """
    inviter_id = _inviter_id(aff_code)
    user = user_create(username=username, password=password, display_name=display_name, role=role, email=email,
                       inviter_id=inviter_id, username_max_length=username_max_length, **identity)
    user_signup_gifts(user_id=user.pk, inviter_id=inviter_id)
    token_create(user=user, name="default", unlimited_quota=True, expired_time=-1)
    user.refresh_from_db(fields=["quota"])
    return user


def user_register(*, username: str, password: str, display_name: str = "", email: str = "",
                  aff_code: str = "", role: int = User.Role.COMMON) -> User:
    """An account with a password under one-api's field rules (an admin's POST /api/user/, and sign-up)."""
    username = username_clean(username)
    password_length_check(password)
    display_name = display_name_clean(display_name)
    email = email_clean(email)
    return account_open(username=username, password=password, display_name=display_name, email=email,
                        aff_code=aff_code, role=role, username_max_length=USERNAME_MAX_LENGTH)


def user_signup(*, username: str, password: str, email: str = "", verification_code: str = "",
                aff_code: str = "", display_name: str = "") -> User:
    """Registration by a visitor under the operator's rules (one-api's POST /api/user/register).

    RegisterEnabled and PasswordRegisterEnabled must be on. With EmailVerificationEnabled the address
    needs the code mailed to it, which is used up by the registration; without it the address is not
    kept, as in one-api, so nobody can claim an address they do not own.
    """
    if not options.get("RegisterEnabled"):
        raise ServiceError(gettext("New registrations have been turned off by the administrator."))
    if not options.get("PasswordRegisterEnabled"):
        raise ServiceError(gettext("Registration with a password has been turned off; use another sign-in method."))
    username = username_clean(username)
    verify = options.get("EmailVerificationEnabled")
    email = verification.email_check_format(email) if verify else ""
    if verify and verification.email_in_use(email):
        raise ServiceError(gettext("This e-mail address is already in use."), field="email")
    password_validate(password=password, user=User(username=username, email=email))
    if verify:
        if not (verification_code or "").strip():
            raise ServiceError(gettext("Enter the verification code sent to your e-mail."),
                               field="verification_code")
        verification.email_code_check(email=email, code=verification_code)
    with transaction.atomic():
        user = user_register(username=username, password=password, display_name=display_name, email=email,
                             aff_code=aff_code)
        if verify:
            # Taken inside the transaction: if another request used the code first, this account goes.
            verification.email_code_consume(email=email, code=verification_code)
    return user
