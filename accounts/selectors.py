"""Reads of users and tokens for the management API."""

from __future__ import annotations

import hashlib

from django.core.cache import cache
from django.db.models import Q, QuerySet

from accounts.models import DEFAULT_ROOT_PASSWORD, Token, User
from oneapi_site.lib import numbers
from oneapi_site.lib.search import prefix

USER_ORDERS = {"quota": "-quota", "used_quota": "-used_quota", "request_count": "-request_count"}
TOKEN_ORDERS = {"remain_quota": "-remain_quota", "used_quota": "-used_quota"}


def user_list(*, offset: int, limit: int, order: str = "") -> list[User]:
    """Newest first, or by the one-api sort keys; deleted users (status 3) are left out."""
    ordering = [USER_ORDERS[order], "-id"] if order in USER_ORDERS else ["-id"]
    users = User.objects.exclude(status=User.Status.DELETED).order_by(*ordering)
    return list(users[offset:offset + limit])


def user_search(*, keyword: str, limit: int) -> list[User]:
    """one-api matches the id exactly and username, email or display name by prefix."""
    keyword = keyword.strip()
    match = prefix("username", keyword) | prefix("email", keyword) | prefix("display_name", keyword)
    user_id = numbers.int_or_none(keyword, minimum=0)  # not isdigit(): "²" is a digit int() refuses
    if user_id is not None:
        match |= Q(pk=user_id)
    users = User.objects.exclude(status=User.Status.DELETED).filter(match).order_by("-id")
    return list(users[:limit])


def username_taken(username: str, *, user_id: int | None = None) -> bool:
    """Whether an account other than `user_id` has this name in any case: "ROOT" is root's name too.

    MariaDB's collation compares names so by itself; SQLite and PostgreSQL do not, so the lookup says it
    (and the users_username_ci_unique constraint holds it in the database).
    """
    return User.objects.filter(username__iexact=(username or "").strip()).exclude(pk=user_id).exists()


def tokens_of(user: User) -> QuerySet[Token]:
    return Token.objects.filter(user=user)


def token_list(*, user: User, offset: int, limit: int, order: str = "") -> list[Token]:
    ordering = [TOKEN_ORDERS[order], "-id"] if order in TOKEN_ORDERS else ["-id"]
    return list(tokens_of(user).order_by(*ordering)[offset:offset + limit])


def token_search(*, user: User, keyword: str, limit: int) -> list[Token]:
    """Name prefix; a whole key (with or without `sk-`) also finds its token."""
    keyword = keyword.strip()
    match = prefix("name", keyword) | Q(key=keyword.removeprefix("sk-"))
    return list(tokens_of(user).filter(match).order_by("-id")[:limit])


def token_of(*, user: User, token_id: int) -> Token | None:
    """The user's own token, or None: another user's id answers exactly like a missing one."""
    return tokens_of(user).filter(pk=token_id).first()


def uses_default_password(user) -> bool:
    """Whether root still has one-api's 123456; remembered per password hash, since hashing is slow on purpose.

    Asked on every request of a signed-in root (DefaultPasswordMiddleware) and by the admin's banner.
    """
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_root", False):
        return False
    key = f"oneapi:default-password:{user.pk}:{hashlib.sha256(user.password.encode()).hexdigest()[:32]}"
    cached = cache.get(key)
    if cached is None:
        cached = user.check_password(DEFAULT_ROOT_PASSWORD)
        cache.set(key, cached, 24 * 3600)
    return cached


def user_ids_by_login(*, login: str) -> list[int]:
    """The accounts a sign-in as `login` is aimed at: whose username it is, or (with an "@") whose e-mail, in
    any letter case. Usually one; none for an unknown name; a few when addresses are shared."""
    login = (login or "").strip()
    if not login:
        return []
    match = Q(username__iexact=login)
    if "@" in login:
        match |= Q(email__iexact=login)
    return list(User.objects.filter(match).order_by("id").values_list("id", flat=True)[:5])


def user_by_credentials(*, login: str, password: str) -> User | None:
    """Whose username (or e-mail) and password these are, enabled or not; None when they match nobody.

    The login field takes a username or, as in one-api, an e-mail address. A username may itself look
    like an address, so when the text is one user's name and another's address both accounts are tried:
    a look-alike username must not lock the address's owner out. An unknown name still costs one hash,
    so the answer time does not tell which names exist.
    """
    login = (login or "").strip()
    candidates: list[User] = []
    if login:
        candidates += User.objects.filter(username=login)[:1]
        if "@" in login:
            candidates += [u for u in User.objects.filter(email=login).order_by("id")[:1] if u not in candidates]
    if not candidates:
        User().set_password(password)
        return None
    return next((user for user in candidates if user.check_password(password)), None)
