"""Sign-in by GitHub OAuth and OIDC: accounts.oauth decides, these write."""

from __future__ import annotations

from django.utils.translation import gettext

from accounts.models import User
from accounts.services.signup import account_open
from accounts.services.users import DISPLAY_NAME_MAX_LENGTH, email_clean
from oneapi_site.lib import changes
from oneapi_site.lib.errors import ServiceError

OAUTH_ID_FIELDS = ("github_id", "oidc_id")  # one-api's columns, one per provider


def _oauth_email(email: str) -> str:
    """The provider's address when it fits and nobody has it; otherwise none (never a reason to refuse).

    "Nobody" ignores case, as sign-up codes and password resets compare addresses.
    """
    try:
        email = email_clean(email)
    except ServiceError:
        return ""
    if email and User.objects.filter(email__iexact=email).exists():
        return ""
    return email


def _check_provider(id_field: str, external_id: str) -> None:
    if id_field not in OAUTH_ID_FIELDS or not external_id:
        raise ServiceError("unknown sign-in provider")


def user_oauth_register(*, id_field: str, external_id: str, username: str, display_name: str = "",
                        email: str = "", aff_code: str = "") -> User:
    """A new account for a GitHub or OIDC identity, with what password registration gives (one-api's
    User.Insert). No usable password: such users sign in through their provider until they set one.

    The username is made up by accounts.oauth (github_<n>), so only the column limits it: past id 99999
    it exceeds one-api's 12. The provider's display name is cut to fit rather than refused.
    """
    _check_provider(id_field, external_id)
    display_name = (display_name or "").strip()[:DISPLAY_NAME_MAX_LENGTH]
    return account_open(username=username, password=None, display_name=display_name, email=_oauth_email(email),
                        aff_code=aff_code, **{id_field: external_id})


def user_oauth_link(*, user: User, id_field: str, external_id: str) -> User:
    """Link a provider's account to `user` (one-api's bind), unless another account, even a deleted one, has it."""
    _check_provider(id_field, external_id)
    taken = User.objects.filter(**{id_field: external_id}).exclude(pk=user.pk).exists()
    if taken:
        raise ServiceError(gettext("This account is already linked to another user."), field=id_field)
    if getattr(user, id_field) != external_id:
        setattr(user, id_field, external_id)
        user.save(update_fields=[id_field])
        changes.publish("users")
    return user
