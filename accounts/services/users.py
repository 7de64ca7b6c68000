"""Writes to users, and the rules their fields follow (the pages, the console and /api share these).

Quota moves live in billing.services; sign-up in accounts.services.signup.
"""

from __future__ import annotations

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext

from accounts import permissions, selectors
from accounts.models import DEFAULT_ROOT_PASSWORD, Token, User
from accounts.services.tokens import token_create
from billing.services import user_quota_set
from oneapi_site.lib import changes, limit_values
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.keys import random_key, uuid_hex

ROOT_INITIAL_QUOTA = 500_000_000_000_000  # one-api's root start balance

# one-api's validate tags on model.User: username max=12, password min=8,max=20, display_name max=20.
USERNAME_MAX_LENGTH = 12
DISPLAY_NAME_MAX_LENGTH = 20
PASSWORD_LENGTHS = (8, 20)
EMAIL_MAX_LENGTH = 50
GROUP_MAX_LENGTH = 32
# What the column holds: the console may name an account past one-api's 12, and sign-in providers' made-up
# names (github_<id>) pass it too.
USERNAME_COLUMN_LENGTH = User._meta.get_field("username").max_length


# --- The rules of a user's fields ------------------------------------------------------------

def username_clean(username: str, *, user_id: int | None = None, max_length: int = USERNAME_MAX_LENGTH) -> str:
    """The username as stored: trimmed, present, at most `max_length` characters (one-api's 12 for a name
    people choose), and nobody else's in any letter case (`user_id` is the account being renamed)."""
    username = (username or "").strip()
    if not username:
        raise ServiceError(gettext("Enter a username."), field="username")
    if len(username) > max_length:
        raise ServiceError(gettext("The username must be at most %(max)d characters long.") % {"max": max_length},
                           field="username")
    if selectors.username_taken(username, user_id=user_id):
        raise ServiceError(gettext("This username is taken."), field="username")
    return username


def display_name_clean(display_name: str) -> str:
    """The display name trimmed, at most 20 characters; empty means "use the username"."""
    display_name = (display_name or "").strip()
    if len(display_name) > DISPLAY_NAME_MAX_LENGTH:
        raise ServiceError(gettext("The display name may have at most %(limit_value)d characters.")
                           % {"limit_value": DISPLAY_NAME_MAX_LENGTH}, field="display_name")
    return display_name


def email_clean(email: str, *, user_id: int | None = None) -> str:
    """An address an admin sets: trimmed, at most 50 characters, and nobody else's; empty is none."""
    email = (email or "").strip()
    if len(email) > EMAIL_MAX_LENGTH:
        raise ServiceError(gettext("The e-mail address may have at most %(limit_value)d characters.")
                           % {"limit_value": EMAIL_MAX_LENGTH}, field="email")
    if email and "@" not in email:
        raise ServiceError(gettext("Enter a valid e-mail address."), field="email")
    if email and User.objects.filter(email=email).exclude(pk=user_id).exists():
        raise ServiceError(gettext("This e-mail address is already in use."), field="email")
    return email


def password_length_check(password: str) -> str:
    """one-api's 8 to 20 characters: all the management API asks of a password, as in one-api."""
    low, high = PASSWORD_LENGTHS
    if not low <= len(password or "") <= high:
        raise ServiceError(gettext("The password must be %(low)d to %(high)d characters long.")
                           % {"low": low, "high": high}, field="password")
    return password


def password_validate(*, password: str, user: User | None = None) -> str:
    """A password a person chooses: not the seeded 123456, 8 to 20 characters, then
    settings.AUTH_PASSWORD_VALIDATORS; messages in the user's language."""
    if password == DEFAULT_ROOT_PASSWORD:
        raise ServiceError(gettext("123456 is the well-known default password; choose another one."),
                           field="password")
    password_length_check(password)
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ServiceError(" ".join(exc.messages), field="password") from None
    return password


# --- Writes ---------------------------------------------------------------------------------

def _new_aff_code() -> str:
    return random_key(4)


def user_create(*, username: str, password: str | None, display_name: str = "", role: int = User.Role.COMMON,
                group: str = "default", quota: int = 0, email: str = "", inviter_id: int = 0,
                username_max_length: int = USERNAME_COLUMN_LENGTH, **identity: str) -> User:
    """A user row with a fresh invitation code; `identity` sets a sign-in provider's id column (github_id,
    oidc_id). No gifts and no token: accounts.services.signup opens accounts with those."""
    username = username_clean(username, max_length=username_max_length)
    user = User(username=username, display_name=display_name or username, role=role, group=group,
                quota=quota, email=email, inviter_id=inviter_id, **identity)
    user.set_password(password)
    for _attempt in range(5):
        user.aff_code = _new_aff_code()
        try:
            with transaction.atomic():
                user.save()
            break
        except IntegrityError:
            if selectors.username_taken(username):
                raise ServiceError(gettext("This username is taken."), field="username") from None
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


def _apply_profile(*, user: User, username: str | None, display_name: str | None,
                   password: str | None) -> list[str]:
    """Set the profile fields given (an empty password keeps the old one); return what changed."""
    update_fields = []
    if username is not None and username.strip() != user.username:
        user.username = username_clean(username, user_id=user.pk)
        update_fields.append("username")
    if display_name is not None:
        user.display_name = display_name_clean(display_name) or user.username
        update_fields.append("display_name")
    if password:
        user.set_password(password_length_check(password))
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
    if not permissions.user_can_manage(by, user):
        raise ServiceError(gettext("You cannot manage a user whose role is equal to or above yours."))


@transaction.atomic
def user_update(*, user: User, by: User, username: str | None = None, display_name: str | None = None,
                password: str | None = None, email: str | None = None, group: str | None = None,
                role: int | None = None, status: int | None = None, quota: int | None = None,
                price_ratio: float | None = None, **limits) -> User:
    """An admin edits a user (one-api's PUT /api/user/); a quota change is logged by billing.

    `limits`: rpm_limit, tpm_limit, concurrency_limit, rpd_limit, budget_quota, budget_period. Tokens the
    user made under older, higher limits keep theirs: the user's own limit holds over all of them anyway.
    """
    _check_can_manage(by=by, user=user)
    unknown = set(limits) - set(limit_values.LIMIT_FIELDS) - set(limit_values.BUDGET_FIELDS)
    if unknown:
        raise TypeError(f"user_update() got unexpected fields {sorted(unknown)}")
    update_fields = _apply_profile(user=user, username=username, display_name=display_name, password=password)
    given = limit_values.values_clean(limits)
    for name, value in given.items():
        if value != getattr(user, name):
            setattr(user, name, value)
            update_fields.append(name)
    if given.keys() & set(limit_values.BUDGET_FIELDS):
        limit_values.budget_check(quota=user.budget_quota, period=user.budget_period)
    if "budget_period" in update_fields:
        # Another kind of period is another budget: its spending starts from nothing, and the ledger no longer
        # counts charges of the old kind in it (billing.services.charges_apply).
        user.budget_spent = user.budget_period_start = 0
        update_fields += ["budget_spent", "budget_period_start"]
    if price_ratio is not None:
        price_ratio = limit_values.price_ratio_clean(price_ratio)
        if price_ratio != user.price_ratio:
            user.price_ratio = price_ratio
            update_fields.append("price_ratio")
    if email is not None and email.strip() != user.email:
        user.email = email_clean(email, user_id=user.pk)
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
    for _attempt in range(5):
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


def user_password_set(*, user: User, password: str, validate: bool = True) -> User:
    """A new password (change or reset); `validate=False` only for one the server made up."""
    if validate:
        password_validate(password=password, user=user)
    user.set_password(password)
    user.save(update_fields=["password"])
    changes.publish("users")
    return user
