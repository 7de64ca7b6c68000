"""Writes to users and tokens. Quota moves live in billing.services."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts import permissions, selectors
from accounts.models import DEFAULT_ROOT_PASSWORD, Token, User
from oneapi_site.lib import changes, numbers
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.keys import random_key, uuid_hex
from oneapi_site.lib.lengths import items_bounded, text_bounded

ROOT_INITIAL_QUOTA = 500_000_000_000_000  # one-api's root start balance


def _new_aff_code() -> str:
    return random_key(4)


def user_create(*, username: str, password: str, display_name: str = "", role: int = User.Role.COMMON,
                group: str = "default", quota: int = 0, email: str = "", inviter_id: int = 0) -> User:
    username = (username or "").strip()
    if not username:
        raise ServiceError("username is required", field="username")
    if selectors.username_taken(username):
        raise ServiceError(f"username {username!r} is taken", field="username")
    user = User(username=username, display_name=display_name or username, role=role, group=group,
                quota=quota, email=email, inviter_id=inviter_id)
    user.set_password(password)
    for _ in range(5):
        user.aff_code = _new_aff_code()
        try:
            with transaction.atomic():
                user.save()
            break
        except IntegrityError:
            if selectors.username_taken(username):
                raise ServiceError(f"username {username!r} is taken", field="username") from None
    changes.publish("users")
    return user


def user_access_token_reset(*, user: User, value: str | None = None) -> str:
    """A new management access token (one-api's GET /api/user/token); the old one stops working."""
    user.access_token = value or uuid_hex()
    user.save(update_fields=["access_token"])
    return user.access_token


def root_seed(*, root_token: str = "", root_access_token: str = "") -> User:
    """Create root (root/123456) if there are no users; apply the INITIAL_ROOT_* seeds. Idempotent."""
    with transaction.atomic():
        root = User.objects.filter(role=User.Role.ROOT).order_by("id").first()
        if root is None and not User.objects.exists():
            root = User(username="root", display_name="Root User", role=User.Role.ROOT,
                        quota=ROOT_INITIAL_QUOTA, aff_code=_new_aff_code())
            root.set_password(DEFAULT_ROOT_PASSWORD)
            root.save()
            changes.publish("users")
        if root is None:
            raise ServiceError("there are users but no root; refusing to create one")
        if root_access_token and root.access_token != root_access_token:
            user_access_token_reset(user=root, value=root_access_token)
        if root_token:
            key = root_token.removeprefix("sk-")
            if not Token.objects.filter(key=key).exists():
                token_create(user=root, name="Initial Root Token", key=key, unlimited_quota=True)
    return root


TOKEN_NAME_MAX_LENGTH = 30  # one-api's limit
# Text columns, so the limits are what the fields mean: some 400 model names, some 100 address ranges.
TOKEN_MODELS_MAX_LENGTH = 10_000
TOKEN_SUBNET_MAX_LENGTH = 4_096
MODEL_NAME_MAX_LENGTH = 255  # the abilities' and logs' model column: a longer name never matches a route
# 9999-01-01 UTC: a later expiry cannot be shown as a date in every time zone (Python's datetime ends in 9999).
EXPIRY_MAX = 253_370_764_800


def validate_subnets(value: str) -> str:
    value = text_bounded(value, field="subnet", maximum=TOKEN_SUBNET_MAX_LENGTH)
    items = [s.strip() for s in value.split(",") if s.strip()]
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ServiceError(f"subnet {item!r} is not a valid IP or CIDR", field="subnet") from None
    return ",".join(items)


def _clean_models(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    value = text_bounded(value, field="models", maximum=TOKEN_MODELS_MAX_LENGTH)
    items = items_bounded([m.strip() for m in value.split(",") if m.strip()], field="models",
                          item_maximum=MODEL_NAME_MAX_LENGTH)
    return ",".join(items)


def _check_token_fields(*, name: str, expired_time: int, remain_quota: int) -> tuple[int, int]:
    """(expired_time, remain_quota) once checked: names bounded, numbers within their BIGINT columns."""
    if len(name) > TOKEN_NAME_MAX_LENGTH:
        raise ServiceError("name is longer than 30 characters", field="name")
    expired_time = numbers.parse_int(expired_time, field="expired_time", minimum=numbers.BIGINT[0],
                                     maximum=EXPIRY_MAX)
    if expired_time != -1 and expired_time < 0:
        raise ServiceError("expired_time must be -1 (never) or a unix time", field="expired_time")
    remain_quota = numbers.parse_int(remain_quota, field="remain_quota", minimum=numbers.BIGINT[0],
                                     maximum=numbers.BIGINT[1])
    if remain_quota < 0:
        raise ServiceError("remain_quota must not be negative", field="remain_quota")
    return expired_time, remain_quota


def _check_token_actor(*, by: User | None, token: Token | None = None, owner: User | None = None) -> None:
    """`by` is who asks (None: the system, e.g. the seed or a sign-up); see accounts.permissions."""
    from django.utils.translation import gettext as _

    if by is None:
        return
    if owner is not None and not permissions.token_can_give(by, owner):
        raise ServiceError(_("You cannot make a token for a user whose role is equal to or above yours."),
                              field="user")
    if token is not None and not permissions.token_can_manage(by, token):
        raise ServiceError(_("You cannot change a token of a user whose role is equal to or above yours."))


def token_create(*, user: User, name: str = "", remain_quota: int = 0, unlimited_quota: bool = False,
                 expired_time: int = -1, models: Any = "", subnet: str = "", key: str | None = None,
                 by: User | None = None) -> Token:
    _check_token_actor(by=by, owner=user)
    expired_time, remain_quota = _check_token_fields(name=name, expired_time=expired_time,
                                                     remain_quota=remain_quota)
    token = Token.objects.create(
        user=user, key=key or random_key(48), name=name, remain_quota=remain_quota,
        unlimited_quota=unlimited_quota, expired_time=expired_time, models=_clean_models(models),
        subnet=validate_subnets(subnet),
    )
    changes.publish("tokens")
    return token


TOKEN_EDITABLE = ("name", "remain_quota", "unlimited_quota", "expired_time", "models", "subnet", "status")


def token_update(*, token: Token, status_only: bool = False, by: User | None = None, **fields: Any) -> Token:
    """Change a token; re-enabling an expired or exhausted one is refused until it is fixed (one-api)."""
    _check_token_actor(by=by, token=token)
    allowed = ("status",) if status_only else TOKEN_EDITABLE
    for field, value in fields.items():
        if field not in allowed or value is None:
            continue
        if field == "models":
            value = _clean_models(value)
        elif field == "subnet":
            value = validate_subnets(value)
        setattr(token, field, value)
    token.expired_time, token.remain_quota = _check_token_fields(
        name=token.name, expired_time=token.expired_time, remain_quota=token.remain_quota)
    if token.status == Token.Status.ENABLED:
        if token.is_expired:
            raise ServiceError("the token has expired: change its expiry before enabling it", field="expired_time")
        if not token.unlimited_quota and token.remain_quota <= 0:
            raise ServiceError("the token has no quota left: add quota before enabling it", field="remain_quota")
    token.save()
    changes.publish("tokens")
    return token


def token_delete(*, token: Token, by: User | None = None) -> None:
    _check_token_actor(by=by, token=token)
    token.delete()
    changes.publish("tokens")


# --- Management API: registration, profile and admin edits ---------------------

# one-api's validate tags on model.User: username max=12, password min=8,max=20, display_name max=20.
USERNAME_MAX_LENGTH = 12
DISPLAY_NAME_MAX_LENGTH = 20
PASSWORD_LENGTHS = (8, 20)
EMAIL_MAX_LENGTH = 50
GROUP_MAX_LENGTH = 32


def _check_username(username: str) -> str:
    username = (username or "").strip()
    if not username:
        raise ServiceError("username is required", field="username")
    if len(username) > USERNAME_MAX_LENGTH:
        raise ServiceError(f"username is longer than {USERNAME_MAX_LENGTH} characters", field="username")
    return username


def _check_password(password: str) -> str:
    low, high = PASSWORD_LENGTHS
    if not low <= len(password or "") <= high:
        raise ServiceError(f"password must be {low} to {high} characters", field="password")
    return password


def _check_display_name(display_name: str) -> str:
    display_name = (display_name or "").strip()
    if len(display_name) > DISPLAY_NAME_MAX_LENGTH:
        raise ServiceError(f"display_name is longer than {DISPLAY_NAME_MAX_LENGTH} characters",
                              field="display_name")
    return display_name


def _check_email(email: str, *, user_id: int | None = None) -> str:
    email = (email or "").strip()
    if len(email) > EMAIL_MAX_LENGTH:
        raise ServiceError(f"email is longer than {EMAIL_MAX_LENGTH} characters", field="email")
    if email and "@" not in email:
        raise ServiceError("email is not a valid address", field="email")
    if email and User.objects.filter(email=email).exclude(pk=user_id).exists():
        raise ServiceError("this email is already in use", field="email")
    return email


def _check_username_free(username: str, *, user_id: int | None = None) -> None:
    if selectors.username_taken(username, user_id=user_id):
        raise ServiceError(f"username {username!r} is taken", field="username")


@transaction.atomic
def user_register(*, username: str, password: str, display_name: str = "", email: str = "",
                  aff_code: str = "", role: int = User.Role.COMMON) -> User:
    """A new account as one-api's User.Insert makes it: gifts, invite rewards, and a "default" token.

    `aff_code` is the inviter's code; an unknown one is ignored, as in one-api.
    """
    from billing.services import user_signup_gifts

    username = _check_username(username)
    _check_password(password)
    display_name = _check_display_name(display_name) or username
    email = _check_email(email)
    _check_username_free(username)
    inviter_id = 0
    if (aff_code or "").strip():
        inviter_id = User.objects.filter(aff_code=aff_code.strip()).values_list("id", flat=True).first() or 0
    user = user_create(username=username, password=password, display_name=display_name, role=role,
                       email=email, inviter_id=inviter_id)
    user_signup_gifts(user_id=user.pk, inviter_id=inviter_id)
    token_create(user=user, name="default", unlimited_quota=True, expired_time=-1)
    user.refresh_from_db(fields=["quota"])
    return user


def _apply_profile(*, user: User, username: str | None, display_name: str | None,
                   password: str | None) -> list[str]:
    """Set the profile fields given (an empty password keeps the old one); return what changed."""
    update_fields = []
    if username is not None and username.strip() != user.username:
        user.username = _check_username(username)
        _check_username_free(user.username, user_id=user.pk)
        update_fields.append("username")
    if display_name is not None:
        user.display_name = _check_display_name(display_name) or user.username
        update_fields.append("display_name")
    if password:
        user.set_password(_check_password(password))
        update_fields.append("password")
    return update_fields


def user_profile_update(*, user: User, username: str | None = None, display_name: str | None = None,
                        password: str | None = None) -> User:
    """A user edits their own profile; an empty password keeps the old one (one-api)."""
    update_fields = _apply_profile(user=user, username=username, display_name=display_name, password=password)
    if update_fields:
        # update_fields: a full save would write back a stale quota the relay has moved since.
        user.save(update_fields=update_fields)
        changes.publish("users")
    return user


def _check_can_manage(*, by: User, user: User) -> None:
    from django.utils.translation import gettext as _

    if not permissions.user_can_manage(by, user):
        raise ServiceError(_("You cannot manage a user whose role is equal to or above yours."))


@transaction.atomic
def user_update(*, user: User, by: User, username: str | None = None, display_name: str | None = None,
                password: str | None = None, email: str | None = None, group: str | None = None,
                role: int | None = None, status: int | None = None, quota: int | None = None) -> User:
    """An admin edits a user (one-api's PUT /api/user/); a quota change is logged by billing."""
    from billing.services import user_quota_set

    _check_can_manage(by=by, user=user)
    update_fields = _apply_profile(user=user, username=username, display_name=display_name, password=password)
    if email is not None and email.strip() != user.email:
        user.email = _check_email(email, user_id=user.pk)
        update_fields.append("email")
    if group is not None and group.strip() != user.group:
        group = group.strip()
        if not group or len(group) > GROUP_MAX_LENGTH:
            raise ServiceError(f"group must be 1 to {GROUP_MAX_LENGTH} characters", field="group")
        user.group = group
        update_fields.append("group")
    if role is not None and role != user.role:
        if user.is_root:
            raise ServiceError("the root user's role cannot be changed", field="role")
        if role not in (User.Role.COMMON, User.Role.ADMIN):
            raise ServiceError("role must be 1 (common) or 10 (admin)", field="role")
        if not permissions.role_can_give(by, role):
            raise ServiceError("you cannot raise a role to yours or above", field="role")
        user.role = role
        update_fields.append("role")
    if status is not None and status != user.status:
        if status not in (User.Status.ENABLED, User.Status.DISABLED):
            raise ServiceError("status must be 1 (enabled) or 2 (disabled)", field="status")
        if user.is_root:
            raise ServiceError("the root user cannot be disabled", field="status")
        user.status = status
        update_fields.append("status")
    if update_fields:
        user.save(update_fields=update_fields)
        changes.publish("users")
    if quota is not None:
        user_quota_set(user_id=user.pk, quota=quota, by=by)
        user.refresh_from_db(fields=["quota"])
    return user


def user_delete(*, user: User, by: User | None = None) -> None:
    """Soft delete as one-api: status 3 and a `deleted_<uuid>` username free the name for reuse."""
    if user.is_root:
        raise ServiceError("the root user cannot be deleted")
    if by is not None:  # an admin route; a user deleting their own account passes no `by`
        _check_can_manage(by=by, user=user)
    user.username = f"deleted_{uuid_hex()}"
    user.status = User.Status.DELETED
    user.access_token = None
    user.save(update_fields=["username", "status", "access_token"])
    changes.publish("users")


USER_ACTIONS = ("disable", "enable", "delete", "promote", "demote")


def user_manage(*, user: User, by: User, action: str) -> User:
    """one-api's POST /api/user/manage, with its rules: promote is root-only; root is untouchable."""
    if action not in USER_ACTIONS:
        raise ServiceError(f"action must be one of {', '.join(USER_ACTIONS)}", field="action")
    _check_can_manage(by=by, user=user)
    if action == "delete":
        user_delete(user=user, by=by)
        return user
    if action == "disable":
        if user.is_root:
            raise ServiceError("the root user cannot be disabled", field="action")
        user.status = User.Status.DISABLED
    elif action == "enable":
        user.status = User.Status.ENABLED
    elif action == "promote":
        if not permissions.role_can_give(by, User.Role.ADMIN):
            raise ServiceError("only the root user can promote users to admin", field="action")
        if user.role >= User.Role.ADMIN:
            raise ServiceError("this user is already an admin", field="action")
        user.role = User.Role.ADMIN
    elif action == "demote":
        if user.is_root:
            raise ServiceError("the root user cannot be demoted", field="action")
        if user.role == User.Role.COMMON:
            raise ServiceError("this user is already a common user", field="action")
        user.role = User.Role.COMMON
    user.save(update_fields=["status", "role"])
    changes.publish("users")
    return user


def user_aff_code_ensure(*, user: User) -> str:
    """The user's invitation code, made on first ask for accounts that have none (one-api)."""
    if user.aff_code:
        return user.aff_code
    for _ in range(5):
        code = _new_aff_code()
        try:
            with transaction.atomic():
                User.objects.filter(pk=user.pk).filter(Q(aff_code__isnull=True) | Q(aff_code="")).update(
                    aff_code=code)
        except IntegrityError:  # another user holds this code: draw again
            continue
        user.refresh_from_db(fields=["aff_code"])
        if user.aff_code:
            changes.publish("users")
            return user.aff_code
    raise ServiceError("could not make an invitation code; try again")


# --- Self-service sign-up and passwords (the pages and /api share these) -------------

def password_validate(*, password: str, user: User | None = None) -> str:
    """one-api's 8 to 20 characters, then settings.AUTH_PASSWORD_VALIDATORS; messages in the user's language."""
    from django.contrib.auth import password_validation
    from django.core.exceptions import ValidationError as DjangoValidationError
    from django.utils.translation import gettext as _

    if password == DEFAULT_ROOT_PASSWORD:
        raise ServiceError(_("123456 is the well-known default password; choose another one."), field="password")
    low, high = PASSWORD_LENGTHS
    if not low <= len(password or "") <= high:
        raise ServiceError(_("The password must be %(low)d to %(high)d characters long.")
                              % {"low": low, "high": high}, field="password")
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ServiceError(" ".join(exc.messages), field="password") from None
    return password


def user_password_set(*, user: User, password: str, validate: bool = True) -> User:
    """A new password (change or reset); `validate=False` only for one the server made up."""
    if validate:
        password_validate(password=password, user=user)
    user.set_password(password)
    user.save(update_fields=["password"])
    changes.publish("users")
    return user


def user_signup(*, username: str, password: str, email: str = "", verification_code: str = "",
                aff_code: str = "", display_name: str = "") -> User:
    """Registration by a visitor under the operator's rules (one-api's POST /api/user/register).

    RegisterEnabled and PasswordRegisterEnabled must be on. With EmailVerificationEnabled the address
    needs the code mailed to it, which is used up by the registration; without it the address is not
    kept, as in one-api, so nobody can claim an address they do not own.
    """
    from django.utils.translation import gettext as _

    from accounts import verification
    from oneapi_site import options

    if not options.get("RegisterEnabled"):
        raise ServiceError(_("New registrations have been turned off by the administrator."))
    if not options.get("PasswordRegisterEnabled"):
        raise ServiceError(_("Registration with a password has been turned off; use another sign-in method."))
    username = (username or "").strip()
    if not username:
        raise ServiceError(_("Enter a username."), field="username")
    if len(username) > USERNAME_MAX_LENGTH:
        raise ServiceError(_("The username must be at most %(max)d characters long.")
                              % {"max": USERNAME_MAX_LENGTH}, field="username")
    if selectors.username_taken(username):
        raise ServiceError(_("This username is taken."), field="username")
    verify = options.get("EmailVerificationEnabled")
    email = verification.email_check_format(email) if verify else ""
    if verify and verification.email_in_use(email):
        raise ServiceError(_("This e-mail address is already in use."), field="email")
    password_validate(password=password, user=User(username=username, email=email))
    if verify:
        if not (verification_code or "").strip():
            raise ServiceError(_("Enter the verification code sent to your e-mail."), field="verification_code")
        verification.email_code_check(email=email, code=verification_code)
    with transaction.atomic():
        user = user_register(username=username, password=password, display_name=display_name, email=email,
                             aff_code=aff_code)
        if verify:
            # Taken inside the transaction: if another request used the code first, this account goes.
            verification.email_code_consume(email=email, code=verification_code)
    return user


# --- Sign-in by GitHub OAuth and OIDC (accounts/oauth.py decides; these write) -------------

OAUTH_ID_FIELDS = ("github_id", "oidc_id")  # one-api's columns, one per provider


def _oauth_email(email: str) -> str:
    """The provider's address when it fits and nobody has it; otherwise none (never a reason to refuse).

    "Nobody" ignores case, as sign-up codes and password resets compare addresses.
    """
    try:
        email = _check_email(email)
    except ServiceError:
        return ""
    if email and User.objects.filter(email__iexact=email).exists():
        return ""
    return email


@transaction.atomic
def user_oauth_register(*, id_field: str, external_id: str, username: str, display_name: str = "",
                        email: str = "", aff_code: str = "") -> User:
    """A new account for a GitHub or OIDC identity, with what password registration gives (one-api's
    User.Insert): QuotaForNewUser and the invitation rewards, and a "default" token. No usable password:
    such users sign in through their provider until they set one.
    """
    from billing.services import user_signup_gifts

    if id_field not in OAUTH_ID_FIELDS or not external_id:
        raise ServiceError("unknown sign-in provider")
    # Made up by accounts.oauth (github_<n>), so only the column's limit: past id 99999 it exceeds 12.
    username = (username or "").strip()
    if not username or len(username) > User._meta.get_field("username").max_length:
        raise ServiceError("no username for the new account")
    _check_username_free(username)
    display_name = (display_name or "").strip()[:DISPLAY_NAME_MAX_LENGTH] or username
    inviter_id = 0
    if (aff_code or "").strip():
        inviter_id = User.objects.filter(aff_code=aff_code.strip()).values_list("id", flat=True).first() or 0
    user = user_create(username=username, password=None, display_name=display_name,  # type: ignore[arg-type]
                       email=_oauth_email(email), inviter_id=inviter_id)
    setattr(user, id_field, external_id)
    user.save(update_fields=[id_field])
    user_signup_gifts(user_id=user.pk, inviter_id=inviter_id)
    token_create(user=user, name="default", unlimited_quota=True, expired_time=-1)
    user.refresh_from_db(fields=["quota"])
    return user


def user_oauth_link(*, user: User, id_field: str, external_id: str) -> User:
    """Link a provider's account to `user` (one-api's bind), unless another account, even a deleted one, has it."""
    from django.utils.translation import gettext as _

    if id_field not in OAUTH_ID_FIELDS or not external_id:
        raise ServiceError("unknown sign-in provider")
    taken = User.objects.filter(**{id_field: external_id}).exclude(pk=user.pk).exists()
    if taken:
        raise ServiceError(_("This account is already linked to another user."), field=id_field)
    if getattr(user, id_field) != external_id:
        setattr(user, id_field, external_id)
        user.save(update_fields=[id_field])
        changes.publish("users")
    return user
