"""Who may act on which user and token: the one rule the management API, the console, the pages and the
services ask, so no route can forget it.

one-api's rule, made whole: root acts on everyone. An admin acts only on users whose role is strictly
below theirs, on those users' tokens, and on their own tokens; so never on root's balance or tokens, never
on another admin, and not on their own account through an admin route (their profile has its own). A
common user acts only on their own tokens.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import Token, User

# Roles anyone can be given; root is made once, by the seed, and never handed out.
GIVABLE_ROLES = (User.Role.COMMON, User.Role.ADMIN)


def role_at_least(user: User, role: int) -> bool:
    """The gate of a route: an enabled user of `role` or above (IsAdmin, IsRoot, root-only console pages)."""
    return user.is_active and user.role >= role


def _is_root(actor: User) -> bool:
    return role_at_least(actor, User.Role.ROOT)


def user_can_manage(actor: User, target: User) -> bool:
    """Whether `actor` may edit, disable, delete or credit `target`."""
    if not role_at_least(actor, User.Role.ADMIN):
        return False
    return _is_root(actor) or target.role < actor.role


def token_can_manage(actor: User, token: Token) -> bool:
    """Whether `actor` may see, edit or delete `token`: their own, or one of a user they manage."""
    if token.user_id == actor.pk:
        return actor.is_active
    return user_can_manage(actor, token.user)


def token_can_give(actor: User, owner: User) -> bool:
    """Whether `actor` may make a token owned by `owner` (whose quota it spends)."""
    return (owner.pk == actor.pk and actor.is_active) or user_can_manage(actor, owner)


def role_can_give(actor: User, role: int) -> bool:
    """Whether `actor` may make someone `role`: never root, and below the actor's own unless root."""
    if role not in GIVABLE_ROLES or not role_at_least(actor, User.Role.ADMIN):
        return False
    return _is_root(actor) or role < actor.role


def roles_givable(actor: User) -> list[int]:
    return [role for role in GIVABLE_ROLES if role_can_give(actor, role)]


def users_managed_by(actor: User) -> QuerySet[User]:
    """The users `actor` may act on (see `user_can_manage`)."""
    if _is_root(actor):
        return User.objects.all()
    if not role_at_least(actor, User.Role.ADMIN):
        return User.objects.none()
    return User.objects.filter(role__lt=actor.role)


def users_within_reach(actor: User) -> QuerySet[User]:
    """Those, and the actor: whom the console lists to them and may own the tokens they make."""
    return users_managed_by(actor) | User.objects.filter(pk=actor.pk)


def tokens_managed_by(actor: User) -> QuerySet[Token]:
    """The tokens `actor` may act on (see `token_can_manage`)."""
    if _is_root(actor):
        return Token.objects.all()
    if not actor.is_active:
        return Token.objects.none()
    if actor.role < User.Role.ADMIN:
        return Token.objects.filter(user=actor)
    return Token.objects.filter(Q(user=actor) | Q(user__role__lt=actor.role))
