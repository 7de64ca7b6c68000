"""JSON shapes of users and tokens as one-api's clients read them, and the bodies they send."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import Token, User
from oneapi_site.lib.number_fields import WholeNumberInput, column


def user_json(user: User) -> dict:
    """A user without password or access token; one-api's OAuth ids are kept empty for its web pages."""
    return {
        "id": user.pk,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "status": user.status,
        "email": user.email,
        "github_id": user.github_id,
        "wechat_id": "",
        "lark_id": "",
        "oidc_id": user.oidc_id,
        "quota": user.quota,
        "used_quota": user.used_quota,
        "request_count": user.request_count,
        "group": user.group,
        "aff_code": user.aff_code or "",
        "inviter_id": user.inviter_id,
        "created_time": user.created_time,
    }


def login_json(user: User) -> dict:
    return {"id": user.pk, "username": user.username, "display_name": user.display_name,
            "role": user.role, "status": user.status, "group": user.group}


def token_json(token: Token) -> dict:
    """The owner sees the key, without `sk-`, as one-api returns it."""
    return {
        "id": token.pk,
        "user_id": token.user_id,
        "key": token.key,
        "name": token.name,
        "status": token.status,
        "created_time": token.created_time,
        "accessed_time": token.accessed_time,
        "expired_time": token.expired_time,
        "remain_quota": token.remain_quota,
        "unlimited_quota": token.unlimited_quota,
        "used_quota": token.used_quota,
        "models": token.models,
        "subnet": token.subnet,
    }


class CommaListField(serializers.Field):
    """one-api sends lists as "a,b"; accept a JSON array too."""

    def to_internal_value(self, data):
        if isinstance(data, (list, tuple)):
            if not all(isinstance(item, str) for item in data):
                self.fail("invalid")
            return ",".join(data)
        if not isinstance(data, str):
            self.fail("invalid")
        return data

    default_error_messages = {"invalid": "must be a comma-separated string or a list of strings"}


class LoginInput(serializers.Serializer):
    username = serializers.CharField(allow_blank=True, trim_whitespace=True)
    password = serializers.CharField(allow_blank=True, trim_whitespace=False)


class RegisterInput(serializers.Serializer):
    username = serializers.CharField(allow_blank=True)
    password = serializers.CharField(allow_blank=True, trim_whitespace=False)
    display_name = serializers.CharField(required=False, allow_blank=True, default="")
    email = serializers.CharField(required=False, allow_blank=True, default="")
    verification_code = serializers.CharField(required=False, allow_blank=True, default="")
    aff_code = serializers.CharField(required=False, allow_blank=True, default="")


class SelfUpdateInput(serializers.Serializer):
    username = serializers.CharField(required=False, allow_blank=True)
    display_name = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    password = serializers.CharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)


class UserCreateInput(serializers.Serializer):
    username = serializers.CharField(allow_blank=True)
    password = serializers.CharField(allow_blank=True, trim_whitespace=False)
    display_name = serializers.CharField(required=False, allow_blank=True, default="")
    role = WholeNumberInput(column=column(User, "role"), required=False, default=User.Role.COMMON)


class UserUpdateInput(serializers.Serializer):
    id = WholeNumberInput(column=column(User, "id"))
    username = serializers.CharField(required=False, allow_blank=True)
    display_name = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    password = serializers.CharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)
    email = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    group = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    role = WholeNumberInput(column=column(User, "role"), required=False, allow_null=True)
    status = WholeNumberInput(column=column(User, "status"), required=False, allow_null=True)
    quota = WholeNumberInput(column=column(User, "quota"), required=False, allow_null=True)


class UserManageInput(serializers.Serializer):
    id = WholeNumberInput(column=column(User, "id"), required=False)
    username = serializers.CharField(required=False, allow_blank=True)
    action = serializers.CharField()


class RedeemInput(serializers.Serializer):
    key = serializers.CharField(allow_blank=True)


class TokenInput(serializers.Serializer):
    id = WholeNumberInput(column=column(Token, "id"), required=False)
    name = serializers.CharField(required=False, allow_blank=True)
    expired_time = WholeNumberInput(column=column(Token, "expired_time"), required=False)
    remain_quota = WholeNumberInput(column=column(Token, "remain_quota"), required=False)
    unlimited_quota = serializers.BooleanField(required=False)
    models = CommaListField(required=False, allow_null=True)
    subnet = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    status = serializers.ChoiceField(choices=Token.Status.values, required=False)
